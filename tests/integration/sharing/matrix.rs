//! The agreement matrix: for every role × relation × consent state × action, Casbin's decision
//! and the database's both match the rules written out, and the application never allows what
//! the database refuses.

use super::probes::database_decisions;
use super::rules::{casbin_allows, database_allows, Consent, Relation};
use super::*;

#[tokio::test]
async fn casbin_and_row_level_security_agree_on_every_cell() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "SHR-REG", FacilityKind::Clinic).await;
    let member = place(&app, "SHR-MEM", FacilityKind::VisitingNurseStation).await;
    let invited = place(&app, "SHR-INV", FacilityKind::Pharmacy).await;
    let former = place(&app, "SHR-OLD", FacilityKind::CareManagementOffice).await;
    let unrelated = place(&app, "SHR-UNR", FacilityKind::Hospital).await;
    let emergency = place(&app, "SHR-EMG", FacilityKind::Hospital).await;
    let support = place(&app, "SHR-SUP", FacilityKind::Hospital).await;
    let spare = app.seed_facility("SHR-NEW", FacilityKind::Clinic).await;
    let places = [
        (Relation::Registering, &registering),
        (Relation::ActiveMember, &member),
        (Relation::InvitedNotAccepted, &invited),
        (Relation::FormerMember, &former),
        (Relation::Unrelated, &unrelated),
        (Relation::Emergency, &emergency),
        (Relation::Support, &support),
    ];

    let mut patients = Vec::new();
    for (consent, name) in [
        (Consent::Active, "同意 ある"),
        (Consent::Withdrawn, "撤回 した"),
        (Consent::Renewed, "再同意 した"),
        (Consent::None, "同意 なし"),
    ] {
        let p = app
            .seed_patient(&registering.admin, name, "テスト カンジャ")
            .await
            .id;
        let by_registering = actor(&registering.admin);
        if consent != Consent::None {
            let signer = Signer::family("試験 花子", "長女").unwrap();
            record_consent(
                &app.db,
                &keyring,
                &app.files,
                &renrakucho_testkit::acting::allowed(by_registering, p),
                &origin,
                form(signer),
                None,
            )
            .await
            .unwrap();
        }
        for m in [&member, &invited, &former] {
            invite(
                &app.db,
                &renrakucho_testkit::acting::allowed(by_registering, p),
                &origin,
                &m.facility.code,
            )
            .await
            .unwrap();
        }
        accept_invitation(
            &app.db,
            &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
            &origin,
        )
        .await
        .unwrap();
        accept_invitation(
            &app.db,
            &renrakucho_testkit::acting::allowed(actor(&former.admin), p),
            &origin,
        )
        .await
        .unwrap();
        leave(
            &app.db,
            &renrakucho_testkit::acting::allowed(actor(&former.admin), p),
            &origin,
        )
        .await
        .unwrap();
        if matches!(consent, Consent::Withdrawn | Consent::Renewed) {
            withdraw_consent(
                &app.db,
                &renrakucho_testkit::acting::allowed(by_registering, p),
                &origin,
            )
            .await
            .unwrap();
        }
        if consent == Consent::Renewed {
            let recorded = record_consent(
                &app.db,
                &keyring,
                &app.files,
                &renrakucho_testkit::acting::allowed(by_registering, p),
                &origin,
                ConsentForm {
                    signer: Signer::Patient,
                    signed_on: time::OffsetDateTime::now_utc()
                        .to_offset(time::macros::offset!(+9))
                        .date(),
                    scope: ConsentScope::standard(),
                },
                Some(renrakucho_registry::NewScan {
                    bytes: renrakucho_testkit::PNG_1X1.to_vec(),
                }),
            )
            .await
            .unwrap();
            assert!(recorded.renewal);
        }
        // An entry on every notebook, and (where consent allows sending anything) a support
        // request to the other hospital that shares none of them.
        let author = renrakucho_testkit::acting::Writer {
            actor: by_registering,
            name: "試験 太郎".into(),
            profession: Profession::Doctor,
            facility_admin: true,
        };
        renrakucho_notebook::post_entry(
            &app.db,
            &keyring,
            &author.on(p),
            &origin,
            renrakucho_notebook::NewEntryInput {
                content: renrakucho_notebook::EntryContent {
                    category: renrakucho_core::Category::Treatment,
                    priority: renrakucho_core::Priority::Info,
                    body: renrakucho_core::EntryBody::parse("訪問診療。著変なし。").unwrap(),
                    vitals: None,
                    mentions: vec![],
                },
                reply_to: None,
                attachments: vec![],
            },
        )
        .await
        .unwrap();
        if consent == Consent::Active {
            renrakucho_notebook::send_support_request(
                &app.db,
                &keyring,
                &author.on(p),
                &origin,
                renrakucho_notebook::NewSupportRequest {
                    to_code: support.facility.code.clone(),
                    kind: renrakucho_core::SupportKind::SecondOpinion,
                    question: "皮膚の所見について意見をいただけますか".into(),
                    summary: "80代女性".into(),
                    entries: vec![],
                    attachments: vec![],
                },
            )
            .await
            .unwrap();
        }
        // An open emergency grant for the hospital (through the application, which checks the
        // card number and the date of birth; the fixture patient was born on 1940-01-15).
        let card = renrakucho_registry::patient_card(
            &app.db,
            &keyring,
            &renrakucho_testkit::acting::allowed(by_registering, p),
            &origin,
        )
        .await
        .unwrap();
        let opened = app
            .client_for(&emergency.facility, "admin")
            .await
            .post(app.url("/api/v1/emergency-access"))
            .json(&serde_json::json!({
                "card_number": card.number,
                "birth_date": "1940-01-15",
                "reason": "救急搬送時に既往歴と服薬を確認するため",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status(), 201, "{}", opened.text().await.unwrap());
        patients.push((consent, p));
    }
    // The last change of each patient has reached the server's authorizer.
    for (consent, p) in &patients {
        settled(
            &app,
            &member.facility,
            *p,
            matches!(consent, Consent::Active | Consent::Renewed),
        )
        .await;
        settled(&app, &emergency.facility, *p, true).await;
    }

    let roles = Role::all();
    let mut cells = 0;
    for (relation, place) in places {
        for (consent, patient) in &patients {
            // Removal aims at another facility's membership: the invited one's, or (for the
            // invited facility itself) the member's.
            let other = if relation == Relation::InvitedNotAccepted {
                &member.facility
            } else {
                &invited.facility
            };
            let database = database_decisions(&app, place, *patient, &spare, other).await;
            for (action, allowed) in &database {
                assert_eq!(
                    *allowed,
                    database_allows(relation, *consent, *action),
                    "database: {} by a {relation:?} facility, consent {consent:?}",
                    action.as_str()
                );
            }
            for role in &roles {
                for action in Action::ALL {
                    let decided = app
                        .authz
                        .allowed(&[*role], place.facility.id, *patient, *action)
                        .await
                        .unwrap();
                    let expected = casbin_allows(*role, relation, *consent, *action);
                    assert_eq!(
                        decided,
                        expected,
                        "casbin: {} {} in a {relation:?} facility, consent {consent:?}",
                        role.as_str(),
                        action.as_str()
                    );
                    // The application never allows what the database refuses.
                    assert!(
                        !decided || database.iter().any(|(a, allowed)| a == action && *allowed),
                        "casbin allows {} {} where the database refuses",
                        role.as_str(),
                        action.as_str()
                    );
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, places.len() * 4 * roles.len() * Action::ALL.len());
}
