//! Health, readiness, the OpenAPI document and the error shape.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::{spawn_app, TestApp};
use reqwest::{Method, Response};
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readiness_fails_when_migrations_are_not_current() {
    let app = spawn_app().await;
    // Pretend the database is behind: the owner deletes the record of the last migration.
    let mut owner = sqlx::ConnectOptions::connect(&app.database.owner_options())
        .await
        .unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "migrations_not_current");
}

#[tokio::test]
async fn openapi_document_lists_the_endpoints() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/sign-in",
        "/api/v1/auth/sign-out",
        "/api/v1/me",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn errors_have_one_shape_with_the_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/no-such-thing"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "req-123");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "req-123");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("見つかりません"));

    let malformed = app
        .client
        .post(app.url("/api/v1/auth/sign-in"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["request_id"].as_str().is_some(),
        "a generated request id is reported"
    );
}

async fn openapi(app: &TestApp) -> Value {
    app.client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Asserts that `response` is the one JSON error shape, with a message in Japanese, then
/// English, and the request's ID; returns its status and code.
async fn error_shape(response: Response, what: &str) -> (u16, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {status} answered {content_type:?}"
    );
    let body: Value = response.json().await.expect("a JSON error body");
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or_default().to_string();
    assert!(!code.is_empty(), "{what}: a code in {body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(" / ") && !message.is_ascii(),
        "{what}: Japanese, then English: {message:?}"
    );
    assert!(error["request_id"].is_string(), "{what}: the request ID");
    (status, code)
}

/// Whether the document lists `status` as an answer of `method path`.
fn documented(doc: &Value, method: &Method, path: &str, status: u16) -> bool {
    doc["paths"][path][method.as_str().to_lowercase()]["responses"]
        .get(status.to_string())
        .is_some()
}

/// Every operation of the document is served (the router's table and the document are held
/// against each other in `renrakucho_api::openapi`'s unit test; this asks the running server):
/// without a session, each signed-in one answers a documented 401 in the error shape, and the
/// public ones answer something documented that is not 401.
#[tokio::test]
async fn every_documented_operation_is_served_and_refuses_strangers_as_documented() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let some_id = "0190c3a4-7b3e-7000-8000-000000000001";
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let mut url = String::new();
            for (i, part) in path.split(['{', '}']).enumerate() {
                url.push_str(if i % 2 == 1 { some_id } else { part });
            }
            let what = format!("{method} {path}");
            let response = app
                .client
                .request(method.clone(), app.url(&url))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(
                documented(&doc, &method, path, status),
                "{what}: answered {status}, which the document does not list"
            );
            if operation.get("security").is_some() {
                let (status, code) = error_shape(response, &what).await;
                assert_eq!((status, code.as_str()), (401, "unauthenticated"), "{what}");
            } else {
                assert!(
                    status != 401 && status != 404 && status != 405,
                    "{what}: {status}"
                );
            }
            operations += 1;
        }
    }
    assert!(operations >= 56, "only {operations} operations documented");
    assert!(
        doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some()
    );
}

/// What axum answers by itself — a query or path that does not parse, a method a path does not
/// serve, a body that is not JSON, over the limit or not sent as JSON — is the one JSON error
/// shape, with a status the document lists.
#[tokio::test]
async fn rejections_by_the_framework_answer_the_error_shape() {
    let app = spawn_app().await;
    let clinic = app
        .seed_facility("SHAPE-CLINIC", FacilityKind::Clinic)
        .await;
    app.seed_staff(
        &clinic,
        "doctor",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let client = app.client_for(&clinic, "doctor").await;
    let doc = openapi(&app).await;
    let some_id = "0190c3a4-7b3e-7000-8000-000000000001";

    let get = |url: &str, path: &'static str| (Method::GET, url.to_string(), path, None);
    let post = |url: &str, path: &'static str, content_type: &'static str, body: &[u8]| {
        let body = Some((content_type, body.to_vec()));
        (Method::POST, url.to_string(), path, body)
    };
    let answer = format!("/api/v1/support-requests/{some_id}/answer");
    let step = "/api/v1/support-requests/{id}/{step}";
    let huge = format!("{{\"name\": \"{}\"}}", "あ".repeat(700_000));
    let json = "application/json";
    let cases = [
        (
            "a query value of the wrong type",
            get("/api/v1/patients?limit=many", "/api/v1/patients"),
            (400, "bad_request"),
        ),
        (
            "a control character in the query",
            get("/api/v1/patients?q=%07", "/api/v1/patients"),
            (422, "validation"),
        ),
        (
            "a path segment that is not UTF-8",
            get("/api/v1/patients/%FF%FE", "/api/v1/patients/{id}"),
            (400, "bad_request"),
        ),
        (
            "a body not sent as JSON",
            post("/api/v1/patients", "/api/v1/patients", "text/plain", b"x"),
            (415, "unsupported_media_type"),
        ),
        (
            "a body that is not JSON",
            post("/api/v1/patients", "/api/v1/patients", json, b"{\"name\":"),
            (400, "bad_request"),
        ),
        (
            "a body of another shape",
            post(
                "/api/v1/patients",
                "/api/v1/patients",
                json,
                b"{\"name\": 1}",
            ),
            (422, "validation"),
        ),
        (
            "a body over the route's limit",
            post(
                "/api/v1/patients",
                "/api/v1/patients",
                json,
                huge.as_bytes(),
            ),
            (413, "too_large"),
        ),
        (
            "an optional body that is not JSON",
            post(&answer, step, json, b"{"),
            (400, "bad_request"),
        ),
        (
            "an optional body not sent as JSON",
            post(&answer, step, "text/plain", b"answer"),
            (415, "unsupported_media_type"),
        ),
    ];
    for (what, (method, url, path, body), (status, code)) in cases {
        let mut request = client.request(method.clone(), app.url(&url));
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.unwrap();
        let answer = error_shape(response, what).await;
        assert_eq!(answer, (status, code.to_string()), "{what}");
        assert!(
            documented(&doc, &method, path, status),
            "{what}: {status} is not documented for {method} {path}"
        );
    }

    // A method the path does not serve: 405, the methods it does serve in `Allow`.
    let response = client
        .patch(app.url("/api/v1/patients"))
        .send()
        .await
        .unwrap();
    let allow = response.headers()["allow"].to_str().unwrap().to_string();
    assert_eq!(
        error_shape(response, "PATCH").await,
        (405, "method_not_allowed".to_string())
    );
    for method in ["GET", "POST"] {
        assert!(allow.contains(method), "Allow: {allow}");
    }
}
