//! The HTTP surface: one router per area, merged over one state.

pub mod admin;
pub mod auth;
pub mod emergency;
pub mod health;
pub mod notebook;
pub mod notebook_pages;
pub mod openapi;
pub mod pages;
pub mod patients;
pub mod platform;
pub mod portal;

use std::net::{IpAddr, SocketAddr};

use axum::extract::DefaultBodyLimit;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use renrakucho_store::audit::Origin;

use crate::error::ApiError;
use crate::state::AppState;

/// The JSON API under `/api/v1`, built from [`api_routes`] and nothing else.
pub fn api() -> Router<AppState> {
    api_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.endpoint)
        })
        .fallback(api_not_found)
        .layer(axum::middleware::map_response(crate::error::json_errors))
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
        post("/auth/sign-out", auth::sign_out),
        get("/me", auth::me),
        get("/patients", patients::list),
        post("/patients", patients::register),
        get("/patients/{id}", patients::show),
        put("/patients/{id}", patients::update),
        get("/patients/{id}/consents", patients::consents),
        // A scan in base64: a third larger than the file.
        post("/patients/{id}/consents", patients::record_consent).body_limit(30 * 1024 * 1024),
        post(
            "/patients/{id}/consents/withdraw",
            patients::withdraw_consent,
        ),
        get(
            "/patients/{id}/consents/{consent}/scan",
            patients::consent_scan,
        ),
        get("/patients/{id}/care-team", patients::care_team),
        post("/patients/{id}/care-team", patients::invite),
        post("/patients/{id}/care-team/accept", patients::accept),
        post("/patients/{id}/care-team/decline", patients::decline),
        post("/patients/{id}/care-team/leave", patients::leave),
        delete("/patients/{id}/care-team/{facility}", patients::remove),
        post("/patients/{id}/deletion", patients::request_deletion),
        get("/invitations", patients::invitations),
        get("/facilities", patients::directory),
        get("/emergency-access", emergency::list),
        post("/emergency-access", emergency::open),
        get("/emergency-access/status", emergency::status),
        get("/patients/{id}/card", emergency::card),
        post("/patients/{id}/card/reissue", emergency::reissue_card),
        post("/emergency-access/{id}/end", emergency::end),
        post("/emergency-access/{id}/review", emergency::review),
        get("/patients/{id}/entries", notebook::timeline),
        post("/patients/{id}/entries", notebook::post),
        post("/patients/{id}/entries/read", notebook::mark_read),
        get("/patients/{id}/entries/search", notebook::search),
        get("/patients/{id}/entries/{entry}", notebook::detail),
        put("/patients/{id}/entries/{entry}", notebook::edit),
        post(
            "/patients/{id}/entries/{entry}/withdraw",
            notebook::withdraw,
        ),
        post("/patients/{id}/attachments", notebook::upload).body_limit(101 * 1024 * 1024),
        get(
            "/patients/{id}/attachments/{attachment}",
            notebook::attachment,
        ),
        get(
            "/patients/{id}/attachments/{attachment}/thumbnail",
            notebook::thumbnail,
        ),
        get("/patients/{id}/export.json", notebook::export_json),
        get("/patients/{id}/export.pdf", notebook::export_pdf),
        post("/patients/{id}/support-requests", notebook::send_support),
        get("/support-requests", notebook::support_list),
        get("/support-requests/{id}", notebook::support_detail),
        post("/support-requests/{id}/{step}", notebook::support_step),
        get("/unread", notebook::unread),
        get("/events", crate::events::stream),
        get("/notifications", notebook::notifications),
        get("/notifications/settings", notebook::preferences),
        put("/notifications/settings", notebook::save_preferences),
        put("/patients/{id}/mute", notebook::mute),
        get("/audit", admin::audit_log),
        put(
            "/staff/{id}/may-accept-invitations",
            admin::set_may_accept_invitations,
        ),
        get("/platform/alerts", platform::alerts),
        post("/platform/alerts/{id}/acknowledge", platform::acknowledge),
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

/// Where a request came from, for the audit log and sign-in throttling.
pub struct RequestOrigin(pub Origin);

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the nearest
/// address of `X-Forwarded-For` (read from the right, as each proxy appends the address it
/// saw) that is not itself a trusted proxy. Entries a client wrote further left are never
/// believed: only what trusted proxies appended counts.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded: &[&str],
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    let hops = forwarded
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .rev();
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                client = addr;
                if !is_trusted(&addr) {
                    break;
                }
            }
            // Not an address: nothing beyond it can be trusted either.
            Err(_) => break,
        }
    }
    Some(client)
}

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let client_addr = client_address(peer, &forwarded, &state.trusted_proxies);
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(RequestOrigin(Origin {
            client_addr,
            request_id,
        }))
    }
}

/// A 404 for anything else, as a page.
#[tracing::instrument(skip_all)]
pub async fn page_not_found() -> Response {
    portal::error_page(
        axum::http::StatusCode::NOT_FOUND,
        "ページが見つかりません / Page not found",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::client_address;

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let ip = |s: &str| Some(s.parse().unwrap());
        // Not from a trusted proxy: the peer, whatever the header says.
        assert_eq!(
            client_address(ip("198.51.100.7"), &["203.0.113.5"], &trusted),
            ip("198.51.100.7")
        );
        // From the proxy: the address it appended.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // A client's own entries further left are not believed; proxies in a chain are
        // skipped; several headers read as one list.
        assert_eq!(
            client_address(
                ip("10.0.0.5"),
                &["1.2.3.4, 203.0.113.5", "10.0.0.9"],
                &trusted
            ),
            ip("203.0.113.5")
        );
        // Garbage stops the walk at the last believable hop.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["203.0.113.5, nonsense"], &trusted),
            ip("10.0.0.5")
        );
        // No proxies configured: the peer.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["203.0.113.5"], &[]),
            ip("10.0.0.5")
        );
    }
}
