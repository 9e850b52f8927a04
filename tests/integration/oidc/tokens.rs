//! What a provider sends back is checked before anyone signs in: each way an ID token can be
//! wrong, a `state` or a code used twice, a provider down or answering garbage, rotated keys
//! (fetched once, bounded), all against the real provider process.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::new_client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;

/// Each way an ID token can be wrong: refused with a clear message, audited with its reason,
/// nobody signed in and no account made.
#[tokio::test]
async fn forged_or_wrong_id_tokens_are_refused() {
    let f = federated("OIDC-TOKENS", "just_in_time").await;
    let cases = [
        ("wrong_issuer", "wrong_issuer"),
        ("wrong_audience", "wrong_audience"),
        ("expired", "expired"),
        ("bad_signature", "bad_signature"),
        ("alg_none", "unsupported_alg"),
        ("hs256_public_key", "unsupported_alg"),
        ("nonce_mismatch", "nonce_mismatch"),
        ("unknown_kid", "unknown_key"),
        ("garbage", "invalid_token"),
    ];
    for (mode, reason) in cases {
        f.provider.next_login("bob-sub").await;
        f.provider.tamper(mode).await;
        let client = new_client();
        let back = provider_sign_in(&f.app, &client, &f.facility.code).await;
        let status = back.status();
        let body = back.text().await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED,
            "{mode}: refused, not {status}"
        );
        assert!(
            body.contains("IDプロバイダの応答を確認できなかった"),
            "{mode}: {body}"
        );
        let me = client.get(f.app.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(me.status(), 401, "{mode}: nobody signed in");
        let last = refusals(&f.app, &f.facility).await;
        assert_eq!(last.first().map(String::as_str), Some(reason), "{mode}");
    }
    assert_eq!(
        count(&f.app, "SELECT count(*) FROM staff_accounts").await,
        1,
        "no account made by any of them"
    );
}

#[tokio::test]
async fn a_state_works_once_and_a_code_once() {
    let f = federated("OIDC-REPLAY", "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;
    f.provider.next_login("alice-sub").await;
    let client = new_client();
    let callback = callback_url(&f.app, &client, &f.facility.code).await;
    let first = client.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 303, "the first return signs in");
    // The same return again (replayed state), in another browser and in the same one.
    let replay = new_client().get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(replay.text().await.unwrap().contains("最初からやり直して"));
    let replay = client.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

    // A fresh sign-in whose state is right but whose code was used: the provider refuses it.
    let other = new_client();
    let start = other
        .post(f.app.url("/api/v1/auth/provider"))
        .json(&json!({ "facility_code": f.facility.code }))
        .send()
        .await
        .unwrap();
    let url = reqwest::Url::parse(
        start.json::<Value>().await.unwrap()["authorization_url"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let used = reqwest::Url::parse(&callback).unwrap();
    let code = used
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let mut reused = reqwest::Url::parse(&f.app.url("/login/provider/callback")).unwrap();
    reused
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    let refused = other.get(reused.as_str()).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a used code");
    let me = other.get(f.app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
    assert!(refusals(&f.app, &f.facility)
        .await
        .contains(&"code_refused".to_string()));
}

#[tokio::test]
async fn a_provider_that_is_down_or_answers_garbage_gives_a_clear_page_and_passwords_still_work() {
    let f = federated("OIDC-DOWN", "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;
    // Down between the person's sign-in there and our exchange of the code.
    f.provider.next_login("alice-sub").await;
    let client = new_client();
    let callback = callback_url(&f.app, &client, &f.facility.code).await;
    f.provider.set_mode("down").await;
    let page = client.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::BAD_GATEWAY);
    let body = page.text().await.unwrap();
    assert!(body.contains("IDプロバイダに接続できません"), "{body}");
    assert!(
        body.contains("施設管理者はパスワードと確認コードで"),
        "break-glass named"
    );
    let me = client.get(f.app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
    f.provider.set_mode("up").await;

    // A provider this process has not met yet, down or answering garbage at discovery: the
    // portal's sign-in form says so.
    let other = start_provider(&f.app, &[CLIENT_ID]).await;
    let b = f
        .app
        .seed_facility("OIDC-DOWN-B", FacilityKind::Pharmacy)
        .await;
    f.app
        .seed_staff(
            &b,
            "admin",
            StaffRole::FacilityAdmin,
            Profession::Pharmacist,
        )
        .await;
    let b_admin = f.app.client_for(&b, "admin").await;
    let saved = configure(
        &f.app,
        &b_admin,
        &other.issuer,
        CLIENT_ID,
        "pre_linked",
        &[],
    )
    .await;
    assert_eq!(saved.status(), 200);
    // Enabled as if tested (the test itself is the first test's subject).
    sqlx::query("UPDATE identity_providers SET tested_revision = revision, enabled = true WHERE facility_id = $1")
        .bind(b.id.as_uuid())
        .execute(&mut crate::support::superuser(&f.app).await)
        .await
        .unwrap();
    for mode in ["down", "garbage"] {
        other.set_mode(mode).await;
        let client = new_client();
        let token = f.app.form_token(&client, "/login").await;
        let page = client
            .post(f.app.url("/login/provider"))
            .form(&[
                ("authenticity_token", token.as_str()),
                ("facility_code", b.code.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::BAD_GATEWAY, "{mode}");
        let body = page.text().await.unwrap();
        assert!(
            body.contains("IDプロバイダに接続できません"),
            "{mode}: {body}"
        );
    }
    assert!(refusals(&f.app, &b)
        .await
        .contains(&"provider_unavailable".to_string()));
    // Break-glass: the admin signs in with the password and a code.
    let admin = f
        .app
        .sign_in_with(
            &new_client(),
            Some(&b.code),
            "admin",
            renrakucho_testkit::FIXTURE_PASSWORD,
        )
        .await;
    assert_eq!(admin.status(), 200);
}

#[tokio::test]
async fn rotated_provider_keys_are_fetched_once_and_a_warm_cache_fetches_nothing() {
    let f = federated("OIDC-KEYS", "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;
    let before = f.provider.stats().await;
    let (_, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(back.status(), 303);
    let warm = f.provider.stats().await;
    assert_eq!(warm["discovery"], before["discovery"], "discovery cached");
    assert_eq!(warm["jwks"], before["jwks"], "keys cached");

    f.provider.rotate_keys().await;
    let (_, back) = sign_in_as(&f, "alice-sub").await;
    assert_eq!(
        back.status(),
        303,
        "a token signed with the new key is accepted"
    );
    let rotated = f.provider.stats().await;
    assert_eq!(
        rotated["jwks"].as_u64().unwrap(),
        warm["jwks"].as_u64().unwrap() + 1,
        "the key set read again once"
    );
    // A forged key right after: refused without reading the keys again (bounded refresh).
    f.provider.next_login("alice-sub").await;
    f.provider.tamper("unknown_kid").await;
    let back = provider_sign_in(&f.app, &new_client(), &f.facility.code).await;
    assert_eq!(back.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(f.provider.stats().await["jwks"], rotated["jwks"]);
}
