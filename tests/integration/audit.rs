//! The audit log: append-only for the runtime role, one hash chain per facility and one for
//! the platform, `verify` naming the first broken link, concurrent writers, and records that
//! roll back with their transaction.

use std::sync::Arc;

use renrakucho_core::{FacilityId, FacilityKind, Profession, StaffRole};
use renrakucho_store::audit::{self, Actor, AuditEvent, BreakKind, ChainBreak, Origin, Outcome};
use renrakucho_store::facilities::Facility;
use renrakucho_store::{Database, Scope};
use renrakucho_testkit::{spawn_app, TestApp};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::sync::Barrier;

use crate::support::superuser;

const ZERO_HASH: [u8; 32] = [0; 32];

/// One link of a chain, as stored.
#[derive(Debug, sqlx::FromRow)]
struct Link {
    seq: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

fn scope_of(facility: Option<&Facility>) -> Scope {
    facility.map_or(Scope::Platform, |f| Scope::Facility(f.id))
}

/// Writes one audit record in `scope` and commits.
async fn record_event(db: &Database, scope: Scope, n: usize) {
    let mut tx = db.begin(scope).await.unwrap();
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "test.event",
            outcome: Outcome::Success,
            target: None,
            origin: &Origin::default(),
            details: json!({ "n": n }),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The chain of `scope` as the runtime role sees it: RLS shows exactly that chain.
async fn chain(db: &Database, scope: Scope) -> Vec<Link> {
    let mut tx = db.begin(scope).await.unwrap();
    let links =
        sqlx::query_as::<_, Link>("SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq")
            .fetch_all(tx.raw_connection_for_tests())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    links
}

/// Seq 1, 2, 3…, the first linked to zeros and each to the hash of the one before.
fn assert_linked(links: &[Link], what: &str) {
    assert!(!links.is_empty(), "{what}: empty chain");
    for (i, link) in links.iter().enumerate() {
        assert_eq!(
            link.seq,
            i as i64 + 1,
            "{what}: seq out of order in {links:?}"
        );
        let expected: &[u8] = if i == 0 {
            &ZERO_HASH
        } else {
            &links[i - 1].hash
        };
        assert_eq!(
            link.prev_hash, expected,
            "{what}: #{} is not linked to #{}",
            link.seq, i
        );
        assert_eq!(link.hash.len(), 32, "{what}: a SHA-256 hash");
    }
}

async fn total_records(app: &TestApp) -> i64 {
    let mut su = superuser(app).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&mut su)
        .await
        .unwrap();
    su.close().await.unwrap();
    n
}

/// Two facilities with a staff member each (a `staff.create` record in their chains, a
/// `facility.create` in the platform's) and a few more events: platform 4, A 4, B 3 records.
async fn populated(app: &TestApp) -> (Facility, Facility) {
    let a = app.seed_facility("CHAIN-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("CHAIN-B", FacilityKind::Pharmacy).await;
    app.seed_staff(&a, "alice", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    app.seed_staff(&b, "bob", StaffRole::FacilityAdmin, Profession::Pharmacist)
        .await;
    for n in 0..3 {
        record_event(&app.db, Scope::Facility(a.id), n).await;
    }
    for n in 0..2 {
        record_event(&app.db, Scope::Facility(b.id), n).await;
        record_event(&app.db, Scope::Platform, n).await;
    }
    (a, b)
}

/// The row ID of record `seq` in a chain, as the superuser sees it.
async fn row_id(su: &mut PgConnection, facility: Option<FacilityId>, seq: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM audit_log WHERE facility_id IS NOT DISTINCT FROM $1 AND seq = $2",
    )
    .bind(facility.map(|f| f.as_uuid()))
    .bind(seq)
    .fetch_one(su)
    .await
    .unwrap()
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn the_runtime_role_cannot_change_or_remove_audit_records() {
    let app = spawn_app().await;
    let (a, _) = populated(&app).await;
    let before = total_records(&app).await;
    for scope in [Scope::Platform, Scope::Facility(a.id)] {
        for statement in [
            "UPDATE audit_log SET details = '{}'::jsonb",
            "UPDATE audit_log SET seq = seq + 100 WHERE seq = 1",
            "DELETE FROM audit_log",
            "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
            "TRUNCATE audit_log",
        ] {
            let mut tx = app.db.begin(scope).await.unwrap();
            let err = sqlx::query(statement)
                .execute(tx.raw_connection_for_tests())
                .await
                .expect_err(&format!("{scope:?}: `{statement}` was allowed"));
            assert_eq!(
                sqlstate(&err).as_deref(),
                Some("42501"),
                "{scope:?}: `{statement}` failed otherwise: {err}"
            );
        }
    }
    assert_eq!(total_records(&app).await, before);
    assert!(audit::verify(&app.db).await.unwrap().breaks.is_empty());
}

#[tokio::test]
async fn each_facility_and_the_platform_have_a_chain_of_their_own() {
    let app = spawn_app().await;
    let (a, b) = populated(&app).await;
    // The platform's chain starts with the creation of the network's blind-index key.
    let expected = [(None, 5), (Some(&a), 4), (Some(&b), 3)];
    for (facility, len) in expected {
        let what = facility.map_or("platform".to_string(), |f| f.code.clone());
        let links = chain(&app.db, scope_of(facility)).await;
        assert_eq!(links.len(), len, "{what}: {links:?}");
        assert_linked(&links, &what);
    }

    // Every stored hash is the hash of its record's content.
    let mut su = superuser(&app).await;
    let mismatched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log a WHERE a.hash <> audit_record_hash(a)")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(mismatched, 0);

    let report = audit::verify(&app.db).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.chains, 3);
    assert_eq!(report.records, 12);
    assert_eq!(report.records, total_records(&app).await);
}

#[tokio::test]
async fn verify_names_an_edited_record() {
    let app = spawn_app().await;
    let (a, _) = populated(&app).await;
    let mut su = superuser(&app).await;
    let edited: i64 = sqlx::query_scalar(
        "UPDATE audit_log SET details = '{\"n\": 99}'::jsonb
          WHERE facility_id = $1 AND seq = 2 RETURNING id",
    )
    .bind(a.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();

    let report = audit::verify(&app.db).await.unwrap();
    assert_eq!(
        report.breaks,
        vec![ChainBreak {
            facility: Some(a.id),
            id: edited,
            seq: 2,
            problem: BreakKind::Altered,
        }],
        "only CHAIN-A is broken, at #2"
    );
    assert_eq!(
        report.records, 12,
        "a break does not hide the other records"
    );
    let message = report.breaks[0].to_string();
    assert!(
        message.contains(&format!("facility {}", a.id.as_uuid())),
        "{message}"
    );
    assert!(message.contains("record #2"), "{message}");
}

#[tokio::test]
async fn verify_notices_an_edit_whose_hash_was_recomputed() {
    let app = spawn_app().await;
    let (_, b) = populated(&app).await;
    let mut su = superuser(&app).await;
    // A careful attacker recomputes the edited record's own hash.
    sqlx::query(
        "UPDATE audit_log SET details = '{\"n\": 99}'::jsonb WHERE facility_id = $1 AND seq = 2",
    )
    .bind(b.id.as_uuid())
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE audit_log a SET hash = audit_record_hash(a) WHERE facility_id = $1 AND seq = 2",
    )
    .bind(b.id.as_uuid())
    .execute(&mut su)
    .await
    .unwrap();
    let next = row_id(&mut su, Some(b.id), 3).await;

    let report = audit::verify(&app.db).await.unwrap();
    assert_eq!(report.breaks.len(), 1, "{:?}", report.breaks);
    let found = &report.breaks[0];
    assert_eq!((found.facility, found.id, found.seq), (Some(b.id), next, 3));
    assert!(
        matches!(found.problem, BreakKind::PreviousMissing { .. }),
        "{found:?}"
    );
}

#[tokio::test]
async fn verify_names_the_record_after_a_deleted_one() {
    let app = spawn_app().await;
    populated(&app).await;
    let mut su = superuser(&app).await;
    let deleted = sqlx::query("DELETE FROM audit_log WHERE facility_id IS NULL AND seq = 2")
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    let following = row_id(&mut su, None, 3).await;

    let report = audit::verify(&app.db).await.unwrap();
    assert_eq!(
        report.breaks,
        vec![ChainBreak {
            facility: None,
            id: following,
            seq: 3,
            problem: BreakKind::PreviousMissing { expected_seq: 2 },
        }]
    );
    assert_eq!(report.records, 11);
    let message = report.breaks[0].to_string();
    assert!(
        message.starts_with("platform chain: record #3"),
        "{message}"
    );
    assert!(message.contains("record #2 was removed"), "{message}");

    // Removing the first record is noticed as well.
    sqlx::query("DELETE FROM audit_log WHERE facility_id IS NULL AND seq = 1")
        .execute(&mut su)
        .await
        .unwrap();
    let report = audit::verify(&app.db).await.unwrap();
    assert_eq!(report.breaks.len(), 1);
    assert_eq!(report.breaks[0].seq, 3);
    assert_eq!(
        report.breaks[0].problem,
        BreakKind::PreviousMissing { expected_seq: 1 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_leave_gapless_valid_chains() {
    let app = spawn_app().await;
    let facility = app.seed_facility("BUSY-1", FacilityKind::Hospital).await;
    // Enough connections for every writer to hold its transaction open at once.
    let db = Database::connect(&app.database.connections(), 30)
        .await
        .unwrap();
    let writers: Vec<Scope> = (0..20)
        .map(|_| Scope::Facility(facility.id))
        .chain((0..10).map(|_| Scope::Platform))
        .collect();
    let barrier = Arc::new(Barrier::new(writers.len()));
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(n, scope)| {
            let db = db.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut tx = db.begin(scope).await.unwrap();
                barrier.wait().await;
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: Actor::System,
                        action: "test.concurrent",
                        outcome: Outcome::Success,
                        target: None,
                        origin: &Origin::default(),
                        details: json!({ "writer": n }),
                    },
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let facility_chain = chain(&db, Scope::Facility(facility.id)).await;
    assert_eq!(facility_chain.len(), 20);
    assert_linked(&facility_chain, "BUSY-1");
    let platform_chain = chain(&db, Scope::Platform).await;
    assert_eq!(
        platform_chain.len(),
        12,
        "data_key.create, facility.create and ten writers"
    );
    assert_linked(&platform_chain, "platform");
    let report = audit::verify(&db).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.records, 32);
    db.close().await;
}

#[tokio::test]
async fn an_audit_record_rolls_back_with_its_transaction() {
    let app = spawn_app().await;
    let (a, _) = populated(&app).await;
    let scope = Scope::Facility(a.id);
    let before = chain(&app.db, scope).await;

    let mut tx = app.db.begin(scope).await.unwrap();
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "test.rolled_back",
            outcome: Outcome::Failure,
            target: None,
            origin: &Origin::default(),
            details: json!({}),
        },
    )
    .await
    .unwrap();
    let inside = audit::recent(&mut tx, 1).await.unwrap();
    assert_eq!(
        inside[0].action, "test.rolled_back",
        "visible inside its transaction"
    );
    drop(tx);

    let after = chain(&app.db, scope).await;
    assert_eq!(
        after.len(),
        before.len(),
        "the record outlived its transaction"
    );
    // The chain goes on without a gap where the rolled-back record was.
    record_event(&app.db, scope, 7).await;
    let extended = chain(&app.db, scope).await;
    assert_eq!(extended.len(), before.len() + 1);
    assert_linked(&extended, "CHAIN-A");
    assert!(audit::verify(&app.db).await.unwrap().breaks.is_empty());
}
