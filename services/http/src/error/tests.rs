//! The error shape of framework answers, and what the key provider's errors tell the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use renrakucho_keyring::{KeyringError, Problem};

use super::{json_errors, ApiError, ErrorBody};

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
