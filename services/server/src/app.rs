//! Builds the application: state, routers, middleware, the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use renrakucho_http::events::Events;
use renrakucho_http::state::{AppState, CarePolicy, SessionPolicy};
use renrakucho_identity::{Authenticator, PasswordHasher, SignInThrottle};
use renrakucho_store::{Connections, Database};
use tokio::net::TcpListener;

use crate::config::Settings;

/// A built server, bound to its address but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// E-mail (daily digests), when an SMTP server is configured.
    mailer: Option<crate::mail::Mailer>,
    /// The address people reach the portal at (links in e-mails).
    public_url: String,
    /// The master key epochs this server rotates, and how often it checks.
    epochs: Option<(renrakucho_keyring::EpochPolicy, Duration)>,
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("could not connect to the database: {0}")]
    Database(#[from] renrakucho_store::StoreError),
    #[error("the keyring could not start: {0}")]
    Keyring(#[from] renrakucho_keyring::KeyringError),
    #[error("{0}")]
    Config(crate::config::ConfigError),
    #[error("the file store could not open: {0}")]
    Files(#[from] renrakucho_files::FileError),
    #[error("the authorizer could not load: {0}")]
    Authorization(String),
    #[error("patient cards could not be issued: {0}")]
    Cards(#[from] renrakucho_registry::CareError),
    #[error("invalid password hashing parameters: {0}")]
    Hasher(String),
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Application {
    /// Connects the pools (the web pool as the runtime role, the privileged ones as the owner,
    /// each SET ROLE to its scope's role), builds the routes and binds `settings.listen` (port 0
    /// picks a free port, as the tests do).
    pub async fn build(settings: &Settings, connections: &Connections) -> Result<Self, BuildError> {
        let db = Database::connect(connections, settings.database_max_connections).await?;
        let hasher = PasswordHasher::new(settings.password_params())
            .map_err(|e| BuildError::Hasher(e.to_string()))?;
        let throttle = SignInThrottle::new(settings.throttle());
        let crate::keys::ServerKeys { keyring, epochs } = crate::keys::open_keys(settings).await?;
        keyring.prepare(&db).await?;
        // Every patient has a card number before anyone can ask for one (ADR 0018).
        let issued = renrakucho_registry::ensure_cards(&db, &keyring).await?;
        if issued > 0 {
            tracing::info!(
                issued,
                "patient cards issued to patients registered before cards"
            );
        }
        let authz = renrakucho_http::access::load(&db)
            .await
            .map_err(|e| BuildError::Authorization(e.to_string()))?;
        let files = settings.file_store()?;
        let csrf = renrakucho_portal::csrf::config(
            &crate::csrf_secret::load(settings).map_err(BuildError::Config)?,
            settings.secure_cookies(),
        );
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| BuildError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        // Where people reach this server: the providers send them back here after sign-in.
        let public_url = match &settings.public_url {
            Some(url) => url.clone(),
            None => {
                let mut bound = listener.local_addr().map_err(|source| BuildError::Listen {
                    addr: settings.listen,
                    source,
                })?;
                // Listening on every address: this machine's loopback is one of them (a
                // deployment sets RENRAKUCHO_PUBLIC_URL).
                if bound.ip().is_unspecified() {
                    bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                url::Url::parse(&format!("http://{bound}")).expect("a socket address makes a URL")
            }
        };
        let state = AppState {
            public_url: std::sync::Arc::new(public_url.clone()),
            authz,
            auth: Authenticator::new(db.clone(), hasher, throttle, keyring.clone())
                .with_password_policy(settings.password_rules(), settings.password_max_age)
                .with_staff_second_factor(settings.staff_second_factor)
                .with_private_providers(settings.oidc_allow_private_providers)
                .with_passkeys(&public_url)
                .with_operator_provider(settings.operator_provider().map_err(BuildError::Config)?),
            keyring,
            files,
            db,
            sessions: SessionPolicy {
                idle_timeout: settings.session_idle_timeout,
                max_lifetime: settings.session_max_lifetime,
                reauthenticate_within: settings.reauthenticate_within,
            },
            care: CarePolicy {
                upload_limit_bytes: settings.upload_limit_bytes as usize,
                emergency_access: settings.emergency_access_duration,
            },
            csrf,
            events: Events::new(),
            trusted_proxies: settings
                .trusted_proxies()
                .map_err(BuildError::Config)?
                .into(),
            principals: renrakucho_http::principals::Principals::new(),
        };
        let router = router(
            state.clone(),
            settings.secure_cookies(),
            settings.request_timeout,
        );
        Ok(Self {
            listener,
            router,
            state,
            mailer: crate::mail::Mailer::from_settings(settings).map_err(BuildError::Config)?,
            public_url: public_url.to_string(),
            epochs: epochs.map(|policy| (policy, settings.master_key_epoch_check)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The runtime database, for commands that run next to the server (demo data).
    pub fn database(&self) -> &Database {
        &self.state.db
    }

    /// The server's authorizer (its decisions follow the database).
    pub fn authorizer(&self) -> &std::sync::Arc<renrakucho_authz::Authorizer> {
        &self.state.authz
    }

    /// What the server remembers of sessions and accounts between requests (ADR 0025).
    pub fn principals(&self) -> &renrakucho_http::principals::Principals {
        &self.state.principals
    }

    /// The server's password hasher (it counts its verifications: every sign-in runs one,
    /// whatever was wrong).
    pub fn password_hasher(&self) -> &PasswordHasher {
        self.state.auth.hasher()
    }

    /// The server's file store.
    pub fn files(&self) -> &renrakucho_files::FileStore {
        &self.state.files
    }

    /// The server's keyring, for commands that run next to the server (demo data).
    pub fn keyring(&self) -> &renrakucho_keyring::Keyring {
        &self.state.keyring
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let key_changes = tokio::spawn(follow_key_changes(self.state.clone()));
        let access_changes = tokio::spawn(renrakucho_http::access::follow(
            self.state.db.clone(),
            self.state.authz.clone(),
        ));
        let events = tokio::spawn(self.state.events.clone().follow(self.state.db.clone()));
        let principals = tokio::spawn(self.state.principals.clone().follow(self.state.db.clone()));
        let digests = tokio::spawn(digests(self.state.db.clone(), self.mailer, self.public_url));
        let epochs = match self.epochs {
            Some((policy, check)) => Some(tokio::spawn(crate::keys::follow_epochs(
                self.state.keyring.clone(),
                self.state.db.clone(),
                policy,
                check,
            ))),
            None => {
                tracing::warn!(
                    "a master key given in the environment (RENRAKUCHO_MASTER_KEY), or a KMS \
                     key configured by ID or ARN instead of an alias, is not rotated by the \
                     server: an erased patient stays readable in old WAL and backups until the \
                     operator rotates and destroys the master key (README, \"Erasure and \
                     backups\")"
                );
                None
            }
        };
        let result = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        housekeeping.abort();
        key_changes.abort();
        access_changes.abort();
        events.abort();
        principals.abort();
        digests.abort();
        if let Some(epochs) = epochs {
            epochs.abort();
        }
        self.state.db.close().await;
        result
    }
}

/// Sends the account notices that are due every 30 seconds, and the daily digests every five
/// minutes (when e-mail is configured).
async fn digests(db: Database, mailer: Option<crate::mail::Mailer>, public_url: String) {
    let Some(mailer) = mailer else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    for round in 0u64.. {
        tick.tick().await;
        let now = time::OffsetDateTime::now_utc();
        let notices = crate::notices::send_due(&db, &mailer, now).await;
        if notices > 0 {
            tracing::info!(sent = notices, "account notices sent");
        }
        if round % 10 != 0 {
            continue;
        }
        let sent = crate::digest::send_due(&db, &mailer, &public_url, now).await;
        if sent > 0 {
            tracing::info!(sent, "daily digests sent");
        }
    }
}

/// Deletes expired sessions and announcements every process has read, and forgets recovered
/// throttle keys, every five minutes; once an hour (first at start, after a crash), deletes
/// the files no row names that were stored over an hour ago (uploads cut off by a killed
/// server). Every process does it: each step is safe beside the others' (see
/// `renrakucho_registry::sweep_orphaned_files`).
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    let mut last_sweep: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        if last_sweep.is_none_or(|at| at.elapsed() >= renrakucho_registry::ORPHAN_GRACE) {
            last_sweep = Some(std::time::Instant::now());
            if let Err(e) = renrakucho_registry::sweep_orphaned_files(
                &state.db,
                &state.files,
                renrakucho_registry::ORPHAN_GRACE,
            )
            .await
            {
                tracing::warn!(error = %e, "could not sweep orphaned uploads from the file store");
            }
        }
        if let Err(e) = renrakucho_store::sessions::delete_expired(&state.db).await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
        let read_long_ago = Duration::from_secs(600);
        if let Err(e) =
            renrakucho_store::announcements::forget_older_than(&state.db, read_long_ago).await
        {
            tracing::warn!(error = %e, "could not delete old announcements");
        }
        state.auth.throttle().prune();
        if let Err(e) = state.auth.record_refusal_summaries().await {
            tracing::warn!(error = %e, "could not record the throttled sign-ins");
        }
    }
}

/// The whole application: probes, the JSON API under `/api/v1`, the portal (every route
/// behind its CSRF check) and the portal's 404 for anything else, inside the layers every
/// request passes ([`renrakucho_http::middleware::around`]).
fn router(state: AppState, secure_cookies: bool, request_timeout: Duration) -> Router {
    use renrakucho_http::middleware::{deadline, Deadline};
    let within = |answer: fn() -> axum::response::Response| {
        axum::middleware::from_fn_with_state(
            Deadline {
                after: request_timeout,
                answer,
            },
            deadline,
        )
    };
    let api_timed_out = || {
        axum::response::IntoResponse::into_response(renrakucho_http::error::ApiError::timed_out())
    };
    let portal = renrakucho_portal::routes(state.care.upload_limit_bytes)
        .into_router(&state)
        .layer(within(renrakucho_portal::timed_out));
    let app = Router::new()
        .route("/healthz", get(renrakucho_api::health::healthz))
        .route("/readyz", get(renrakucho_api::health::readyz))
        .nest(
            "/api/v1",
            renrakucho_api::api()
                .layer(within(api_timed_out))
                .layer(renrakucho_http::middleware::compression()),
        )
        .merge(portal)
        .fallback(renrakucho_portal::page_not_found);
    renrakucho_http::middleware::around(app, &state, secure_cookies).with_state(state)
}

/// Keeps this process's cache of unwrapped keys in step with key changes made by any process
/// (rotation, destruction), reconnecting when the database connection drops.
async fn follow_key_changes(state: AppState) {
    loop {
        if let Err(e) = state
            .keyring
            .clone()
            .follow_key_changes(state.db.clone())
            .await
        {
            tracing::warn!(error = %e, "listening for key changes failed; retrying");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
