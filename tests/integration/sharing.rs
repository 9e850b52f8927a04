//! Consent-gated sharing, both layers. For every role × relation of the facility to the patient
//! × consent state × action, Casbin's decision and what the database lets the runtime role do
//! must both match the tables written out here; then the flows (consent withdrawn, members
//! joining, leaving and removed, several server processes) and the database's own guards.

use renrakucho_authz::{Action, Role};
use renrakucho_core::{FacilityKind, PatientId, Profession, StaffRole};
use renrakucho_registry::{
    accept_invitation, invite, leave, record_consent, withdraw_consent, ConsentForm, ConsentScope,
    Signer, StaffActor,
};
use renrakucho_store::audit::Origin;
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::PgConnection;

use crate::support::superuser;

/// A facility's relation to a patient, as the test sets it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Registering,
    ActiveMember,
    InvitedNotAccepted,
    FormerMember,
    Unrelated,
    /// Unrelated, with an open emergency grant.
    Emergency,
    /// Asked for support in an open request (possible only with consent on file).
    Support,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    /// On file, never withdrawn.
    Active,
    /// Withdrawn, nothing recorded since.
    Withdrawn,
    /// Withdrawn, then renewed by the registering facility (ADR 0014).
    Renewed,
    /// Never recorded.
    None,
}

/// The relations (policies/model.conf) a facility holds: the rule, written out.
fn held(relation: Relation, consent: Consent) -> &'static [&'static str] {
    use Consent::*;
    match (relation, consent) {
        (Relation::Registering, Active | Renewed) => {
            &["registering", "sharing", "consented", "collecting"]
        }
        (Relation::Registering, Withdrawn) => &["registering", "sharing", "withdrawn"],
        (Relation::Registering, None) => &["registering", "sharing", "collecting"],
        (Relation::ActiveMember, Active | Renewed) => {
            &["member", "sharing", "consented", "collecting"]
        }
        (Relation::ActiveMember, Withdrawn) => &["member", "withdrawn"],
        (Relation::ActiveMember, None) => &["member", "collecting"],
        (Relation::InvitedNotAccepted, _) => &["invited"],
        (Relation::FormerMember | Relation::Unrelated, _) => &[],
        (Relation::Emergency, _) => &["emergency"],
        (Relation::Support, Active) => &["support"],
        (Relation::Support, _) => &[],
    }
}

