//! Builds the application: state, routers, middleware, the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::FutureExt;
use renrakucho_identity::{Authenticator, PasswordHasher, Principal, SignInThrottle};
use renrakucho_store::{Connections, Database};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Instrument;

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

    // Every portal route, behind the CSRF check (routes::portal::routes declares them).
    let portal = routes::portal::routes(state.care.upload_limit_bytes).into_router(&state);

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
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(run_to_completion))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::from_fn(accept_request_id))
        .with_state(state)
}

/// Who a request acts for, as [`crate::session::current`] decided it: filled in while the
/// request runs, read by [`log_request`] for the request's line. It holds the principal's IDs
/// only (never a name).
#[derive(Clone, Default)]
struct RequestActor(Arc<OnceLock<Principal>>);

tokio::task_local! {
    /// The running request's [`RequestActor`].
    static ACTOR: RequestActor;
}

/// Notes that the running request acts for `principal` (its first sign-in check decides; a
/// call outside a request does nothing).
pub fn note_actor(principal: Principal) {
    let _ = ACTOR.try_with(|actor| actor.0.set(principal));
}

/// Middleware: one log line per request, when its response is ready (for a stream: when the
/// stream starts): request ID, method, route template, status, latency, and the facility and
/// staff member (or operator) it acted for. Never the path's values beyond the template, the
/// query string (a search term), a body or a name. Everything the request logs on its way
/// runs inside a `request` span with its ID and route.
///
/// It runs inside [`run_to_completion`]'s task, so a request whose client went away still gets
/// its line (with the time it really took); a handler that panicked gets one with status 500.
async fn log_request(request: axum::extract::Request, next: middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let route = route.as_deref().unwrap_or("-");
    let request_id = request_id_of(&request);
    let actor = RequestActor::default();
    let span = tracing::info_span!("request", %method, route, request_id);
    let outcome = std::panic::AssertUnwindSafe(ACTOR.scope(actor.clone(), next.run(request)))
        .catch_unwind()
        .instrument(span)
        .await;
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let (facility_id, staff_id, operator_id) = match actor.0.get() {
        Some(Principal::Staff { id, facility }) => {
            (Some(facility.as_uuid()), Some(id.as_uuid()), None)
        }
        Some(Principal::Operator { id }) => (None, None, Some(id.as_uuid())),
        None => (None, None, None),
    };
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::info!(
        request_id,
        %method,
        route,
        status = status.as_u16(),
        latency_ms,
        facility_id = facility_id.map(tracing::field::display),
        staff_id = staff_id.map(tracing::field::display),
        operator_id = operator_id.map(tracing::field::display),
        "request handled"
    );
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The request's `x-request-id` (set by `SetRequestIdLayer` before anything here runs).
fn request_id_of(request: &axum::extract::Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// Runs each request to its end on a task of its own, whether or not its client waits for the
/// answer. A request dropped halfway (the client went away) would otherwise cut its database
/// work short at any point — mid-BEGIN, mid-query, mid-COMMIT — and leave it to the pool to find
/// out; this way every transaction ends as written (docs/adr/0013-database-boundary.md).
async fn run_to_completion(request: axum::extract::Request, next: middleware::Next) -> Response {
    let request_id = request_id_of(&request);
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(request_id, error = %crate::error::Chain(&e), "a request's task failed");
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
