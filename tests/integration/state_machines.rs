//! The care domain's state machines are one enum each (`renrakucho_core::states`), and the
//! database states the same moves in its triggers and the same words in its `CHECK`s. Here every
//! (from, to) pair is tried in the database, as the runtime role in each mover's own tenant
//! context, exactly as the server would send it; the database must allow exactly the moves the
//! enum lists, for exactly the mover it names.
//!
//! Each starting state is placed by the superuser with triggers off (some states are only
//! reached through several moves); the moves themselves run through everything production has:
//! row-level security, column privileges and the transition trigger.

use std::collections::{BTreeSet, HashSet};

use renrakucho_core::{
    FacilityId, FacilityKind, MemberMover, MemberStatus, Profession, StaffRole, SupportSide,
    SupportStatus,
};
use renrakucho_store::facilities::Facility;
use renrakucho_store::{Database, Scope};
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::support::{json_of, patient_url, superuser};

/// What the database did with one attempted move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Moved,
    /// The trigger (or a policy's `WITH CHECK`) refused it: SQLSTATE 42501.
    Refused,
    /// Row-level security did not offer the row to this facility for an update.
    Invisible,
}

/// Tries `UPDATE {table} SET status = to WHERE {key}` on `conn` (a scoped transaction's) and
/// undoes it.
async fn attempt(conn: &mut PgConnection, table: &str, key: &str, to: &str) -> Outcome {
    sqlx::raw_sql("SAVEPOINT attempt")
        .execute(&mut *conn)
        .await
        .unwrap();
    let result = sqlx::query(&format!("UPDATE {table} SET status = $1 WHERE {key}"))
        .bind(to)
        .execute(&mut *conn)
        .await;
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT attempt")
        .execute(&mut *conn)
        .await
        .unwrap();
    match result {
        Ok(done) if done.rows_affected() == 1 => Outcome::Moved,
        Ok(done) if done.rows_affected() == 0 => Outcome::Invisible,
        Ok(done) => panic!("{} rows moved in {table}", done.rows_affected()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => Outcome::Refused,
        Err(e) => panic!("moving {table} to {to}: an unexpected error: {e}"),
    }
}

/// Places the row in state `from` (superuser, triggers off).
async fn place(admin: &mut PgConnection, table: &str, key: &str, from: &str) {
    let done = sqlx::query(&format!("UPDATE {table} SET status = $1 WHERE {key}"))
        .bind(from)
        .execute(&mut *admin)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "placing the {table} row in {from}");
}