/// What each role may do and through which relation: `policies/policy.csv`, restated
/// independently so that a change to either shows up here.
fn grants(role: Role) -> Vec<(Action, &'static str)> {
    use Action::*;
    let clinical = vec![
        (PatientRegister, "anyone"),
        (PatientRead, "sharing"),
        (PatientRead, "emergency"),
        (PatientUpdate, "registering"),
        (PatientCardReissue, "registering"),
        (ConsentRead, "sharing"),
        (ConsentRecord, "collecting"),
        (ConsentRenew, "registering"),
        (ConsentWithdraw, "sharing"),
        (ConsentChanges, "registering"),
        (ConsentChanges, "member"),
        (CareTeamRead, "sharing"),
        (CareTeamRead, "emergency"),
        (CareTeamInvite, "sharing"),
        (NotebookRead, "sharing"),
        (NotebookRead, "emergency"),
        (NotebookWrite, "sharing"),
        (DeletionRecord, "sharing"),
        (EmergencyOpen, "anyone"),
        (SupportRequest, "consented"),
        (SupportAnswer, "support"),
    ];
    match role {
        Role::Profession(Profession::Doctor) | Role::Profession(Profession::Nurse) => clinical,
        Role::Profession(Profession::Dentist) => clinical
            .into_iter()
            .filter(|(a, _)| {
                !matches!(
                    a,
                    PatientRegister
                        | PatientUpdate
                        | PatientCardReissue
                        | ConsentRecord
                        | ConsentRenew
                        | ConsentWithdraw
                )
            })
            .collect(),
        Role::Profession(Profession::Pharmacist) => vec![
            (PatientRead, "sharing"),
            (ConsentRead, "sharing"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (NotebookRead, "sharing"),
            (NotebookWrite, "sharing"),
            (DeletionRecord, "sharing"),
            (SupportRequest, "consented"),
            (SupportAnswer, "support"),
        ],
        Role::Profession(Profession::CareManager) => vec![
            (PatientRegister, "anyone"),
            (PatientRead, "sharing"),
            (PatientUpdate, "registering"),
            (PatientCardReissue, "registering"),
            (ConsentRead, "sharing"),
            (ConsentRecord, "collecting"),
            (ConsentRenew, "registering"),
            (ConsentWithdraw, "sharing"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (CareTeamInvite, "sharing"),
            (NotebookRead, "sharing"),
            (NotebookWrite, "sharing"),
            (DeletionRecord, "sharing"),
            (SupportRequest, "consented"),
            (SupportAnswer, "support"),
        ],
        Role::Profession(Profession::CareWorker) | Role::Profession(Profession::Therapist) => vec![
            (PatientRead, "sharing"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (NotebookRead, "sharing"),
            (NotebookWrite, "sharing"),
        ],
        Role::Profession(Profession::Clerk) => vec![
            (PatientRegister, "anyone"),
            (PatientRead, "sharing"),
            (PatientUpdate, "registering"),
            (PatientCardReissue, "registering"),
            (ConsentRead, "sharing"),
            (ConsentRecord, "collecting"),
            (ConsentRenew, "registering"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
        ],
        Role::Profession(Profession::Other) => vec![],
        Role::FacilityAdmin => vec![
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (CareTeamInvite, "sharing"),
            (CareTeamAccept, "invited"),
            (CareTeamLeave, "member"),
            (CareTeamRemove, "registering"),
            (PatientCardReissue, "registering"),
        ],
        Role::CareTeamAcceptor => vec![(CareTeamAccept, "invited")],
    }
}

/// What the database lets a facility in `relation` do, whatever the person's role: the row-level
/// security rules, written out.
fn database_allows(relation: Relation, consent: Consent, action: Action) -> bool {
    use Action::*;
    let rel = held(relation, consent);
    let has = |r: &str| rel.contains(&r);
    match action {
        PatientRegister | EmergencyOpen => true,
        PatientRead | NotebookRead => has("sharing") || has("emergency"),
        PatientUpdate | PatientCardReissue => has("registering"),
        // A facility that sees the patient in an emergency does not see consents; where none
        // was ever recorded there is nothing to hide, and the database cannot show otherwise.
        ConsentRead | ConsentWithdraw => {
            has("sharing") || (consent == Consent::None && has("emergency"))
        }
        CareTeamInvite | NotebookWrite | DeletionRecord => has("sharing"),
        SupportRequest => has("consented"),
        SupportAnswer => has("support"),
        // Recording needs `collecting`; while the consent is withdrawn only a renewal (with a
        // scan, by the registering facility) goes in.
        ConsentRecord => has("collecting"),
        ConsentRenew => has("registering") || has("collecting"),
        // Every facility of the team reads the changes; with none recorded there is nothing to
        // hide, and the database cannot show otherwise.
        ConsentChanges => consent == Consent::None || has("registering") || has("member"),
        CareTeamRead => has("sharing") || has("emergency"),
        CareTeamAccept => has("invited"),
        CareTeamLeave => has("member"),
        CareTeamRemove => has("registering"),
    }
}

/// Casbin's expected decision: some relation the facility holds (or none needed) carries a
/// grant of the role for the action.
fn casbin_allows(role: Role, relation: Relation, consent: Consent, action: Action) -> bool {
    let rel = held(relation, consent);
    grants(role)
        .iter()
        .any(|(a, via)| *a == action && (*via == "anyone" || rel.contains(via)))
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

fn form(signer: Signer) -> ConsentForm {
    ConsentForm {
        signer,
        signed_on: time::macros::date!(2026 - 11 - 01),
        scope: ConsentScope::standard(),
    }
}

/// Runs `sql` (with `$1` = the patient) in a savepoint and rolls it back: whether the database
/// let it through, and how many rows it touched or counted.
async fn attempt(conn: &mut PgConnection, sql: &str, patient: PatientId) -> Option<i64> {
    sqlx::raw_sql("SAVEPOINT probe")
        .execute(&mut *conn)
        .await
        .unwrap();
    // A probe may start with statements of its own (without parameters), separated by a line
    // holding only `;`: what the application runs before the statement that decides.
    let mut parts: Vec<&str> = sql.split("\n;\n").collect();
    let sql = parts.pop().expect("a statement");
    let mut prepared = Ok(());
    for setup in parts {
        prepared = sqlx::raw_sql(setup).execute(&mut *conn).await.map(|_| ());
        if prepared.is_err() {
            break;
        }
    }
    let result = if let Err(e) = prepared {
        Err(e)
    } else if sql.trim_start().starts_with("SELECT") {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(patient.as_uuid())
            .fetch_one(&mut *conn)
            .await
    } else {
        sqlx::query(sql)
            .bind(patient.as_uuid())
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected() as i64)
    };
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT probe")
        .execute(&mut *conn)
        .await
        .unwrap();
    match result {
        Ok(n) => Some(n),
        Err(e) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string());
            // Refused by a policy or a guard (42501), or by a rule of the schema (23514: a
            // consent recorded while withdrawn without the renewal's scan).
            assert!(
                matches!(code.as_deref(), Some("42501" | "23514")),
                "{sql}: unexpected error {e}"
            );
            None
        }
    }
}

/// How many rows of `table` exist for the patient, whoever may see them.
async fn total(su: &mut PgConnection, table: &str, column: &str, patient: PatientId) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {column} = $1"))
        .bind(patient.as_uuid())
        .fetch_one(su)
        .await
        .unwrap()
}

/// What the database lets `facility` do to `patient`, action by action, each probe in a
/// savepoint that is rolled back. `spare` is a facility in no care team (to invite), `other`
/// the facility whose membership a removal aims at.
async fn database_decisions(
    app: &TestApp,
    facility: &Place,
    patient: PatientId,
    spare: &Facility,
    other: &Facility,
) -> Vec<(Action, bool)> {
    let mut su = superuser(app).await;
    let consents = total(&mut su, "consents", "patient_id", patient).await;
    let changes = total(&mut su, "consent_changes", "patient_id", patient).await;
    let members = total(&mut su, "care_team_members", "patient_id", patient).await;
    let entries = total(&mut su, "entries", "patient_id", patient).await;
    let registering: uuid::Uuid =
        sqlx::query_scalar("SELECT facility_id FROM patients WHERE id = $1")
            .bind(patient.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    // The card's keyed lookup and birth check, as the server computes them from the number and
    // the date of birth: a grant needs the database to confirm them in its transaction.
    let (lookup, birth_check): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT lookup, birth_check FROM patient_cards WHERE patient_id = $1")
            .bind(patient.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (lookup, birth_check) = (hex(lookup), hex(birth_check));

    // As a staff member's request runs: the facility and the person acting.
    let mut tx = app
        .db
        .begin(Scope::Staff {
            facility: facility.facility.id,
            staff: facility.admin.id,
        })
        .await
        .unwrap();
    let conn = tx.raw_connection_for_tests();
    let me = facility.facility.id.as_uuid();
    let staff = facility.admin.id.as_uuid();
    let visible =
        attempt(conn, "SELECT count(*) FROM patients WHERE id = $1", patient).await == Some(1);
    // Search terms (for finding patients the facility shares) never show without the patient.
    let terms = attempt(
        conn,
        "SELECT count(*) FROM patient_name_terms WHERE patient_id = $1",
        patient,
    )
    .await;
    assert!(
        terms.unwrap_or(0) == 0 || visible,
        "search terms are never visible without the patient"
    );

    let mut decisions = Vec::new();
    for action in Action::ALL {
        let sql = match action {
            Action::PatientRegister => format!(
                "INSERT INTO patients (id, facility_id, name_enc, kana_enc, profile_enc,
                                       registered_by)
                 SELECT gen_random_uuid(), '{me}', '\\x00', '\\x00', '\\x00', '{staff}'
                  WHERE $1::uuid IS NOT NULL"
            ),
            Action::PatientRead => "SELECT count(*) FROM patients WHERE id = $1".into(),
            Action::NotebookRead => "SELECT count(*) FROM entries WHERE patient_id = $1".into(),
            Action::PatientUpdate => "UPDATE patients SET updated_at = now() WHERE id = $1".into(),
            Action::PatientCardReissue => {
                format!(
                    "UPDATE patient_cards SET issued_at = now(), issued_by = '{staff}'
                      WHERE patient_id = $1"
                )
            }
            Action::ConsentRead => "SELECT count(*) FROM consents WHERE patient_id = $1".into(),
            Action::ConsentRecord => format!(
                "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id,
                                       signer, details_enc, signed_on, recorded_by)
                 VALUES (gen_random_uuid(), $1, '{registering}', '{me}', 'patient', '\\x00',
                         (now() AT TIME ZONE 'Asia/Tokyo')::date, '{staff}')"
            ),
            Action::ConsentRenew => format!(
                "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id,
                                       signer, details_enc, signed_on, scan_object,
                                       scan_media_type, scan_size, recorded_by)
                 VALUES (gen_random_uuid(), $1, '{registering}', '{me}', 'patient', '\\x00',
                         (now() AT TIME ZONE 'Asia/Tokyo')::date, 'consents/probe/scan',
                         'image/png', 1, '{staff}')"
            ),
            Action::ConsentChanges => {
                "SELECT count(*) FROM consent_changes WHERE patient_id = $1".into()
            }
            Action::ConsentWithdraw => {
                "SELECT count(*) FROM (SELECT FROM consents WHERE patient_id = $1 FOR UPDATE) c"
                    .into()
            }
            Action::CareTeamRead => {
                "SELECT count(*) FROM care_team_members WHERE patient_id = $1".into()
            }
            Action::CareTeamInvite => format!(
                "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id,
                                                role, status, invited_by)
                 VALUES ($1, '{registering}', '{}', 'member', 'invited', '{staff}')",
                spare.id.as_uuid()
            ),
            Action::CareTeamAccept => format!(
                "UPDATE care_team_members SET status = 'active', joined_at = now()
                  WHERE patient_id = $1 AND facility_id = '{me}' AND status = 'invited'"
            ),
            Action::CareTeamLeave => format!(
                "UPDATE care_team_members SET status = 'left', ended_at = now()
                  WHERE patient_id = $1 AND facility_id = '{me}' AND status = 'active'"
            ),
            Action::CareTeamRemove => format!(
                "UPDATE care_team_members SET status = 'removed', ended_at = now()
                  WHERE patient_id = $1 AND facility_id = '{}'
                    AND status IN ('active', 'invited')",
                other.id.as_uuid()
            ),
            Action::NotebookWrite => format!(
                "INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                      author_profession, category, priority, body_enc)
                 VALUES (gen_random_uuid(), $1, '{me}', '{staff}', '試験', 'doctor', 'other',
                         'info', '\\x00')"
            ),
            Action::SupportRequest => format!(
                "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                               requested_by, question_enc, summary_enc)
                 VALUES (gen_random_uuid(), $1, '{me}', '{}', 'information', '{staff}',
                         '\\x00', '\\x00')",
                spare.id.as_uuid()
            ),
            Action::SupportAnswer => format!(
                "UPDATE support_requests SET status = 'accepted'
                  WHERE patient_id = $1 AND to_facility_id = '{me}' AND status = 'requested'"
            ),
            Action::DeletionRecord => format!(
                "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
                 VALUES (gen_random_uuid(), '{me}', $1, '{staff}')"
            ),
            // Identified first, as the server does after comparing the number and the date of
            // birth (the database accepts a grant only then, ADR 0018).
            Action::EmergencyOpen => format!(
                "SELECT emergency_identified('\\x{lookup}', '\\x{birth_check}')
;
                 INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, reason_enc,
                                               expires_at)
                 VALUES (gen_random_uuid(), '{me}', $1, '{staff}', '\\x00',
                         now() + interval '1 hour')"
            ),
        };
        let outcome = attempt(conn, &sql, patient).await;
        let allowed = match action {
            // Seeing the patient and every one of their consents (or care-team rows).
            Action::ConsentRead | Action::ConsentWithdraw => visible && outcome == Some(consents),
            Action::CareTeamRead => visible && outcome == Some(members),
            Action::ConsentChanges => outcome == Some(changes),
            // Every entry of the notebook, not just some shared in a request.
            Action::NotebookRead => entries > 0 && outcome == Some(entries),
            _ => outcome == Some(1),
        };
        decisions.push((*action, allowed));
    }
    tx.commit().await.unwrap();
    decisions
}

