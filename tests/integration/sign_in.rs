//! Sign-in over the JSON API: one answer (status, code, message and work) for every kind of
//! wrong credentials, account and facility status, throttling per account and per address,
//! and an audit record for every attempt in the chain it belongs to.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use renrakucho_core::{FacilityId, FacilityKind, Profession, StaffRole, StaffStatus};
use renrakucho_store::audit::{self, AuditRecord};
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::{self, StaffAccount};
use renrakucho_store::Scope;
use renrakucho_testkit::{new_client, spawn_app, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::{json, Value};

const WRONG_PASSWORD: &str = "not the password at all";

/// An active facility with one staff member.
async fn facility_with_staff(app: &TestApp, code: &str, login: &str) -> (Facility, StaffAccount) {
    let facility = app.seed_facility(code, FacilityKind::Clinic).await;
    let account = app
        .seed_staff(&facility, login, StaffRole::Staff, Profession::Nurse)
        .await;
    (facility, account)
}

/// Status and error object of a refused request, without the request ID (which differs per
/// request).
async fn refusal(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let mut body: Value = response.json().await.expect("a JSON error body");
    let mut error = body["error"].take();
    assert!(error.is_object(), "no error object in {body}");
    error
        .as_object_mut()
        .expect("an object")
        .remove("request_id");
    (status, error)
}

/// POST /api/v1/auth/sign-in from `client` with a chosen request ID, so the attempt can be
/// found in the audit log.
async fn sign_in_tagged(
    app: &TestApp,
    client: &reqwest::Client,
    code: Option<&str>,
    login: &str,
    password: &str,
    request_id: &str,
) -> reqwest::Response {
    // The right password comes with a fresh code of the account's authenticator, if it has one.
    let one_time_code = match code {
        Some(code) if password == FIXTURE_PASSWORD => app.one_time_code(code, login).await,
        _ => None,
    };
    client
        .post(app.url("/api/v1/auth/sign-in"))
        .header("x-request-id", request_id)
        .json(
            &json!({ "facility_code": code, "login_id": login, "password": password,
                       "one_time_code": one_time_code }),
        )
        .send()
        .await
        .expect("sign-in request")
}

async fn set_staff_status(
    app: &TestApp,
    facility: &Facility,
    account: &StaffAccount,
    status: StaffStatus,
) {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    staff::set_status(&mut tx, account.id, status)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn set_facility_status(app: &TestApp, facility: &Facility, status: &str) {
    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let done = sqlx::query("UPDATE facilities SET status = $2 WHERE id = $1")
        .bind(facility.id.as_uuid())
        .bind(status)
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    tx.commit().await.unwrap();
}

/// The newest records of one chain: a facility's, or the platform's (`None`).
async fn audit_chain(app: &TestApp, facility: Option<FacilityId>) -> Vec<AuditRecord> {
    let scope = facility.map_or(Scope::Platform, Scope::Facility);
    let mut tx = app.db.begin(scope).await.unwrap();
    let records = audit::recent(&mut tx, 50).await.unwrap();
    tx.commit().await.unwrap();
    records
}

fn with_request_id<'a>(records: &'a [AuditRecord], request_id: &str) -> Vec<&'a AuditRecord> {
    records
        .iter()
        .filter(|r| r.request_id.as_deref() == Some(request_id))
        .collect()
}

