//! CSRF: every portal route that changes something, as the router declares them
//! (`renrakucho_portal::routes(..).writes()`), refuses a form without this session's token — none
//! at all, another session's (with this browser's cookie, or with the other browser's cookie
//! tossed in), or, in a multipart form, the right one anywhere but first — with the same 403
//! page, and nothing in the database or the file store changes. Each route is posted to with
//! real IDs of a seeded network and a form that acts: the same form with the right token, sent
//! afterwards, does act (303, something changed), so no refusal passes for want of a target.

use std::collections::HashMap;

use renrakucho_authz::Action;
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_portal::{self as portal, FormKind};
use renrakucho_testkit::{spawn_app_with, FIXTURE_PASSWORD, PNG_1X1};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{authorizer_follows, card_number, json_of, patient_url, post_note};

mod forms;
use forms::*;

/// Who posts a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    /// Not signed in (the sign-in form).
    Visitor,
    A,
    B,
    C,
    E,
}

struct Case {
    who: Who,
    path: String,
    fields: Vec<Field>,
}

#[tokio::test]
async fn every_portal_form_refuses_a_missing_or_foreign_token_and_changes_nothing() {
    let app = spawn_app_with(|s| {
        s.signin_address_burst = 1000;
        s.signin_account_burst = 100;
    })
    .await;

    // -----------------------------------------------------------------------------------------
    // The network. B (a clinic) registers P, records its consent and has C and D in the care
    // team and E invited; B's two entries on P; B asked A for support on the first; A opened
    // emergency access to P; A has a patient of its own; B's Q has no consent yet.
    let a = app.seed_facility("XS-A", FacilityKind::Hospital).await;
    let b = app.seed_facility("XS-B", FacilityKind::Clinic).await;
    let c = app
        .seed_facility("XS-C", FacilityKind::VisitingNurseStation)
        .await;
    let d = app
        .seed_facility("XS-D", FacilityKind::CareManagementOffice)
        .await;
    let e = app.seed_facility("XS-E", FacilityKind::Pharmacy).await;
    let a_admin = app
        .seed_staff(&a, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    let b_admin = app
        .seed_staff(&b, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    let b_nurse = app
        .seed_staff(&b, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    for (facility, profession) in [
        (&c, Profession::Nurse),
        (&d, Profession::CareManager),
        (&e, Profession::Pharmacist),
    ] {
        app.seed_staff(facility, "admin", StaffRole::FacilityAdmin, profession)
            .await;
    }
    let p = app
        .seed_patient(&b_admin, "境界 花子", "キョウカイ ハナコ")
        .await
        .id
        .as_uuid();
    let q = app
        .seed_patient(&b_admin, "同意 待子", "ドウイ マチコ")
        .await
        .id
        .as_uuid();
    let a_patient = app
        .seed_patient(&a_admin, "病院 次郎", "ビョウイン ジロウ")
        .await
        .id
        .as_uuid();
    authorizer_follows(&app, &b, p, Action::NotebookWrite, true).await;
    authorizer_follows(&app, &a, a_patient, Action::DeletionRecord, true).await;
    let api_a = app.client_for(&a, "admin").await;
    let api_b = app.client_for(&b, "admin").await;
    let response = api_b
        .post(patient_url(&app, p, "/consents"))
        .json(&json!({
            "signer": { "kind": "patient" },
            "signed_on": "2026-11-01",
            "scope": "在宅医療のため、ケアチームの施設間で連絡帳を共有すること",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "recording P's consent");
    for member in [&c, &d, &e] {
        let response = api_b
            .post(patient_url(&app, p, "/care-team"))
            .json(&json!({ "facility_code": member.code }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "inviting {}", member.code);
    }
    for member in [&c, &d] {
        authorizer_follows(&app, member, p, Action::CareTeamAccept, true).await;
        let response = app
            .client_for(member, "admin")
            .await
            .post(patient_url(&app, p, "/care-team/accept"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{} accepts", member.code);
    }
    authorizer_follows(&app, &e, p, Action::CareTeamAccept, true).await;
    // E has a provider (nothing answers at its issuer: its forms meet a provider that is down),
    // enabled as if tested, and an account waiting for approval.
    let api_e = app.client_for(&e, "admin").await;
    let response = api_e
        .put(app.url("/api/v1/facility/identity-provider"))
        .json(
            &json!({ "issuer": "http://127.0.0.1:9", "client_id": "renrakucho",
                       "client_secret": "a-secret", "login_claim": "email",
                       "account_policy": "pre_linked" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "E's provider");
    let mut su = crate::support::superuser(&app).await;
    sqlx::query(
        "UPDATE identity_providers SET tested_revision = revision, enabled = true \
          WHERE facility_id = $1",
    )
    .bind(e.id.as_uuid())
    .execute(&mut su)
    .await
    .unwrap();
    let waiting: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO staff_accounts (id, facility_id, login_id, display_name, role, profession, \
                                     status, password_hash) \
         VALUES (gen_random_uuid(), $1, 'waiting', '承認 待子', 'staff', 'other', 'pending', 'x') \
         RETURNING id",
    )
    .bind(e.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    let e_admin: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM staff_accounts WHERE facility_id = $1 AND login_id = 'admin'",
    )
    .bind(e.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    let first = post_note(&app, &api_b, p, "info", "訪問診療。経過良好。").await;
    let second = post_note(&app, &api_b, p, "info", "誤って記録した内容").await;
    let response = api_b
        .post(patient_url(&app, p, "/support-requests"))
        .json(&json!({ "to": a.code, "kind": "information",
                       "question": "服薬について助言をください",
                       "summary": "80代女性、要介護2、在宅療養中。", "entries": [first] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "asking A for support");
    let support_request = json_of(response).await["id"]
        .as_str()
        .expect("the request's ID")
        .to_string();
    authorizer_follows(&app, &a, p, Action::SupportAnswer, true).await;
    let p_card = card_number(&app, &api_b, p).await;
    let q_card = card_number(&app, &api_b, q).await;
    let reason = "意識がなく救急搬送された。既往歴と服薬を確認するため";
    let response = api_a
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": p_card, "birth_date": "1940-01-15", "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "A opens emergency access to P");
    let grant = json_of(response).await["id"]
        .as_str()
        .expect("the grant's ID")
        .to_string();

    // -----------------------------------------------------------------------------------------
    // What each form posts: real IDs, fields that would act.
    let mut cases: HashMap<&'static str, Case> = HashMap::new();
    let mut case = |pattern: &'static str, who: Who, path: String, fields: Vec<Field>| {
        assert!(
            cases.insert(pattern, Case { who, path, fields }).is_none(),
            "{pattern} twice"
        );
    };
    let patient_fields = |name: &str, kana: &str, birth: &str, care: &str| {
        vec![
            text("name", name),
            text("kana", kana),
            text("birth_date", birth),
            text("sex", "female"),
            text("care_level", care),
            text("phone", "090-1111-2222"),
        ]
    };
    case(
        "/login",
        Who::Visitor,
        "/login".into(),
        vec![
            text("facility_code", "XS-B"),
            text("login_id", "nurse"),
            text("password", FIXTURE_PASSWORD),
        ],
    );
    case(
        "/login/code",
        Who::Visitor,
        "/login/code".into(),
        vec![text(
            "one_time_code",
            app.recovery_code("XS-B", "nurse").expect("a recovery code"),
        )],
    );
    case("/logout", Who::B, "/logout".into(), vec![]);
    case(
        "/login/provider",
        Who::Visitor,
        "/login/provider".into(),
        vec![text("facility_code", "XS-E")],
    );
    case(
        "/admin/identity-provider",
        Who::E,
        "/admin/identity-provider".into(),
        vec![
            text("issuer", "http://127.0.0.1:9"),
            text("client_id", "renrakucho-2"),
            text("client_secret", "another-secret"),
            text("revision", "1"),
            text("scopes", "email profile"),
            text("login_claim", "email"),
            text("allowed_domains", ""),
            text("account_policy", "just_in_time"),
        ],
    );
    // B signed in with a password: refused (its proof is the password), and audited.
    case(
        "/account/confirm/provider",
        Who::B,
        "/account/confirm/provider".into(),
        vec![text("next", "/")],
    );
    case(
        "/admin/identity-provider/test",
        Who::E,
        "/admin/identity-provider/test".into(),
        vec![],
    );
    case(
        "/admin/identity-provider/enabled",
        Who::E,
        "/admin/identity-provider/enabled".into(),
        vec![text("enabled", "false")],
    );
    case(
        "/admin/identity-provider/link",
        Who::E,
        "/admin/identity-provider/link".into(),
        vec![
            text("staff_id", e_admin.to_string()),
            text("subject", "sub-1"),
        ],
    );
    case(
        "/admin/identity-provider/approve",
        Who::E,
        "/admin/identity-provider/approve".into(),
        vec![
            text("staff_id", waiting.to_string()),
            text("profession", "clerk"),
        ],
    );
    case(
        "/account/second-factor/recovery-codes",
        Who::B,
        "/account/second-factor/recovery-codes".into(),
        vec![],
    );
    case(
        "/account/second-factor/remove",
        Who::B,
        "/account/second-factor/remove".into(),
        vec![],
    );
    case(
        "/account/second-factor/begin",
        Who::B,
        "/account/second-factor/begin".into(),
        vec![],
    );
    // A wrong code: refused after the form check passed, and the refusal recorded.
    case(
        "/account/second-factor/confirm",
        Who::B,
        "/account/second-factor/confirm".into(),
        vec![text("one_time_code", "000000")],
    );
    // Passkeys: each posts what the browser would (an answer that does not verify is refused
    // after the form check passed, and the refusal recorded). B's admin has one to remove.
    let b_passkey = {
        let mut tx = app
            .db
            .begin(renrakucho_store::Scope::Facility(b.id))
            .await
            .unwrap();
        renrakucho_store::passkeys::insert(
            &mut tx,
            renrakucho_store::second_factors::Holder::Staff(b_admin.id),
            &[9; 32],
            "鍵",
            &json!({}),
        )
        .await
        .unwrap();
        let id = renrakucho_store::passkeys::list(
            &mut tx,
            renrakucho_store::second_factors::Holder::Staff(b_admin.id),
        )
        .await
        .unwrap()[0]
            .id;
        tx.commit().await.unwrap();
        id
    };
    case(
        "/login/passkey",
        Who::Visitor,
        "/login/passkey".into(),
        vec![text("facility_code", "XS-B")],
    );
    case(
        "/login/passkey/finish",
        Who::Visitor,
        "/login/passkey/finish".into(),
        vec![text("credential", "{}")],
    );
    case(
        "/login/code/passkey",
        Who::Visitor,
        "/login/code/passkey".into(),
        vec![text("credential", "{}")],
    );
    case(
        "/account/passkeys/begin",
        Who::B,
        "/account/passkeys/begin".into(),
        vec![text("name", "仕事用スマホ")],
    );
    case(
        "/account/passkeys/finish",
        Who::B,
        "/account/passkeys/finish".into(),
        vec![text("credential", "{}")],
    );
    case(
        "/account/passkeys/{id}/remove",
        Who::B,
        format!("/account/passkeys/{b_passkey}/remove"),
        vec![],
    );
    case(
        "/admin/staff/{id}/second-factor/reset",
        Who::B,
        format!("/admin/staff/{}/second-factor/reset", b_nurse.id.as_uuid()),
        vec![],
    );
    case(
        "/account/confirm",
        Who::B,
        "/account/confirm".into(),
        vec![text("password", FIXTURE_PASSWORD), text("next", "/")],
    );
    case(
        "/account/password",
        Who::B,
        "/account/password".into(),
        vec![
            text("current_password", FIXTURE_PASSWORD),
            text("new_password", "Umegaoka-7-kaidan-no-neko"),
            text("new_password_again", "Umegaoka-7-kaidan-no-neko"),
        ],
    );
    case(
        "/patients/new",
        Who::B,
        "/patients/new".into(),
        patient_fields("登録 試子", "トウロク タメシコ", "1950-03-03", "care_1"),
    );
    case(
        "/patients/{id}/edit",
        Who::B,
        format!("/patients/{p}/edit"),
        patient_fields("境界 花子", "キョウカイ ハナコ", "1940-01-15", "care_3"),
    );
    case(
        "/patients/{id}/consents",
        Who::B,
        format!("/patients/{q}/consents"),
        vec![
            text("signer", "patient"),
            text("signer_name", ""),
            text("signer_relation", ""),
            text("signed_on", "2026-11-02"),
            text(
                "scope",
                "在宅医療のため、ケアチームの施設間で連絡帳を共有すること",
            ),
            Field::File("scan", "consent.png", PNG_1X1),
        ],
    );
    case(
        "/patients/{id}/consents/withdraw",
        Who::B,
        format!("/patients/{p}/consents/withdraw"),
        vec![],
    );
    case(
        "/patients/{id}/card/reissue",
        Who::B,
        format!("/patients/{p}/card/reissue"),
        vec![],
    );
    case(
        "/patients/{id}/care-team/invite",
        Who::B,
        format!("/patients/{p}/care-team/invite"),
        vec![text("facility_code", a.code.clone())],
    );
    case(
        "/patients/{id}/care-team/leave",
        Who::C,
        format!("/patients/{p}/care-team/leave"),
        vec![],
    );
    case(
        "/patients/{id}/care-team/{facility}/remove",
        Who::B,
        format!("/patients/{p}/care-team/{}/remove", d.id.as_uuid()),
        vec![],
    );
    case(
        "/patients/{id}/deletion",
        Who::A,
        format!("/patients/{a_patient}/deletion"),
        vec![text("confirm", "yes")],
    );
    case(
        "/invitations/{id}/{answer}",
        Who::E,
        format!("/invitations/{p}/accept"),
        vec![],
    );
    case(
        "/emergency",
        Who::A,
        "/emergency".into(),
        vec![
            text("card_number", q_card.clone()),
            text("birth_date", "1940-01-15"),
            text("reason", reason),
        ],
    );
    case(
        "/emergency/{id}/{what}",
        Who::A,
        format!("/emergency/{grant}/end"),
        vec![],
    );
    case(
        "/patients/{id}/notebook",
        Who::B,
        format!("/patients/{p}/notebook"),
        vec![
            text("category", "treatment"),
            text("priority", "info"),
            text("body", "往診。写真を添えます。"),
            Field::File("files", "photo.png", PNG_1X1),
        ],
    );
    case(
        "/patients/{id}/entries/{entry}/edit",
        Who::B,
        format!("/patients/{p}/entries/{first}/edit"),
        vec![
            text("expected_version", "1"),
            text("category", "notice"),
            text("priority", "info"),
            text("body", "訪問診療。経過良好（追記）。"),
        ],
    );
    case(
        "/patients/{id}/entries/{entry}/withdraw",
        Who::B,
        format!("/patients/{p}/entries/{second}/withdraw"),
        vec![text("reason", "別の対象者の記録だったため")],
    );
    case(
        "/patients/{id}/entries/{entry}/support",
        Who::B,
        format!("/patients/{p}/entries/{first}/support"),
        vec![
            text("to", e.code.clone()),
            text("kind", "information"),
            text("summary", "80代女性、要介護2、在宅療養中。"),
            text("question", "この処方の飲み合わせについて教えてください"),
        ],
    );
    case(
        "/notifications",
        Who::B,
        "/notifications".into(),
        vec![
            text("email", "b-admin@clinic.example.jp"),
            text("live_level", "urgent"),
            text("quiet_start", "22"),
            text("quiet_end", "7"),
            text("digest_enabled", "on"),
            text("digest_hour", "8"),
        ],
    );
    case(
        "/support/{id}/{step}",
        Who::A,
        format!("/support/{support_request}/accept"),
        vec![],
    );

    // The order in which the forms act afterwards: each still has its target.
    let acting = [
        // While E's provider is enabled: the provider, down, is named on the page.
        "/login/provider",
        "/admin/identity-provider/link",
        "/admin/identity-provider/approve",
        "/admin/identity-provider/enabled",
        "/admin/identity-provider",
        "/admin/identity-provider/test",
        "/account/confirm/provider",
        "/login/passkey",
        "/login/passkey/finish",
        "/login",
        "/login/code/passkey",
        "/login/code",
        "/notifications",
        "/patients/new",
        "/patients/{id}/edit",
        "/patients/{id}/consents",
        "/patients/{id}/notebook",
        "/patients/{id}/entries/{entry}/edit",
        "/patients/{id}/entries/{entry}/withdraw",
        "/patients/{id}/entries/{entry}/support",
        "/support/{id}/{step}",
        "/patients/{id}/card/reissue",
        "/patients/{id}/care-team/invite",
        "/invitations/{id}/{answer}",
        "/patients/{id}/care-team/leave",
        "/patients/{id}/care-team/{facility}/remove",
        "/emergency/{id}/{what}",
        "/emergency",
        "/patients/{id}/consents/withdraw",
        "/patients/{id}/deletion",
        "/account/confirm",
        "/account/passkeys/begin",
        "/account/passkeys/finish",
        "/account/passkeys/{id}/remove",
        // After the visitor's sign-in as B's nurse, and while B's admin still has a second
        // factor (without one, every page but its set-up waits).
        "/admin/staff/{id}/second-factor/reset",
        "/account/second-factor/recovery-codes",
        "/account/second-factor/remove",
        "/account/second-factor/begin",
        "/account/second-factor/confirm",
        "/account/password",
        "/logout",
    ];
    // The forms whose answer is a page rather than a redirect: what they show is shown once
    // (recovery codes), or they refuse what was typed after the form check passed.
    let answered_with_a_page: HashMap<&str, StatusCode> = HashMap::from([
        ("/account/second-factor/recovery-codes", StatusCode::OK),
        ("/login/passkey", StatusCode::OK),
        ("/login/passkey/finish", StatusCode::UNAUTHORIZED),
        ("/login/code/passkey", StatusCode::UNAUTHORIZED),
        ("/account/passkeys/begin", StatusCode::OK),
        ("/account/passkeys/finish", StatusCode::UNPROCESSABLE_ENTITY),
        ("/login/provider", StatusCode::BAD_GATEWAY),
        ("/admin/identity-provider/test", StatusCode::BAD_GATEWAY),
        ("/account/confirm/provider", StatusCode::NOT_FOUND),
        (
            "/account/second-factor/confirm",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ]);

    // -----------------------------------------------------------------------------------------
    // The routes, from the router's own declaration.
    let declared = portal::routes(app.settings.upload_limit_bytes as usize);
    let writes = declared.writes();
    let mut patterns: Vec<&str> = writes.iter().map(|w| w.path).collect();
    patterns.sort();
    let mut covered: Vec<&str> = cases.keys().copied().collect();
    covered.sort();
    assert_eq!(
        patterns, covered,
        "every state-changing portal route has a case here, and every case a route"
    );
    let mut ordered = acting.to_vec();
    ordered.sort();
    assert_eq!(ordered, covered, "every route acts once at the end");
    assert!(writes.iter().any(|w| w.form == FormKind::Multipart));
    assert!(writes.iter().any(|w| w.form == FormKind::UrlEncoded));
    let kind_of: HashMap<&str, FormKind> = writes.iter().map(|w| (w.path, w.form)).collect();

    // The browsers: each victim, and another session of the same person (for the visitor, of
    // B's administrator), whose page gives the foreign token.
    let mut browsers: HashMap<Who, Browser> = HashMap::new();
    let mut others: HashMap<Who, Browser> = HashMap::new();
    let mut visitor = Browser::new();
    let visitor_token = visitor.token(&app, "/login").await;
    browsers.insert(Who::Visitor, visitor);
    others.insert(
        Who::Visitor,
        Browser::signed_in(&app, "XS-B", "admin").await,
    );
    for (who, code) in [
        (Who::A, "XS-A"),
        (Who::B, "XS-B"),
        (Who::C, "XS-C"),
        (Who::E, "XS-E"),
    ] {
        browsers.insert(who, Browser::signed_in(&app, code, "admin").await);
        others.insert(who, Browser::signed_in(&app, code, "admin").await);
    }
    let mut own_tokens: HashMap<Who, String> = HashMap::new();
    let mut foreign_tokens: HashMap<Who, String> = HashMap::new();
    own_tokens.insert(Who::Visitor, visitor_token);
    for (who, browser) in browsers.iter_mut() {
        if *who != Who::Visitor {
            own_tokens.insert(*who, browser.token(&app, "/").await);
        }
    }
    for (who, browser) in others.iter_mut() {
        foreign_tokens.insert(*who, browser.token(&app, "/").await);
    }
    for who in [Who::A, Who::B, Who::C, Who::E] {
        assert_ne!(
            own_tokens[&who], foreign_tokens[&who],
            "a token per session"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Refused: every route, every way, nothing changed.
    for write in writes {
        let case = &cases[write.path];
        let kind = write.form;
        let victim = &browsers[&case.who];
        let other = &others[&case.who];
        let own = own_tokens[&case.who].as_str();
        let foreign = foreign_tokens[&case.who].as_str();
        let with_session = |csrf_cookie: String| match victim.jar.get(SESSION) {
            Some(session) => format!("{SESSION}={session}; {csrf_cookie}"),
            None => csrf_cookie,
        };
        let mut attempts = vec![
            (
                "no token",
                victim.cookies(),
                encode(kind, &case.fields, Token::Absent),
            ),
            (
                "another session's token",
                victim.cookies(),
                encode(kind, &case.fields, Token::First(foreign)),
            ),
            (
                "another session's token and its cookie tossed in",
                with_session(other.cookie(CSRF)),
                encode(kind, &case.fields, Token::First(foreign)),
            ),
        ];
        if kind == FormKind::Multipart {
            attempts.push((
                "the right token, but not the first part",
                victim.cookies(),
                encode(kind, &case.fields, Token::Last(own)),
            ));
        }
        let before = snapshot(&app).await;
        for (how, cookies, body) in attempts {
            let response = post(&app, &victim.client, &case.path, cookies, body).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{} {} with {how}",
                write.method,
                write.path
            );
            assert!(
                response.headers().get(SET_COOKIE).is_none(),
                "{} with {how}: no cookie set",
                write.path
            );
            assert!(
                response.text().await.unwrap().contains(REFUSAL),
                "{} with {how}: the refusal page",
                write.path
            );
        }
        let after = snapshot(&app).await;
        assert!(
            changed(&before, &after).is_empty(),
            "{} {}: refused, yet changed {:?}",
            write.method,
            write.path,
            changed(&before, &after)
        );
    }
    // Nobody was signed in or out.
    assert!(!browsers[&Who::Visitor].jar.contains_key(SESSION));
    let home = browsers[&Who::B]
        .client
        .get(app.url("/"))
        .header(COOKIE, browsers[&Who::B].cookies())
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK, "B is still signed in");

    // -----------------------------------------------------------------------------------------
    // The same forms with the right token act (the positive control of every route, both
    // kinds of form among them).
    for pattern in acting {
        let case = &cases[pattern];
        let kind = kind_of[pattern];
        let victim = browsers.get_mut(&case.who).unwrap();
        let before = snapshot(&app).await;
        let response = post(
            &app,
            &victim.client,
            &case.path,
            victim.cookies(),
            encode(kind, &case.fields, Token::First(&own_tokens[&case.who])),
        )
        .await;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        victim.keep(&response);
        let page = response.text().await.unwrap();
        assert_eq!(
            status,
            answered_with_a_page
                .get(pattern)
                .copied()
                .unwrap_or(StatusCode::SEE_OTHER),
            "POST {pattern} ({kind:?}) with the right token acts: {page}"
        );
        // Nor to the confirmation page: the act itself was done.
        let to = location.as_deref().unwrap_or_default();
        assert!(!to.starts_with("/account/confirm"), "{pattern}: {to}");
        // Not the way to the sign-in page that a signed-out browser is shown.
        let signed_out = pattern == "/logout";
        assert_eq!(
            location.as_deref() == Some("/login"),
            signed_out,
            "{pattern}: {location:?}"
        );
        // The visitor's sign-in waits for its code.
        if pattern == "/login" {
            assert_eq!(location.as_deref(), Some("/login/code"));
        }
        let after = snapshot(&app).await;
        assert!(
            !changed(&before, &after).is_empty(),
            "POST {pattern} with the right token changed something"
        );
    }
    assert!(
        browsers[&Who::Visitor].jar.contains_key(SESSION),
        "the visitor signed in"
    );
}
