//! What every handler can reach: the one state of the application, and its policies.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use renrakucho_authz::Authorizer;
use renrakucho_files::FileStore;
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
    /// Encrypted files (consent scans, attachments).
    pub files: FileStore,
    pub sessions: SessionPolicy,
    pub care: CarePolicy,
    /// The portal forms' CSRF protection.
    pub csrf: axum_csrf::CsrfConfig,
    /// Announced events (new entries, requests, invitations), for live notifications.
    pub events: crate::events::Events,
    /// Proxies whose `X-Forwarded-For` is believed (`RENRAKUCHO_TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Sessions and accounts this process remembers between requests (ADR 0025).
    pub principals: crate::principals::Principals,
    /// Where people reach this server (`RENRAKUCHO_PUBLIC_URL`, else the bound address).
    pub public_url: Arc<url::Url>,
}

impl AppState {
    /// Where a facility's OpenID provider sends the person back after sign-in (the redirect
    /// URI its admin registers there).
    pub fn provider_callback_url(&self) -> url::Url {
        self.public_url
            .join(PROVIDER_CALLBACK_PATH)
            .expect("a path joins any base URL")
    }

    /// Where a provider's logout sends the person back.
    pub fn after_logout_url(&self) -> url::Url {
        self.public_url
            .join("/login")
            .expect("a path joins any base URL")
    }
}

/// The portal's page the providers send people back to.
pub const PROVIDER_CALLBACK_PATH: &str = "/login/provider/callback";

/// Settings of the care domain that handlers apply.
#[derive(Debug, Clone, Copy)]
pub struct CarePolicy {
    /// The largest file accepted.
    pub upload_limit_bytes: usize,
    /// How long an emergency grant lasts.
    pub emergency_access: Duration,
}

/// How long a session lives (第23条: unattended terminals are signed out).
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Break-glass access and erasure need the password given within this long (at sign-in,
    /// a password change or `POST /api/v1/me/reauthenticate`).
    pub reauthenticate_within: Duration,
}

impl SessionPolicy {
    /// How often an active session is renewed in the store: often enough that the idle
    /// timeout is exact to within this, rarely enough that requests do not all write.
    pub fn renew_every(&self) -> Duration {
        (self.idle_timeout / 2).min(Duration::from_secs(60))
    }

    /// How often a long-lived response (the live notifications) checks that its session is
    /// still good: a signed-out or idle session stops receiving within this.
    pub fn recheck_every(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl FromRef<AppState> for axum_csrf::CsrfConfig {
    fn from_ref(state: &AppState) -> Self {
        state.csrf.clone()
    }
}