/// Waits (bounded) until the running server's authorizer has applied the announced changes.
async fn settled(app: &TestApp, facility: &Facility, patient: PatientId, expected: bool) {
    let everyone = Role::all();
    crate::support::wait_until("the authorizer following the database", || async {
        app.authz
            .allowed(&everyone, facility.id, patient, Action::PatientRead)
            .await
            .unwrap()
            == expected
    })
    .await;
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

#[tokio::test]
async fn withdrawing_consent_cuts_every_facility_but_the_registering_one_at_once() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "WDR-REG", FacilityKind::Clinic).await;
    let member = place(&app, "WDR-MEM", FacilityKind::Pharmacy).await;
    let late = place(&app, "WDR-LATE", FacilityKind::VisitingNurseStation).await;
    let p = app
        .seed_patient(&registering.admin, "撤回 太郎", "テッカイ タロウ")
        .await
        .id;
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        &member.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    settled(&app, &member.facility, p, false).await;
    let member_client = app.client_for(&member.facility, "admin").await;
    let url = app.url(&format!("/api/v1/patients/{}", p.as_uuid()));
    let seen = member_client.get(&url).send().await.unwrap();
    assert_eq!(seen.status(), 404, "no consent yet: not even its existence");

    // The member collected the signed form itself: recording it opens the notebook to the team.
    record_consent(
        &app.db,
        &keyring,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    settled(&app, &member.facility, p, true).await;
    assert_eq!(member_client.get(&url).send().await.unwrap().status(), 200);

    // A facility joining later reuses the consent on file: no new form (第12条 ただし書き).
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
        &late.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&late.admin), p),
        &origin,
    )
    .await
    .unwrap();
    settled(&app, &late.facility, p, true).await;

    withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await
    .unwrap();
    // At once in the database, and as soon as the announcement arrives in the authorizer.
    let mut tx = app
        .db
        .begin(Scope::Facility(member.facility.id))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE id = $1")
        .bind(p.as_uuid())
        .fetch_one(tx.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(n, 0);
    drop(tx);
    settled(&app, &member.facility, p, false).await;
    settled(&app, &late.facility, p, false).await;
    settled(&app, &registering.facility, p, true).await;
    assert_eq!(member_client.get(&url).send().await.unwrap().status(), 404);
    // Withdrawing again is a clear conflict, not a silent success.
    let again = withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await;
    assert!(matches!(
        again,
        Err(renrakucho_registry::CareError::Conflict(_))
    ));
}

