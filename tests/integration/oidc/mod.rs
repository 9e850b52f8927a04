//! Sign-in through a facility's own OpenID provider (issue 15, "OIDC"), against a real provider
//! process (`oidc-provider` from npm, `tests/oidc-provider`): the admin configures, tests and
//! enables it; pre-linked and just-in-time accounts; the negative cases, each refused with a
//! clear error, audited, and nothing created. The links between facilities: `links`.

mod links;
mod operators;
mod tokens;

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_store::{audit, Scope};
use renrakucho_testkit::oidc::{follow_to_app, OidcAccount, OidcClientConfig, OidcProvider};
use renrakucho_testkit::{new_client, spawn_app, TestApp};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "renrakucho-test";
pub const CLIENT_SECRET: &str = "a-client-secret-of-the-test-provider";

/// A facility with an enabled provider, its admin signed in.
pub struct Federated {
    pub app: TestApp,
    pub provider: OidcProvider,
    pub facility: Facility,
    pub admin: Client,
}

pub fn account(sub: &str, email: &str) -> OidcAccount {
    OidcAccount {
        sub: sub.into(),
        email: Some(email.into()),
        email_verified: true,
        preferred_username: Some(sub.into()),
        name: Some("連携 花子".into()),
    }
}

pub fn accounts() -> Vec<OidcAccount> {
    vec![
        account("alice-sub", "alice@clinic.example.jp"),
        account("bob-sub", "bob@clinic.example.jp"),
        account("mallory-sub", "mallory@elsewhere.example"),
    ]
}

pub async fn start_provider(app: &TestApp, clients: &[&str]) -> OidcProvider {
    OidcProvider::start(
        clients
            .iter()
            .map(|id| OidcClientConfig {
                client_id: (*id).into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: vec![app.url("/login/provider/callback")],
                post_logout_redirect_uris: vec![app.url("/login")],
            })
            .collect(),
        accounts(),
    )
    .await
}

/// Saves the provider settings as `admin` (signed in just now, so the password is recent).
pub async fn configure(
    app: &TestApp,
    admin: &Client,
    issuer: &str,
    client_id: &str,
    policy: &str,
    domains: &[&str],
) -> reqwest::Response {
    admin
        .put(app.url("/api/v1/facility/identity-provider"))
        .json(&json!({ "issuer": issuer, "client_id": client_id,
                       "client_secret": CLIENT_SECRET, "scopes": ["email", "profile"],
                       "login_claim": "email", "allowed_domains": domains,
                       "account_policy": policy }))
        .send()
        .await
        .unwrap()
}

/// Follows the provider's redirects from `start` until it sends the browser back to the app,
/// and calls the app's callback: its answer.
pub async fn through_provider(app: &TestApp, client: &Client, start: &str) -> reqwest::Response {
    let back = follow_to_app(app, client, start).await;
    client.get(&back).send().await.unwrap()
}

/// `POST /api/v1/auth/provider` for `code` and the trip through the provider, stopping short of
/// the app: the callback URL the provider sends the browser to (its code and state).
pub async fn callback_url(app: &TestApp, client: &Client, code: &str) -> String {
    let start = client
        .post(app.url("/api/v1/auth/provider"))
        .json(&json!({ "facility_code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200, "starting a provider sign-in");
    let url = start.json::<Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_string();
    follow_to_app(app, client, &url).await
}

/// Links `sub` of the facility's provider to `member`, as the admin.
pub async fn link(f: &Federated, member: renrakucho_core::StaffId, sub: &str) {
    let linked = f
        .admin
        .post(f.app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            member.as_uuid()
        )))
        .json(&json!({ "subject": sub }))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 201, "linking {sub}");
}

/// `POST /api/v1/auth/provider` for `code`, then the trip through the provider: the callback's
/// answer.
pub async fn provider_sign_in(app: &TestApp, client: &Client, code: &str) -> reqwest::Response {
    let back = callback_url(app, client, code).await;
    client.get(&back).send().await.unwrap()
}

