//! Passkeys over HTTP (issue 15, ADR 0033) with a software authenticator: webauthn-rs's own
//! `SoftPasskey`, which makes and signs real WebAuthn answers and, unlike a browser, lets a
//! test name any origin. Registering in the portal, the sign-in's second step with a passkey,
//! a passwordless sign-in looked for only in the facility named, a wrong origin refused at
//! each step (nothing stored, the reason audited), the same credential stored once, several
//! per account, removal, and a reset by the facility admin taking them all. The helpers and
//! the second step are here; passwordless sign-in (staff and operators) in `passwordless`,
//! adding and removing in `changes`. The browser's side (Chromium's virtual authenticator) is
//! in `browser::passkeys`.

mod changes;
mod passwordless;

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_store::second_factors::Holder;
use renrakucho_store::{audit, passkeys, Scope, StoreError};
use renrakucho_testkit::{new_client, spawn_app, TestApp, FIXTURE_PASSWORD};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url,
};

/// The origin a browser would send: the app at `localhost` (no browser takes an IP address as
/// a relying party).
fn right_origin(app: &TestApp) -> Url {
    let mut url = Url::parse(&app.address).unwrap();
    url.set_host(Some("localhost")).unwrap();
    url
}

/// What askama escaped in an attribute, back.
fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The `data-options` of the form with `id` on `page`.
fn options_on(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"{id}\""))?;
    let tag = &page[page[..at].rfind('<')?..at + page[at..].find('>')?];
    let start = tag.find("data-options=\"")? + "data-options=\"".len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn token_on(page: &str) -> String {
    let marker = r#"name="authenticity_token" value=""#;
    let start = page.find(marker).expect("a form token") + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

async fn post_form(
    app: &TestApp,
    client: &Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client.post(app.url(path)).form(form).send().await.unwrap()
}

/// A software authenticator that says it verified the person (a PIN, a fingerprint).
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// Registers a passkey called `name` for the signed-in `client` from `origin`: the finishing
/// response.
async fn register(
    app: &TestApp,
    client: &Client,
    key: &mut SoftPasskey,
    name: &str,
    origin: &Url,
) -> reqwest::Response {
    let token = app.form_token(client, "/account/second-factor").await;
    let started = post_form(
        app,
        client,
        "/account/passkeys/begin",
        &[("authenticity_token", &token), ("name", name)],
    )
    .await;
    assert_eq!(started.status(), StatusCode::OK);
    let page = started.text().await.unwrap();
    let options =
        options_on(&page, "passkey-create").unwrap_or_else(|| panic!("no create form: {page}"));
    let mut options: CreationChallengeResponse = serde_json::from_str(&options).unwrap();
    // The server asks for a discoverable credential (for the passwordless sign-in); this
    // software authenticator keeps none, and the server cannot tell (nor does it check).
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
        selection.resident_key = None;
    }
    let answer: RegisterPublicKeyCredential = key
        .perform_register(origin.clone(), options.public_key, 60_000)
        .expect("the authenticator registers");
    post_form(
        app,
        client,
        "/account/passkeys/finish",
        &[
            ("authenticity_token", &token_on(&page)),
            ("credential", &serde_json::to_string(&answer).unwrap()),
        ],
    )
    .await
}