/// Tries every (from, to) pair as every mover (named, with its facility); the moves the
/// database allowed.
async fn moves_allowed(
    db: &Database,
    admin: &mut PgConnection,
    table: &str,
    key: &str,
    states: &[&'static str],
    movers: &[(&'static str, FacilityId)],
) -> BTreeSet<(&'static str, &'static str, &'static str)> {
    let mut allowed = BTreeSet::new();
    for &from in states {
        place(admin, table, key, from).await;
        for &(m, facility) in movers {
            let mut tx = db.begin(Scope::Facility(facility)).await.unwrap();
            for &to in states {
                let outcome = attempt(tx.raw_connection_for_tests(), table, key, to).await;
                assert_ne!(
                    outcome,
                    Outcome::Invisible,
                    "{table}: the {m} facility does not even see the row ({from} → {to})"
                );
                if outcome == Outcome::Moved {
                    allowed.insert((from, to, m));
                }
            }
            // Every attempt was undone: the commit changes nothing.
            tx.commit().await.unwrap();
        }
    }
    allowed
}

/// The words a table's `CHECK` on `status` allows (the constraint PostgreSQL named
/// `{table}_status_check`).
async fn checked_words(admin: &mut PgConnection, table: &str) -> BTreeSet<String> {
    let definition: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = $1::regclass AND conname = $2",
    )
    .bind(table)
    .bind(format!("{table}_status_check"))
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    let words: BTreeSet<String> = definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!words.is_empty(), "no words in {definition}");
    words
}

struct Network {
    app: TestApp,
    /// Registers the patient, asks for support.
    clinic: Facility,
    /// A member of the care team, asked for support.
    nurses: Facility,
    clinic_admin: Uuid,
    patient: Uuid,
}

async fn network(prefix: &str) -> Network {
    let app = spawn_app().await;
    let clinic = app
        .seed_facility(&format!("{prefix}-C"), FacilityKind::Clinic)
        .await;
    let nurses = app
        .seed_facility(&format!("{prefix}-N"), FacilityKind::VisitingNurseStation)
        .await;
    let clinic_admin = app
        .seed_staff(
            &clinic,
            "admin",
            StaffRole::FacilityAdmin,
            Profession::Doctor,
        )
        .await;
    app.seed_staff(
        &nurses,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Nurse,
    )
    .await;
    let patient = app
        .seed_patient(&clinic_admin, "状態 遷子", "ジョウタイ センコ")
        .await;
    Network {
        clinic,
        nurses,
        clinic_admin: clinic_admin.id.as_uuid(),
        patient: patient.id.as_uuid(),
        app,
    }
}

#[tokio::test]
async fn care_team_membership_moves_are_the_enums_in_the_database_too() {
    let net = network("SM-TEAM").await;
    let mut admin = superuser(&net.app).await;
    sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id, role,
                                        status, invited_by)
         VALUES ($1, $2, $3, 'member', 'invited', $4)",
    )
    .bind(net.patient)
    .bind(net.clinic.id.as_uuid())
    .bind(net.nurses.id.as_uuid())
    .bind(net.clinic_admin)
    .execute(&mut admin)
    .await
    .unwrap();

    let words: BTreeSet<String> = MemberStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(
        checked_words(&mut admin, "care_team_members").await,
        words,
        "the CHECK and the enum name the same states"
    );

    let states: Vec<&'static str> = MemberStatus::ALL.iter().map(|s| s.as_str()).collect();
    let movers = [("member", net.nurses.id), ("registering", net.clinic.id)];
    let name = |who: MemberMover| match who {
        MemberMover::Member => "member",
        MemberMover::Registering => "registering",
    };
    let key = format!(
        "patient_id = '{}' AND facility_id = '{}'",
        net.patient,
        net.nurses.id.as_uuid()
    );
    let allowed = moves_allowed(
        &net.app.db,
        &mut admin,
        "care_team_members",
        &key,
        &states,
        &movers,
    )
    .await;

    let mut expected = BTreeSet::new();
    for &from in MemberStatus::ALL {
        for &to in MemberStatus::ALL {
            for &who in MemberMover::ALL {
                if from.may_become_by(to, who) {
                    expected.insert((from.as_str(), to.as_str(), name(who)));
                }
            }
        }
    }
    assert_eq!(expected.len(), MemberStatus::MOVES.len());
    assert_eq!(
        allowed, expected,
        "(from, to, mover) the database allows vs the enum's moves"
    );

    // The registering facility's own row moves nowhere, whatever it asks for.
    let own = format!(
        "patient_id = '{}' AND facility_id = '{}'",
        net.patient,
        net.clinic.id.as_uuid()
    );
    let mut tx = net
        .app
        .db
        .begin(Scope::Facility(net.clinic.id))
        .await
        .unwrap();
    for &to in &states {
        assert_eq!(
            attempt(tx.raw_connection_for_tests(), "care_team_members", &own, to).await,
            Outcome::Refused,
            "the registering row to {to}"
        );
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn support_request_moves_are_the_enums_in_the_database_too() {
    let net = network("SM-SUPPORT").await;
    let mut admin = superuser(&net.app).await;
    sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut admin)
        .await
        .unwrap();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                       requested_by, question_enc, summary_enc)
         VALUES ($1, $2, $3, $4, 'information', $5, '\\x00', '\\x00')",
    )
    .bind(id)
    .bind(net.patient)
    .bind(net.clinic.id.as_uuid())
    .bind(net.nurses.id.as_uuid())
    .bind(net.clinic_admin)
    .execute(&mut admin)
    .await
    .unwrap();
    let initial: String = sqlx::query_scalar("SELECT status FROM support_requests WHERE id = $1")
        .bind(id)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        initial,
        SupportStatus::INITIAL.as_str(),
        "the column's default"
    );

    let words: BTreeSet<String> = SupportStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(
        checked_words(&mut admin, "support_requests").await,
        words,
        "the CHECK and the enum name the same states"
    );

    let states: Vec<&'static str> = SupportStatus::ALL.iter().map(|s| s.as_str()).collect();
    let movers = [("asking", net.clinic.id), ("asked", net.nurses.id)];
    let name = |who: SupportSide| match who {
        SupportSide::Asking => "asking",
        SupportSide::Asked => "asked",
    };
    let key = format!("id = '{id}'");
    let allowed = moves_allowed(
        &net.app.db,
        &mut admin,
        "support_requests",
        &key,
        &states,
        &movers,
    )
    .await;

    let mut expected = BTreeSet::new();
    for &from in SupportStatus::ALL {
        for &to in SupportStatus::ALL {
            for &who in SupportSide::ALL {
                if from.may_become_by(to, who) {
                    expected.insert((from.as_str(), to.as_str(), name(who)));
                }
            }
        }
    }
    assert_eq!(expected.len(), SupportStatus::MOVES.len());
    assert_eq!(
        allowed, expected,
        "(from, to, mover) the database allows vs the enum's moves"
    );
}

