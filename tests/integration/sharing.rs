//! Consent-gated sharing, both layers: for every role × relation of the facility to the patient
//! × consent state × action, Casbin's decision and what the database shows the runtime role
//! must both match the table written out here.

use std::time::Duration;

use renrakucho_authz::{Action, Role};
use renrakucho_care::{
    accept_invitation, invite, leave, record_consent, withdraw_consent, ConsentForm, Signer,
    StaffActor,
};
use renrakucho_core::{FacilityKind, PatientId, Profession, StaffRole};
use renrakucho_store::audit::Origin;
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app, TestApp};

/// What each role may do to a patient its facility may see: `policies/policy.csv`, restated
/// independently so that a change to either shows up here.
fn role_may(role: Role, action: Action) -> bool {
    use Action::*;
    let actions: &[Action] = match role {
        Role::Profession(Profession::Doctor) | Role::Profession(Profession::Nurse) => &[
            PatientRead,
            PatientRegister,
            PatientUpdate,
            ConsentRead,
            ConsentRecord,
            ConsentWithdraw,
            CareTeamRead,
            CareTeamInvite,
            NotebookRead,
            NotebookWrite,
            DeletionRecord,
            EmergencyOpen,
        ],
        Role::Profession(Profession::Dentist) => &[
            PatientRead,
            ConsentRead,
            CareTeamRead,
            CareTeamInvite,
            NotebookRead,
            NotebookWrite,
            DeletionRecord,
            EmergencyOpen,
        ],
        Role::Profession(Profession::Pharmacist) => &[
            PatientRead,
            ConsentRead,
            CareTeamRead,
            NotebookRead,
            NotebookWrite,
            DeletionRecord,
        ],
        Role::Profession(Profession::CareManager) => &[
            PatientRead,
            PatientRegister,
            PatientUpdate,
            ConsentRead,
            ConsentRecord,
            ConsentWithdraw,
            CareTeamRead,
            CareTeamInvite,
            NotebookRead,
            NotebookWrite,
            DeletionRecord,
        ],
        Role::Profession(Profession::CareWorker) | Role::Profession(Profession::Therapist) => {
            &[PatientRead, CareTeamRead, NotebookRead, NotebookWrite]
        }
        Role::Profession(Profession::Clerk) => &[
            PatientRead,
            PatientRegister,
            PatientUpdate,
            ConsentRead,
            ConsentRecord,
            CareTeamRead,
        ],
        Role::Profession(Profession::Other) => &[],
        Role::FacilityAdmin => &[
            CareTeamRead,
            CareTeamAccept,
            CareTeamLeave,
            CareTeamRemove,
            CareTeamInvite,
        ],
    };
    actions.contains(&action)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Registering,
    ActiveMember,
    InvitedNotAccepted,
    FormerMember,
    Unrelated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    Active,
    Withdrawn,
    None,
}

/// The rule: the registering facility always; an active member while consent is on file.
fn may_see(relation: Relation, consent: Consent) -> bool {
    relation == Relation::Registering
        || (relation == Relation::ActiveMember && consent == Consent::Active)
}

struct Place {
    facility: Facility,
    admin: StaffAccount,
}

fn actor(staff: &StaffAccount) -> StaffActor {
    StaffActor {
        staff: staff.id,
        facility: staff.facility_id,
    }
}

async fn place(app: &TestApp, code: &str, kind: FacilityKind) -> Place {
    let facility = app.seed_facility(code, kind).await;
    let admin = app
        .seed_staff(
            &facility,
            "admin",
            StaffRole::FacilityAdmin,
            Profession::Doctor,
        )
        .await;
    Place { facility, admin }
}

async fn db_sees(app: &TestApp, facility: &Facility, patient: PatientId) -> bool {
    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE id = $1")
        .bind(patient.as_uuid())
        .fetch_one(tx.raw_connection_for_tests())
        .await
        .unwrap();
    // The patient's data key and search terms follow the same rule.
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM data_keys WHERE owner_kind = 'patient' AND owner_id = $1",
    )
    .bind(patient.as_uuid())
    .fetch_one(tx.raw_connection_for_tests())
    .await
    .unwrap();
    let terms: i64 =
        sqlx::query_scalar("SELECT count(*) FROM patient_name_terms WHERE patient_id = $1")
            .bind(patient.as_uuid())
            .fetch_one(tx.raw_connection_for_tests())
            .await
            .unwrap();
    assert_eq!((keys > 0), (n > 0), "data keys follow the patient");
    assert_eq!((terms > 0), (n > 0), "search terms follow the patient");
    n == 1
}

