//! One error type for the HTTP API. The client gets a stable code, a message a person
//! understands and the request ID; the cause goes to the log, never into the response.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use renrakucho_core::InvalidValue;
use renrakucho_identity::SignInError;
use renrakucho_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error and its causes, for the log: `outer: cause: root cause`. A cause whose words the
/// message already quotes (`#[error("…: {0}")]`) is not repeated. Errors here name constraints,
/// tables, rows and steps, never patient data, and so does the chain.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !said.contains(&text) {
                write!(f, ": {text}")?;
                said.push_str(&text);
            }
            cause = e.source();
        }
        Ok(())
    }
}

/// The body of every JSON error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_credentials`, `validation`, `not_found`, …
    pub code: String,
    /// For people: Japanese, then English.
    pub message: String,
    /// The `x-request-id` of the request, to quote when reporting a problem.
    pub request_id: Option<String>,
    /// The field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "ログインしてください / please sign in",
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "見つかりません / not found",
        )
    }

    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "サーバーで問題が発生しました。時間をおいて再度お試しください / something went wrong on the server; please try again later",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "ただいま利用できません。時間をおいて再度お試しください / temporarily unavailable; please try again later",
        )
    }
}

impl From<InvalidValue> for ApiError {
    fn from(e: InvalidValue) -> Self {
        Self {
            field: Some(e.field.to_string()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", e.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict { constraint } => {
                tracing::info!(%constraint, "write refused by a unique constraint");
                Self::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "同じ内容がすでに登録されています / this already exists",
                )
            }
            StoreError::MissingReference { constraint } => {
                tracing::info!(%constraint, "a reference to something that does not exist");
                Self::not_found()
            }
            StoreError::Forbidden => {
                tracing::warn!("a write was refused by row-level security");
                Self::not_found()
            }
            // A rule the application should have checked first; the constraint's name only.
            StoreError::Rule { constraint } => {
                tracing::warn!(%constraint, "a write was refused by a rule of the schema");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "入力内容を受け付けられません / the request was refused by a rule of the system",
                )
            }
            e if e.is_unavailable() => {
                tracing::error!(error = %Chain(&e), "database unavailable");
                Self::unavailable()
            }
            e => {
                tracing::error!(error = %Chain(&e), "storage error");
                Self::internal()
            }
        }
    }
}

impl From<renrakucho_keyring::KeyringError> for ApiError {
    fn from(e: renrakucho_keyring::KeyringError) -> Self {
        use renrakucho_keyring::KeyringError;
        match e {
            KeyringError::Store(e) => e.into(),
            e if e.is_unavailable() => {
                tracing::error!(error = %Chain(&e), "key provider unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "key_service_unavailable",
                    "暗号鍵サービスに接続できません。時間をおいて再度お試しください / the encryption key service is unavailable; please try again later",
                )
            }
            // One value failed its integrity check (altered, moved, unknown key version,
            // destroyed key): a clear refusal naming the record, never its content. Listings
            // show such an item as unreadable instead (ADR 0017).
            KeyringError::Undecryptable { row, .. } => {
                tracing::warn!(error = %Chain(&e), "a record read on its own is unreadable");
                Self::new(
                    StatusCode::CONFLICT,
                    "unreadable",
                    format!("この記録は判読できません（データの破損または改ざんのおそれ）。運用者に通知しました（記録ID: {row}） / this record is unreadable (damaged or altered data); the platform operators were told (record {row})"),
                )
            }
            // Names the table, column and row; never the content.
            e => {
                tracing::error!(error = %Chain(&e), "encrypted data could not be used");
                Self::internal()
            }
        }
    }
}

impl From<renrakucho_files::FileError> for ApiError {
    fn from(e: renrakucho_files::FileError) -> Self {
        use renrakucho_files::FileError;
        match e {
            FileError::NotFound(_) => {
                tracing::error!(error = %Chain(&e), "a stored file is missing");
                Self::internal()
            }
            FileError::Unavailable(_) => {
                tracing::error!(error = %Chain(&e), "file store unavailable");
                Self::unavailable()
            }
            e => {
                tracing::error!(error = %Chain(&e), "file store error");
                Self::internal()
            }
        }
    }
}

