//! Break-glass access and erasure ask for the password again when it was last given longer
//! ago than the network allows (issue 15, "Re-authentication"): over the API (403
//! `reauthentication_required`, then `POST /api/v1/me/reauthenticate`) and in the portal (the
//! confirmation page, then back). Nothing happens before it is given.

use std::time::Duration;

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::audit;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long a password counts as just given in these tests, and a wait beyond it.
/// (Whole seconds are compared: a wait beyond the window by more than one.)
const WITHIN: Duration = Duration::from_secs(5);
const LATER: Duration = Duration::from_millis(6_500);

async fn app() -> TestApp {
    spawn_app_with(|s| s.reauthenticate_within = WITHIN).await
}

async fn code_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn erasure_and_break_glass_over_the_api_ask_for_the_password_again() {
    let app = app().await;
    let clinic = app.seed_facility("RA-1", FacilityKind::Clinic).await;
    let hospital = app.seed_facility("RA-2", FacilityKind::Hospital).await;
    let doctor = app
        .seed_staff(&clinic, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(&hospital, "erdoc", StaffRole::Staff, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&doctor, "再認 花子", "サイニン ハナコ")
        .await
        .id
        .as_uuid();
    let client = app.client_for(&clinic, "doctor").await;
    let er = app.client_for(&hospital, "erdoc").await;
    let deletion = app.url(&format!("/api/v1/patients/{patient}/deletion"));
    let show = app.url(&format!("/api/v1/patients/{patient}"));
    tokio::time::sleep(LATER).await;

    let refused = client
        .post(&deletion)
        .json(&json!({ "confirm": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code_of(refused).await,
        (StatusCode::FORBIDDEN, "reauthentication_required".into())
    );
    assert_eq!(
        client.get(&show).send().await.unwrap().status(),
        StatusCode::OK,
        "not erased"
    );
    // Break-glass is asked first, before the request is even read.
    let refused = er
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": "x", "birth_date": "x", "reason": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code_of(refused).await,
        (StatusCode::FORBIDDEN, "reauthentication_required".into())
    );

    let wrong = client
        .post(app.url("/api/v1/me/reauthenticate"))
        .json(&json!({ "password": "not the password at all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code_of(wrong).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_password".into())
    );
    let right = client
        .post(app.url("/api/v1/me/reauthenticate"))
        .json(&json!({ "password": FIXTURE_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::NO_CONTENT);
    let done = client
        .post(&deletion)
        .json(&json!({ "confirm": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        StatusCode::OK,
        "erased once the password was given"
    );

    let right = er
        .post(app.url("/api/v1/me/reauthenticate"))
        .json(&json!({ "password": FIXTURE_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::NO_CONTENT);
    let (status, code) = code_of(
        er.post(app.url("/api/v1/emergency-access"))
            .json(&json!({ "card_number": "x", "birth_date": "x", "reason": "x" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        "past the password, the request itself is read"
    );

    // Audited in the person's chain: the refusal and the confirmation.
    let mut tx = app.db.begin(Scope::Facility(clinic.id)).await.unwrap();
    let records = audit::recent(&mut tx, 100).await.unwrap();
    tx.commit().await.unwrap();
    let outcomes: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.action == "auth.reauthenticate")
        .map(|r| {
            (
                r.outcome.clone(),
                r.details["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .rev()
        .collect();
    assert_eq!(
        outcomes,
        [
            ("denied".to_string(), "wrong_password".to_string()),
            ("success".to_string(), String::new())
        ]
    );
}

#[tokio::test]
async fn the_portal_asks_for_the_password_before_a_deletion_and_comes_back() {
    let app = app().await;
    let clinic = app.seed_facility("RA-3", FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&clinic, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&doctor, "戻る 花子", "モドル ハナコ")
        .await
        .id
        .as_uuid();
    let client = app.client_for(&clinic, "doctor").await;
    let hospital = app.seed_facility("RA-4", FacilityKind::Hospital).await;
    app.seed_staff(&hospital, "erdoc", StaffRole::Staff, Profession::Doctor)
        .await;
    let er = app.client_for(&hospital, "erdoc").await;
    let page = format!("/patients/{patient}");
    tokio::time::sleep(LATER).await;

    // Break-glass from the portal: to the confirmation page first, then the form is read.
    let emergency = [
        ("card_number", "0000-0000-0000"),
        ("birth_date", "1940-01-01"),
        ("reason", "救急搬送時の確認"),
    ];
    let token = app.form_token(&er, "/emergency").await;
    let mut fields = vec![("authenticity_token", token.as_str())];
    fields.extend(emergency);
    let response = er
        .post(app.url("/emergency"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        "/account/confirm?next=/emergency"
    );
    let token = app
        .form_token(&er, "/account/confirm?next=/emergency")
        .await;
    let right = er
        .post(app.url("/account/confirm"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("password", FIXTURE_PASSWORD),
            ("next", "/emergency"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(right.headers()[LOCATION], "/emergency");
    let token = app.form_token(&er, "/emergency").await;
    let mut fields = vec![("authenticity_token", token.as_str())];
    fields.extend(emergency);
    let response = er
        .post(app.url("/emergency"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    assert!(
        !location
            .as_deref()
            .unwrap_or_default()
            .starts_with("/account/confirm"),
        "not asked again: {location:?}"
    );
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "the form itself is what answers now (a card number of the wrong shape)"
    );

    let token = app.form_token(&client, &page).await;
    let response = client
        .post(app.url(&format!("{page}/deletion")))
        .form(&[("authenticity_token", token.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let confirm = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(confirm, format!("/account/confirm?next={page}"));
    let show = app.url(&format!("/api/v1/patients/{patient}"));
    assert_eq!(
        client.get(&show).send().await.unwrap().status(),
        StatusCode::OK,
        "not erased"
    );

    let token = app.form_token(&client, &confirm).await;
    let wrong = client
        .post(app.url("/account/confirm"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("password", "not the password at all"),
            ("next", page.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text().await.unwrap().contains("パスワードが違います"));
    // Another site is never where a confirmation leads.
    let token = app.form_token(&client, &confirm).await;
    let elsewhere = client
        .post(app.url("/account/confirm"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("password", FIXTURE_PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.headers()[LOCATION], "/");
    let token = app.form_token(&client, &confirm).await;
    let right = client
        .post(app.url("/account/confirm"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("password", FIXTURE_PASSWORD),
            ("next", page.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION].to_str().unwrap(), page);

    let token = app.form_token(&client, &page).await;
    let response = client
        .post(app.url(&format!("{page}/deletion")))
        .form(&[("authenticity_token", token.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_ne!(
        response.headers()[LOCATION].to_str().unwrap(),
        confirm,
        "not asked again"
    );
    assert_eq!(
        client.get(&show).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "erased"
    );
}