/// The password step in the portal from a new client: the client, waiting on the code page.
async fn password_step(app: &TestApp, facility: &Facility, login: &str) -> Client {
    let client = new_client();
    let token = app.form_token(&client, "/login").await;
    let response = post_form(
        app,
        &client,
        "/login",
        &[
            ("authenticity_token", &token),
            ("facility_code", &facility.code),
            ("login_id", login),
            ("password", FIXTURE_PASSWORD),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login/code");
    client
}

/// The second step with `key` from `origin`: the response.
async fn passkey_second_step(
    app: &TestApp,
    client: &Client,
    key: &mut SoftPasskey,
    origin: &Url,
) -> reqwest::Response {
    let page = client
        .get(app.url("/login/code"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let options = options_on(&page, "passkey-second-step").expect("the passkey form");
    let options: RequestChallengeResponse = serde_json::from_str(&options).unwrap();
    let answer: PublicKeyCredential = key
        .perform_auth(origin.clone(), options.public_key, 60_000)
        .expect("the authenticator signs");
    post_form(
        app,
        client,
        "/login/code/passkey",
        &[
            ("authenticity_token", &token_on(&page)),
            ("credential", &serde_json::to_string(&answer).unwrap()),
        ],
    )
    .await
}

/// A passwordless sign-in naming `facility_code` with `key`'s credential for `user`, from
/// `origin`. The software authenticator keeps no discoverable credential, so the test does
/// what one would: it answers with the credential and says whose it is (the user handle,
/// which the signature does not cover: the server must not trust it alone).
async fn passwordless(
    app: &TestApp,
    client: &Client,
    facility_code: &str,
    key: &mut SoftPasskey,
    credential_id: &[u8],
    user: uuid::Uuid,
    origin: &Url,
) -> reqwest::Response {
    let token = app.form_token(client, "/login").await;
    let started = post_form(
        app,
        client,
        "/login/passkey",
        &[
            ("authenticity_token", &token),
            ("facility_code", facility_code),
        ],
    )
    .await;
    assert_eq!(started.status(), StatusCode::OK);
    let page = started.text().await.unwrap();
    let options = options_on(&page, "passkey-sign-in-finish").expect("the sign-in form");
    let mut options: Value = serde_json::from_str(&options).unwrap();
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "a passwordless challenge names no account"
    );
    let id = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential_id)
    };
    options["publicKey"]["allowCredentials"] =
        serde_json::json!([{ "type": "public-key", "id": id }]);
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let mut answer: PublicKeyCredential = key
        .perform_auth(origin.clone(), options.public_key, 60_000)
        .expect("the authenticator signs");
    answer.response.user_handle = Some(user.as_bytes().to_vec());
    post_form(
        app,
        client,
        "/login/passkey/finish",
        &[
            ("authenticity_token", &token_on(&page)),
            ("credential", &serde_json::to_string(&answer).unwrap()),
        ],
    )
    .await
}

/// The credential ID inside a stored passkey (webauthn-rs keeps it base64url).
fn credential_id(stored: &passkeys::StoredPasskey) -> Vec<u8> {
    use base64::Engine as _;
    let text = stored.passkey["cred"]["cred_id"]
        .as_str()
        .expect("a credential ID in the stored passkey");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

async fn signed_in(app: &TestApp, client: &Client) -> Option<Value> {
    let response = client.get(app.url("/api/v1/me")).send().await.unwrap();
    (response.status() == StatusCode::OK).then_some(())?;
    response.json().await.ok()
}

async fn stored(
    app: &TestApp,
    facility: &Facility,
    staff: renrakucho_core::StaffId,
) -> Vec<passkeys::StoredPasskey> {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let found = passkeys::list(&mut tx, Holder::Staff(staff)).await.unwrap();
    tx.commit().await.unwrap();
    found
}

/// The facility's sign-in and second-factor records, newest first: (action, outcome, reason
/// or event).
async fn records(app: &TestApp, facility: &Facility) -> Vec<(String, String, String)> {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let records = audit::recent(&mut tx, 200).await.unwrap();
    tx.commit().await.unwrap();
    records
        .into_iter()
        .filter(|r| r.action == "auth.sign_in" || r.action == "account.second_factor")
        .map(|r| {
            let what = r.details["reason"]
                .as_str()
                .or(r.details["event"].as_str())
                .unwrap_or_default()
                .to_string();
            (r.action, r.outcome, what)
        })
        .collect()
}

#[tokio::test]
async fn a_passkey_registered_in_the_portal_completes_the_sign_in_after_the_password() {
    let app = spawn_app().await;
    let facility = app.seed_facility("PK-CLINIC", FacilityKind::Clinic).await;
    let nurse = app
        .seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&facility, "nurse").await;
    let origin = right_origin(&app);
    let mut key = authenticator();

    let finished = register(&app, &client, &mut key, "仕事用スマホ", &origin).await;
    // The app was the first factor: no new recovery codes, back to the page.
    assert_eq!(finished.status(), StatusCode::SEE_OTHER);
    let kept = stored(&app, &facility, nurse.id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].name, "仕事用スマホ");
    let page = client
        .get(app.url("/account/second-factor"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("仕事用スマホ"), "the page lists it");

    // Next time: the password, then the passkey instead of the app's code.
    let next = password_step(&app, &facility, "nurse").await;
    assert!(signed_in(&app, &next).await.is_none());
    let done = passkey_second_step(&app, &next, &mut key, &origin).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/");
    let me = signed_in(&app, &next).await.expect("signed in");
    assert_eq!(me["login_id"], "nurse");
    assert!(stored(&app, &facility, nurse.id).await[0]
        .last_used_at
        .is_some());

    // The challenge was used up: the same answer again finds no sign-in waiting.
    let again = passkey_second_step_replay(&app, &next).await;
    assert_eq!(again, StatusCode::SEE_OTHER);

    let recorded = records(&app, &facility).await;
    assert!(recorded.contains(&(
        "auth.sign_in".into(),
        "success".into(),
        "password+passkey".into()
    )));
    assert!(recorded.contains(&(
        "account.second_factor".into(),
        "success".into(),
        "added".into()
    )));
}

/// Posting an answer when no second step waits: the sign-in page, nothing signed in.
async fn passkey_second_step_replay(app: &TestApp, client: &Client) -> StatusCode {
    let token = app.form_token(client, "/account/second-factor").await;
    let response = post_form(
        app,
        client,
        "/login/code/passkey",
        &[("authenticity_token", &token), ("credential", "{}")],
    )
    .await;
    response.status()
}

#[tokio::test]
async fn a_wrong_origin_is_refused_at_registration_and_at_sign_in_and_changes_nothing() {
    let app = spawn_app().await;
    let facility = app.seed_facility("PK-ORIGIN", FacilityKind::Clinic).await;
    let nurse = app
        .seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&facility, "nurse").await;
    let evil = Url::parse("https://renrakucho.example.net").unwrap();
    let mut key = authenticator();

    let refused = register(&app, &client, &mut key, "偽サイト", &evil).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(page.contains("パスキーを登録できませんでした"), "{page}");
    assert!(stored(&app, &facility, nurse.id).await.is_empty());
    let recorded = records(&app, &facility).await;
    assert!(
        recorded.contains(&(
            "account.second_factor".into(),
            "denied".into(),
            "InvalidRPOrigin".into()
        )),
        "{recorded:?}"
    );

    // Registered properly, then used from the wrong origin: refused, not signed in.
    let origin = right_origin(&app);
    let ok = register(&app, &client, &mut key, "本物", &origin).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let next = password_step(&app, &facility, "nurse").await;
    let refused = passkey_second_step(&app, &next, &mut key, &evil).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("パスキーを確認できませんでした"));
    assert!(signed_in(&app, &next).await.is_none());
    let recorded = records(&app, &facility).await;
    assert!(
        recorded
            .iter()
            .any(|(a, o, r)| a == "auth.sign_in" && o == "denied" && r.contains("InvalidRPOrigin")),
        "{recorded:?}"
    );
    // The code page is still there, with a new challenge: the right origin goes on.
    let done = passkey_second_step(&app, &next, &mut key, &origin).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(signed_in(&app, &next).await.is_some());
}