/// Every move of a membership, as people make them through the API: the code's own paths (the
/// enum's checks, the store's statements) take a membership through the enum's whole table.
#[tokio::test]
async fn every_membership_move_is_made_through_the_api() {
    use serde_json::json;

    let net = network("SM-WALK").await;
    let app = &net.app;
    let clinic = app.client_for(&net.clinic, "admin").await;
    let nurses = app.client_for(&net.nurses, "admin").await;
    let team_url = patient_url(app, net.patient, "/care-team");
    let status = || async {
        let team = json_of(clinic.get(&team_url).send().await.unwrap()).await;
        let member = team
            .as_array()
            .expect("the care team")
            .iter()
            .find(|m| m["facility"] == net.nurses.id.as_uuid().to_string())
            .map(|m| m["status"].as_str().expect("a status").to_string());
        member.map(|s| s.parse::<MemberStatus>().expect("a known status"))
    };

    let invite = || async {
        let response = clinic
            .post(&team_url)
            .json(&json!({ "facility_code": net.nurses.code }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "inviting");
    };
    let member = |action: &'static str| {
        let url = patient_url(app, net.patient, &format!("/care-team/{action}"));
        let nurses = &nurses;
        async move {
            let response = nurses.post(&url).send().await.unwrap();
            assert_eq!(response.status(), 204, "{action}");
        }
    };
    let remove_url = patient_url(
        app,
        net.patient,
        &format!("/care-team/{}", net.nurses.id.as_uuid()),
    );
    let remove = || async {
        let response = clinic.delete(&remove_url).send().await.unwrap();
        assert_eq!(response.status(), 204, "removing");
    };

    use MemberStatus::{Active, Declined, Invited, Left, Removed};
    let mut made = HashSet::new();
    invite().await;
    let mut now = status().await.expect("a member now");
    assert_eq!(now, MemberStatus::INITIAL);
    for (step, expected) in [
        ("decline", Declined),
        ("invite", Invited),
        ("accept", Active),
        ("leave", Left),
        ("invite", Invited),
        ("accept", Active),
        ("remove", Removed),
        ("invite", Invited),
        ("remove", Removed),
    ] {
        match step {
            "invite" => invite().await,
            "remove" => remove().await,
            action => member(action).await,
        }
        let next = status().await.expect("still in the list");
        assert_eq!(next, expected, "after {step}");
        made.insert((now, next));
        now = next;
    }
    let table: HashSet<(MemberStatus, MemberStatus)> = MemberStatus::MOVES
        .iter()
        .map(|&(from, to, _)| (from, to))
        .collect();
    assert_eq!(made, table, "the walk made every move of the enum");

    // A move the enum does not have is a clear conflict, and nothing changes.
    let response = clinic.delete(&remove_url).send().await.unwrap();
    assert_eq!(response.status(), 409, "removing a removed member");
    assert_eq!(status().await, Some(Removed));
}