fn throttle_header(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get(RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_a_session() {
    let app = spawn_app().await;
    facility_with_staff(&app, "SIGN-1", "alice").await;
    let response = app.sign_in(Some("SIGN-1"), "alice", WRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .is_none(),
        "a refused sign-in must not start a session"
    );
    assert_eq!(TestApp::error_code(response).await, "bad_credentials");
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);

    let ok = app.sign_in(Some("sign-1"), "ALICE", FIXTURE_PASSWORD).await;
    assert_eq!(
        ok.status(),
        StatusCode::OK,
        "codes and login IDs are case-insensitive"
    );
    let who: Value = ok.json().await.unwrap();
    assert_eq!(who["kind"], "staff");
    assert_eq!(who["login_id"], "alice");
    assert_eq!(who["facility"]["code"], "SIGN-1");
}

#[tokio::test]
async fn unknown_user_and_unknown_facility_look_exactly_like_a_wrong_password() {
    let app = spawn_app().await;
    facility_with_staff(&app, "SIGN-2", "alice").await;
    let (status, wrong_password) =
        refusal(app.sign_in(Some("SIGN-2"), "alice", WRONG_PASSWORD).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password["code"], "bad_credentials");
    assert!(wrong_password["message"]
        .as_str()
        .unwrap()
        .contains("パスワードが違います"));

    for (what, code, login, password) in [
        ("unknown user", Some("SIGN-2"), "nobody", WRONG_PASSWORD),
        (
            "unknown user, fixture password",
            Some("SIGN-2"),
            "nobody",
            FIXTURE_PASSWORD,
        ),
        (
            "unknown facility",
            Some("NO-SUCH-1"),
            "alice",
            FIXTURE_PASSWORD,
        ),
        (
            "unknown facility and user",
            Some("NO-SUCH-1"),
            "nobody",
            WRONG_PASSWORD,
        ),
        (
            "staff login without facility",
            None,
            "alice",
            FIXTURE_PASSWORD,
        ),
    ] {
        let (other_status, other) = refusal(app.sign_in(code, login, password).await).await;
        assert_eq!(
            other_status, status,
            "{what}: status differs from a wrong password"
        );
        assert_eq!(
            other, wrong_password,
            "{what}: error differs from a wrong password"
        );
    }
}

/// An unknown user or facility costs what a wrong password costs because it runs the same
/// work: exactly one argon2id verification (against a dummy hash of the same parameters, see
/// `password::tests` in renrakucho-identity), counted by the server's hasher. How long that takes
/// is measured where timing belongs, in a benchmark (`cargo bench -p renrakucho-server --bench
/// sign_in`, docs/performance.md), not in a test a loaded machine could fail.
#[tokio::test]
async fn unknown_user_and_unknown_facility_run_the_same_verification_as_a_wrong_password() {
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 1000;
        s.signin_address_burst = 1000;
    })
    .await;
    facility_with_staff(&app, "TIMING-1", "alice").await;
    for (what, code, login) in [
        ("wrong password", Some("TIMING-1"), "alice"),
        ("unknown user", Some("TIMING-1"), "nobody"),
        ("unknown facility", Some("NO-SUCH-2"), "alice"),
        ("unknown facility and user", Some("NO-SUCH-2"), "nobody"),
        ("unknown operator", None, "nobody"),
        ("staff login without facility", None, "alice"),
    ] {
        let before = app.server_hasher.verifications();
        let response = app.sign_in(code, login, WRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            app.server_hasher.verifications() - before,
            1,
            "{what}: one argon2id verification"
        );
    }
    // Malformed input is answered before any verification.
    let before = app.server_hasher.verifications();
    let response = app
        .sign_in(Some("TIMING-1"), "no spaces allowed", WRONG_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.server_hasher.verifications(), before, "malformed input");
}

