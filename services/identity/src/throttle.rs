use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Limits on sign-in attempts: a burst, then one more attempt per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ThrottleConfig {
    /// Attempts on one account before it is slowed down.
    pub account_burst: u32,
    /// After the burst, one more attempt on the account per this many seconds.
    pub account_period_secs: u64,
    /// Attempts from one address (on any accounts) before it is slowed down.
    pub address_burst: u32,
    pub address_period_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account_burst: 5,
            account_period_secs: 60,
            address_burst: 20,
            address_period_secs: 10,
        }
    }
}

/// Refused for now; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// Per-account and per-address limits on sign-in attempts (governor's GCRA). The state is in
/// this process's memory: with several server processes each applies its own limit.
#[derive(Clone)]
pub struct SignInThrottle {
    per_account: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

fn quota(burst: u32, period_secs: u64) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
    Quota::with_period(Duration::from_secs(period_secs.max(1)))
        .expect("a non-zero period")
        .allow_burst(burst)
}

impl SignInThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            per_account: Arc::new(RateLimiter::keyed(quota(
                config.account_burst,
                config.account_period_secs,
            ))),
            per_address: Arc::new(RateLimiter::keyed(quota(
                config.address_burst,
                config.address_period_secs,
            ))),
        }
    }

    /// Counts one attempt on `account` (a normalised "facility/login" key) from `address`.
    pub fn attempt(&self, account: &str, address: Option<IpAddr>) -> Result<(), Throttled> {
        let now = DefaultClock::default().now();
        if let Some(addr) = address {
            if let Err(not_until) = self.per_address.check_key(&addr) {
                return Err(Throttled {
                    retry_after: not_until.wait_time_from(now),
                });
            }
        }
        if let Err(not_until) = self.per_account.check_key(&account.to_string()) {
            return Err(Throttled {
                retry_after: not_until.wait_time_from(now),
            });
        }
        Ok(())
    }

    /// Forgets keys whose limits have fully recovered, so memory stays bounded.
    pub fn prune(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_slowed_after_its_burst_and_others_are_not() {
        let t = SignInThrottle::new(ThrottleConfig {
            account_burst: 3,
            account_period_secs: 60,
            address_burst: 100,
            address_period_secs: 1,
        });
        for _ in 0..3 {
            assert!(t.attempt("f/a", None).is_ok());
        }
        let refused = t.attempt("f/a", None).unwrap_err();
        assert!(refused.retry_after > Duration::from_secs(1));
        assert!(t.attempt("f/b", None).is_ok());
    }
}
