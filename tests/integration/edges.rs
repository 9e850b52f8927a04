//! The edges of the HTTP interface, tried as an attacker with a browser or an HTTP client would
//! (issue 12): request IDs a client chooses, and a sign-out that a form on another page cannot
//! trigger.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::{spawn_app, spawn_app_with, FIXTURE_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// A client's `X-Request-Id` is kept only when it is a UUID or a short token; anything else is
/// replaced by one of the server's own, in the answer, the error body and the audit log.
#[tokio::test]
async fn a_request_id_the_client_chose_freely_is_replaced() {
    // Room for this test's sign-ins under one account from one address.
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 20;
        s.signin_address_burst = 20;
    })
    .await;
    let facility = app.seed_facility("EDGE-RID", FacilityKind::Clinic).await;
    app.seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let given_uuid = Uuid::new_v4().to_string();
    let long = "a".repeat(65);
    for (given, kept) in [
        (given_uuid.as_str(), true),
        ("proxy-7f3a.01_x", true),
        ("<script>alert(1)</script>", false),
        (long.as_str(), false),
        ("患者名", false),
        ("a b", false),
    ] {
        let client = renrakucho_testkit::new_client();
        // Unauthenticated: the error body quotes the request's ID.
        let response = client
            .get(app.url("/api/v1/me"))
            .header("x-request-id", given)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let echoed = response
            .headers()
            .get("x-request-id")
            .expect("the answer names the request")
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], echoed.as_str(), "{given}");
        if kept {
            assert_eq!(echoed, given);
        } else {
            assert_ne!(echoed, given);
            assert!(Uuid::parse_str(&echoed).is_ok(), "generated: {echoed}");
        }

        // Signed in: the sign-in's audit record carries the same ID.
        let response = client
            .post(app.url("/api/v1/auth/sign-in"))
            .header("x-request-id", given)
            .json(
                &json!({ "facility_code": facility.code, "login_id": "nurse",
                           "password": FIXTURE_PASSWORD }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let mut su = superuser(&app).await;
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT request_id FROM audit_log WHERE action = 'auth.sign_in'
              ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(recorded.as_deref(), Some(echoed.as_str()), "{given}");
        assert_eq!(echoed == given, kept, "{given}");
    }
}

/// Sign-out is JSON only: a form (url-encoded, multipart or plain text, as a page on a sibling
/// site could send with the person's cookie) is refused with 415 and the session lives on.
#[tokio::test]
async fn a_form_cannot_sign_a_person_out() {
    let app = spawn_app().await;
    let facility = app.seed_facility("EDGE-OUT", FacilityKind::Clinic).await;
    app.seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&facility, "nurse").await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        let response = client
            .post(app.url("/api/v1/auth/sign-out"))
            .header("content-type", content_type)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "json_only");
        let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(
            me.status(),
            StatusCode::OK,
            "still signed in after {content_type}"
        );
    }
    // No content type at all: refused too.
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // JSON (any case, with parameters): signed out.
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}
