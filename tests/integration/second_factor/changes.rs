//! Changing a second factor: setting one up (required of admins and operators, of staff by the
//! network's setting), the facility admin's reset (never of another admin), re-authentication
//! before changes, e-mail notices, operators' factors under the platform's key, and the
//! set-up's code budget.

use super::*;

#[tokio::test]
async fn an_admin_without_a_second_factor_sets_one_up_before_anything_else() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-3", FacilityKind::Clinic).await;
    without_factor(&app, &clinic, "boss", StaffRole::FacilityAdmin).await;

    let client = app.client_for(&clinic, "boss").await;
    let (status, who) = me(&app, &client).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["second_factor_enrolment_required"], true);
    let (status, code) = code_of(
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

    let (secret, recovery) = set_up(&app, &client).await;
    // The facility's key rotates and its staff's secrets move to the new version (key
    // maintenance reads and replaces that column only); the authenticator goes on working.
    let keyring = app.keyring().await;
    let mut tx = app.db.begin(Scope::Facility(clinic.id)).await.unwrap();
    keyring
        .rotate_data_key(
            &mut tx,
            renrakucho_keyring::KeyOwner::Facility(clinic.id),
            audit::Actor::System,
            &audit::Origin::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let moved = keyring
        .reencrypt_owner(
            &app.db,
            renrakucho_keyring::KeyOwner::Facility(clinic.id),
            renrakucho_store::encrypted::ENCRYPTED_COLUMNS,
            audit::Actor::System,
            &audit::Origin::default(),
        )
        .await
        .unwrap();
    assert_eq!((moved.values, moved.moved), (1, 1), "boss's secret");
    assert_eq!(
        client
            .get(app.url("/api/v1/patients"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "set up: the rest opens"
    );
    // Set up twice: refused until removed.
    let again = client
        .post(app.url("/api/v1/me/second-factor/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // The next sign-in asks for a code; a recovery code does, once, however it is typed.
    let (other, status, code) = password_step(&app, "MF-3", "boss").await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "second_factor_required")
    );
    let typed = recovery[0].to_uppercase().replace('-', " ");
    assert_eq!(
        second_step(&app, &other, &typed).await.status(),
        StatusCode::OK
    );
    let (third, ..) = password_step(&app, "MF-3", "boss").await;
    let (status, code) = code_of(second_step(&app, &third, &recovery[0]).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "wrong_one_time_code")
    );
    // The app's next code still works in that waiting sign-in.
    let next = secret.code_at(now_step() + 1);
    assert_eq!(
        second_step(&app, &third, &next).await.status(),
        StatusCode::OK
    );

    let events: Vec<String> = records(&app, &clinic)
        .await
        .into_iter()
        .filter(|(action, ..)| action == "account.second_factor")
        .map(|(_, outcome, event)| format!("{event}:{outcome}"))
        .collect();
    let expected_refusals = usize::from(secret.code_at(now_step()) != "123456");
    assert_eq!(events.len(), 2 + expected_refusals, "{events:?}");
    assert_eq!(events[0], "enrolment_started:success");
    assert_eq!(events.last().unwrap(), "added:success");
}

#[tokio::test]
async fn staff_need_a_second_factor_only_where_the_network_says_so() {
    let app = spawn_app_with(|s| s.staff_second_factor = false).await;
    let clinic = app.seed_facility("MF-4", FacilityKind::Clinic).await;
    without_factor(&app, &clinic, "nurse", StaffRole::Staff).await;
    without_factor(&app, &clinic, "boss", StaffRole::FacilityAdmin).await;
    let nurse = app.client_for(&clinic, "nurse").await;
    assert_eq!(
        nurse
            .get(app.url("/api/v1/patients"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the network leaves it to staff"
    );
    let boss = app.client_for(&clinic, "boss").await;
    let (status, code) = code_of(boss.get(app.url("/api/v1/patients")).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "second_factor_enrolment_required"),
        "facility admins always"
    );

    // By default the network requires it of staff too.
    let strict = spawn_app().await;
    let clinic = strict.seed_facility("MF-5", FacilityKind::Clinic).await;
    without_factor(&strict, &clinic, "nurse", StaffRole::Staff).await;
    let nurse = strict.client_for(&clinic, "nurse").await;
    let (status, code) = code_of(
        nurse
            .get(strict.url("/api/v1/patients"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "second_factor_enrolment_required")
    );
}

#[tokio::test]
async fn the_facility_admin_resets_a_members_second_factor_and_no_one_else_can() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-6", FacilityKind::Clinic).await;
    let other = app.seed_facility("MF-7", FacilityKind::Pharmacy).await;
    app.seed_staff(
        &clinic,
        "boss",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let nurse = app
        .seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    app.seed_staff(
        &other,
        "otherboss",
        StaffRole::FacilityAdmin,
        Profession::Pharmacist,
    )
    .await;
    let reset = app.url(&format!("/api/v1/staff/{}/second-factor", nurse.id));

    let colleague = app.client_for(&clinic, "nurse").await;
    assert_eq!(
        colleague.delete(&reset).send().await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "not an admin"
    );
    let stranger = app.client_for(&other, "otherboss").await;
    assert_eq!(
        stranger.delete(&reset).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "another facility's admin learns nothing"
    );
    assert_eq!(
        sign_in_with_code(
            &app,
            "MF-6",
            "nurse",
            &app.one_time_code("MF-6", "nurse").await.unwrap()
        )
        .await,
        StatusCode::OK,
        "nothing changed"
    );

    let boss = app.client_for(&clinic, "boss").await;
    assert_eq!(
        boss.delete(&reset).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        boss.delete(&reset).send().await.unwrap().status(),
        StatusCode::CONFLICT
    );
    // The member signs in with the password alone and must set up a new authenticator.
    let (client, status, _) = password_step(&app, "MF-6", "nurse").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(&app, &client).await.1["second_factor_enrolment_required"],
        true
    );
    let events: Vec<String> = records(&app, &clinic)
        .await
        .into_iter()
        .filter(|(action, ..)| action == "account.second_factor")
        .map(|(_, _, event)| event)
        .collect();
    assert_eq!(events, ["reset"]);
}

#[tokio::test]
async fn changing_the_second_factor_asks_for_a_recent_password() {
    let app = spawn_app_with(|s| s.reauthenticate_within = Duration::from_secs(2)).await;
    let clinic = app.seed_facility("MF-8", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&clinic, "nurse").await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for (method, path) in [
        ("DELETE", "/api/v1/me/second-factor"),
        ("POST", "/api/v1/me/second-factor/recovery-codes"),
    ] {
        let request = match method {
            "DELETE" => client.delete(app.url(path)),
            _ => client.post(app.url(path)),
        };
        let (status, code) = code_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "reauthentication_required"),
            "{method} {path}"
        );
    }
    let confirmed = client
        .post(app.url("/api/v1/me/reauthenticate"))
        .json(&json!({ "password": FIXTURE_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    let response = client
        .post(app.url("/api/v1/me/second-factor/recovery-codes"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let removed = client
        .delete(app.url("/api/v1/me/second-factor"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    // Removed where the network requires one: everything waits for a new one.
    let (status, code) = code_of(
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
}

#[tokio::test]
async fn the_person_is_told_by_e_mail_of_each_change_once_without_secrets() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-9", FacilityKind::Clinic).await;
    app.seed_staff(
        &clinic,
        "boss",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let nurse = app
        .seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&clinic, "nurse").await;
    let address = "nurse@clinic.example.jp";
    let saved = client
        .put(app.url("/api/v1/notifications/settings"))
        .json(
            &json!({ "email": address, "live_level": "info", "digest_enabled": false,
                       "digest_hour": 8 }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::NO_CONTENT);

    // New recovery codes, removal and set-up by the person; a reset by the admin.
    let codes = client
        .post(app.url("/api/v1/me/second-factor/recovery-codes"))
        .send()
        .await
        .unwrap();
    assert_eq!(codes.status(), StatusCode::OK);
    let codes: Value = codes.json().await.unwrap();
    let removed = client
        .delete(app.url("/api/v1/me/second-factor"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let (secret, _) = set_up(&app, &client).await;
    let boss = app.client_for(&clinic, "boss").await;
    let reset = boss
        .delete(app.url(&format!("/api/v1/staff/{}/second-factor", nurse.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);

    let sink = renrakucho_testkit::SmtpSink::start().await;
    let mut settings = app.settings.clone();
    settings.smtp_url = Some(renrakucho_server::config::Secret::new(sink.url.clone()));
    let mailer = renrakucho_server::mail::Mailer::from_settings(&settings)
        .unwrap()
        .expect("a mailer");
    let now = time::OffsetDateTime::now_utc();
    // Two processes at once: each notice goes out once.
    let (a, b) = tokio::join!(
        renrakucho_server::notices::send_due(&app.db, &mailer, now),
        renrakucho_server::notices::send_due(&app.server_db, &mailer, now),
    );
    assert_eq!(a + b, 4, "replaced, removed, added, reset");
    assert_eq!(
        renrakucho_server::notices::send_due(&app.db, &mailer, now).await,
        0,
        "nothing twice"
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 4);
    let mut said = Vec::new();
    for raw in &messages {
        let (head, text) = crate::support::mail_text(raw);
        assert!(
            head.lines()
                .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(address)),
            "to the person"
        );
        assert!(!text.contains(&secret.base32()), "never the secret");
        for code in codes["recovery_codes"].as_array().unwrap() {
            assert!(!text.contains(code.as_str().unwrap()), "never a code");
        }
        assert!(
            text.contains("心当たりがない場合"),
            "what to do if it was not them"
        );
        said.push(text);
    }
    for words in ["回復コード", "解除", "設定されました", "リセット"] {
        assert!(
            said.iter().any(|t| t.contains(words)),
            "a notice saying {words}: {said:?}"
        );
    }
}

#[tokio::test]
async fn operators_always_need_a_second_factor_kept_under_the_platforms_key() {
    let app = spawn_app().await;
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).unwrap();
    admin_commands::create_operator(
        &app.db,
        &app.server_hasher,
        &LoginId::parse("ops").unwrap(),
        &DisplayName::parse("運用 一郎").unwrap(),
        &password,
        false,
    )
    .await
    .unwrap();
    let client = new_client();
    let signed = app
        .sign_in_with(&client, None, "ops", FIXTURE_PASSWORD)
        .await;
    assert_eq!(signed.status(), StatusCode::OK);
    let alerts = app.url("/api/v1/platform/alerts");
    let (status, code) = code_of(client.get(&alerts).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "second_factor_enrolment_required")
    );
    let (secret, _) = set_up(&app, &client).await;
    assert_eq!(
        client.get(&alerts).send().await.unwrap().status(),
        StatusCode::OK
    );

    // The platform's key rotates and the secret moves to the new version (as `renrakucho keys
    // rotate-data-key platform --reencrypt` does); the authenticator goes on working.
    let keyring = app.keyring().await;
    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let version = keyring
        .rotate_data_key(
            &mut tx,
            renrakucho_keyring::KeyOwner::Platform,
            audit::Actor::System,
            &audit::Origin::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(version, 2);
    let moved = keyring
        .reencrypt_owner(
            &app.db,
            renrakucho_keyring::KeyOwner::Platform,
            renrakucho_store::encrypted::ENCRYPTED_COLUMNS,
            audit::Actor::System,
            &audit::Origin::default(),
        )
        .await
        .unwrap();
    assert_eq!((moved.values, moved.moved), (1, 1), "the operator's secret");

    // The next sign-in takes the code after the password.
    let other = new_client();
    let response = other
        .post(app.url("/api/v1/auth/sign-in"))
        .json(&json!({ "login_id": "ops", "password": FIXTURE_PASSWORD }))
        .send()
        .await
        .unwrap();
    let (status, code) = code_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "second_factor_required")
    );
    let response = second_step(&app, &other, &secret.code_at(now_step() + 1)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // The secret is under the platform's own key, which no facility's scope reaches.
    let mut su = crate::support::superuser(&app).await;
    let platform_keys: Vec<(Option<uuid::Uuid>,)> =
        sqlx::query_as("SELECT facility_id FROM data_keys WHERE owner_kind = 'platform'")
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(
        platform_keys,
        [(None,), (None,)],
        "two versions, no facility"
    );
    let clinic = app.seed_facility("MF-10", FacilityKind::Clinic).await;
    let mut tx = app.db.begin(Scope::Facility(clinic.id)).await.unwrap();
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM data_keys WHERE owner_kind = 'platform'")
            .fetch_one(tx.raw_connection_for_tests())
            .await
            .unwrap_or(0);
    tx.commit().await.ok();
    assert_eq!(
        seen, 0,
        "a facility's scope does not see the platform's key"
    );
    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let records = audit::recent(&mut tx, 50).await.unwrap();
    tx.commit().await.unwrap();
    assert!(records
        .iter()
        .any(|r| r.action == "account.second_factor" && r.details["event"] == "added"));
    assert!(records
        .iter()
        .any(|r| r.action == "auth.sign_in" && r.details["reason"] == "password+totp"));
}

#[tokio::test]
async fn no_administrator_resets_another_administrators_second_factor() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-12", FacilityKind::Clinic).await;
    app.seed_staff(
        &clinic,
        "boss",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let deputy = app
        .seed_staff(
            &clinic,
            "deputy",
            StaffRole::FacilityAdmin,
            Profession::Nurse,
        )
        .await;
    let boss = app.client_for(&clinic, "boss").await;
    let (status, code) = code_of(
        boss.delete(app.url(&format!("/api/v1/staff/{}/second-factor", deputy.id)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // The deputy still needs the code.
    let (_, status, code) = password_step(&app, "MF-12", "deputy").await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "second_factor_required")
    );
}

#[tokio::test]
async fn an_operator_resets_a_facility_administrators_second_factor_and_only_an_administrators() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("MF-14", FacilityKind::Clinic).await;
    let boss = app
        .seed_staff(
            &clinic,
            "boss",
            StaffRole::FacilityAdmin,
            Profession::Doctor,
        )
        .await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let operator = app.seed_operator("ops").await;
    let ops = new_client();
    assert_eq!(
        app.sign_in_with(&ops, None, "ops", FIXTURE_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    let boss_session = app.client_for(&clinic, "boss").await;
    let reset = |who: &str| {
        app.url(&format!(
            "/api/v1/platform/facilities/MF-14/staff/{who}/second-factor"
        ))
    };

    // Not for staff (their administrator resets them), not for an unknown facility or person,
    // and not by a facility administrator: each refused, nothing changed.
    for (client, path, expected) in [
        (&ops, reset("nurse"), StatusCode::NOT_FOUND),
        (&ops, reset("nobody"), StatusCode::NOT_FOUND),
        (
            &ops,
            app.url("/api/v1/platform/facilities/NO-SUCH/staff/boss/second-factor"),
            StatusCode::NOT_FOUND,
        ),
        (&boss_session, reset("boss"), StatusCode::FORBIDDEN),
    ] {
        let response = client.delete(path.as_str()).send().await.unwrap();
        assert_eq!(response.status(), expected, "{path}");
    }
    let (_, status, code) = password_step(&app, "MF-14", "nurse").await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "second_factor_required")
    );

    // The operator resets the administrator's: gone, their session ended, both chains record it.
    let response = ops.delete(reset("boss")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        boss_session
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "the administrator's session ended"
    );
    let (_, status, _) = password_step(&app, "MF-14", "boss").await;
    assert_eq!(status, StatusCode::OK, "the password alone, then set-up");
    let again = ops.delete(reset("boss")).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "nothing left to reset"
    );
    assert!(records(&app, &clinic).await.contains(&(
        "account.second_factor".into(),
        "success".into(),
        "reset".into()
    )));
    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let platform = audit::recent(&mut tx, 50).await.unwrap();
    drop(tx);
    assert!(platform.iter().any(|r| r.action == "account.second_factor"
        && r.actor_id == Some(operator.id.as_uuid())
        && r.target_id == Some(boss.id.as_uuid())));
}

#[tokio::test]
async fn guessing_the_code_at_set_up_is_throttled_like_at_sign_in() {
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 2;
        s.signin_account_period = Duration::from_secs(3600);
    })
    .await;
    let clinic = app.seed_facility("MF-13", FacilityKind::Clinic).await;
    without_factor(&app, &clinic, "boss", StaffRole::FacilityAdmin).await;
    let client = app.client_for(&clinic, "boss").await;
    let begun: Value = client
        .post(app.url("/api/v1/me/second-factor/totp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = secret_from_base32(begun["secret"].as_str().unwrap()).unwrap();
    // Codes that are certainly wrong: none of the three steps the server accepts.
    let step = now_step();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| (step - 1..=step + 2).all(|s| secret.code_at(s) != *c))
        .unwrap();
    let confirm = |code: String| {
        let client = client.clone();
        let url = app.url("/api/v1/me/second-factor/totp/confirm");
        async move {
            client
                .post(url)
                .json(&json!({ "one_time_code": code }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        confirm(wrong.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        confirm(wrong.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        confirm(secret.code_at(now_step())).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the budget is spent: even the right code waits"
    );
}
