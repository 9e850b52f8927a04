//! Builds the application: state, routers, middleware, the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use renrakucho_identity::{Authenticator, PasswordHasher, SignInThrottle};
use renrakucho_store::{Connections, Database};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Settings;
use crate::error::{accept_request_id, attach_request_id};
use crate::routes;
use crate::state::{AppState, CarePolicy, SessionPolicy};

/// The name of the session cookie (over plain HTTP, as in development and tests).
pub const SESSION_COOKIE: &str = "renrakucho_session";

/// Its name over HTTPS: a `__Host-` cookie is set only by this host itself, over HTTPS, for
/// the whole site, so a sibling subdomain cannot plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-renrakucho_session";

/// A built server, bound to its address but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
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
    Cards(#[from] renrakucho_care::CareError),
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
        let issued = renrakucho_care::ensure_cards(&db, &keyring).await?;
        if issued > 0 {
            tracing::info!(
                issued,
                "patient cards issued to patients registered before cards"
            );
        }
        let authz = crate::access::load(&db)
            .await
            .map_err(|e| BuildError::Authorization(e.to_string()))?;
        let files = settings.file_store()?;
        let csrf = crate::csrf::config(settings).map_err(BuildError::Config)?;
        let state = AppState {
            authz,
            auth: Authenticator::new(db.clone(), hasher, throttle),
            keyring,
            files,
            db,
            sessions: SessionPolicy {
                idle_timeout: settings.session_idle_timeout,
                max_lifetime: settings.session_max_lifetime,
            },
            care: CarePolicy {
                upload_limit_bytes: settings.upload_limit_bytes as usize,
                emergency_access: settings.emergency_access_duration,
            },
            csrf,
            events: crate::events::Events::new(),
            mailer: crate::mail::Mailer::from_settings(settings).map_err(BuildError::Config)?,
            public_url: settings
                .public_url
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_else(|| format!("http://{}", settings.listen)),
            trusted_proxies: settings
                .trusted_proxies()
                .map_err(BuildError::Config)?
                .into(),
        };
        let router = router(state.clone(), settings.secure_cookies());
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| BuildError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            router,
            state,
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
        let access_changes = tokio::spawn(crate::access::follow(
            self.state.db.clone(),
            self.state.authz.clone(),
        ));
        let events = tokio::spawn(self.state.events.clone().follow(self.state.db.clone()));
        let digests = tokio::spawn(digests(self.state.clone()));
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
        digests.abort();
        if let Some(epochs) = epochs {
            epochs.abort();
        }
        self.state.db.close().await;
        result
    }
}

/// Sends the daily digests that are due, every five minutes (when e-mail is configured).
async fn digests(state: AppState) {
    let Some(mailer) = state.mailer.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        let sent = crate::digest::send_due(
            &state.db,
            &mailer,
            &state.public_url,
            time::OffsetDateTime::now_utc(),
        )
        .await;
        if sent > 0 {
            tracing::info!(sent, "daily digests sent");
        }
    }
}