#[tokio::test]
async fn a_suspended_account_is_refused_but_only_with_the_right_password() {
    let app = spawn_app().await;
    let (facility, account) = facility_with_staff(&app, "SIGN-3", "alice").await;
    set_staff_status(&app, &facility, &account, StaffStatus::Suspended).await;

    let right = app.sign_in(Some("SIGN-3"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(right.status(), StatusCode::FORBIDDEN);
    assert_eq!(TestApp::error_code(right).await, "account_not_active");
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);

    // A wrong password gets the ordinary answer: the status is no oracle for guessers.
    let wrong = app.sign_in(Some("SIGN-3"), "alice", WRONG_PASSWORD).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(TestApp::error_code(wrong).await, "bad_credentials");

    set_staff_status(&app, &facility, &account, StaffStatus::Disabled).await;
    let disabled = app.sign_in(Some("SIGN-3"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
    assert_eq!(TestApp::error_code(disabled).await, "account_not_active");

    set_staff_status(&app, &facility, &account, StaffStatus::Active).await;
    let resumed = app.sign_in(Some("SIGN-3"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(resumed.status(), StatusCode::OK);
}

#[tokio::test]
async fn staff_of_a_suspended_facility_cannot_sign_in() {
    let app = spawn_app().await;
    let (facility, _) = facility_with_staff(&app, "SIGN-4", "alice").await;
    set_facility_status(&app, &facility, "suspended").await;

    let right = app.sign_in(Some("SIGN-4"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(right.status(), StatusCode::FORBIDDEN);
    assert_eq!(TestApp::error_code(right).await, "facility_not_active");
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);

    let wrong = app.sign_in(Some("SIGN-4"), "alice", WRONG_PASSWORD).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(TestApp::error_code(wrong).await, "bad_credentials");

    // Still handing over its patients while its request to leave is processed.
    set_facility_status(&app, &facility, "deregistration_requested").await;
    let leaving = app.sign_in(Some("SIGN-4"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(leaving.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_operator_signs_in_without_a_facility_code() {
    let app = spawn_app().await;
    let operator = app.seed_operator("ops.admin").await;

    let response = app.sign_in(None, "ops.admin", FIXTURE_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = app.me().await.json().await.unwrap();
    assert_eq!(me["kind"], "operator");
    assert_eq!(me["id"], operator.id.as_uuid().to_string());
    assert_eq!(me["login_id"], "ops.admin");
    assert!(
        me.get("facility").is_none(),
        "an operator belongs to no facility: {me}"
    );

    // An empty code is no code.
    let client = new_client();
    let empty = app
        .sign_in_with(&client, Some("  "), "ops.admin", FIXTURE_PASSWORD)
        .await;
    assert_eq!(empty.status(), StatusCode::OK);

    // An operator's login ID is not a staff login ID of some facility.
    facility_with_staff(&app, "SIGN-5", "alice").await;
    let as_staff = app
        .sign_in(Some("SIGN-5"), "ops.admin", FIXTURE_PASSWORD)
        .await;
    assert_eq!(as_staff.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(TestApp::error_code(as_staff).await, "bad_credentials");
}

#[tokio::test]
async fn malformed_input_is_a_validation_error_naming_the_field() {
    let app = spawn_app().await;
    facility_with_staff(&app, "SIGN-6", "alice").await;
    for (code, login, password, field) in [
        (
            Some("SIGN-6"),
            "no spaces allowed",
            FIXTURE_PASSWORD,
            "login_id",
        ),
        (Some("SIGN-6"), "a", FIXTURE_PASSWORD, "login_id"),
        (None, "<script>", FIXTURE_PASSWORD, "login_id"),
        (Some("x!"), "alice", FIXTURE_PASSWORD, "facility_code"),
        (Some("SIGN-6"), "alice", "", "password"),
    ] {
        let (status, error) = refusal(app.sign_in(code, login, password).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{code:?}/{login}");
        assert_eq!(error["code"], "validation", "{code:?}/{login}");
        assert_eq!(error["field"], field, "{code:?}/{login}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_account_is_throttled_after_its_burst_even_with_the_right_password() {
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 3;
        s.signin_account_period = Duration::from_secs(3600);
        s.signin_address_burst = 1000;
    })
    .await;
    let (facility, _) = facility_with_staff(&app, "THROT-1", "alice").await;
    app.seed_staff(&facility, "bob", StaffRole::Staff, Profession::Doctor)
        .await;
    facility_with_staff(&app, "THROT-2", "alice").await;

    for attempt in 1..=3 {
        let response = app.sign_in(Some("THROT-1"), "alice", WRONG_PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let fourth = app
        .sign_in(Some("THROT-1"), "alice", FIXTURE_PASSWORD)
        .await;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = throttle_header(&fourth);
    assert!(
        (60..=3600).contains(&retry_after),
        "Retry-After {retry_after}s for a one-per-hour refill"
    );
    assert_eq!(TestApp::error_code(fourth).await, "throttled");
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);

    // Spelling the account differently does not escape the limit.
    let respelt = app
        .sign_in(Some("throt-1"), " ALICE ", FIXTURE_PASSWORD)
        .await;
    assert_eq!(respelt.status(), StatusCode::TOO_MANY_REQUESTS);

    // Other accounts, in the same or another facility, are not affected.
    let bob = app.sign_in(Some("THROT-1"), "bob", FIXTURE_PASSWORD).await;
    assert_eq!(bob.status(), StatusCode::OK);
    let namesake = app
        .sign_in(Some("THROT-2"), "alice", FIXTURE_PASSWORD)
        .await;
    assert_eq!(namesake.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_address_is_throttled_after_its_burst_across_accounts() {
    let app = spawn_app_with(|s| {
        s.signin_address_burst = 3;
        s.signin_address_period = Duration::from_secs(3600);
        s.signin_account_burst = 1000;
    })
    .await;
    let facility = app.seed_facility("THROT-3", FacilityKind::Pharmacy).await;
    for login in ["anna", "bert", "carl", "dora"] {
        app.seed_staff(&facility, login, StaffRole::Staff, Profession::Pharmacist)
            .await;
    }
    for login in ["anna", "bert", "carl"] {
        let response = app.sign_in(Some("THROT-3"), login, WRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{login}");
    }
    let fourth = app.sign_in(Some("THROT-3"), "dora", FIXTURE_PASSWORD).await;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttle_header(&fourth) >= 1);
    assert_eq!(TestApp::error_code(fourth).await, "throttled");
    let unknown = app.sign_in(Some("NO-SUCH-3"), "zed", WRONG_PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another address is not slowed down (all of 127.0.0.0/8 is this machine).
    let elsewhere = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let response = app
        .sign_in_with(&elsewhere, Some("THROT-3"), "dora", FIXTURE_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// One sign-in attempt and where its audit record must be.
struct Attempt {
    request_id: &'static str,
    code: Option<&'static str>,
    login: &'static str,
    password: &'static str,
    status: StatusCode,
    /// In the facility's chain (true) or the platform's (false).
    facility_chain: bool,
    outcome: &'static str,
    reason: &'static str,
}

#[tokio::test]
async fn every_attempt_is_audited_once_in_the_chain_it_belongs_to() {
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 2;
        s.signin_account_period = Duration::from_secs(3600);
    })
    .await;
    let (facility, alice) = facility_with_staff(&app, "AUDIT-1", "alice").await;
    let bob = app
        .seed_staff(&facility, "bob", StaffRole::Staff, Profession::Clerk)
        .await;
    set_staff_status(&app, &facility, &bob, StaffStatus::Suspended).await;

    let attempt =
        |request_id, code, login, password, status, facility_chain, outcome, reason| Attempt {
            request_id,
            code,
            login,
            password,
            status,
            facility_chain,
            outcome,
            reason,
        };
    let unauthorized = StatusCode::UNAUTHORIZED;
    let attempts = [
        attempt(
            "t-wrong-password",
            Some("AUDIT-1"),
            "alice",
            WRONG_PASSWORD,
            unauthorized,
            true,
            "denied",
            "wrong_password",
        ),
        attempt(
            "t-unknown-user",
            Some("AUDIT-1"),
            "nobody",
            WRONG_PASSWORD,
            unauthorized,
            true,
            "denied",
            "unknown_user",
        ),
        attempt(
            "t-unknown-facility",
            Some("NO-SUCH-4"),
            "alice",
            FIXTURE_PASSWORD,
            unauthorized,
            false,
            "denied",
            "unknown_facility",
        ),
        attempt(
            "t-malformed",
            Some("AUDIT-1"),
            "not a login!",
            FIXTURE_PASSWORD,
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
            "denied",
            "invalid_input",
        ),
        attempt(
            "t-suspended",
            Some("AUDIT-1"),
            "bob",
            FIXTURE_PASSWORD,
            StatusCode::FORBIDDEN,
            true,
            "denied",
            "account_not_active",
        ),
        attempt(
            "t-success",
            Some("AUDIT-1"),
            "alice",
            FIXTURE_PASSWORD,
            StatusCode::OK,
            true,
            "success",
            // The password and the code of alice's authenticator, in one request.
            "password+totp",
        ),
        // alice's burst of two is used up by now.
        attempt(
            "t-throttled",
            Some("AUDIT-1"),
            "alice",
            FIXTURE_PASSWORD,
            StatusCode::TOO_MANY_REQUESTS,
            false,
            "denied",
            "throttled",
        ),
    ];
    for a in &attempts {
        let response = sign_in_tagged(
            &app,
            &new_client(),
            a.code,
            a.login,
            a.password,
            a.request_id,
        )
        .await;
        assert_eq!(response.status(), a.status, "{}", a.request_id);
    }

    let facility_records = audit_chain(&app, Some(facility.id)).await;
    let platform_records = audit_chain(&app, None).await;
    for a in &attempts {
        let (chain, other) = if a.facility_chain {
            (&facility_records, &platform_records)
        } else {
            (&platform_records, &facility_records)
        };
        let found = with_request_id(chain, a.request_id);
        assert_eq!(
            found.len(),
            1,
            "{}: expected one record in its chain, found {found:?}",
            a.request_id
        );
        assert!(
            with_request_id(other, a.request_id).is_empty(),
            "{}: recorded in the wrong chain",
            a.request_id
        );
        let record = found[0];
        assert_eq!(record.action, "auth.sign_in", "{}", a.request_id);
        assert_eq!(record.outcome, a.outcome, "{}", a.request_id);
        assert_eq!(record.details["reason"], a.reason, "{}", a.request_id);
        let text = record.details.to_string();
        assert!(
            !text.contains(FIXTURE_PASSWORD) && !text.contains(WRONG_PASSWORD),
            "{}: a password in the audit log: {text}",
            a.request_id
        );
    }

    // Who: the account when it is known and the password was right, else nobody.
    let success = with_request_id(&facility_records, "t-success")[0];
    assert_eq!(success.actor_kind, "staff");
    assert_eq!(success.actor_id, Some(alice.id.as_uuid()));
    assert_eq!(success.target_id, Some(alice.id.as_uuid()));
    let suspended = with_request_id(&facility_records, "t-suspended")[0];
    assert_eq!(suspended.actor_id, Some(bob.id.as_uuid()));
    for id in ["t-wrong-password", "t-unknown-user"] {
        let record = with_request_id(&facility_records, id)[0];
        assert_eq!(record.actor_kind, "anonymous", "{id}");
        assert_eq!(record.actor_id, None, "{id}");
    }

    // Exactly one sign-in record per attempt, nothing else.
    let sign_ins = facility_records
        .iter()
        .chain(&platform_records)
        .filter(|r| r.action == "auth.sign_in")
        .count();
    assert_eq!(sign_ins, attempts.len());
}
