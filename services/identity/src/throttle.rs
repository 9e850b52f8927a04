use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
    /// What was limited: `"address"` or `"account"`.
    pub limited: &'static str,
    /// The first refusal of its key in the current window: the one to record. The others are
    /// counted and recorded once, when the window closes ([`SignInThrottle::closed_windows`]).
    pub first_in_window: bool,
}

/// Refusals of one key that were counted rather than recorded one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalSummary {
    pub limited: &'static str,
    /// The address, when an address was limited.
    pub address: Option<IpAddr>,
    /// The account key ("facility/login"), when an account was limited.
    pub account: Option<String>,
    /// Refusals after the window's first (which was recorded on its own).
    pub refusals: u64,
    pub window: Duration,
}

/// A key's current window of refusals.
#[derive(Debug)]
struct RefusalWindow {
    opened: Instant,
    limited: &'static str,
    address: Option<IpAddr>,
    account: Option<String>,
    counted: u64,
}

/// Per-account and per-address limits on sign-in attempts (governor's GCRA). The state is in
/// this process's memory: with several server processes each applies its own limit.
#[derive(Clone)]
pub struct SignInThrottle {
    per_account: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Refusals per key, for one window (the account period) at a time.
    refusals: Arc<Mutex<HashMap<String, RefusalWindow>>>,
    /// Windows that closed while their key was still being refused: replaced by a new window
    /// at once, kept here until the next sweep summarises them.
    replaced: Arc<Mutex<Vec<RefusalWindow>>>,
    window: Duration,
    /// When the windows were last looked through (at most once a second).
    swept: Arc<Mutex<Instant>>,
    /// Where the refusal windows read the time (the rate limits keep governor's own clock).
    clock: WindowClock,
}

/// Where the throttle's refusal windows read the time: the monotonic clock, or (in tests) a clock
/// of the test's own, so that a window's close is seen without waiting for it.
#[derive(Clone)]
pub struct WindowClock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl WindowClock {
    /// `Instant::now`.
    pub fn system() -> Self {
        Self(Arc::new(Instant::now))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    fn now(&self) -> Instant {
        (self.0)()
    }
}

fn quota(burst: u32, period_secs: u64) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
    Quota::with_period(Duration::from_secs(period_secs.max(1)))
        .expect("a non-zero period")
        .allow_burst(burst)
}