impl From<renrakucho_registry::CareError> for ApiError {
    fn from(e: renrakucho_registry::CareError) -> Self {
        use renrakucho_registry::CareError;
        match e {
            CareError::NotFound => Self::not_found(),
            // One answer for an unknown number, a wrong date of birth and a locked card.
            CareError::NotIdentified => Self::new(
                StatusCode::NOT_FOUND,
                "not_identified",
                "カード番号と生年月日が一致する対象者はいません（失敗が続いたカードは一時的に照会できません。登録施設に確認してください） / no patient with this card number and date of birth (a card is paused after repeated failures; ask the registering facility)",
            ),
            CareError::Locked { until } => {
                let secs = (until - time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(1) as u64;
                let jst = until.to_offset(time::macros::offset!(+9));
                Self {
                    retry_after: Some(secs),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "identification_locked",
                        format!(
                            "緊急閲覧の本人確認に1時間で{limit}回失敗したため、{h:02}:{m:02}まで施設からの照会を停止しています（施設管理者が確認できます） / your facility failed {limit} emergency identifications within an hour and may not try again until {h:02}:{m:02} JST (your facility administrator sees this)",
                            limit = renrakucho_registry::IDENTIFICATION_LIMIT,
                            h = jst.hour(),
                            m = jst.minute(),
                        ),
                    )
                }
            }
            CareError::Conflict(message) => Self::conflict(message),
            CareError::Forbidden(message) => Self::forbidden(&message),
            CareError::Invalid(v) => v.into(),
            CareError::Keyring(e) => e.into(),
            CareError::Files(e) => e.into(),
            CareError::Store(e) => e.into(),
            CareError::Corrupt(what) => {
                tracing::error!(%what, "a stored record could not be read");
                Self::internal()
            }
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Invalid(v) => v.into(),
            SignInError::BadCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "施設コード、ユーザーID、またはパスワードが違います / the facility code, login ID or password is wrong",
            ),
            SignInError::AccountNotActive => Self::new(
                StatusCode::FORBIDDEN,
                "account_not_active",
                "このアカウントは停止または無効化されています。施設管理者に連絡してください / this account is suspended or disabled; contact your facility administrator",
            ),
            SignInError::FacilityNotActive => Self::new(
                StatusCode::FORBIDDEN,
                "facility_not_active",
                "この施設は現在利用できません。運用者に連絡してください / this facility cannot use the service now; contact the operator",
            ),
            SignInError::Throttled { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                Self {
                    retry_after: Some(secs),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "throttled",
                        format!("ログインの試行が多すぎます。{secs}秒後に再度お試しください / too many sign-in attempts; try again in {secs} seconds"),
                    )
                }
            }
            SignInError::Store(e) => e.into(),
        }
    }
}

impl From<tower_sessions::session::Error> for ApiError {
    fn from(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %Chain(&e), "session store error");
        Self::unavailable()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::json_only(),
            rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::too_large(),
            rejection => Self::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "リクエストの形式が正しくありません / the request body is not valid JSON for this endpoint: {}",
                    rejection.body_text()
                ),
            ),
        }
    }
}

impl ApiError {
    /// 415: a body that is not sent as JSON where JSON is expected.
    pub fn json_only() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "JSON で送ってください（Content-Type: application/json） / send the body as JSON (Content-Type: application/json)",
        )
    }

    /// 413: a body over the route's limit.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "リクエストが大きすぎます / the request body is too large",
        )
    }

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                request_id: None,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body.clone())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // The request ID is filled in by `attach_request_id`, which sees the request.
        response.extensions_mut().insert(body);
        response
    }
}

