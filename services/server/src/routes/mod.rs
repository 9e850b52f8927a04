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
use axum::http::request::Parts;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use renrakucho_store::audit::Origin;

use crate::error::ApiError;
use crate::state::AppState;

/// The JSON API under `/api/v1`.
pub fn api() -> Router<AppState> {
    Router::new()
        .route("/auth/sign-in", post(auth::sign_in))
        .route("/auth/sign-out", post(auth::sign_out))
        .route("/me", get(auth::me))
        .route("/patients", get(patients::list).post(patients::register))
        .route("/patients/{id}", get(patients::show).put(patients::update))
        .route(
            "/patients/{id}/consents",
            get(patients::consents)
                .post(patients::record_consent)
                // A scan in base64: a third larger than the file.
                .layer(DefaultBodyLimit::max(30 * 1024 * 1024)),
        )
        .route(
            "/patients/{id}/consents/withdraw",
            post(patients::withdraw_consent),
        )
        .route(
            "/patients/{id}/consents/{consent}/scan",
            get(patients::consent_scan),
        )
        .route(
            "/patients/{id}/care-team",
            get(patients::care_team).post(patients::invite),
        )
        .route("/patients/{id}/care-team/accept", post(patients::accept))
        .route("/patients/{id}/care-team/decline", post(patients::decline))
        .route("/patients/{id}/care-team/leave", post(patients::leave))
        .route(
            "/patients/{id}/care-team/{facility}",
            delete(patients::remove),
        )
        .route("/patients/{id}/deletion", post(patients::request_deletion))
        .route("/invitations", get(patients::invitations))
        .route("/facilities", get(patients::directory))
        .route(
            "/emergency-access",
            get(emergency::list).post(emergency::open),
        )
        .route("/emergency-access/status", get(emergency::status))
        .route("/patients/{id}/card", get(emergency::card))
        .route("/patients/{id}/card/reissue", post(emergency::reissue_card))
        .route("/emergency-access/{id}/end", post(emergency::end))
        .route("/emergency-access/{id}/review", post(emergency::review))
        .route(
            "/patients/{id}/entries",
            get(notebook::timeline).post(notebook::post),
        )
        .route("/patients/{id}/entries/read", post(notebook::mark_read))
        .route("/patients/{id}/entries/search", get(notebook::search))
        .route(
            "/patients/{id}/entries/{entry}",
            get(notebook::detail).put(notebook::edit),
        )
        .route(
            "/patients/{id}/entries/{entry}/withdraw",
            post(notebook::withdraw),
        )
        .route(
            "/patients/{id}/attachments",
            post(notebook::upload).layer(DefaultBodyLimit::max(101 * 1024 * 1024)),
        )
        .route(
            "/patients/{id}/attachments/{attachment}",
            get(notebook::attachment),
        )
        .route(
            "/patients/{id}/attachments/{attachment}/thumbnail",
            get(notebook::thumbnail),
        )
        .route("/patients/{id}/export.json", get(notebook::export_json))
        .route("/patients/{id}/export.pdf", get(notebook::export_pdf))
        .route(
            "/patients/{id}/support-requests",
            post(notebook::send_support),
        )
        .route("/support-requests", get(notebook::support_list))
        .route("/support-requests/{id}", get(notebook::support_detail))
        .route(
            "/support-requests/{id}/{step}",
            post(notebook::support_step),
        )
        .route("/unread", get(notebook::unread))
        .route("/events", get(crate::events::stream))
        .route("/notifications", get(notebook::notifications))
        .route(
            "/notifications/settings",
            get(notebook::preferences).put(notebook::save_preferences),
        )
        .route("/patients/{id}/mute", put(notebook::mute))
        .route("/audit", get(admin::audit_log))
        .route(
            "/staff/{id}/may-accept-invitations",
            put(admin::set_may_accept_invitations),
        )
        .route("/platform/alerts", get(platform::alerts))
        .route(
            "/platform/alerts/{id}/acknowledge",
            post(platform::acknowledge),
        )
        .route("/openapi.json", get(openapi::document))
        .fallback(api_not_found)
        .layer(axum::middleware::from_fn(same_origin_writes))
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