#[tokio::test]
async fn the_database_guards_membership_moves_and_withdrawn_consent() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "GRD-REG", FacilityKind::Clinic).await;
    let member = place(&app, "GRD-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "守り 花子", "マモリ ハナコ")
        .await
        .id;
    record_consent(
        &app.db,
        &keyring,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        &member.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    leave(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();

    let forbidden = |sql: &'static str, facility: renrakucho_core::FacilityId| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin(Scope::Facility(facility)).await.unwrap();
            let result = sqlx::query(sql)
                .bind(p.as_uuid())
                .execute(tx.raw_connection_for_tests())
                .await;
            match result {
                Ok(done) => done.rows_affected() == 0,
                Err(e) => e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42501"),
            }
        }
    };
    // A former member cannot let itself back in; the registering facility cannot accept on a
    // facility's behalf; nobody un-withdraws a consent or moves the registering facility out.
    assert!(
        forbidden(
            "UPDATE care_team_members SET status = 'active' WHERE patient_id = $1",
            member.facility.id
        )
        .await
    );
    assert!(
        forbidden(
            "UPDATE care_team_members SET status = 'active'
              WHERE patient_id = $1 AND role = 'member'",
            registering.facility.id
        )
        .await
    );
    assert!(
        forbidden(
            "UPDATE care_team_members SET status = 'left' WHERE patient_id = $1 AND role = 'registering'",
            registering.facility.id
        )
        .await
    );
    withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await
    .unwrap();
    assert!(
        forbidden(
            "UPDATE consents SET withdrawn_at = NULL, withdrawn_by = NULL,
                                 withdrawn_by_facility = NULL WHERE patient_id = $1",
            registering.facility.id
        )
        .await
    );
    // The runtime role writes no relation row itself.
    assert!(
        forbidden(
            "INSERT INTO patient_access (facility_id, patient_id, relation)
             SELECT facility_id, $1, 'sharing' FROM care_team_members LIMIT 1",
            member.facility.id
        )
        .await
    );
}