/// Deletes expired sessions and announcements every process has read, and forgets recovered
/// throttle keys, every five minutes; once an hour (first at start, after a crash), deletes
/// the files no row names that were stored over an hour ago (uploads cut off by a killed
/// server). Every process does it: each step is safe beside the others' (see
/// `renrakucho_care::sweep_orphaned_files`).
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    let mut last_sweep: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        if last_sweep.is_none_or(|at| at.elapsed() >= renrakucho_care::ORPHAN_GRACE) {
            last_sweep = Some(std::time::Instant::now());
            if let Err(e) = renrakucho_care::sweep_orphaned_files(
                &state.db,
                &state.files,
                renrakucho_care::ORPHAN_GRACE,
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

fn router(state: AppState, secure_cookies: bool) -> Router {
    let idle = time::Duration::seconds(state.sessions.idle_timeout.as_secs() as i64);
    let sessions = SessionManagerLayer::new(crate::session::store(&state))
        .with_name(if secure_cookies {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        })
        .with_secure(secure_cookies)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle));

    let portal = Router::new()
        .route("/", get(routes::portal::home))
        .route(
            "/login",
            get(routes::portal::login_page).post(routes::portal::login_submit),
        )
        .route("/logout", post(routes::portal::logout))
        .route("/patients", get(routes::pages::patients))
        .route(
            "/patients/new",
            get(routes::pages::new_patient).post(routes::pages::create_patient),
        )
        .route("/patients/{id}", get(routes::pages::show_patient))
        .route(
            "/patients/{id}/edit",
            get(routes::pages::edit_patient).post(routes::pages::update_patient),
        )
        .route(
            "/patients/{id}/consents",
            post(routes::pages::record_consent).layer(DefaultBodyLimit::max(
                state.care.upload_limit_bytes + 1024 * 1024,
            )),
        )
        .route(
            "/patients/{id}/consents/withdraw",
            post(routes::pages::withdraw_consent),
        )
        .route(
            "/patients/{id}/card/reissue",
            post(routes::pages::reissue_card),
        )
        .route(
            "/patients/{id}/consents/{consent}/scan",
            get(routes::pages::consent_scan),
        )
        .route(
            "/patients/{id}/care-team/invite",
            post(routes::pages::invite),
        )
        .route("/patients/{id}/care-team/leave", post(routes::pages::leave))
        .route(
            "/patients/{id}/care-team/{facility}/remove",
            post(routes::pages::remove_member),
        )
        .route(
            "/patients/{id}/deletion",
            post(routes::pages::request_deletion),
        )
        .route("/invitations", get(routes::pages::invitations))
        .route(
            "/invitations/{id}/{answer}",
            post(routes::pages::answer_invitation),
        )
        .route(
            "/emergency",
            get(routes::pages::emergency).post(routes::pages::open_emergency),
        )
        .route(
            "/emergency/{id}/{what}",
            post(routes::pages::close_or_review_emergency),
        )
        .route("/audit", get(routes::pages::audit))
        .route(
            "/patients/{id}/notebook",
            get(routes::notebook_pages::notebook)
                .post(routes::notebook_pages::post)
                .layer(DefaultBodyLimit::max(
                    4 * state.care.upload_limit_bytes + 1024 * 1024,
                )),
        )
        .route(
            "/patients/{id}/notebook/search",
            get(routes::notebook_pages::search),
        )
        .route(
            "/patients/{id}/entries/{entry}",
            get(routes::notebook_pages::entry),
        )
        .route(
            "/patients/{id}/entries/{entry}/edit",
            post(routes::notebook_pages::edit),
        )
        .route(
            "/patients/{id}/entries/{entry}/withdraw",
            post(routes::notebook_pages::withdraw),
        )
        .route(
            "/patients/{id}/entries/{entry}/support",
            post(routes::notebook_pages::request_support),
        )
        .route(
            "/notifications",
            get(routes::notebook_pages::notifications)
                .post(routes::notebook_pages::save_notifications),
        )
        .route("/support", get(routes::notebook_pages::support_list))
        .route(
            "/support/{id}",
            get(routes::notebook_pages::support_request),
        )
        .route(
            "/support/{id}/{step}",
            post(routes::notebook_pages::support_step),
        )
        .route("/static/live.js", get(routes::portal::live_script))
        .route("/static/style.css", get(routes::portal::stylesheet));

    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        // The path only: query strings may carry search terms.
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", method = %request.method(), path = request.uri().path(), request_id)
    });

    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .nest("/api/v1", routes::api())
        .merge(portal)
        .fallback(routes::page_not_found)
        .layer(sessions)
        .layer(middleware::from_fn(attach_request_id))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(middleware::from_fn(run_to_completion))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::from_fn(accept_request_id))
        .with_state(state)
}

/// Runs each request to its end on a task of its own, whether or not its client waits for the
/// answer. A request dropped halfway (the client went away) would otherwise cut its database
/// work short at any point — mid-BEGIN, mid-query, mid-COMMIT — and leave it to the pool to find
/// out; this way every transaction ends as written (docs/adr/0013-database-boundary.md).
async fn run_to_completion(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a request's task failed");
            axum::response::IntoResponse::into_response(crate::error::ApiError::internal())
        }
    }
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
