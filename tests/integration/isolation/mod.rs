//! Adversarial tenant isolation, as the production runtime role: with facility A's context
//! nothing of facility B can be read, changed, removed or created; with no context nothing is
//! visible; a pooled connection never carries one request's tenant into the next; the runtime
//! role cannot switch RLS off or become the owner; constraint checks are no oracle.
//!
//! The facility-owned tables are found in the catalog (every table with a `facility_id`
//! column, plus `facilities` itself), so a table added later is covered by the read, update,
//! delete and truncate checks without editing these tests; the insert check names each table and
//! fails when one is missing from its list.
//!
//! Shared here: the two-facility network, the catalog of facility-owned tables and the
//! helpers that read SQLSTATEs and counts; one file per concern beside it.

mod constraints;
mod context;
mod inserts;
mod rows;
mod runtime_role;
mod scopes;

use renrakucho_core::{FacilityId, FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_store::{Database, Scope};
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::support::superuser;

/// Two facilities, each with two staff accounts and audit records of its own.
struct Network {
    app: TestApp,
    a: Facility,
    b: Facility,
}

async fn network() -> Network {
    let app = spawn_app().await;
    let a = app.seed_facility("ISO-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("ISO-B", FacilityKind::Pharmacy).await;
    // A third facility that both ask for support (its rows are neither A's nor B's).
    let c = app.seed_facility("ISO-C", FacilityKind::Hospital).await;
    for facility in [&a, &b] {
        // The same login IDs in both: per-facility uniqueness is part of the design.
        let alice = app
            .seed_staff(
                facility,
                "alice",
                StaffRole::FacilityAdmin,
                Profession::Doctor,
            )
            .await;
        let bob = app
            .seed_staff(facility, "bob", StaffRole::Staff, Profession::Nurse)
            .await;
        // The same patient name in both, too (with a data key, search terms, the registering
        // membership and a consent each).
        let patient = app.seed_patient(&alice, "山田 花子", "ヤマダ ハナコ").await;
        renrakucho_registry::record_consent(
            &app.db,
            &app.keyring().await,
            &app.files,
            &renrakucho_testkit::acting::allowed(
                renrakucho_registry::StaffActor {
                    staff: alice.id,
                    facility: alice.facility_id,
                },
                patient.id,
            ),
            &renrakucho_store::audit::Origin::default(),
            renrakucho_registry::ConsentForm {
                signer: renrakucho_registry::Signer::Patient,
                signed_on: time::macros::date!(2026 - 11 - 01),
                scope: renrakucho_registry::ConsentScope::standard(),
            },
            None,
        )
        .await
        .unwrap();
        // The notebook: an entry with a photo, read by a colleague; someone's notification
        // settings and a muted patient; a support request to the third facility.
        let keyring = app.keyring().await;
        let origin = renrakucho_store::audit::Origin::default();
        let author = |staff: &renrakucho_store::staff::StaffAccount, profession| {
            renrakucho_testkit::acting::Writer {
                actor: renrakucho_registry::StaffActor {
                    staff: staff.id,
                    facility: staff.facility_id,
                },
                name: "試験 太郎".into(),
                profession,
                facility_admin: false,
            }
        };
        let alice_writes = author(&alice, Profession::Doctor);
        let photo = renrakucho_notebook::upload_attachment(
            &app.db,
            &keyring,
            &app.files,
            &renrakucho_testkit::acting::allowed(alice_writes.actor, patient.id),
            &origin,
            renrakucho_notebook::FileUpload {
                name: "写真.png",
                bytes: renrakucho_testkit::PNG_1X1.to_vec(),
            },
            1 << 20,
        )
        .await
        .unwrap();
        let entry = renrakucho_notebook::post_entry(
            &app.db,
            &keyring,
            &alice_writes.on(patient.id),
            &origin,
            renrakucho_notebook::NewEntryInput {
                content: renrakucho_notebook::EntryContent {
                    category: renrakucho_core::Category::Treatment,
                    priority: renrakucho_core::Priority::Urgent,
                    body: renrakucho_core::EntryBody::parse("発熱あり。").unwrap(),
                    vitals: None,
                    mentions: vec![],
                },
                reply_to: None,
                attachments: vec![photo.id],
            },
        )
        .await
        .unwrap();
        renrakucho_notebook::mark_read(
            &app.db,
            &author(&bob, Profession::Nurse).on(patient.id),
            &origin,
            &[entry.id],
        )
        .await
        .unwrap();
        let prefs =
            renrakucho_notebook::preferences(Some("alice@example.jp"), "info", 22, 7, true, 7)
                .unwrap();
        renrakucho_notebook::save_preferences(&app.db, alice_writes.actor, &origin, &prefs)
            .await
            .unwrap();
        renrakucho_notebook::set_muted(
            &app.db,
            &renrakucho_testkit::acting::allowed(alice_writes.actor, patient.id),
            &origin,
            true,
        )
        .await
        .unwrap();
        // The facility's own identity provider, and bob linked to a subject of it (ADR 0032).
        let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
        let provider = uuid::Uuid::now_v7();
        let binding = renrakucho_keyring::Binding {
            owner: renrakucho_keyring::KeyOwner::Facility(facility.id),
            table: "identity_providers",
            column: "client_secret_enc",
            row: provider,
            version: renrakucho_keyring::Binding::WRITTEN_ONCE,
        };
        let sealed = keyring
            .encrypt(&mut tx, &binding, b"a client secret")
            .await
            .unwrap();
        let scopes = ["openid".to_string()];
        renrakucho_store::identity_providers::insert(
            &mut tx,
            provider,
            &renrakucho_store::identity_providers::ProviderSettings {
                issuer: "https://login.example.jp",
                client_id: "renrakucho",
                scopes: &scopes,
                login_claim: "email",
                allowed_domains: &[],
                account_policy: "pre_linked",
            },
            &sealed,
        )
        .await
        .unwrap();
        renrakucho_store::identity_providers::link(
            &mut tx,
            bob.id,
            "https://login.example.jp",
            "bob-sub",
            "just_in_time",
            Some(renrakucho_store::identity_providers::ClaimedEmail {
                email: Some("bob@example.jp"),
                verified: true,
            }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // A passkey of bob's (its JSON as webauthn-rs would keep it does not matter here).
        let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
        renrakucho_store::passkeys::insert(
            &mut tx,
            renrakucho_store::second_factors::Holder::Staff(bob.id),
            &[7; 32],
            "仕事用スマホ",
            &serde_json::json!({ "cred": {} }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // An e-mail notice owed to bob (his authenticator was set up).
        let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
        renrakucho_store::account_notices::record(
            &mut tx,
            bob.id,
            renrakucho_store::account_notices::NoticeEvent::SecondFactorAdded,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        renrakucho_notebook::send_support_request(
            &app.db,
            &keyring,
            &alice_writes.on(patient.id),
            &origin,
            renrakucho_notebook::NewSupportRequest {
                to_code: c.code.clone(),
                kind: renrakucho_core::SupportKind::Information,
                question: "既往歴を教えてください".into(),
                summary: "80代女性".into(),
                entries: vec![entry.id],
                attachments: vec![photo.id],
            },
        )
        .await
        .unwrap();
        // An emergency grant and a deletion request of the facility's own, written directly
        // (through the application they would name another facility's patient, which the
        // care team may see by design; here every row must belong to one facility).
        // (A grant needs an identification in its transaction, which the superuser records
        // itself here.)
        let mut su = superuser(&app).await;
        let mut planting = su.begin().await.unwrap();
        for sql in [
            "INSERT INTO private.emergency_identifications (xact, facility_id, patient_id,
                                                            staff_id)
             VALUES (pg_current_xact_id(), $1, $2, $3)",
            "INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, reason_enc,
                                           expires_at)
             VALUES (gen_random_uuid(), $1, $2, $3, '\\x00', now() + interval '1 hour')",
        ] {
            sqlx::query(sql)
                .bind(facility.id.as_uuid())
                .bind(patient.id.as_uuid())
                .bind(alice.id.as_uuid())
                .execute(&mut *planting)
                .await
                .unwrap();
        }
        planting.commit().await.unwrap();
        sqlx::query(
            "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by,
                                            completed_at)
             VALUES (gen_random_uuid(), $1, gen_random_uuid(), $2, now())",
        )
        .bind(facility.id.as_uuid())
        .bind(alice.id.as_uuid())
        .execute(&mut su)
        .await
        .unwrap();
        // A failed emergency identification of the facility's own patient's card (a wrong date
        // of birth): the record belongs to the card's registering facility.
        let card = renrakucho_registry::patient_card(
            &app.db,
            &keyring,
            &renrakucho_testkit::acting::allowed(alice_writes.actor, patient.id),
            &origin,
        )
        .await
        .unwrap();
        let today = time::OffsetDateTime::now_utc().date();
        let failed = renrakucho_registry::open_emergency(
            &app.db,
            &keyring,
            &renrakucho_testkit::acting::permitted(alice_writes.actor),
            &origin,
            renrakucho_registry::EmergencyRequest {
                card: renrakucho_core::CardNumber::parse(&card.number).unwrap(),
                birth_date: renrakucho_core::BirthDate::parse("1950-05-05", today).unwrap(),
                reason: renrakucho_registry::EmergencyReason::parse("救急搬送時の確認のため")
                    .unwrap(),
                duration: time::Duration::HOUR,
            },
        )
        .await;
        assert!(
            matches!(failed, Err(renrakucho_registry::CareError::NotIdentified)),
            "{failed:?}"
        );
    }
    // The network's blind-index key (no facility's) was created when the server started.
    Network { app, a, b }
}

/// A table holding facility data, and the column naming the facility.
#[derive(Debug, Clone)]
struct OwnedTable {
    name: String,
    column: String,
}

/// Every facility-owned table in the application's schemas, from the catalog.
async fn facility_owned_tables(su: &mut PgConnection) -> Vec<OwnedTable> {
    // Schema `private` is out of the web role's reach altogether (no USAGE: the catalog test
    // checks it, and the no-context test in `context.rs` is refused there).
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), a.attname::text
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped AND a.attnum > 0
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'private')
            AND n.nspname NOT LIKE 'pg\\_%'
            AND (a.attname = 'facility_id' OR (c.relname = 'facilities' AND a.attname = 'id'))
          ORDER BY 1",
    )
    .fetch_all(su)
    .await
    .unwrap();
    assert!(
        rows.len() >= 3,
        "expected facilities, staff_accounts and audit_log at least: {rows:?}"
    );
    rows.into_iter()
        .map(|(name, column)| OwnedTable { name, column })
        .collect()
}

/// A digest of everything facility `f` holds in `table`, read past RLS by the superuser.
async fn digest(su: &mut PgConnection, table: &OwnedTable, f: FacilityId) -> (i64, String) {
    sqlx::query_as(&format!(
        "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
           FROM {} t WHERE t.{} = $1",
        table.name, table.column
    ))
    .bind(f.as_uuid())
    .fetch_one(su)
    .await
    .unwrap()
}

/// The SQLSTATE of a failed statement.
fn sqlstate(result: Result<impl std::fmt::Debug, sqlx::Error>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()))
            .unwrap_or_else(|| panic!("not a database error: {e}")),
    }
}

/// The SQLSTATE and message of a refused statement.
fn refusal(result: Result<impl std::fmt::Debug, sqlx::Error>) -> (String, String) {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let db = e
                .as_database_error()
                .unwrap_or_else(|| panic!("not a database error: {e}"));
            (
                db.code().map(|c| c.into_owned()).unwrap_or_default(),
                db.message().to_string(),
            )
        }
    }
}

/// Like [`count_in`], for a statement that may be refused: its SQLSTATE and message then.
async fn try_count_in(db: &Database, scope: Scope, sql: &str) -> Result<i64, (String, String)> {
    let mut tx = db.begin(scope).await.unwrap();
    let result = sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(tx.raw_connection_for_tests())
        .await;
    drop(tx);
    match result {
        Ok(n) => Ok(n),
        Err(e) => Err(refusal(Err::<i64, _>(e))),
    }
}

async fn count_in(db: &Database, scope: Scope, sql: &str) -> i64 {
    let mut tx = db.begin(scope).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(tx.raw_connection_for_tests())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    n
}
