//! The JSON API under `/api/v1`: one module per area, every route in one table
//! ([`api_routes`]) that builds the router and is held against the OpenAPI document
//! ([`openapi`]).

pub mod auth;
pub mod emergency;
pub mod facility_admin;
pub mod health;
pub mod identity_provider;
pub mod notebook;
pub mod notebook_pdf;
pub mod openapi;
pub mod patients;
pub mod platform;
pub mod second_factor;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use renrakucho_http::error::ApiError;
use renrakucho_http::state::AppState;

/// The JSON API under `/api/v1`, built from [`api_routes`] and nothing else.
pub fn api() -> Router<AppState> {
    api_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.endpoint)
        })
        .fallback(api_not_found)
        .layer(axum::middleware::map_response(
            renrakucho_http::error::json_errors,
        ))
        .layer(axum::middleware::from_fn(same_origin_writes))
}

/// One route of the JSON API: a method, a path under `/api/v1`, and what serves it.
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    endpoint: MethodRouter<AppState>,
}

impl ApiRoute {
    /// The route for `method` on `path`, served by `handler`.
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
        Self {
            method,
            path,
            endpoint: on(filter, handler),
        }
    }

    /// A request body limit of its own (the default is 2 MB).
    fn body_limit(mut self, bytes: usize) -> Self {
        self.endpoint = self.endpoint.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> ApiRoute {
    ApiRoute::new(Method::GET, path, handler)
}

fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> ApiRoute {
    ApiRoute::new(Method::POST, path, handler)
}

fn put<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> ApiRoute {
    ApiRoute::new(Method::PUT, path, handler)
}

fn delete<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> ApiRoute {
    ApiRoute::new(Method::DELETE, path, handler)
}

/// Every route of the JSON API, in one table: [`api`] builds the router from it, and a test
/// holds it against the OpenAPI document (both ways, method and path), so no route goes
/// undocumented and no documented route is missing.
pub fn api_routes() -> Vec<ApiRoute> {
    vec![
        post("/auth/sign-in", auth::sign_in),
        post("/auth/second-factor", auth::second_factor),
        post("/auth/sign-out", auth::sign_out),
        get("/me", auth::me),
        post("/me/password", auth::change_password),
        post("/me/reauthenticate", auth::reauthenticate),
        post("/me/second-factor/totp", second_factor::begin_totp),
        post(
            "/me/second-factor/totp/confirm",
            second_factor::confirm_totp,
        ),
        post(
            "/me/second-factor/recovery-codes",
            second_factor::new_recovery_codes,
        ),
        delete("/me/second-factor", second_factor::remove_own),
        delete("/staff/{id}/second-factor", second_factor::reset),
        post("/auth/provider", identity_provider::begin_sign_in),
        post(
            "/me/reauthenticate/provider",
            identity_provider::reauthenticate,
        ),
        get("/facility/identity-provider", identity_provider::show),
        put("/facility/identity-provider", identity_provider::save),
        delete("/facility/identity-provider", identity_provider::remove),
        put(
            "/facility/identity-provider/enabled",
            identity_provider::set_enabled,
        ),
        post("/facility/identity-provider/test", identity_provider::test),
        get("/facility/identity-links", identity_provider::links),
        post("/staff/{id}/identity-links", identity_provider::link),
        delete(
            "/staff/{id}/identity-links/{link}",
            identity_provider::unlink,
        ),
        post("/staff/{id}/approve", identity_provider::approve),
        get("/patients", patients::registry::list),
        post("/patients", patients::registry::register),
        get("/patients/{id}", patients::registry::show),
        put("/patients/{id}", patients::registry::update),
        get("/patients/{id}/consents", patients::consents::consents),
        // A scan in base64: a third larger than the file.
        post(
            "/patients/{id}/consents",
            patients::consents::record_consent,
        )
        .body_limit(30 * 1024 * 1024),
        post(
            "/patients/{id}/consents/withdraw",
            patients::consents::withdraw_consent,
        ),
        get(
            "/patients/{id}/consents/{consent}/scan",
            patients::consents::consent_scan,
        ),
        get("/patients/{id}/care-team", patients::care_team::care_team),
        post("/patients/{id}/care-team", patients::care_team::invite),
        post(
            "/patients/{id}/care-team/accept",
            patients::care_team::accept,
        ),
        post(
            "/patients/{id}/care-team/decline",
            patients::care_team::decline,
        ),
        post("/patients/{id}/care-team/leave", patients::care_team::leave),
        delete(
            "/patients/{id}/care-team/{facility}",
            patients::care_team::remove,
        ),
        post(
            "/patients/{id}/deletion",
            patients::deletion::request_deletion,
        ),
        get("/invitations", patients::care_team::invitations),
        get("/facilities", patients::care_team::directory),
        get("/emergency-access", emergency::list),
        post("/emergency-access", emergency::open),
        get("/emergency-access/status", emergency::status),
        get("/patients/{id}/card", emergency::card),
        post("/patients/{id}/card/reissue", emergency::reissue_card),
        post("/emergency-access/{id}/end", emergency::end),
        post("/emergency-access/{id}/review", emergency::review),
        get("/patients/{id}/entries", notebook::entries::timeline),
        post("/patients/{id}/entries", notebook::entries::post),
        post("/patients/{id}/entries/read", notebook::entries::mark_read),
        get("/patients/{id}/entries/search", notebook::search::search),
        get("/patients/{id}/entries/{entry}", notebook::entries::detail),
        put("/patients/{id}/entries/{entry}", notebook::entries::edit),
        post(
            "/patients/{id}/entries/{entry}/withdraw",
            notebook::entries::withdraw,
        ),
        post("/patients/{id}/attachments", notebook::files::upload).body_limit(101 * 1024 * 1024),
        get(
            "/patients/{id}/attachments/{attachment}",
            notebook::files::attachment,
        ),
        get(
            "/patients/{id}/attachments/{attachment}/thumbnail",
            notebook::files::thumbnail,
        ),
        get("/patients/{id}/export.json", notebook::files::export_json),
        get("/patients/{id}/export.pdf", notebook::files::export_pdf),
        post(
            "/patients/{id}/support-requests",
            notebook::support::send_support,
        ),
        get("/support-requests", notebook::support::support_list),
        get("/support-requests/{id}", notebook::support::support_detail),
        post(
            "/support-requests/{id}/{step}",
            notebook::support::support_step,
        ),
        get("/unread", notebook::unread::unread),
        get("/events", renrakucho_http::events::stream),
        get("/notifications", notebook::unread::notifications),
        get("/notifications/settings", notebook::unread::preferences),
        put(
            "/notifications/settings",
            notebook::unread::save_preferences,
        ),
        put("/patients/{id}/mute", notebook::unread::mute),
        get("/audit", facility_admin::audit_log),
        get("/staff", facility_admin::list_staff),
        put(
            "/staff/{id}/may-accept-invitations",
            facility_admin::set_may_accept_invitations,
        ),
        get("/platform/alerts", platform::alerts),
        post("/platform/alerts/{id}/acknowledge", platform::acknowledge),
        delete(
            "/platform/facilities/{code}/staff/{login_id}/second-factor",
            platform::reset_administrators_second_factor,
        ),
        get("/openapi.json", openapi::document),
    ]
}

/// Whether a browser says a request comes from another site: `Sec-Fetch-Site` when it sends
/// one, otherwise an `Origin` whose host is not the request's own. Clients that are not
/// browsers send neither and are not affected.
fn from_another_site(headers: &axum::http::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    origin_host.is_none() || origin_host != host
}

/// The API's writes come only from this site or from clients that are not browsers: a form
/// or script on another page, even a sibling subdomain's that shares the cookies' site, is
/// refused (403) before anything runs. Reads are left alone (the answer goes to a page that
/// cannot read it without CORS, which this server never grants).
async fn same_origin_writes(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe && from_another_site(request.headers()) {
        tracing::info!("a write from another site refused");
        return ApiError::forbidden(
            "他のサイトからの操作は受け付けません / requests from another site are refused",
        )
        .into_response();
    }
    next.run(request).await
}

async fn api_not_found(uri: Uri) -> ApiError {
    tracing::debug!(path = uri.path(), "no such API route");
    ApiError::not_found()
}
