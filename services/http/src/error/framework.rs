//! The JSON error-shape layer: axum's own answers (an extractor's rejection as plain text, an
//! empty 405) become the [`ApiError`] of their status, so every error answers one shape.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ErrorBody};

impl ApiError {
    /// The error for an answer axum gave by itself (an extractor's rejection, a method the
    /// route does not serve), by its status; `detail` is axum's English explanation.
    fn from_framework(status: StatusCode, detail: &str) -> Self {
        let detail = detail.trim();
        let with_detail = |ja: &str, en: &str| {
            if detail.is_empty() {
                format!("{ja} / {en}")
            } else {
                format!("{ja} / {en}: {detail}")
            }
        };
        match status {
            StatusCode::BAD_REQUEST => Self::new(
                status,
                "bad_request",
                with_detail(
                    "リクエストの形式が正しくありません",
                    "the request is malformed",
                ),
            ),
            StatusCode::UNAUTHORIZED => Self::unauthenticated(),
            StatusCode::FORBIDDEN => {
                Self::forbidden("この操作は許可されていません / this is not allowed")
            }
            StatusCode::NOT_FOUND => Self::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                status,
                "method_not_allowed",
                "このURLではこのメソッドは使えません（Allow ヘッダーを参照） / this method is not allowed here (see the Allow header)",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                status,
                "unsupported_media_type",
                with_detail(
                    "この Content-Type は受け付けません",
                    "unsupported content type",
                ),
            ),
            StatusCode::UNPROCESSABLE_ENTITY => Self::new(
                status,
                "validation",
                with_detail(
                    "入力内容を受け付けられません",
                    "the request could not be processed",
                ),
            ),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable(),
            // The cause stays in the log of whatever failed; nothing of it is sent.
            s if s.is_server_error() => Self {
                status: s,
                ..Self::internal()
            },
            s => Self::new(
                s,
                "refused",
                format!(
                    "リクエストを処理できませんでした（{code}） / the request could not be processed ({code})",
                    code = s.as_u16()
                ),
            ),
        }
    }
}

/// The longest framework answer whose text is kept as the detail of the error (axum's
/// rejections are a line or two).
const FRAMEWORK_DETAIL_LIMIT: usize = 1024;

/// Middleware on the API router: every error answers the one JSON shape. Handlers and the
/// extractors of this crate answer [`ApiError`] already; what else reaches here as an error
/// is axum's own answer — an extractor's rejection as plain text (a path segment or a query
/// string that does not parse, a body over the route's limit), or an empty 405 for a method
/// the route does not serve — and becomes the `ApiError` of its status, axum's English text
/// kept as the detail. Headers such as `Allow` stay.
pub async fn json_errors(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
    let status = response.status();
    if status.as_u16() < 400 || is_json || response.extensions().get::<ErrorBody>().is_some() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let detail = match axum::body::to_bytes(body, FRAMEWORK_DETAIL_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    tracing::debug!(
        status = status.as_u16(),
        "a framework error answered as JSON"
    );
    let error = ApiError::from_framework(status, &detail).into_response();
    let (error_parts, error_body) = error.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.extend(error_parts.headers);
    parts.extensions.extend(error_parts.extensions);
    Response::from_parts(parts, error_body)
}
