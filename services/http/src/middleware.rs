//! The layers every request passes, outermost last: a usable request ID, one task per request
//! run to its end, one log line per request, the security headers, request IDs in JSON
//! errors, and the session.

use std::sync::{Arc, OnceLock};

use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::Router;
use futures_util::FutureExt;
use renrakucho_identity::Principal;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Instrument;

use crate::error::{accept_request_id, attach_request_id};
use crate::session::{SECURE_SESSION_COOKIE, SESSION_COOKIE};
use crate::state::AppState;

/// `app` inside the layers every request passes (docs/architecture.md, "Request path"), its
/// session cookie `__Host-` and `Secure` when `secure_cookies`.
pub fn around(app: Router<AppState>, state: &AppState, secure_cookies: bool) -> Router<AppState> {
    let idle = time::Duration::seconds(state.sessions.idle_timeout.as_secs() as i64);
    let sessions = SessionManagerLayer::new(crate::session::store(state))
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
    app.layer(sessions)
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
pub async fn log_request(request: axum::extract::Request, next: middleware::Next) -> Response {
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

/// How long a request may take to be answered, and the answer when it is not
/// (`RENRAKUCHO_REQUEST_TIMEOUT`; the API answers JSON, the portal a page).
#[derive(Clone, Copy)]
pub struct Deadline {
    pub after: std::time::Duration,
    pub answer: fn() -> Response,
}

/// Middleware: a request not answered within its [`Deadline`] is stopped there and answered
/// 503. Its handler is dropped: a transaction it had open is rolled back and its connection
/// settled by the store (ADR 0013), a body it was still waiting for is not read further, so a
/// slow or stalled client holds a task, a connection and its body's memory for the deadline
/// at most (ADR 0024). What is bounded is the time to the response's head: a stream (the live
/// events) or a download goes on after it.
pub async fn deadline(
    axum::extract::State(deadline): axum::extract::State<Deadline>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match tokio::time::timeout(deadline.after, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                after_ms = deadline.after.as_millis() as u64,
                "a request was not answered in time and was stopped"
            );
            (deadline.answer)()
        }
    }
}

/// Runs each request to its end on a task of its own, whether or not its client waits for the
/// answer. A request dropped halfway (the client went away) would otherwise cut its database
/// work short at any point — mid-BEGIN, mid-query, mid-COMMIT — and leave it to the pool to find
/// out; this way every transaction ends as written (docs/adr/0013-database-boundary.md).
pub async fn run_to_completion(
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let request_id = request_id_of(&request);
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(request_id, error = %crate::error::Chain(&e), "a request's task failed");
            axum::response::IntoResponse::into_response(crate::error::ApiError::internal())
        }
    }
}

/// gzip for the API's larger answers (a notebook page of 50 entries is ~60 KB of JSON), at the
/// fastest level, for clients that ask for it; not for the event stream or images (tower-http's
/// default predicate), and not for the portal's pages, which carry a form token next to text
/// the person typed (BREACH; ADR 0027).
pub fn compression() -> tower_http::compression::CompressionLayer<
    tower_http::compression::predicate::And<
        tower_http::compression::DefaultPredicate,
        tower_http::compression::predicate::SizeAbove,
    >,
> {
    use tower_http::compression::predicate::{Predicate, SizeAbove};
    use tower_http::compression::{CompressionLayer, CompressionLevel, DefaultPredicate};
    CompressionLayer::new()
        .gzip(true)
        .quality(CompressionLevel::Fastest)
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(1024)))
}