impl SignInThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self::with_window_clock(config, WindowClock::system())
    }

    /// Like [`SignInThrottle::new`], the refusal windows reading the time from `clock`.
    pub fn with_window_clock(config: ThrottleConfig, clock: WindowClock) -> Self {
        Self {
            per_account: Arc::new(RateLimiter::keyed(quota(
                config.account_burst,
                config.account_period_secs,
            ))),
            per_address: Arc::new(RateLimiter::keyed(quota(
                config.address_burst,
                config.address_period_secs,
            ))),
            refusals: Arc::default(),
            replaced: Arc::default(),
            window: Duration::from_secs(config.account_period_secs.max(1)),
            swept: Arc::new(Mutex::new(clock.now())),
            clock,
        }
    }

    /// Counts a refusal; true when it is the first of its key in the window.
    fn refused(
        &self,
        limited: &'static str,
        address: Option<IpAddr>,
        account: Option<&str>,
    ) -> bool {
        let key = match (address, account) {
            (Some(a), _) => format!("address:{a}"),
            (None, Some(k)) => format!("account:{k}"),
            (None, None) => return true,
        };
        let now = self.clock.now();
        let mut windows = self.refusals.lock().expect("refusal windows");
        match windows.get_mut(&key) {
            Some(open) if now.duration_since(open.opened) < self.window => {
                open.counted += 1;
                false
            }
            // A closed window not yet summarised: a new window opens now (this refusal is its
            // first), the old one waits for the sweep to write its count.
            Some(_) => {
                let fresh = RefusalWindow {
                    opened: now,
                    limited,
                    address,
                    account: account.map(str::to_string),
                    counted: 0,
                };
                if let Some(old) = windows.insert(key, fresh) {
                    if old.counted > 0 {
                        self.replaced.lock().expect("replaced windows").push(old);
                    }
                }
                true
            }
            None => {
                windows.insert(
                    key,
                    RefusalWindow {
                        opened: now,
                        limited,
                        address,
                        account: account.map(str::to_string),
                        counted: 0,
                    },
                );
                true
            }
        }
    }

    /// Takes the windows that have closed, and says how many refusals each counted beyond its
    /// first (those with none are dropped silently).
    pub fn closed_windows(&self) -> Vec<RefusalSummary> {
        let now = self.clock.now();
        {
            let mut swept = self.swept.lock().expect("refusal sweep");
            if now.duration_since(*swept) < Duration::from_secs(1) {
                return Vec::new();
            }
            *swept = now;
        }
        let mut windows = self.refusals.lock().expect("refusal windows");
        let mut closed: Vec<RefusalSummary> = self
            .replaced
            .lock()
            .expect("replaced windows")
            .drain(..)
            .map(|w| RefusalSummary {
                limited: w.limited,
                address: w.address,
                account: w.account,
                refusals: w.counted,
                window: self.window,
            })
            .collect();
        windows.retain(|_, w| {
            if now.duration_since(w.opened) < self.window {
                return true;
            }
            if w.counted > 0 {
                closed.push(RefusalSummary {
                    limited: w.limited,
                    address: w.address,
                    account: w.account.take(),
                    refusals: w.counted,
                    window: self.window,
                });
            }
            false
        });
        closed
    }

    /// Counts one attempt on `account` (a normalised "facility/login" key) from `address`.
    pub fn attempt(&self, account: &str, address: Option<IpAddr>) -> Result<(), Throttled> {
        let now = DefaultClock::default().now();
        if let Some(addr) = address {
            if let Err(not_until) = self.per_address.check_key(&addr) {
                return Err(Throttled {
                    retry_after: not_until.wait_time_from(now),
                    limited: "address",
                    first_in_window: self.refused("address", Some(addr), None),
                });
            }
        }
        if let Err(not_until) = self.per_account.check_key(&account.to_string()) {
            return Err(Throttled {
                retry_after: not_until.wait_time_from(now),
                limited: "account",
                first_in_window: self.refused("account", None, Some(account)),
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

    #[test]
    fn a_flood_of_refusals_is_one_record_and_one_count_per_window() {
        // The windows' clock stands still until the test moves it.
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = {
            let now = now.clone();
            WindowClock::new(move || *now.lock().unwrap())
        };
        let t = SignInThrottle::with_window_clock(
            ThrottleConfig {
                account_burst: 1,
                account_period_secs: 60,
                address_burst: 1000,
                address_period_secs: 1,
            },
            clock,
        );
        assert!(t.attempt("f/a", None).is_ok());
        let first = t.attempt("f/a", None).unwrap_err();
        assert!(first.first_in_window && first.limited == "account");
        for _ in 0..50 {
            assert!(!t.attempt("f/a", None).unwrap_err().first_in_window);
        }
        assert!(t.closed_windows().is_empty(), "the window is still open");
        *now.lock().unwrap() += Duration::from_secs(59);
        assert!(
            t.closed_windows().is_empty(),
            "the window is still open a second before it closes"
        );
        *now.lock().unwrap() += Duration::from_secs(1);
        let closed = t.closed_windows();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].refusals, 50);
        assert_eq!(closed[0].account.as_deref(), Some("f/a"));
        assert!(t.closed_windows().is_empty(), "summarised once");
    }

    #[test]
    fn refusals_after_a_window_closes_open_the_next_window_not_a_record_each() {
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = {
            let now = now.clone();
            WindowClock::new(move || *now.lock().unwrap())
        };
        let t = SignInThrottle::with_window_clock(
            ThrottleConfig {
                account_burst: 1,
                account_period_secs: 3600,
                address_burst: 1000,
                address_period_secs: 1,
            },
            clock,
        );
        assert!(t.attempt("f/a", None).is_ok());
        assert!(t.attempt("f/a", None).unwrap_err().first_in_window);
        for _ in 0..10 {
            assert!(!t.attempt("f/a", None).unwrap_err().first_in_window);
        }
        // The window closes; refusals go on before any sweep has summarised it.
        *now.lock().unwrap() += Duration::from_secs(3600);
        assert!(t.attempt("f/a", None).unwrap_err().first_in_window);
        for _ in 0..10 {
            assert!(
                !t.attempt("f/a", None).unwrap_err().first_in_window,
                "a refusal in the new window is counted, not recorded"
            );
        }
        let closed = t.closed_windows();
        assert_eq!(closed.len(), 1, "the first window's count, once");
        assert_eq!(closed[0].refusals, 10);
        *now.lock().unwrap() += Duration::from_secs(3600);
        let closed = t.closed_windows();
        assert_eq!(closed.len(), 1, "then the second's");
        assert_eq!(closed[0].refusals, 10);
    }
}