/// The admin's test sign-in through the provider (the test's callback answer).
pub async fn test_provider(app: &TestApp, admin: &Client) -> reqwest::Response {
    let start = admin
        .post(app.url("/api/v1/facility/identity-provider/test"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200, "starting the test");
    let url = start.json::<Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_string();
    through_provider(app, admin, &url).await
}

pub async fn set_enabled(app: &TestApp, admin: &Client, enabled: bool) -> reqwest::Response {
    admin
        .put(app.url("/api/v1/facility/identity-provider/enabled"))
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .unwrap()
}

/// A facility `code` whose provider (`policy`) is configured, tested and enabled.
pub async fn federated(code: &str, policy: &str) -> Federated {
    let app = spawn_app().await;
    let facility = app.seed_facility(code, FacilityKind::Clinic).await;
    app.seed_staff(
        &facility,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let admin = app.client_for(&facility, "admin").await;
    let provider = start_provider(&app, &[CLIENT_ID]).await;
    enable_provider(&app, &admin, &provider.issuer, CLIENT_ID, policy).await;
    Federated {
        app,
        provider,
        facility,
        admin,
    }
}

pub async fn enable_provider(
    app: &TestApp,
    admin: &Client,
    issuer: &str,
    client_id: &str,
    policy: &str,
) {
    let saved = configure(app, admin, issuer, client_id, policy, &[]).await;
    assert_eq!(saved.status(), 200, "{:?}", saved.text().await);
    let tested = test_provider(app, admin).await;
    assert_eq!(tested.status(), 200, "the admin's test sign-in");
    assert!(tested.text().await.unwrap().contains("テスト成功"));
    assert_eq!(set_enabled(app, admin, true).await.status(), 200);
}

pub async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    (status, body)
}

/// Signs in through the provider as `sub` with a new client; the client and the callback's
/// answer.
pub async fn sign_in_as(f: &Federated, sub: &str) -> (Client, reqwest::Response) {
    f.provider.next_login(sub).await;
    let client = new_client();
    let response = provider_sign_in(&f.app, &client, &f.facility.code).await;
    (client, response)
}

/// The staff ID of `login` in `facility`.
pub async fn staff_id(app: &TestApp, facility: &Facility, login: &str) -> uuid::Uuid {
    let mut conn = crate::support::superuser(app).await;
    sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM staff_accounts WHERE facility_id = $1 AND login_id = $2",
    )
    .bind(facility.id.as_uuid())
    .bind(login)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = crate::support::superuser(app).await;
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// The reasons of the refused provider sign-ins recorded in `facility`'s chain.
pub async fn refusals(app: &TestApp, facility: &Facility) -> Vec<String> {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let records = audit::recent(&mut tx, 200).await.unwrap();
    tx.commit().await.unwrap();
    records
        .into_iter()
        .filter(|r| r.action == "auth.sign_in" && r.outcome == "denied")
        .filter(|r| r.details["method"] == "oidc")
        .map(|r| r.details["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_linked_subject_signs_in_and_out_through_the_provider() {
    let f = federated("OIDC-LINKED", "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;

    let (client, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(back.status(), 303, "signed in, sent home");
    assert_eq!(back.headers()["location"], "/");
    let me: Value = client
        .get(f.app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["login_id"], "nurse");
    // The provider authenticated the person: no local second factor is asked for.
    assert_eq!(me["second_factor_enrolment_required"], false);
    // Nor is its sign-in a password given just now: acts that ask for one are refused.
    let recent = client
        .post(f.app.url("/api/v1/me/second-factor/totp"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(recent).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("reauthentication_required"), "{body}");
    let patients = client
        .get(f.app.url("/api/v1/patients"))
        .send()
        .await
        .unwrap();
    assert_eq!(patients.status(), 200, "a signed-in session works");

    // Sign-out ends our session and sends the browser to the provider's logout.
    let token = f.app.form_token(&client, "/").await;
    let out = client
        .post(f.app.url("/logout"))
        .form(&[("authenticity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    // A page that moves on by itself (a form's answer may not redirect to another origin).
    assert_eq!(out.status(), 200);
    let page = out.text().await.unwrap();
    let start = page.find("url=").unwrap() + 4;
    let location = page[start..page[start..].find('"').unwrap() + start].replace("&amp;", "&");
    assert!(
        location.starts_with(&f.provider.issuer) && location.contains("client_id="),
        "RP-initiated logout at the provider: {location}"
    );
    assert!(location.contains("post_logout_redirect_uri="));
    let me = client.get(f.app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401, "our session has ended");
}

#[tokio::test]
async fn an_unlinked_subject_is_refused_where_the_admin_links_accounts() {
    let f = federated("OIDC-PRE", "pre_linked").await;
    let before = count(&f.app, "SELECT count(*) FROM staff_accounts").await;
    let (client, back) = sign_in_as(&f, "bob-sub").await;
    let (status, body) = error_code(back).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("施設管理者に連絡"), "a clear message: {body}");
    assert_eq!(
        count(&f.app, "SELECT count(*) FROM staff_accounts").await,
        before,
        "nothing created"
    );
    let me = client.get(f.app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
    assert_eq!(refusals(&f.app, &f.facility).await, ["not_linked"]);
}

#[tokio::test]
async fn a_just_in_time_account_waits_for_the_admins_approval() {
    let f = federated("OIDC-JIT", "just_in_time").await;
    let (client, back) = sign_in_as(&f, "bob-sub").await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    assert!(back.text().await.unwrap().contains("承認待ち"));
    let me = client.get(f.app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401, "a pending account sees nothing");
    let id = staff_id(&f.app, &f.facility, "bob").await;
    // Signing in again makes no second account.
    let (_, again) = sign_in_as(&f, "bob-sub").await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        count(
            &f.app,
            "SELECT count(*) FROM staff_accounts WHERE status = 'pending'"
        )
        .await,
        1
    );
    // Its password is unknown to everyone: the password form does not open it.
    let by_password = f
        .app
        .sign_in_with(&new_client(), Some(&f.facility.code), "bob", "")
        .await;
    assert_ne!(by_password.status(), 200);

    let approved = f
        .admin
        .post(f.app.url(&format!("/api/v1/staff/{id}/approve")))
        .json(&json!({ "profession": "pharmacist" }))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 204);
    let (client, back) = sign_in_as(&f, "bob-sub").await;
    assert_eq!(back.status(), 303);
    let me: Value = client
        .get(f.app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["login_id"], "bob");
    assert_eq!(me["profession"], "pharmacist");
    assert_eq!(me["role"], "staff");
    // Approving twice finds nothing waiting.
    let twice = f
        .admin
        .post(f.app.url(&format!("/api/v1/staff/{id}/approve")))
        .json(&json!({ "profession": "doctor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 404);
}

#[tokio::test]
async fn an_address_outside_the_allowed_domains_is_refused() {
    let f = federated("OIDC-DOMAIN", "just_in_time").await;
    let saved = f
        .admin
        .put(f.app.url("/api/v1/facility/identity-provider"))
        .json(
            &json!({ "issuer": f.provider.issuer, "client_id": CLIENT_ID,
                       "scopes": ["email", "profile"], "login_claim": "email",
                       "allowed_domains": ["clinic.example.jp"],
                       "account_policy": "just_in_time", "revision": 1 }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    let revision = saved.json::<Value>().await.unwrap()["provider"]["enabled"].clone();
    assert_eq!(revision, false, "a change disables sign-in until tested");
    let start = new_client()
        .post(f.app.url("/api/v1/auth/provider"))
        .json(&json!({ "facility_code": f.facility.code }))
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(start).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "disabled: no provider sign-in"
    );
    assert!(body.contains("no_identity_provider"), "{body}");
    assert_eq!(
        set_enabled(&f.app, &f.admin, true).await.status(),
        409,
        "not tested"
    );
    assert_eq!(test_provider(&f.app, &f.admin).await.status(), 200);
    assert_eq!(set_enabled(&f.app, &f.admin, true).await.status(), 200);

    let (_, back) = sign_in_as(&f, "mallory-sub").await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        count(&f.app, "SELECT count(*) FROM staff_accounts").await,
        1,
        "nothing created"
    );
    let (_, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(
        back.status(),
        StatusCode::FORBIDDEN,
        "alice waits for approval"
    );
    assert!(refusals(&f.app, &f.facility)
        .await
        .contains(&"domain_not_allowed".to_string()));
}

#[tokio::test]
async fn only_a_facility_admin_configures_and_a_change_needs_a_recent_password() {
    let app = renrakucho_testkit::spawn_app_with(|s| {
        s.reauthenticate_within = std::time::Duration::from_secs(20)
    })
    .await;
    let facility = app.seed_facility("OIDC-ADMIN", FacilityKind::Clinic).await;
    app.seed_staff(
        &facility,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    app.seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let nurse = app.client_for(&facility, "nurse").await;
    let refused = configure(
        &app,
        &nurse,
        "https://login.example.jp",
        "x",
        "pre_linked",
        &[],
    )
    .await;
    assert_eq!(refused.status(), 403);
    let admin = app.client_for(&facility, "admin").await;
    // Each rule names its field and stores nothing.
    for (issuer, policy, field) in [
        ("http://login.example.jp", "pre_linked", "issuer"),
        ("https://login.example.jp", "everyone", "account_policy"),
    ] {
        let answer = configure(&app, &admin, issuer, "x", policy, &[]).await;
        assert_eq!(answer.status(), 422);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["field"], field);
    }
    let shown: Value = admin
        .get(app.url("/api/v1/facility/identity-provider"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(shown["provider"].is_null(), "nothing stored");
    assert_eq!(
        shown["redirect_uri"],
        app.url("/login/provider/callback"),
        "the URI to register at the provider"
    );
    // The secret is stored encrypted, bound to its row.
    let saved = configure(
        &app,
        &admin,
        "https://login.example.jp",
        "x",
        "pre_linked",
        &[],
    )
    .await;
    assert_eq!(saved.status(), 200);
    let stored = count(
        &app,
        &format!(
            "SELECT count(*) FROM identity_providers WHERE position('{CLIENT_SECRET}'::bytea in client_secret_enc) = 0"
        ),
    )
    .await;
    assert_eq!(stored, 1, "no plaintext secret in the row");
    let body: Value = saved.json().await.unwrap();
    assert!(
        body.to_string().find(CLIENT_SECRET).is_none(),
        "the secret never leaves"
    );

    // Another admin's account is never linked by an admin (its holder would sign in as them
    // without their password and code); a change of client needs its secret; a change names
    // the revision it is based on.
    let other = app
        .seed_staff(
            &facility,
            "admin2",
            StaffRole::FacilityAdmin,
            Profession::Nurse,
        )
        .await;
    let refused = admin
        .post(app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            other.id.as_uuid()
        )))
        .json(&json!({ "subject": "admin2-sub" }))
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(refused).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("他の施設管理者のアカウントは紐付けられません"),
        "{body}"
    );
    let moved = admin
        .put(app.url("/api/v1/facility/identity-provider"))
        .json(
            &json!({ "issuer": "https://other.example.jp", "client_id": "x",
                       "login_claim": "email", "account_policy": "pre_linked",
                       "revision": 1 }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 422);
    assert_eq!(
        moved.json::<Value>().await.unwrap()["error"]["field"],
        "client_secret"
    );
    let blind = configure(
        &app,
        &admin,
        "https://login.example.jp",
        "x",
        "pre_linked",
        &[],
    )
    .await;
    assert_eq!(blind.status(), 422);
    assert_eq!(
        blind.json::<Value>().await.unwrap()["error"]["field"],
        "revision"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM external_identities").await,
        0,
        "nothing linked"
    );

    // A password older than the window: asked again.
    tokio::time::sleep(std::time::Duration::from_millis(21_500)).await;
    let stale = configure(
        &app,
        &admin,
        "https://login.example.jp",
        "y",
        "pre_linked",
        &[],
    )
    .await;
    assert_eq!(stale.status(), 403);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "reauthentication_required");
}

#[tokio::test]
async fn disabling_the_provider_or_unlinking_ends_the_sessions_signed_in_through_it() {
    let f = federated("OIDC-END", "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;
    let me = |client: Client| {
        let url = f.app.url("/api/v1/me");
        async move { client.get(url).send().await.unwrap().status() }
    };
    let (client, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(back.status(), 303);
    assert_eq!(me(client.clone()).await, 200);
    // Unlinked: out at once.
    let links: Vec<Value> = f
        .admin
        .get(f.app.url("/api/v1/facility/identity-links"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unlinked = f
        .admin
        .delete(f.app.url(&format!(
            "/api/v1/staff/{}/identity-links/{}",
            nurse.id.as_uuid(),
            links[0]["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(unlinked.status(), 204);
    assert_eq!(
        me(client).await,
        401,
        "an unlinked person's session has ended"
    );
    // Linked again, signed in again; then the provider is disabled: out again.
    link(&f, nurse.id, "alice-sub").await;
    let (client, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(back.status(), 303);
    assert_eq!(set_enabled(&f.app, &f.admin, false).await.status(), 200);
    assert_eq!(
        me(client).await,
        401,
        "disabling ends the provider's sessions"
    );
    // The admin, signed in with a password and not linked, goes on.
    assert_eq!(me(f.admin.clone()).await, 200);
}

#[tokio::test]
async fn a_provider_session_confirms_it_is_them_by_signing_in_at_the_provider_again() {
    let f = federated("OIDC-AGAIN", "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;
    let (client, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(back.status(), 303);
    // New recovery codes ask for recent proof (the fixture nurse has an authenticator).
    let set_up = || {
        client
            .post(f.app.url("/api/v1/me/second-factor/recovery-codes"))
            .send()
    };
    assert_eq!(set_up().await.unwrap().status(), 403, "no recent proof yet");
    // A password session is told its proof is the password.
    let refused = f
        .admin
        .post(f.app.url("/api/v1/me/reauthenticate/provider"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    let start = client
        .post(f.app.url("/api/v1/me/reauthenticate/provider"))
        .json(&json!({ "next": "/account/second-factor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    let url = start.json::<Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.contains("prompt=login") && url.contains("max_age=0"),
        "{url}"
    );
    let back = through_provider(&f.app, &client, &url).await;
    assert_eq!(back.status(), 303);
    assert_eq!(back.headers()["location"], "/account/second-factor");
    let after = set_up().await.unwrap().status();
    assert!(
        after.is_success(),
        "a sign-in at the provider just now counts as recent proof: {after}"
    );
    let mut tx = f
        .app
        .db
        .begin(Scope::Facility(f.facility.id))
        .await
        .unwrap();
    let records = audit::recent(&mut tx, 50).await.unwrap();
    tx.commit().await.unwrap();
    let reauthentications: Vec<String> = records
        .iter()
        .filter(|r| r.action == "auth.reauthenticate")
        .map(|r| {
            format!(
                "{}:{}",
                r.outcome,
                r.details["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        reauthentications,
        ["success:oidc", "denied:not_signed_in_through_provider"]
    );
}
