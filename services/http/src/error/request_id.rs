//! The request's ID: a client's kept only when it is harmless, and quoted in every JSON error
//! body so that a person reporting a problem can name the request.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::ErrorBody;

/// Whether a client's `X-Request-Id` may be kept: a UUID, or up to 64 characters of letters,
/// digits, `-`, `_` and `.` (what proxies generate). Anything else is replaced, so the audit
/// log and the logs never hold text a client chose freely.
pub fn usable_request_id(value: &str) -> bool {
    uuid::Uuid::parse_str(value).is_ok()
        || (!value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// Middleware, outermost: drops a client's `X-Request-Id` that is not [`usable_request_id`],
/// so that one of the server's own is generated instead.
pub async fn accept_request_id(mut request: Request, next: Next) -> Response {
    let usable = request
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().is_ok_and(usable_request_id));
    if usable == Some(false) {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

/// Middleware: puts the request's ID into JSON error bodies.
pub async fn attach_request_id(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = next.run(request).await;
    if let Some(mut body) = response.extensions_mut().remove::<ErrorBody>() {
        body.error.request_id = request_id;
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        // The body is written anew, uncompressed: an error the API's gzip had packed (one
        // over a kilobyte) must not go on claiming to be gzip.
        parts.headers.remove(header::CONTENT_ENCODING);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        response = Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    response
}
