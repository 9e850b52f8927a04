//! One error type for the HTTP API. The client gets a stable code, a message a person
//! understands and the request ID; the cause goes to the log, never into the response.
//!
//! Here: the error, its constructors and its JSON shape; `conversions` turns the domain's
//! errors into it, `framework` gives axum's own answers the same shape, `body` is the JSON
//! body extractor whose rejections use it, `request_id` puts the request's ID into it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

mod body;
mod conversions;
mod framework;
mod request_id;
#[cfg(test)]
mod tests;

pub use body::ApiJson;
pub use framework::json_errors;
pub use request_id::{accept_request_id, attach_request_id, usable_request_id};

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

/// What went wrong, in the body of a JSON error.
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

/// An error as the API answers it: a status, a stable code, a message for people, and the
/// field at fault or the seconds to wait where there are some.
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

    /// The answer to any request but the password change (and saying who they are) from a
    /// person who must change their password first.
    pub fn password_change_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "password_change_required",
            "パスワードを変更してから続けてください / change your password before going on",
        )
    }

    /// The answer to every request but a few while the person must enrol a second factor:
    /// `POST /api/v1/me/second-factor/totp`, then its confirmation.
    pub fn second_factor_enrolment_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "second_factor_enrolment_required",
            "二要素認証（認証アプリ）を設定してから続けてください / set up two-step verification \
             (an authenticator app) before going on",
        )
    }

    /// The answer to a sign-in whose password was right when the account has a second factor:
    /// its code completes the sign-in (`POST /api/v1/auth/second-factor`).
    pub fn second_factor_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "second_factor_required",
            "認証アプリの確認コード（または回復コード）を入力してください / enter the code from your \
             authenticator app (or a recovery code)",
        )
    }

    /// The answer to an act that asks for the password again (break-glass access, erasure)
    /// when it was last given too long ago: `POST /api/v1/me/reauthenticate`, then again.
    pub fn reauthentication_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "reauthentication_required",
            "この操作の前にパスワードを再入力してください / enter your password again before this act",
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
    /// 503: the request was not answered within its deadline (`RENRAKUCHO_REQUEST_TIMEOUT`)
    /// and was stopped. A write stopped at its very end may have been saved: the person is
    /// told to look.
    pub fn timed_out() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "処理に時間がかかりすぎたため中断しました。保存されたかどうかは、画面を開き直して確認してください / the request took too long and was stopped; reload to see whether it was saved",
        )
    }

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
