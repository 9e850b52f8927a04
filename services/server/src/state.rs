use std::time::Duration;

use std::sync::Arc;

use renrakucho_authz::Authorizer;
use renrakucho_identity::Authenticator;
use renrakucho_keyring::Keyring;
use renrakucho_store::Database;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub auth: Authenticator,
    /// Envelope encryption of patient data (one per process, with its cache of keys).
    pub keyring: Keyring,
    /// Who may do what to which patient (Casbin), kept in step with the database.
    pub authz: Arc<Authorizer>,
    pub sessions: SessionPolicy,
}

/// How long a session lives (第23条: unattended terminals are signed out).
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

impl SessionPolicy {
    /// How often an active session is renewed in the store: often enough that the idle
    /// timeout is exact to within this, rarely enough that requests do not all write.
    pub fn renew_every(&self) -> Duration {
        (self.idle_timeout / 2).min(Duration::from_secs(60))
    }
}
