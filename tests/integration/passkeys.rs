//! Passkeys over HTTP (issue 15, ADR 0033) with a software authenticator: webauthn-rs's own
//! `SoftPasskey`, which makes and signs real WebAuthn answers and, unlike a browser, lets a
//! test name any origin. Registering in the portal, the sign-in's second step with a passkey,
//! a passwordless sign-in looked for only in the facility named, a wrong origin refused at
//! each step (nothing stored, the reason audited), the same credential stored once, several
//! per account, removal, and a reset by the facility admin taking them all. The browser's
//! side (Chromium's virtual authenticator) is in `browser::passkeys`.

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

#[tokio::test]
async fn a_passkey_alone_signs_in_only_at_its_own_facility() {
    let app = spawn_app().await;
    let a = app.seed_facility("PK-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("PK-B", FacilityKind::Pharmacy).await;
    let nurse = app
        .seed_staff(&a, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    // Facility B has a "nurse" too: the same login ID, another person.
    app.seed_staff(&b, "nurse", StaffRole::Staff, Profession::Pharmacist)
        .await;
    let client = app.client_for(&a, "nurse").await;
    let origin = right_origin(&app);
    let mut key = authenticator();
    assert_eq!(
        register(&app, &client, &mut key, "鍵", &origin)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let credential = credential_id(&stored(&app, &a, nurse.id).await[0]);

    // At B: refused with the one message, nothing signed in, audited in B's chain as an
    // unknown passkey (B has no such credential, and A's are not consulted).
    let at_b = new_client();
    let response = passwordless(
        &app,
        &at_b,
        "PK-B",
        &mut key,
        &credential,
        nurse.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(signed_in(&app, &at_b).await.is_none());
    assert!(records(&app, &b).await.contains(&(
        "auth.sign_in".into(),
        "denied".into(),
        "unknown_passkey".into()
    )));

    // An unknown facility code: the same message.
    let nowhere = new_client();
    let response = passwordless(
        &app,
        &nowhere,
        "PK-NONE",
        &mut key,
        &credential,
        nurse.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Claiming to be someone else with one's own passkey: the user handle is not signed, the
    // credential must belong to the account it names.
    let other = app
        .seed_staff(&a, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let liar = new_client();
    let response = passwordless(
        &app,
        &liar,
        "PK-A",
        &mut key,
        &credential,
        other.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(signed_in(&app, &liar).await.is_none());

    // At A, from the wrong origin: refused.
    let evil = Url::parse("https://renrakucho.example.net").unwrap();
    let response = passwordless(
        &app,
        &liar,
        "PK-A",
        &mut key,
        &credential,
        nurse.id.as_uuid(),
        &evil,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(signed_in(&app, &liar).await.is_none());

    // At A, rightly: signed in as the nurse of A, no password asked.
    let at_a = new_client();
    let response = passwordless(
        &app,
        &at_a,
        "PK-A",
        &mut key,
        &credential,
        nurse.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let me = signed_in(&app, &at_a).await.expect("signed in at A");
    assert_eq!(me["facility"]["code"], "PK-A");
    assert!(records(&app, &a).await.contains(&(
        "auth.sign_in".into(),
        "success".into(),
        "passkey".into()
    )));
}

#[tokio::test]
async fn several_passkeys_each_removable_the_same_credential_stored_once_and_a_reset_takes_all() {
    let app = spawn_app().await;
    let facility = app.seed_facility("PK-MANY", FacilityKind::Clinic).await;
    app.seed_staff(
        &facility,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let nurse = app
        .seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&facility, "nurse").await;
    let origin = right_origin(&app);
    let (mut phone, mut laptop) = (authenticator(), authenticator());
    for (key, name) in [(&mut phone, "スマホ"), (&mut laptop, "ノートPC")] {
        assert_eq!(
            register(&app, &client, key, name, &origin).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let kept = stored(&app, &facility, nurse.id).await;
    assert_eq!(kept.len(), 2);

    // The same credential a second time (an authenticator that ignored the exclusion list):
    // the store refuses it, per facility.
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let again = passkeys::insert(
        &mut tx,
        Holder::Staff(nurse.id),
        &credential_id(&kept[0]),
        "もう一度",
        &kept[0].passkey,
    )
    .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    drop(tx);

    // The exclusion list names both, so an authenticator holding one makes no other.
    let token = app.form_token(&client, "/account/second-factor").await;
    let page = post_form(
        &app,
        &client,
        "/account/passkeys/begin",
        &[("authenticity_token", &token), ("name", "三つ目")],
    )
    .await
    .text()
    .await
    .unwrap();
    let options: CreationChallengeResponse =
        serde_json::from_str(&options_on(&page, "passkey-create").unwrap()).unwrap();
    assert_eq!(
        options.public_key.exclude_credentials.map(|c| c.len()),
        Some(2)
    );

    // The laptop goes; the phone still signs in.
    let laptop_id = kept[1].id.to_string();
    let token = app.form_token(&client, "/account/second-factor").await;
    let removed = post_form(
        &app,
        &client,
        &format!("/account/passkeys/{laptop_id}/remove"),
        &[("authenticity_token", &token)],
    )
    .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored(&app, &facility, nurse.id).await.len(), 1);
    let next = password_step(&app, &facility, "nurse").await;
    assert_eq!(
        passkey_second_step(&app, &next, &mut phone, &origin)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // Removing one's passkey ended the removing session's siblings, not itself.
    assert!(signed_in(&app, &client).await.is_some());

    // The admin resets the nurse's second factor: the app and every passkey go.
    let admin = app.client_for(&facility, "admin").await;
    let reset = admin
        .delete(app.url(&format!(
            "/api/v1/staff/{}/second-factor",
            nurse.id.as_uuid()
        )))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success(), "{}", reset.status());
    assert!(stored(&app, &facility, nurse.id).await.is_empty());
    assert!(
        signed_in(&app, &next).await.is_none(),
        "the reset ended the nurse's sessions"
    );
}

#[tokio::test]
async fn a_passkey_as_the_first_factor_comes_with_recovery_codes_and_its_removal_takes_them() {
    use renrakucho_core::{DisplayName, LoginId, Password};
    use renrakucho_server::admin_commands::{self, StaffToIssue};
    let app = spawn_app().await;
    let facility = app.seed_facility("PK-FIRST", FacilityKind::Clinic).await;
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).unwrap();
    let nurse = admin_commands::create_staff(
        &app.db,
        &app.server_hasher.clone(),
        &facility,
        StaffToIssue {
            login_id: LoginId::parse("newcomer").unwrap(),
            name: DisplayName::parse("新人 看護").unwrap(),
            role: StaffRole::Staff,
            profession: Profession::Nurse,
            password: &password,
            password_must_change: false,
        },
    )
    .await
    .unwrap();
    // No factor yet: signed in, but only to set one up.
    let client = new_client();
    let response = client
        .post(app.url("/api/v1/auth/sign-in"))
        .json(
            &serde_json::json!({ "facility_code": "PK-FIRST", "login_id": "newcomer",
                                    "password": FIXTURE_PASSWORD }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let me = signed_in(&app, &client).await.unwrap();
    assert_eq!(me["second_factor_enrolment_required"], true);

    let origin = right_origin(&app);
    let mut key = authenticator();
    let finished = register(&app, &client, &mut key, "私物スマホ", &origin).await;
    assert_eq!(finished.status(), StatusCode::OK, "the page with the codes");
    let page = finished.text().await.unwrap();
    let codes: Vec<String> = page
        .split("<li><code>")
        .skip(1)
        .filter_map(|rest| rest.split("</code>").next().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once: {page}");
    let me = signed_in(&app, &client).await.expect("the session went on");
    assert_eq!(me["second_factor_enrolment_required"], false);

    // With the phone lost: the password, then a recovery code in place of the passkey.
    let next = password_step(&app, &facility, "newcomer").await;
    let token = app.form_token(&next, "/login/code").await;
    let done = post_form(
        &app,
        &next,
        "/login/code",
        &[("authenticity_token", &token), ("one_time_code", &codes[0])],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(signed_in(&app, &next).await.is_some());

    // Removing the only passkey leaves no factor: the codes go too, and set-up is asked again.
    let id = stored(&app, &facility, nurse.id).await[0].id.to_string();
    let token = app.form_token(&next, "/account/second-factor").await;
    let removed = post_form(
        &app,
        &next,
        &format!("/account/passkeys/{id}/remove"),
        &[("authenticity_token", &token)],
    )
    .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    let me = signed_in(&app, &next).await.expect("still signed in");
    assert_eq!(me["second_factor_enrolment_required"], true);
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let factor = renrakucho_store::second_factors::get(
        &mut tx,
        renrakucho_store::second_factors::Holder::Staff(nurse.id),
    )
    .await
    .unwrap();
    drop(tx);
    assert!(factor.recovery_code_hashes.is_empty());
    assert_eq!(factor.passkey_count, 0);
    // Both changes are audited in the facility's chain.
    let recorded = records(&app, &facility).await;
    for event in ["added", "removed"] {
        assert!(recorded.contains(&(
            "account.second_factor".into(),
            "success".into(),
            event.into()
        )));
    }
}

#[tokio::test]
async fn a_passkey_does_not_outlive_the_account_nor_sign_in_past_the_facilitys_provider() {
    let app = spawn_app().await;
    let facility = app.seed_facility("PK-GONE", FacilityKind::Clinic).await;
    let nurse = app
        .seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&facility, "nurse").await;
    let origin = right_origin(&app);
    let mut key = authenticator();
    assert_eq!(
        register(&app, &client, &mut key, "鍵", &origin)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let credential = credential_id(&stored(&app, &facility, nurse.id).await[0]);

    // Suspended: the passkey verifies, the account does not sign in.
    let set = |status| {
        let app = &app;
        let facility = &facility;
        async move {
            let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
            renrakucho_store::staff::set_status(&mut tx, nurse.id, status)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    set(renrakucho_core::StaffStatus::Suspended).await;
    let suspended = new_client();
    let response = passwordless(
        &app,
        &suspended,
        "PK-GONE",
        &mut key,
        &credential,
        nurse.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(signed_in(&app, &suspended).await.is_none());
    set(renrakucho_core::StaffStatus::Active).await;

    // Linked to the facility's identity provider: the person signs in there (where the
    // provider can remove them), so neither a passkey alone nor a new one will do.
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    renrakucho_store::identity_providers::link(
        &mut tx,
        nurse.id,
        "https://login.example.jp",
        "nurse-sub",
        "admin",
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let linked = new_client();
    let response = passwordless(
        &app,
        &linked,
        "PK-GONE",
        &mut key,
        &credential,
        nurse.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(signed_in(&app, &linked).await.is_none());
    assert!(records(&app, &facility).await.contains(&(
        "auth.sign_in".into(),
        "denied".into(),
        "provider_linked".into()
    )));
    let token = app.form_token(&client, "/account/second-factor").await;
    let refused = post_form(
        &app,
        &client,
        "/account/passkeys/begin",
        &[("authenticity_token", &token), ("name", "二つ目")],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("施設のIDプロバイダでサインインする"));
}

#[tokio::test]
async fn an_operator_registers_a_passkey_and_signs_in_with_it_alone_or_after_the_password() {
    let app = spawn_app().await;
    let operator = app.seed_operator("ops").await;
    let facility = app.seed_facility("PK-OPS", FacilityKind::Clinic).await;
    let nurse = app
        .seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let ops = new_client();
    assert_eq!(
        app.sign_in_with(&ops, None, "ops", FIXTURE_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    let origin = right_origin(&app);
    let mut key = authenticator();
    assert_eq!(
        register(&app, &ops, &mut key, "運用端末", &origin)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let kept = passkeys::list(&mut tx, Holder::Operator(operator.id))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(kept.len(), 1);
    let credential = credential_id(&kept[0]);

    // After the password (an empty facility code), the passkey in place of the app's code.
    let next = new_client();
    let token = app.form_token(&next, "/login").await;
    let response = post_form(
        &app,
        &next,
        "/login",
        &[
            ("authenticity_token", &token),
            ("facility_code", ""),
            ("login_id", "ops"),
            ("password", FIXTURE_PASSWORD),
        ],
    )
    .await;
    assert_eq!(response.headers()["location"], "/login/code");
    assert_eq!(
        passkey_second_step(&app, &next, &mut key, &origin)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert!(signed_in(&app, &next).await.is_some());

    // Alone, with no facility code.
    let alone = new_client();
    let response = passwordless(
        &app,
        &alone,
        "",
        &mut key,
        &credential,
        operator.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let me = signed_in(&app, &alone)
        .await
        .expect("the operator signed in");
    assert_eq!(me["login_id"], "ops");

    // A staff member's passkey is nobody among the operators, and an operator's nobody at a
    // facility.
    let client = app.client_for(&facility, "nurse").await;
    let mut staff_key = authenticator();
    assert_eq!(
        register(&app, &client, &mut staff_key, "鍵", &origin)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let staff_credential = credential_id(&stored(&app, &facility, nurse.id).await[0]);
    let nobody = new_client();
    let response = passwordless(
        &app,
        &nobody,
        "",
        &mut staff_key,
        &staff_credential,
        nurse.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = passwordless(
        &app,
        &nobody,
        "PK-OPS",
        &mut key,
        &credential,
        operator.id.as_uuid(),
        &origin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(signed_in(&app, &nobody).await.is_none());
}