/// Waits (bounded) until the running server's authorizer has applied the announced changes.
async fn settled(app: &TestApp, facility: &Facility, patient: PatientId, expected: bool) {
    let doctor = Role::Profession(Profession::Doctor);
    for _ in 0..100 {
        let now = app
            .authz
            .allowed(doctor, facility.id, patient, Action::PatientRead)
            .await
            .unwrap();
        if now == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the authorizer did not follow the database within a second");
}

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
    let places = [
        (Relation::Registering, &registering),
        (Relation::ActiveMember, &member),
        (Relation::InvitedNotAccepted, &invited),
        (Relation::FormerMember, &former),
        (Relation::Unrelated, &unrelated),
    ];

    let mut patients = Vec::new();
    for (consent, name) in [
        (Consent::Active, "同意 ある"),
        (Consent::Withdrawn, "撤回 した"),
        (Consent::None, "同意 なし"),
    ] {
        let p = app
            .seed_patient(&registering.admin, name, "テスト カンジャ")
            .await
            .id;
        let by_registering = actor(&registering.admin);
        if consent != Consent::None {
            let form = ConsentForm {
                signer: Signer::Family {
                    name: "試験 花子".into(),
                    relation: "長女".into(),
                },
                signed_on: time::macros::date!(2026 - 11 - 01),
            };
            record_consent(&app.db, &keyring, by_registering, &origin, p, form)
                .await
                .unwrap();
        }
        for m in [&member, &invited, &former] {
            invite(&app.db, by_registering, &origin, p, m.facility.id)
                .await
                .unwrap();
        }
        accept_invitation(&app.db, actor(&member.admin), &origin, p)
            .await
            .unwrap();
        accept_invitation(&app.db, actor(&former.admin), &origin, p)
            .await
            .unwrap();
        leave(&app.db, actor(&former.admin), &origin, p)
            .await
            .unwrap();
        if consent == Consent::Withdrawn {
            withdraw_consent(&app.db, by_registering, &origin, p)
                .await
                .unwrap();
        }
        patients.push((consent, p));
    }
    // The last change of each patient is visible to the server's authorizer.
    for (consent, p) in &patients {
        settled(
            &app,
            &member.facility,
            *p,
            may_see(Relation::ActiveMember, *consent),
        )
        .await;
    }

    let roles: Vec<Role> = Profession::ALL
        .iter()
        .map(|p| Role::Profession(*p))
        .chain([Role::FacilityAdmin])
        .collect();
    let mut cells = 0;
    for (relation, place) in places {
        for (consent, patient) in &patients {
            let visible = may_see(relation, *consent);
            assert_eq!(
                db_sees(&app, &place.facility, *patient).await,
                visible,
                "database: {relation:?}, consent {consent:?}"
            );
            for role in &roles {
                for action in Action::ALL {
                    let expected = visible && role_may(*role, *action);
                    let decided = app
                        .authz
                        .allowed(*role, place.facility.id, *patient, *action)
                        .await
                        .unwrap();
                    assert_eq!(
                        decided,
                        expected,
                        "casbin: {role:?} {} in a {relation:?} facility, consent {consent:?}",
                        action.as_str()
                    );
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, 5 * 3 * roles.len() * Action::ALL.len());
}

#[tokio::test]
async fn withdrawing_consent_cuts_every_facility_but_the_registering_one_at_once() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "WDR-REG", FacilityKind::Clinic).await;
    let member = place(&app, "WDR-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "撤回 太郎", "テッカイ タロウ")
        .await
        .id;
    invite(
        &app.db,
        actor(&registering.admin),
        &origin,
        p,
        member.facility.id,
    )
    .await
    .unwrap();
    accept_invitation(&app.db, actor(&member.admin), &origin, p)
        .await
        .unwrap();
    assert!(!db_sees(&app, &member.facility, p).await, "no consent yet");
    settled(&app, &member.facility, p, false).await;

    // Consent on file: the member sees the patient, in both layers; consent is not asked again
    // of a facility joining later.
    record_consent(
        &app.db,
        &keyring,
        actor(&registering.admin),
        &origin,
        p,
        ConsentForm {
            signer: Signer::Patient,
            signed_on: time::macros::date!(2026 - 11 - 20),
        },
    )
    .await
    .unwrap();
    assert!(db_sees(&app, &member.facility, p).await);
    settled(&app, &member.facility, p, true).await;

    withdraw_consent(&app.db, actor(&registering.admin), &origin, p)
        .await
        .unwrap();
    assert!(
        !db_sees(&app, &member.facility, p).await,
        "at once in the database"
    );
    settled(&app, &member.facility, p, false).await;
    assert!(db_sees(&app, &registering.facility, p).await);
    settled(&app, &registering.facility, p, true).await;
}
