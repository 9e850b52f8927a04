//! Adding and removing passkeys: several per account, the same credential stored once, the
//! first factor's recovery codes, removal, and a reset taking them all.

use super::*;

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