/// The outcome of `statements` run in order in one transaction of `scope` (`$1` = the
/// patient), rolled back: rows touched by the last one, or the SQLSTATE of the first failure.
async fn outcome(
    app: &TestApp,
    scope: Scope,
    statements: &[&str],
    patient: PatientId,
) -> Result<u64, String> {
    let mut tx = app.db.begin(scope).await.unwrap();
    let mut touched = 0;
    for sql in statements {
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") {
            query.bind(patient.as_uuid())
        } else {
            query
        };
        match query.execute(tx.raw_connection_for_tests()).await {
            Ok(done) => touched = done.rows_affected(),
            Err(e) => {
                return Err(e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| e.to_string()))
            }
        }
    }
    Ok(touched)
}

/// The patient's keys and rows answer to a deletion request only in the transaction that
/// records it; no facility but the registering one starts a new key version; key maintenance
/// re-wraps (a new wrap always with its master key) and does nothing else; re-encryption is
/// key maintenance's alone and never reaches history; and the owner-only flags (re-encryption,
/// erasure) mean nothing to the runtime role, even switched to its group role.
#[tokio::test]
async fn the_database_guards_keys_erasure_and_reencryption() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "KGD-REG", FacilityKind::Clinic).await;
    let member = place(&app, "KGD-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "鍵守 花子", "カギモリ ハナコ")
        .await
        .id;
    record_consent(
        &app.db,
        &keyring,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        &member.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    let at_member = Scope::Facility(member.facility.id);
    let at_registering = Scope::Facility(registering.facility.id);
    let request = format!(
        "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
         VALUES (gen_random_uuid(), '{}', $1, '{}')",
        member.facility.id.as_uuid(),
        member.admin.id.as_uuid()
    );
    let destroy = "UPDATE data_keys SET wrapped = NULL, destroyed_at = now()
                    WHERE owner_kind = 'patient' AND owner_id = $1";
    let mut su = superuser(&app).await;
    let live_keys = "SELECT count(*) FROM data_keys
                      WHERE owner_kind = 'patient' AND owner_id = $1 AND wrapped IS NOT NULL";
    let keys_before: i64 = sqlx::query_scalar(live_keys)
        .bind(p.as_uuid())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(keys_before, 1);

    // In the transaction that records the request, the member may carry it out (the
    // application does exactly this, then destroys the keys)…
    assert_eq!(
        outcome(&app, at_member, &[&request, "SELECT erase_patient($1)"], p).await,
        Ok(1)
    );
    assert_eq!(
        outcome(
            &app,
            at_member,
            &[&request, "SELECT erase_patient($1)", destroy],
            p
        )
        .await,
        Ok(1),
        "erasure destroys the key in the request's transaction"
    );
    // …but a request left behind by an earlier transaction gives no power later.
    let mut tx = app.db.begin(at_member).await.unwrap();
    sqlx::query(&request)
        .bind(p.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        outcome(&app, at_member, &["SELECT erase_patient($1)"], p).await,
        Err("P0002".into())
    );
    // The member reads the key (to store a consent form it collected) but may not destroy it.
    // Was: refused with 42501 (the key was visible for UPDATE and the new row failed the
    // check). Now the key is not visible for UPDATE at all outside erasure, so nothing is
    // updated: the statement changes no row, and the key is checked to be still there.
    assert_eq!(outcome(&app, at_member, &[destroy], p).await, Ok(0));
    // Neither may the registering facility, which holds the keys (stricter: before, it could
    // destroy them at any time).
    assert_eq!(outcome(&app, at_registering, &[destroy], p).await, Ok(0));
    let keys_after: i64 = sqlx::query_scalar(live_keys)
        .bind(p.as_uuid())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(keys_after, keys_before, "no key was destroyed");

    // A new version of the patient's key: the registering facility only; never born destroyed.
    let new_key = |facility: &Facility, version: i32, wrapped: &str| {
        format!(
            "INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id,
                                    wrapped, destroyed_at)
             VALUES ('patient', $1, {version}, '{}', 'local:test', {wrapped})",
            facility.id.as_uuid()
        )
    };
    assert_eq!(
        outcome(
            &app,
            at_member,
            &[&new_key(&member.facility, 9, "'\\x00', NULL")],
            p
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        outcome(
            &app,
            at_registering,
            &[&new_key(&registering.facility, 9, "NULL, now()")],
            p
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        outcome(
            &app,
            at_registering,
            &[&new_key(&registering.facility, 9, "'\\x00', NULL")],
            p
        )
        .await,
        Ok(1)
    );

    // Key maintenance re-wraps; it neither destroys nor creates a patient's key.
    assert_eq!(
        outcome(&app, Scope::KeyMaintenance, &[destroy], p).await,
        Err("42501".into())
    );
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &[&new_key(&registering.facility, 9, "'\\x00', NULL")],
            p
        )
        .await,
        Err("42501".into())
    );
    // New for the database boundary: nor does it clear a wrap without destroying, and a new
    // wrap comes with its master key (neither changes alone). Both together is a re-wrap.
    let rewrap = |set: &str| {
        format!("UPDATE data_keys SET {set} WHERE owner_kind = 'patient' AND owner_id = $1")
    };
    for set in [
        "wrapped = NULL",
        "wrapped = '\\x01'",
        "master_key_id = 'local:elsewhere'",
    ] {
        assert_eq!(
            outcome(&app, Scope::KeyMaintenance, &[&rewrap(set)], p).await,
            Err("42501".into()),
            "key maintenance: {set}"
        );
    }
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &[&rewrap(
                "wrapped = '\\x01', master_key_id = 'local:elsewhere', rewrapped_at = now()"
            )],
            p
        )
        .await,
        Ok(1)
    );

    // Re-encryption is key maintenance's alone: the runtime role may not call its functions at
    // all (stricter: before, the registering facility called them for its patients), with or
    // without its group role, and neither may the platform.
    let reencryption = [
        "SELECT count(*) FROM encrypted_values('patients', 'name_enc', $1)",
        "SELECT reencrypt_value('patients', 'name_enc', $1, $1, '\\x00'::bytea, '\\x01'::bytea)",
    ];
    for call in reencryption {
        for (scope, group) in [
            (at_registering, false),
            (at_registering, true),
            (at_member, false),
            (Scope::Platform, false),
        ] {
            let mut statements = Vec::new();
            if group {
                statements.push("SET LOCAL ROLE renrakucho_runtime");
            }
            statements.push(call);
            assert_eq!(
                outcome(&app, scope, &statements, p).await,
                Err("42501".into()),
                "{scope:?} (group role: {group}): {call}"
            );
        }
    }
    // Key maintenance calls them; history (entry_versions) too, which they read and may change
    // only from format 1 to format 2 (`keys bind-versions`, ADR 0016: the trigger refuses
    // anything else, tests/integration/keyring.rs); a column they do not know is refused.
    assert_eq!(
        outcome(&app, Scope::KeyMaintenance, &[reencryption[0]], p).await,
        Ok(1),
        "one row: the count of the patient's names"
    );
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &["SELECT count(*) FROM encrypted_values('entry_versions', 'body_enc', $1)"],
            p
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &["SELECT count(*) FROM encrypted_values('entry_versions', 'edited_by_name', $1)"],
            p
        )
        .await,
        Err("42501".into())
    );

    // The owner-only flags mean nothing to the runtime role: naming the patient as erasure's
    // target removes nothing (it has no DELETE on the patient's tables).
    for table in ["entries", "consents", "entry_versions"] {
        assert_eq!(
            outcome(
                &app,
                at_registering,
                &[
                    "SELECT set_config('renrakucho.erasure_patient', $1::text, true)",
                    &format!("DELETE FROM {table} WHERE patient_id = $1"),
                ],
                p
            )
            .await,
            Err("42501".into()),
            "{table}"
        );
    }

    // A withdrawn consent stays withdrawn, even for a runtime session that switches to its
    // group role and names the patient as if re-encrypting.
    withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await
    .unwrap();
    assert_eq!(
        outcome(
            &app,
            at_registering,
            &[
                "SET LOCAL ROLE renrakucho_runtime",
                "SELECT set_config('renrakucho.reencrypt_patient', $1::text, true)",
                "UPDATE consents SET withdrawn_at = NULL, withdrawn_by = NULL,
                                     withdrawn_by_facility = NULL
                  WHERE patient_id = $1",
            ],
            p
        )
        .await,
        Err("42501".into())
    );
}

#[tokio::test]
async fn a_change_reaches_every_server_process() {
    // Two servers on one database: a change made through one is followed by the other's
    // authorizer (PostgreSQL LISTEN/NOTIFY), without a reload.
    let app = spawn_app().await;
    let second = renrakucho_server::Application::build(&app.settings, &app.database.connections())
        .await
        .unwrap();
    let other = second.authorizer().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let origin = Origin::default();
    let registering = place(&app, "TWO-REG", FacilityKind::Clinic).await;
    let member = place(&app, "TWO-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "二重 一郎", "ニジュウ イチロウ")
        .await
        .id;
    record_consent(
        &app.db,
        &app.keyring().await,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        &member.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    let pharmacist = [Role::Profession(Profession::Pharmacist)];
    let reads = || async {
        other
            .allowed(&pharmacist, member.facility.id, p, Action::NotebookRead)
            .await
            .unwrap()
    };
    crate::support::wait_until("the second process following the acceptance", reads).await;
    leave(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    crate::support::wait_until("the second process following the departure", || async {
        !reads().await
    })
    .await;
    let _ = stop.send(());
}
