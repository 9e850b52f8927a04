//! The second factor at sign-in (issue 15, "Local accounts: MFA"): TOTP after the password
//! (two steps, or in one request), a code good once, one step of clock skew either side and no
//! more, and a session signed in with the password alone ending once an authenticator is set
//! up; the helpers both files share. Setting up, resetting and the rest of the changes:
//! `changes`. Every refusal changes nothing.

use std::time::Duration;

use renrakucho_core::{
    DisplayName, FacilityKind, LoginId, Password, Profession, StaffId, StaffRole,
};
use renrakucho_identity::totp::{secret_from_base32, TotpSecret, STEP_SECONDS};
use renrakucho_server::admin_commands::{self, StaffToIssue};
use renrakucho_store::facilities::Facility;
use renrakucho_store::{audit, Scope};
use renrakucho_testkit::{new_client, spawn_app, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn code_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or_default();
    (status, code.to_string())
}

fn now_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / STEP_SECONDS
}

/// Waits, if need be, until the current step has at least `margin` left: a test that names a
/// step relative to now does not see it move on the way.
async fn away_from_a_step_boundary(margin: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = STEP_SECONDS - now % STEP_SECONDS;
    if left < margin {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}

/// The password step alone, from a new client: what a person does first.
async fn password_step(app: &TestApp, facility: &str, login: &str) -> (Client, StatusCode, String) {
    let client = new_client();
    let response = client
        .post(app.url("/api/v1/auth/sign-in"))
        .json(&json!({ "facility_code": facility, "login_id": login,
                       "password": FIXTURE_PASSWORD }))
        .send()
        .await
        .unwrap();
    let (status, code) = code_of(response).await;
    (client, status, code)
}

async fn second_step(app: &TestApp, client: &Client, code: &str) -> reqwest::Response {
    client
        .post(app.url("/api/v1/auth/second-factor"))
        .json(&json!({ "one_time_code": code }))
        .send()
        .await
        .unwrap()
}

/// A sign-in in one request with `code`.
async fn sign_in_with_code(app: &TestApp, facility: &str, login: &str, code: &str) -> StatusCode {
    new_client()
        .post(app.url("/api/v1/auth/sign-in"))
        .json(&json!({ "facility_code": facility, "login_id": login,
                       "password": FIXTURE_PASSWORD, "one_time_code": code }))
        .send()
        .await
        .unwrap()
        .status()
}

async fn me(app: &TestApp, client: &Client) -> (StatusCode, Value) {
    let response = client.get(app.url("/api/v1/me")).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The `auth.sign_in` and `account.second_factor` records of the facility, oldest first:
/// (action, outcome, reason or event).
async fn records(app: &TestApp, facility: &Facility) -> Vec<(String, String, String)> {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let records = audit::recent(&mut tx, 200).await.unwrap();
    tx.commit().await.unwrap();
    let mut found: Vec<_> = records
        .into_iter()
        .filter(|r| r.action.starts_with("auth.sign_in") || r.action == "account.second_factor")
        .map(|r| {
            let what = r.details["reason"]
                .as_str()
                .or(r.details["event"].as_str())
                .or(r.details["step"].as_str())
                .unwrap_or_default()
                .to_string();
            (r.action, r.outcome, what)
        })
        .collect();
    found.reverse();
    found
}

/// A staff account with no authenticator (as the command line creates one, but with a
/// password the person chose).
async fn without_factor(
    app: &TestApp,
    facility: &Facility,
    login: &str,
    role: StaffRole,
) -> StaffId {
    let hasher = app.server_hasher.clone();
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).unwrap();
    admin_commands::create_staff(
        &app.db,
        &hasher,
        facility,
        StaffToIssue {
            login_id: LoginId::parse(login).unwrap(),
            name: DisplayName::parse("二段 確認").unwrap(),
            role,
            profession: Profession::Nurse,
            password: &password,
            password_must_change: false,
        },
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn the_password_then_the_code_signs_in_and_a_wrong_code_does_not() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-1", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;

    let (client, status, code) = password_step(&app, "MF-1", "nurse").await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "second_factor_required")
    );
    // Not signed in yet: the right password alone opens nothing.
    assert_eq!(me(&app, &client).await.0, StatusCode::UNAUTHORIZED);
    let (status, code) = code_of(second_step(&app, &client, "000000").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "wrong_one_time_code")
    );
    assert_eq!(me(&app, &client).await.0, StatusCode::UNAUTHORIZED);

    let good = app.one_time_code("MF-1", "nurse").await.unwrap();
    let response = second_step(&app, &client, &good).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, who) = me(&app, &client).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["second_factor_enabled"], true);
    assert_eq!(who["second_factor_enrolment_required"], false);

    // Without a waiting sign-in, a code alone is nothing.
    let stranger = new_client();
    let (status, _) = code_of(second_step(&app, &stranger, &good).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(
        records(&app, &clinic).await,
        [
            ("auth.sign_in_step", "success", "password"),
            ("auth.sign_in", "denied", "wrong_totp"),
            ("auth.sign_in", "success", "password+totp"),
        ]
        .map(|(a, o, w)| (a.to_string(), o.to_string(), w.to_string()))
    );
}

