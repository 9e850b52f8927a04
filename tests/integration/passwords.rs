//! The password lifecycle (issue 15): a person changes their own password under the network's
//! rules, each refusal naming its rule and changing nothing; none of the last five passwords
//! comes back; a password chosen by someone else or too old must be changed before anything
//! else (API and portal); a hash made under older argon2id settings is upgraded at sign-in.

use std::time::Duration;

use renrakucho_core::{DisplayName, FacilityKind, LoginId, Password, Profession, StaffRole};
use renrakucho_identity::{PasswordHasher, PasswordParams};
use renrakucho_server::admin_commands::{self, StaffToIssue};
use renrakucho_store::audit;
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::{self, StaffAccount};
use renrakucho_store::{operators, Scope};
use renrakucho_testkit::{new_client, spawn_app, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NEW_PASSWORD: &str = "Umegaoka-7-kaidan-no-neko";

async fn nurse(app: &TestApp, code: &str) -> (Facility, StaffAccount) {
    let facility = app.seed_facility(code, FacilityKind::Clinic).await;
    let account = app
        .seed_staff(&facility, "hanako", StaffRole::Staff, Profession::Nurse)
        .await;
    (facility, account)
}

async fn change(
    app: &TestApp,
    client: &reqwest::Client,
    current: &str,
    new: &str,
) -> reqwest::Response {
    client
        .post(app.url("/api/v1/me/password"))
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .expect("a password change request")
}

/// A signed-in client of `login` of `code`.
async fn signed_in(
    app: &TestApp,
    code: Option<&str>,
    login: &str,
    password: &str,
) -> reqwest::Client {
    let client = new_client();
    let response = app.sign_in_with(&client, code, login, password).await;
    assert_eq!(response.status(), StatusCode::OK, "signing {login} in");
    client
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The stored hash and earlier hashes of `account`.
async fn hashes(
    app: &TestApp,
    facility: &Facility,
    account: &StaffAccount,
) -> (String, Vec<String>) {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let c = staff::credentials(&mut tx, account.id).await.unwrap();
    tx.commit().await.unwrap();
    (c.password_hash, c.previous_password_hashes)
}

/// The password-change records of the facility's chain, oldest first: (outcome, reason).
async fn change_records(app: &TestApp, facility: &Facility) -> Vec<(String, String)> {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let records = audit::recent(&mut tx, 100).await.unwrap();
    tx.commit().await.unwrap();
    let mut found: Vec<(String, String)> = records
        .into_iter()
        .filter(|r| r.action == "account.password_change")
        .map(|r| {
            (
                r.outcome,
                r.details["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.reverse();
    found
}

#[tokio::test]
async fn a_person_changes_their_password_and_only_the_new_one_signs_in() {
    let app = spawn_app().await;
    let (facility, account) = nurse(&app, "PW-1").await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = app
        .sign_in_with(&client, Some("PW-1"), "hanako", FIXTURE_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = || {
        use reqwest::cookie::CookieStore;
        jar.cookies(&app.url("/").parse().unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    // The same person signed in elsewhere (a second phone), and what that session looks like.
    let elsewhere = signed_in(&app, Some("PW-1"), "hanako", FIXTURE_PASSWORD).await;
    let me = elsewhere.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let cookie_before = cookies();

    let response = change(&app, &client, FIXTURE_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The session that changed it goes on, under a new ID; the other one has ended.
    assert_ne!(cookies(), cookie_before, "a new session ID");
    let old_cookie = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header(reqwest::header::COOKIE, &cookie_before)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old_cookie.status(),
        StatusCode::UNAUTHORIZED,
        "the old session ID is dead"
    );
    let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let patients = client
        .get(app.url("/api/v1/patients"))
        .send()
        .await
        .unwrap();
    assert_eq!(patients.status(), StatusCode::OK);
    let ended = elsewhere.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(
        ended.status(),
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );

    let old = app
        .sign_in_with(&new_client(), Some("PW-1"), "hanako", FIXTURE_PASSWORD)
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the old password");
    signed_in(&app, Some("PW-1"), "hanako", NEW_PASSWORD).await;

    let (_, previous) = hashes(&app, &facility, &account).await;
    assert_eq!(
        previous.len(),
        1,
        "the old password's hash is kept against reuse"
    );
    assert_eq!(
        change_records(&app, &facility).await,
        vec![("success".to_string(), String::new())]
    );
}

#[tokio::test]
async fn each_refused_change_names_its_rule_and_changes_nothing() {
    let app = spawn_app_with(|s| s.signin_account_burst = 100).await;
    let (facility, account) = nurse(&app, "PW-2").await;
    let client = signed_in(&app, Some("PW-2"), "hanako", FIXTURE_PASSWORD).await;
    let before = hashes(&app, &facility, &account).await;

    let cases = [
        (FIXTURE_PASSWORD, "short pw", "new_password", "length rule"),
        (
            FIXTURE_PASSWORD,
            "password12345",
            "new_password",
            "common password rule",
        ),
        (
            FIXTURE_PASSWORD,
            "qwertyuiop123",
            "new_password",
            "common password rule",
        ),
        (
            FIXTURE_PASSWORD,
            "I-am-Hanako-at-PW-2",
            "new_password",
            "login ID rule",
        ),
        (
            FIXTURE_PASSWORD,
            FIXTURE_PASSWORD,
            "new_password",
            "reuse rule",
        ),
        (
            "not the password at all",
            NEW_PASSWORD,
            "current_password",
            "current password is wrong",
        ),
    ];
    for (current, new, field, rule) in cases {
        let response = change(&app, &client, current, new).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{new}: {body}");
        assert_eq!(body["error"]["field"], field, "{new}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(rule), "{new}: {message}");
        assert!(message.contains(" / "), "Japanese, then English: {message}");
    }
    assert_eq!(
        hashes(&app, &facility, &account).await,
        before,
        "nothing changed"
    );
    signed_in(&app, Some("PW-2"), "hanako", FIXTURE_PASSWORD).await;

    let reasons: Vec<String> = change_records(&app, &facility)
        .await
        .into_iter()
        .map(|(outcome, reason)| {
            assert_eq!(outcome, "denied");
            reason
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "rule",
            "rule",
            "rule",
            "rule",
            "reused",
            "wrong_current_password"
        ]
    );

    // Not signed in: no change at all.
    let response = change(&app, &new_client(), FIXTURE_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn none_of_the_last_five_passwords_comes_back() {
    let app = spawn_app_with(|s| s.signin_account_burst = 100).await;
    let (facility, account) = nurse(&app, "PW-3").await;
    let client = signed_in(&app, Some("PW-3"), "hanako", FIXTURE_PASSWORD).await;
    let passwords: Vec<String> = (1..=6)
        .map(|i| format!("Kawabata-{i}-sakura-namiki"))
        .collect();
    let mut current = FIXTURE_PASSWORD.to_string();
    for next in &passwords[..5] {
        let response = change(&app, &client, &current, next).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{next}");
        current = next.clone();
    }
    // The first password and every one since are remembered: none comes back.
    for old in std::iter::once(FIXTURE_PASSWORD).chain(passwords[..4].iter().map(String::as_str)) {
        let (status, _, message) = error_of(change(&app, &client, &current, old).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{old}");
        assert!(message.contains("reuse rule"), "{old}: {message}");
    }
    assert_eq!(hashes(&app, &facility, &account).await.1.len(), 5);
    // One more change, and the oldest (the first password) may be used again.
    let response = change(&app, &client, &current, &passwords[5]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = change(&app, &client, &passwords[5], FIXTURE_PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "six changes later the first password is no longer remembered"
    );
    assert_eq!(
        hashes(&app, &facility, &account).await.1.len(),
        5,
        "never more than five"
    );
}

#[tokio::test]
async fn a_password_chosen_by_someone_else_is_changed_before_anything_else() {
    let app = spawn_app().await;
    let facility = app.seed_facility("PW-4", FacilityKind::Clinic).await;
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).unwrap();
    admin_commands::create_staff(
        &app.db,
        &app.server_hasher,
        &facility,
        StaffToIssue {
            login_id: LoginId::parse("admin").unwrap(),
            name: DisplayName::parse("初回 花子").unwrap(),
            role: StaffRole::FacilityAdmin,
            profession: Profession::Doctor,
            password: &password,
            password_must_change: true,
        },
    )
    .await
    .unwrap();
    let client = signed_in(&app, Some("PW-4"), "admin", FIXTURE_PASSWORD).await;
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["password_change_required"], true, "{me}");
    for path in ["/api/v1/patients", "/api/v1/audit", "/api/v1/unread"] {
        let (status, code, _) = error_of(client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(code, "password_change_required", "{path}");
    }
    // The portal sends the person to the password page, and shows it.
    for path in ["/", "/patients", "/audit"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], "/account/password", "{path}");
    }
    let page = client
        .get(app.url("/account/password"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("password-required"));

    let response = change(&app, &client, FIXTURE_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["password_change_required"], false, "{me}");
    // Next for an administrator: a second factor, before anything else (ADR 0031).
    assert_eq!(me["second_factor_enrolment_required"], true, "{me}");
    let (status, code, _) = error_of(
        client
            .get(app.url("/api/v1/patients"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "second_factor_enrolment_required")
    );
    let response = client.get(app.url("/patients")).send().await.unwrap();
    assert_eq!(response.headers()[LOCATION], "/account/second-factor");

    // An operator created for someone else too.
    admin_commands::create_operator(
        &app.db,
        &app.server_hasher,
        &LoginId::parse("ops").unwrap(),
        &DisplayName::parse("運用 初子").unwrap(),
        &password,
        true,
    )
    .await
    .unwrap();
    let operator = signed_in(&app, None, "ops", FIXTURE_PASSWORD).await;
    let (status, code, _) = error_of(
        operator
            .get(app.url("/api/v1/platform/alerts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "password_change_required")
    );
    let response = change(&app, &operator, FIXTURE_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // Then, for an operator always, a second factor before anything else (ADR 0031).
    let (status, code, _) = error_of(
        operator
            .get(app.url("/api/v1/platform/alerts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "second_factor_enrolment_required")
    );
    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let ops = operators::find_credentials(&mut tx, &LoginId::parse("ops").unwrap())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!ops.operator.password_must_change);
    assert_eq!(ops.previous_password_hashes.len(), 1);
}

#[tokio::test]
async fn a_password_older_than_the_network_allows_must_be_changed() {
    let app = spawn_app_with(|s| s.password_max_age = Some(Duration::from_secs(90 * 86_400))).await;
    let (facility, account) = nurse(&app, "PW-5").await;
    let fresh = signed_in(&app, Some("PW-5"), "hanako", FIXTURE_PASSWORD).await;
    let me: Value = fresh
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["password_change_required"], false);

    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    sqlx::query(
        "UPDATE staff_accounts SET password_changed_at = now() - interval '91 days' WHERE id = $1",
    )
    .bind(account.id.as_uuid())
    .execute(tx.raw_connection_for_tests())
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let client = signed_in(&app, Some("PW-5"), "hanako", FIXTURE_PASSWORD).await;
    let (status, code, _) = error_of(
        client
            .get(app.url("/api/v1/patients"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "password_change_required")
    );
    let response = change(&app, &client, FIXTURE_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let patients = client
        .get(app.url("/api/v1/patients"))
        .send()
        .await
        .unwrap();
    assert_eq!(patients.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_hash_made_under_older_settings_is_upgraded_at_sign_in() {
    let app = spawn_app().await;
    let (facility, account) = nurse(&app, "PW-6").await;
    let older = PasswordHasher::new(PasswordParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let old_hash = older.hash(&Password::new_secret(FIXTURE_PASSWORD.into()).unwrap());
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1")
        .bind(account.id.as_uuid())
        .bind(&old_hash)
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let wrong = app
        .sign_in_with(
            &new_client(),
            Some("PW-6"),
            "hanako",
            "not the password at all",
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hashes(&app, &facility, &account).await.0,
        old_hash,
        "a wrong password upgrades nothing"
    );

    signed_in(&app, Some("PW-6"), "hanako", FIXTURE_PASSWORD).await;
    let (upgraded, previous) = hashes(&app, &facility, &account).await;
    let expected = format!(
        "m={},t={},p=1",
        app.settings.password_memory_kib, app.settings.password_iterations
    );
    assert!(old_hash.contains("m=8192,t=1,p=1"));
    assert!(upgraded.contains(&expected), "{upgraded}");
    assert!(previous.is_empty(), "the same password, not an earlier one");
    assert!(!app.server_hasher.needs_rehash(&upgraded));
    signed_in(&app, Some("PW-6"), "hanako", FIXTURE_PASSWORD).await;
}

#[tokio::test]
async fn the_portal_page_changes_the_password_and_names_each_refusal_in_japanese() {
    let app = spawn_app().await;
    let (facility, account) = nurse(&app, "PW-7").await;
    let client = signed_in(&app, Some("PW-7"), "hanako", FIXTURE_PASSWORD).await;
    let home = client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains(r#"href="/account/password""#),
        "the home page links to it"
    );
    let before = hashes(&app, &facility, &account).await;
    for (new, again, words) in [
        (NEW_PASSWORD, "Umegaoka-7-kaidan-no-inu", "一致しません"),
        ("password12345", "password12345", "よく使われるパスワード"),
        (
            "hanako-no-heya-2026",
            "hanako-no-heya-2026",
            "ユーザーIDを含まない",
        ),
    ] {
        let token = app.form_token(&client, "/account/password").await;
        let response = client
            .post(app.url("/account/password"))
            .form(&[
                ("authenticity_token", token.as_str()),
                ("current_password", FIXTURE_PASSWORD),
                ("new_password", new),
                ("new_password_again", again),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{new}");
        let page = response.text().await.unwrap();
        assert!(page.contains(words), "{new}: {page}");
        assert!(page.contains(r#"role="alert""#));
        for typed in [new, again, FIXTURE_PASSWORD] {
            assert!(!page.contains(typed), "a typed password is never sent back");
        }
    }
    assert_eq!(
        hashes(&app, &facility, &account).await,
        before,
        "nothing changed"
    );

    let token = app.form_token(&client, "/account/password").await;
    let response = client
        .post(app.url("/account/password"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("current_password", FIXTURE_PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_again", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(to, "/account/password?done=changed");
    let done = client
        .get(app.url(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("パスワードを変更しました"));
    signed_in(&app, Some("PW-7"), "hanako", NEW_PASSWORD).await;
}