/// JSON body extractor whose rejections use the API's error shape. Every string of the body
/// passes [`crate::input`]'s gate before the body becomes a `T`: a control character is a 422
/// naming the field, whatever the endpoint does with it afterwards.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> ApiJson<T> {
    /// The body as a JSON value, through the gate.
    async fn value<S: Send + Sync>(
        request: Request,
        state: &S,
    ) -> Result<serde_json::Value, ApiError> {
        let axum::Json(value) =
            <axum::Json<serde_json::Value> as FromRequest<S>>::from_request(request, state).await?;
        crate::input::check_json(&value)?;
        Ok(value)
    }

    /// The value as a `T`. JSON that does not fit (a field missing, a value of another type)
    /// is a 422, as `axum::Json` has it; only a body that is not JSON at all is a 400.
    fn parse(value: serde_json::Value) -> Result<Self, ApiError> {
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                format!(
                    "リクエストの内容がこの操作の形式に合いません / the request body does not fit this endpoint: {e}"
                ),
            )
        })
    }
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Self::parse(Self::value(request, state).await?)
    }
}

/// An optional JSON body: none when the request has no `Content-Type` at all (as
/// `Option<axum::Json>`) or the body is `null`; otherwise as [`ApiJson`], its gate and its
/// errors included.
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if !request.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        match Self::value(request, state).await? {
            serde_json::Value::Null => Ok(None),
            value => Self::parse(value).map(Some),
        }
    }
}

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
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        response = Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use renrakucho_keyring::{KeyringError, Problem};

    async fn through_json_errors(response: Response) -> (StatusCode, Response) {
        let response = json_errors(response).await;
        (response.status(), response)
    }

    fn error_of(response: Response) -> ErrorBody {
        response
            .extensions()
            .get::<ErrorBody>()
            .cloned()
            .expect("the error shape")
    }

    #[tokio::test]
    async fn framework_answers_become_the_error_shape_and_keep_their_headers() {
        // An extractor's rejection: plain text.
        let rejection = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string: limit: invalid digit found in string",
        )
            .into_response();
        let (status, response) = through_json_errors(rejection).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = error_of(response);
        assert_eq!(body.error.code, "bad_request");
        assert!(body
            .error
            .message
            .starts_with("リクエストの形式が正しくありません / "));
        assert!(body
            .error
            .message
            .ends_with("limit: invalid digit found in string"));

        // A method the route does not serve: empty, with `Allow`.
        let mut refused = StatusCode::METHOD_NOT_ALLOWED.into_response();
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD,POST"));
        let (status, response) = through_json_errors(refused).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD,POST");
        assert_eq!(error_of(response).error.code, "method_not_allowed");

        // Server errors say nothing of their cause.
        let failed = (
            StatusCode::INTERNAL_SERVER_ERROR,
            "connection pool timed out",
        )
            .into_response();
        let body = error_of(through_json_errors(failed).await.1);
        assert_eq!(body.error.code, "internal");
        assert!(!body.error.message.contains("pool"));
    }

    #[tokio::test]
    async fn answers_that_are_no_framework_errors_pass_unchanged() {
        let ok = (StatusCode::OK, "fine").into_response();
        let (status, response) = through_json_errors(ok).await;
        assert_eq!(status, StatusCode::OK);
        assert!(response.extensions().get::<ErrorBody>().is_none());

        // A JSON error of a handler's own shape (the stale edit) is left as it is.
        let own = (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": {}, "current": {} })),
        )
            .into_response();
        let (status, response) = through_json_errors(own).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(response.extensions().get::<ErrorBody>().is_none());
    }

    #[test]
    fn an_unreachable_key_provider_is_503_and_a_bad_value_names_nothing() {
        let unavailable = ApiError::from(KeyringError::ProviderUnavailable("timeout".into()));
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.code, "key_service_unavailable");
        assert!(unavailable
            .message
            .starts_with("暗号鍵サービスに接続できません"));

        let tampered = ApiError::from(KeyringError::Undecryptable {
            table: "patients".into(),
            column: "name".into(),
            row: uuid::Uuid::nil(),
            problem: Problem::Tampered,
        });
        assert_eq!(tampered.status, StatusCode::CONFLICT);
        assert_eq!(tampered.code, "unreadable");
        assert!(tampered.message.starts_with("この記録は判読できません"));
        assert!(tampered.message.contains(&uuid::Uuid::nil().to_string()));
        assert!(!tampered.message.contains("patients"));

        let refused = ApiError::from(KeyringError::ProviderRefused("bad wrap".into()));
        assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
