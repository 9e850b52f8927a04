//! The time as the authorizer reads it, by which emergency links run out.

use std::sync::Arc;

use time::OffsetDateTime;

pub(crate) fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Where the authorizer reads the time, by which emergency links run out: the system clock, or
/// (in tests) a clock of the test's own, so that an expiry is seen without waiting for it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// `OffsetDateTime::now_utc`.
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub(crate) fn now_millis(&self) -> i64 {
        millis((self.0)())
    }
}
