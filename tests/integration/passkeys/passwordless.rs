//! A passkey alone: only at its own facility (or among the operators, with no facility code),
//! only for its own account, never for a suspended one or one that signs in through the
//! facility's identity provider.

use super::*;

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