#[tokio::test]
async fn a_code_is_good_once_and_one_step_of_clock_skew_either_side() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-2", FacilityKind::Clinic).await;
    for login in ["early", "late", "tooearly", "toolate", "again"] {
        app.seed_staff(&clinic, login, StaffRole::Staff, Profession::Nurse)
            .await;
    }
    let secret = |login: &str| app.authenticator("MF-2", login).unwrap();
    away_from_a_step_boundary(8).await;
    let step = now_step();
    assert_eq!(
        sign_in_with_code(&app, "MF-2", "early", &secret("early").code_at(step - 1)).await,
        StatusCode::OK,
        "a phone one step behind"
    );
    assert_eq!(
        sign_in_with_code(&app, "MF-2", "late", &secret("late").code_at(step + 1)).await,
        StatusCode::OK,
        "a phone one step ahead"
    );
    assert_eq!(
        sign_in_with_code(
            &app,
            "MF-2",
            "tooearly",
            &secret("tooearly").code_at(step - 2)
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "two steps behind"
    );
    assert_eq!(
        sign_in_with_code(
            &app,
            "MF-2",
            "toolate",
            &secret("toolate").code_at(step + 2)
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "two steps ahead"
    );

    // The same code twice: the second time is a replay (someone who saw it), refused.
    let code = secret("again").code_at(step);
    assert_eq!(
        sign_in_with_code(&app, "MF-2", "again", &code).await,
        StatusCode::OK
    );
    assert_eq!(
        sign_in_with_code(&app, "MF-2", "again", &code).await,
        StatusCode::UNAUTHORIZED,
        "a code used once"
    );
    // An earlier step's code, not used before, is refused too once a later one was.
    assert_eq!(
        sign_in_with_code(&app, "MF-2", "again", &secret("again").code_at(step - 1)).await,
        StatusCode::UNAUTHORIZED,
        "an older code after a newer one"
    );
    let reasons: Vec<String> = records(&app, &clinic)
        .await
        .into_iter()
        .filter(|(_, outcome, _)| outcome == "denied")
        .map(|(_, _, reason)| reason)
        .collect();
    assert_eq!(
        reasons,
        ["wrong_totp", "wrong_totp", "totp_reused", "totp_reused"]
    );
}

/// Sets up an authenticator through the API for the signed-in `client`; its recovery codes.
async fn set_up(app: &TestApp, client: &Client) -> (TotpSecret, Vec<String>) {
    let response = client
        .post(app.url("/api/v1/me/second-factor/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
    assert!(body["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let secret = secret_from_base32(body["secret"].as_str().unwrap()).expect("a secret");

    let wrong = client
        .post(app.url("/api/v1/me/second-factor/totp/confirm"))
        .json(&json!({ "one_time_code": "123456" }))
        .send()
        .await
        .unwrap();
    let expected_wrong = if secret.code_at(now_step()) == "123456" {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    assert_eq!(
        wrong.status(),
        expected_wrong,
        "a wrong code confirms nothing"
    );
    let response = client
        .post(app.url("/api/v1/me/second-factor/totp/confirm"))
        .json(&json!({ "one_time_code": secret.code_at(now_step()) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test]
async fn a_session_signed_in_with_the_password_alone_ends_once_an_authenticator_is_set_up() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-11", FacilityKind::Clinic).await;
    without_factor(&app, &clinic, "boss", StaffRole::FacilityAdmin).await;
    // Someone with the password signs in before the owner has an authenticator, and keeps the
    // session alive; the owner then sets one up in their own session.
    let intruder = app.client_for(&clinic, "boss").await;
    let owner = app.client_for(&clinic, "boss").await;
    set_up(&app, &owner).await;
    assert_eq!(
        me(&app, &owner).await.0,
        StatusCode::OK,
        "the owner goes on"
    );
    assert_eq!(
        me(&app, &intruder).await.0,
        StatusCode::UNAUTHORIZED,
        "a session without the code does not outlive the set-up"
    );
    let (status, _) = code_of(
        intruder
            .get(app.url("/api/v1/patients"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

mod changes;
