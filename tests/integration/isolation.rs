//! Adversarial tenant isolation, as the production runtime role: with facility A's context
//! nothing of facility B can be read, changed, removed or created; with no context nothing is
//! visible; a pooled connection never carries one request's tenant into the next; the runtime
//! role cannot switch RLS off or become the owner; constraint checks are no oracle.
//!
//! The facility-owned tables are found in the catalog (every table with a `facility_id`
//! column, plus `facilities` itself), so a table added later is covered by the read, update,
//! delete and truncate checks without editing this file; the insert check names each table and
//! fails when one is missing from its list.

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
    // checks it, and the no-context test below is refused there).
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

#[tokio::test]
async fn facility_a_cannot_read_change_or_remove_facility_bs_rows_in_any_table() {
    let net = network().await;
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;

    for table in &tables {
        let before = digest(&mut su, table, net.b.id).await;
        assert!(before.0 > 0, "{}: the fixture gives B rows", table.name);
        let own = digest(&mut su, table, net.a.id).await.0;

        let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
        let conn = tx.raw_connection_for_tests();

        // Read: asking for B's rows by ID finds nothing; reading everything finds only A's.
        let of_b: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE {} = $1",
            table.name, table.column
        ))
        .bind(net.b.id.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(of_b, 0, "{}: A reads B's rows", table.name);
        // Rows of no facility (the network's blind-index key) are readable by every facility
        // and checked by the key-table test; here only facility rows count.
        let visible: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
            "SELECT {c} FROM {t} WHERE {c} IS NOT NULL",
            t = table.name,
            c = table.column
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            visible.len() as i64,
            own,
            "{}: A sees its own rows",
            table.name
        );
        assert!(
            visible.iter().all(|f| *f == net.a.id.as_uuid()),
            "{}: A sees another facility's rows",
            table.name
        );

        // Update and delete aimed at B: either not permitted at all, or nothing matches.
        for statement in [
            format!(
                "UPDATE {t} SET {c} = {c} WHERE {c} = $1",
                t = table.name,
                c = table.column
            ),
            format!("DELETE FROM {} WHERE {} = $1", table.name, table.column),
        ] {
            sqlx::raw_sql("SAVEPOINT attempt")
                .execute(&mut *conn)
                .await
                .unwrap();
            match sqlx::query(&statement)
                .bind(net.b.id.as_uuid())
                .execute(&mut *conn)
                .await
            {
                Ok(done) => assert_eq!(done.rows_affected(), 0, "{statement}: A changed B's rows"),
                Err(e) => assert_eq!(
                    e.as_database_error().and_then(|d| d.code()).as_deref(),
                    Some("42501"),
                    "{statement}: {e}"
                ),
            }
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT attempt")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        // Committed, so that anything that had slipped through would be visible below.
        tx.commit().await.unwrap();

        assert_eq!(
            digest(&mut su, table, net.b.id).await,
            before,
            "{}: B's rows changed",
            table.name
        );
    }
}

#[tokio::test]
async fn truncate_is_denied_on_every_table() {
    let net = network().await;
    let mut su = superuser(&net.app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(tables.len() >= 5, "{tables:?}");

    for table in &tables {
        let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
        let denied = sqlx::raw_sql(&format!("TRUNCATE {table} CASCADE"))
            .execute(tx.raw_connection_for_tests())
            .await;
        assert_eq!(sqlstate(denied), "42501", "TRUNCATE {table}");
    }
    let facilities: i64 = sqlx::query_scalar("SELECT count(*) FROM facilities")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(facilities, 3, "A, B and the facility both ask for support");
}

/// A row for each facility-owned table, written into facility `into` (SQL with `$1` = that
/// facility). Every facility-owned table must have an entry: the test fails otherwise.
fn insert_into(table: &str) -> Option<&'static str> {
    Some(match table {
        "public.facilities" => {
            "INSERT INTO facilities (id, code, name, kind, status)
             VALUES ($1, 'ISO-NEW', '新施設', 'clinic', 'active')"
        }
        "public.staff_accounts" => {
            "INSERT INTO staff_accounts (id, facility_id, login_id, display_name, role,
                                         profession, password_hash)
             VALUES (gen_random_uuid(), $1, 'mallory', '侵入 者', 'facility_admin', 'doctor', 'x')"
        }
        "public.data_keys" => {
            "INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id,
                                    wrapped)
             VALUES ('facility', $1, 1, $1, 'local:forged', '\\x00')"
        }
        "public.patients" => {
            "INSERT INTO patients (id, facility_id, name_enc, kana_enc, profile_enc, registered_by)
             VALUES (gen_random_uuid(), $1, '\\x00', '\\x00', '\\x00',
                     (SELECT id FROM staff_accounts LIMIT 1))"
        }
        "public.patient_name_terms" => {
            "INSERT INTO patient_name_terms (patient_id, facility_id, term)
             VALUES (gen_random_uuid(), $1, sha256('x'))"
        }
        "public.care_team_members" => {
            "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id,
                                            role, status)
             VALUES (gen_random_uuid(), $1, $1, 'registering', 'active')"
        }
        "public.consents" => {
            "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id, signer,
                                   details_enc, signed_on, recorded_by)
             VALUES (gen_random_uuid(), gen_random_uuid(), $1, $1, 'patient', '\\x00',
                     '2026-11-01', gen_random_uuid())"
        }
        "public.consent_changes" => {
            "INSERT INTO consent_changes (patient_id, consent_id, kind, facility_id)
             VALUES ((SELECT patient_id FROM consents LIMIT 1), (SELECT id FROM consents LIMIT 1),
                     'withdrawn', $1)"
        }
        "public.patient_access" => {
            "INSERT INTO patient_access (facility_id, patient_id, relation)
             VALUES ($1, (SELECT id FROM patients LIMIT 1), 'sharing')"
        }
        "public.emergency_grants" => {
            "INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, reason_enc,
                                           expires_at)
             VALUES (gen_random_uuid(), $1, (SELECT id FROM patients LIMIT 1),
                     (SELECT id FROM staff_accounts LIMIT 1), '\\x00', now() + interval '1 hour')"
        }
        "public.deletion_requests" => {
            "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
             VALUES (gen_random_uuid(), $1, (SELECT id FROM patients LIMIT 1),
                     (SELECT id FROM staff_accounts LIMIT 1))"
        }
        "public.entries" => {
            "INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                  author_profession, category, priority, body_enc)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1,
                     (SELECT id FROM staff_accounts LIMIT 1), '侵入', 'doctor', 'other', 'info',
                     '\\x00')"
        }
        "public.entry_versions" => {
            "INSERT INTO entry_versions (id, entry_id, version, patient_id, facility_id, edited_by,
                                         edited_by_name, category, priority, body_enc)
             VALUES (gen_random_uuid(), gen_random_uuid(), 2, gen_random_uuid(), $1,
                     gen_random_uuid(), '侵入', 'other', 'info', '\\x00')"
        }
        "public.attachments" => {
            "INSERT INTO attachments (id, patient_id, facility_id, uploaded_by, media_type, size,
                                      file_name_enc, object)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1,
                     (SELECT id FROM staff_accounts LIMIT 1), 'image/png', 1, '\\x00', 'x')"
        }
        "public.entry_reads" => {
            "INSERT INTO entry_reads (entry_id, patient_id, staff_id, facility_id, reader_name,
                                      reader_profession)
             VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), $1, '侵入', 'doctor')"
        }
        "public.support_requests" => {
            "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                           requested_by, question_enc, summary_enc)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1,
                     gen_random_uuid(), 'information', gen_random_uuid(), '\\x00', '\\x00')"
        }
        "public.support_request_items" => {
            "INSERT INTO support_request_items (request_id, patient_id, facility_id, entry_id)
             VALUES (gen_random_uuid(), gen_random_uuid(), $1, gen_random_uuid())"
        }
        "public.notification_settings" => {
            "INSERT INTO notification_settings (staff_id, facility_id)
             VALUES (gen_random_uuid(), $1)"
        }
        "public.patient_mutes" => {
            "INSERT INTO patient_mutes (staff_id, patient_id, facility_id)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1)"
        }
        "public.patient_cards" => {
            "INSERT INTO patient_cards (patient_id, facility_id, lookup, birth_check, number_enc)
             VALUES (coalesce((SELECT id FROM patients LIMIT 1), gen_random_uuid()), $1,
                     sha256('x'), sha256('y'), '\\x00')"
        }
        "public.emergency_identification_failures" => {
            "INSERT INTO emergency_identification_failures (facility_id, requesting_facility_id,
                                                            staff_id)
             VALUES ($1, $1, gen_random_uuid())"
        }
        "public.audit_log" => {
            "INSERT INTO audit_log (facility_id, actor_kind, action, outcome, prev_hash, hash)
             VALUES ($1, 'system', 'forged.entry', 'success', '\\x00', '\\x00')"
        }
        _ => return None,
    })
}

#[tokio::test]
async fn writing_a_row_into_another_facility_is_refused_with_42501() {
    let net = network().await;
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;
    let nowhere = uuid::Uuid::new_v4();

    for table in &tables {
        let sql = insert_into(&table.name).unwrap_or_else(|| {
            panic!(
                "{} is facility-owned: add an insert for it to this test",
                table.name
            )
        });
        // Into B, into a facility that does not exist, and with no context at all: the same
        // refusal, so the answer does not tell whether B exists.
        let mut refusal: Option<String> = None;
        for (scope, target) in [
            (Some(Scope::Facility(net.a.id)), net.b.id.as_uuid()),
            (Some(Scope::Facility(net.a.id)), nowhere),
            (None, net.a.id.as_uuid()),
        ] {
            let result = match scope {
                Some(scope) => {
                    let mut tx = net.app.db.begin(scope).await.unwrap();
                    sqlx::query(sql)
                        .bind(target)
                        .execute(tx.raw_connection_for_tests())
                        .await
                }
                None => {
                    let mut conn = net.app.database.runtime_options().connect().await.unwrap();
                    sqlx::query(sql).bind(target).execute(&mut conn).await
                }
            };
            let Err(err) = result else {
                panic!(
                    "{}: insert into {target} with {scope:?} succeeded",
                    table.name
                );
            };
            let db = err.as_database_error().expect("a database error");
            assert_eq!(db.code().as_deref(), Some("42501"), "{}: {err}", table.name);
            let table_name = table.name.trim_start_matches("public.");
            // Refused by a policy, or (for tables only the database itself writes, such as
            // patient_access) for want of the privilege: either way the same words each time.
            let expected = if db.message().starts_with("permission denied") {
                format!("permission denied for table {table_name}")
            } else {
                format!("new row violates row-level security policy for table \"{table_name}\"")
            };
            assert_eq!(db.message(), expected, "{}", table.name);
            let first = refusal.get_or_insert_with(|| db.message().to_string());
            assert_eq!(
                db.message(),
                first.as_str(),
                "the message must be the same whether the facility exists or not"
            );
        }
    }

    // Moving one of A's rows over to B is refused the same way.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let moved = sqlx::query("UPDATE staff_accounts SET facility_id = $1 WHERE login_id = 'bob'")
        .bind(net.b.id.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await;
    assert_eq!(sqlstate(moved), "42501");
    drop(tx);

    let staff: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(staff, 4, "nothing was written");
}

#[tokio::test]
async fn without_a_context_nothing_is_visible_whether_the_setting_is_null_or_empty() {
    let net = network().await;
    // One connection, so that the second round runs where a transaction-local context was
    // used before (current_setting then returns '' instead of NULL).
    let db = Database::connect(&net.app.database.connections(), 1)
        .await
        .unwrap();
    let a = net.a.id;
    let use_a_context = |db: &Database| {
        let db = db.clone();
        async move {
            db.begin(Scope::Facility(a))
                .await
                .unwrap()
                .commit()
                .await
                .unwrap()
        }
    };
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;

    for round in ["never set (NULL)", "set earlier on this connection ('')"] {
        let mut pooled = db.connection().await.unwrap();
        let conn = pooled.raw_connection_for_tests();
        let setting: Option<String> =
            sqlx::query_scalar("SELECT current_setting('renrakucho.context', true)")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        match round {
            "never set (NULL)" => assert_eq!(setting, None),
            _ => assert_eq!(setting.as_deref(), Some("")),
        }
        let context: (Option<uuid::Uuid>, Option<uuid::Uuid>) =
            sqlx::query_as("SELECT current_facility_id(), current_staff_id()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(context, (None, None), "{round}");
        for table in tables.iter().map(|t| t.name.as_str()) {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(n, 0, "{table} shows rows with no context, {round}");
        }
        // Tables the web role has no privilege on at all: refused outright, whatever the
        // context (stricter than the zero rows the operators' table used to show).
        for (table, message) in [
            (
                "public.platform_operators",
                "permission denied for table platform_operators",
            ),
            ("private.sessions", "permission denied for schema private"),
            (
                "private.emergency_identifications",
                "permission denied for schema private",
            ),
            (
                "private.server_keys",
                "permission denied for schema private",
            ),
            (
                "private.announcements",
                "permission denied for schema private",
            ),
        ] {
            let refused = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *conn)
                .await;
            assert_eq!(
                refusal(refused),
                ("42501".to_string(), message.to_string()),
                "{table}, {round}"
            );
        }
        pooled.done();
        use_a_context(&db).await;
    }
}

/// What a forged or malformed `renrakucho.context` does: fail the statement (`Err(sqlstate)`)
/// or count nothing (`Ok(0)`). Never more.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ContextOutcome {
    Fails(&'static [&'static str]),
    NoContext,
}

#[tokio::test]
async fn a_malformed_context_fails_the_query_instead_of_widening_it() {
    // The attacker: any SQL as the web role, with its real credentials, on a connection of its
    // own, which it prepares as the server does (renrakucho_connection()). It cannot read the
    // context key, so it can only set the setting to values it makes up or has seen.
    let net = network().await;
    let a = net.a.id.as_uuid();
    let b = net.b.id.as_uuid();
    let mut conn = net.app.database.runtime_options().connect().await.unwrap();
    let (pid, chain): (i32, i64) = sqlx::query_as("SELECT pid, chain FROM renrakucho_connection()")
        .fetch_one(&mut conn)
        .await
        .unwrap();

    // A genuine context of A, as the server's own connection had it in a real transaction.
    let genuine: String = {
        let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
        let value: String = sqlx::query_scalar("SELECT current_setting('renrakucho.context')")
            .fetch_one(tx.raw_connection_for_tests())
            .await
            .unwrap();
        drop(tx);
        value
    };
    let parts: Vec<&str> = genuine.split(':').collect();
    assert_eq!(parts.len(), 4, "{genuine}");
    assert_eq!(parts[1], a.to_string());
    assert_ne!(
        parts[0],
        chain.to_string(),
        "another connection's chain value"
    );
    let proof = parts[3];
    let zeros = "0".repeat(64);

    let cases: Vec<(String, ContextOutcome)> = vec![
        // The old injection: not shaped like a context at all.
        ("not-a-uuid' OR true --".into(), ContextOutcome::NoContext),
        ("".into(), ContextOutcome::NoContext),
        // Shaped like one, but its parts are not numbers, UUIDs or hex: the statement fails.
        (
            format!("{chain}:not-a-uuid' OR true --::{zeros}"),
            ContextOutcome::Fails(&["22P02"]),
        ),
        (format!("x:{a}::{zeros}"), ContextOutcome::Fails(&["22P02"])),
        (
            format!("{chain}:{a}::zz"),
            ContextOutcome::Fails(&["22023", "22P02"]),
        ),
        // This connection's chain value and a made-up proof.
        (format!("{chain}:{a}::{zeros}"), ContextOutcome::NoContext),
        // A genuine context seen on another connection: its chain value is not this one's.
        (genuine.clone(), ContextOutcome::NoContext),
        // …moved to this connection's chain value, or to facility B, its proof no longer fits.
        (format!("{chain}:{a}::{proof}"), ContextOutcome::NoContext),
        (
            format!("{}:{b}::{proof}", parts[0]),
            ContextOutcome::NoContext,
        ),
        (format!("{chain}:{b}::{proof}"), ContextOutcome::NoContext),
        // A staff member added to a context that had none.
        (
            format!("{}:{a}:{}:{proof}", parts[0], uuid::Uuid::new_v4()),
            ContextOutcome::NoContext,
        ),
        // One part too many.
        (format!("{genuine}:{a}"), ContextOutcome::NoContext),
    ];
    for (value, expected) in cases {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('renrakucho.context', $1, true)")
            .bind(&value)
            .execute(&mut *tx)
            .await
            .unwrap();
        let counted = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM staff_accounts")
            .fetch_one(&mut *tx)
            .await;
        match (&expected, counted) {
            (ContextOutcome::NoContext, Ok(n)) => {
                assert_eq!(n, 0, "{value:?} shows rows");
                let context: (Option<uuid::Uuid>, Option<uuid::Uuid>) =
                    sqlx::query_as("SELECT current_facility_id(), current_staff_id()")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                assert_eq!(context, (None, None), "{value:?}");
            }
            (ContextOutcome::Fails(codes), Err(e)) => {
                let code = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                assert!(codes.contains(&code.as_str()), "{value:?}: {e}");
            }
            (expected, got) => panic!("{value:?}: expected {expected:?}, got {got:?}"),
        }
        tx.rollback().await.unwrap();
    }

    // The setting the policies used to read means nothing any more.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('renrakucho.facility_id', $1::text, true)")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0, "renrakucho.facility_id gives no context");
    tx.rollback().await.unwrap();

    // Nor does renrakucho_enter take a MAC the attacker made up, one for another backend, or
    // one for a chain value other than the connection's current one.
    for (who, with_pid, with_chain) in [
        ("this backend", pid, chain),
        ("another backend", pid + 1, chain),
        ("an older chain value", pid, chain - 1),
    ] {
        let mut tx = conn.begin().await.unwrap();
        let entered = sqlx::query_scalar::<_, i64>("SELECT renrakucho_enter($1, $2, $3, NULL, $4)")
            .bind(with_pid)
            .bind(with_chain)
            .bind(a)
            .bind(vec![0u8; 32])
            .fetch_one(&mut *tx)
            .await;
        assert_eq!(
            refusal(entered),
            ("42501".to_string(), "tenant context refused".to_string()),
            "{who}"
        );
        tx.rollback().await.unwrap();
    }

    // A connection that never drew a chain value cannot check any context: the statement
    // fails rather than let one through.
    let mut fresh = net.app.database.runtime_options().connect().await.unwrap();
    let mut tx = fresh.begin().await.unwrap();
    sqlx::query("SELECT set_config('renrakucho.context', $1, true)")
        .bind(&genuine)
        .execute(&mut *tx)
        .await
        .unwrap();
    let counted = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *tx)
        .await;
    assert_eq!(sqlstate(counted), "55000", "currval is not yet defined");
}

#[tokio::test]
async fn a_pooled_connection_serving_a_then_b_sees_only_b() {
    let net = network().await;
    let db = Database::connect(&net.app.database.connections(), 1)
        .await
        .unwrap();
    let backend_and_facilities = |scope: Scope, end: &'static str| {
        let db = db.clone();
        async move {
            let mut tx = db.begin(scope).await.unwrap();
            let conn = tx.raw_connection_for_tests();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let seen: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT DISTINCT facility_id FROM staff_accounts")
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            match end {
                "commit" => tx.commit().await.unwrap(),
                "error" => {
                    // A failed statement leaves the transaction aborted; the pool rolls it back.
                    let _ = sqlx::query("SELECT 1/0").execute(&mut *conn).await;
                    drop(tx);
                }
                _ => drop(tx),
            }
            (pid, seen)
        }
    };

    let (first, seen_a) = backend_and_facilities(Scope::Facility(net.a.id), "commit").await;
    assert_eq!(seen_a, vec![net.a.id.as_uuid()]);
    for end in ["commit", "rollback", "error"] {
        let (pid, seen_b) = backend_and_facilities(Scope::Facility(net.b.id), end).await;
        assert_eq!(pid, first, "the pool of one reuses its connection");
        assert_eq!(seen_b, vec![net.b.id.as_uuid()], "after A, ended by {end}");
        let (_, seen_a) = backend_and_facilities(Scope::Facility(net.a.id), end).await;
        assert_eq!(seen_a, vec![net.a.id.as_uuid()], "after B, ended by {end}");
    }
    // And outside any scoped transaction, the connection carries no tenant at all.
    let mut pooled = db.connection().await.unwrap();
    let conn = pooled.raw_connection_for_tests();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(pid, first);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_runtime_role_cannot_turn_row_level_security_off_or_become_the_owner() {
    let net = network().await;
    let mut conn = net.app.database.runtime_options().connect().await.unwrap();

    for (attempt, expected) in [
        ("SET ROLE renrakucho_owner", "42501"),
        ("SET ROLE postgres", "42501"),
        ("SET SESSION AUTHORIZATION renrakucho_owner", "42501"),
        (
            "ALTER TABLE staff_accounts NO FORCE ROW LEVEL SECURITY",
            "42501",
        ),
        (
            "ALTER TABLE staff_accounts DISABLE ROW LEVEL SECURITY",
            "42501",
        ),
        ("DROP POLICY staff_accounts_own ON staff_accounts", "42501"),
        (
            "CREATE POLICY everything ON staff_accounts USING (true)",
            "42501",
        ),
        ("ALTER ROLE renrakucho_app BYPASSRLS", "42501"),
        (
            "CREATE FUNCTION public.current_facility_id() RETURNS uuid LANGUAGE sql \
             AS 'SELECT NULL::uuid'",
            "42501",
        ),
        ("CREATE TABLE public.escape (id int)", "42501"),
        ("GRANT renrakucho_owner TO renrakucho_app", "42501"),
    ] {
        let result = sqlx::raw_sql(attempt).execute(&mut conn).await;
        assert_eq!(sqlstate(result), expected, "{attempt}");
    }

    // Switching row security off does not show rows: for a role bound by RLS the query fails.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let c = tx.raw_connection_for_tests();
    sqlx::raw_sql("SET LOCAL row_security = off")
        .execute(&mut *c)
        .await
        .unwrap();
    let result = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *c)
        .await;
    assert_eq!(sqlstate(result), "42501");
    drop(tx);

    // The group role it may switch to has the same privileges; RLS still holds there.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let c = tx.raw_connection_for_tests();
    sqlx::raw_sql("SET LOCAL ROLE renrakucho_runtime")
        .execute(&mut *c)
        .await
        .unwrap();
    let seen: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT facility_id FROM staff_accounts")
            .fetch_all(&mut *c)
            .await
            .unwrap();
    assert_eq!(seen, vec![net.a.id.as_uuid()]);
}

#[tokio::test]
async fn unique_and_foreign_key_checks_do_not_reveal_another_facilitys_values() {
    let net = network().await;
    // B already has a "carol"; A can create its own without learning that.
    net.app
        .seed_staff(&net.b, "carol", StaffRole::Staff, Profession::Pharmacist)
        .await;
    net.app
        .seed_staff(&net.a, "carol", StaffRole::Staff, Profession::Clerk)
        .await;

    // A second "carol" in A is a conflict, named by the per-facility constraint.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let duplicate = sqlx::query(
        "INSERT INTO staff_accounts (id, facility_id, login_id, display_name, role, profession,
                                     password_hash)
         VALUES (gen_random_uuid(), $1, 'carol', '重複', 'staff', 'clerk', 'x')",
    )
    .bind(net.a.id.as_uuid())
    .execute(tx.raw_connection_for_tests())
    .await
    .expect_err("a duplicate login ID in one facility");
    let db = duplicate.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("23505"));
    assert_eq!(
        db.constraint(),
        Some("staff_accounts_facility_id_login_id_key")
    );
    assert!(
        !db.message().contains(&net.b.id.as_uuid().to_string()),
        "{}",
        db.message()
    );
    drop(tx);

    // Referencing B's facility and one that does not exist fail identically (the policy is
    // checked before constraints), as the insert test shows for every table. Looking B's
    // account up by its ID finds nothing either.
    let mut su = superuser(&net.app).await;
    let b_staff: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM staff_accounts WHERE facility_id = $1 LIMIT 1")
            .bind(net.b.id.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let probe = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM staff_accounts WHERE id = $1 OR login_id = 'carol'",
    )
    .bind(b_staff)
    .fetch_one(tx.raw_connection_for_tests())
    .await
    .unwrap();
    assert_eq!(probe, 1, "A sees only its own carol");
}

#[tokio::test]
async fn platform_scope_sees_tenants_and_operators_but_no_staff() {
    let net = network().await;
    net.app.seed_operator("operator").await;
    let db = &net.app.db;

    // Platform scope runs as the role renrakucho_platform: facilities, operators and its own
    // audit chain.
    assert_eq!(
        count_in(db, Scope::Platform, "SELECT count(*) FROM facilities").await,
        3
    );
    assert_eq!(
        count_in(
            db,
            Scope::Platform,
            "SELECT count(*) FROM platform_operators"
        )
        .await,
        1
    );
    assert_eq!(
        count_in(
            db,
            Scope::Platform,
            "SELECT count(*) FROM audit_log WHERE facility_id IS NOT NULL"
        )
        .await,
        0,
        "the platform reads its own chain only"
    );
    assert!(count_in(db, Scope::Platform, "SELECT count(*) FROM audit_log").await > 0);

    // Staff and patient data: no privilege at all, so the statement is refused (stricter than
    // the zero rows a policy used to give), for every facility-owned table but the two above.
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;
    let mut refused = 0;
    for table in &tables {
        if ["public.facilities", "public.audit_log"].contains(&table.name.as_str()) {
            continue;
        }
        let bare = table.name.trim_start_matches("public.");
        assert_eq!(
            try_count_in(
                db,
                Scope::Platform,
                &format!("SELECT count(*) FROM {}", table.name)
            )
            .await,
            Err((
                "42501".to_string(),
                format!("permission denied for table {bare}")
            )),
            "{}",
            table.name
        );
        let any: bool = sqlx::query_scalar(
            "SELECT has_table_privilege('renrakucho_platform', $1::regclass,
                    'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
        )
        .bind(&table.name)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert!(
            !any,
            "renrakucho_platform has a privilege on {}",
            table.name
        );
        refused += 1;
    }
    assert!(refused >= 15, "the staff and patient tables were all tried");

    // A facility: its own row, no operators (no privilege: refused, stricter than the zero
    // rows it used to see), none of the platform's chain.
    let a = Scope::Facility(net.a.id);
    assert_eq!(count_in(db, a, "SELECT count(*) FROM facilities").await, 1);
    assert_eq!(
        try_count_in(db, a, "SELECT count(*) FROM platform_operators").await,
        Err((
            "42501".to_string(),
            "permission denied for table platform_operators".to_string()
        ))
    );
    assert_eq!(
        count_in(
            db,
            a,
            "SELECT count(*) FROM audit_log WHERE facility_id IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_sign_in_lookup_restores_the_callers_scope() {
    // The sign-in lookup and the directory are SECURITY DEFINER functions that read facilities
    // with an owner-only flag (renrakucho.directory) on, for their own query only. Afterwards
    // the flag is off whatever the caller had set, and the caller sees what it saw before.
    let net = network().await;

    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let c = tx.raw_connection_for_tests();
    // The web role may set the flag itself: it only matters to the owner's policies.
    sqlx::query("SELECT set_config('renrakucho.directory', 'on', true)")
        .execute(&mut *c)
        .await
        .unwrap();
    let facilities: i64 = sqlx::query_scalar("SELECT count(*) FROM facilities")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    assert_eq!(facilities, 1, "a flag set by the web role widens nothing");
    let found: (uuid::Uuid, String) =
        sqlx::query_as("SELECT facility_id, status FROM facility_for_sign_in('iso-b')")
            .fetch_one(&mut *c)
            .await
            .unwrap();
    assert_eq!(found, (net.b.id.as_uuid(), "active".to_string()));
    let after: (String, Option<uuid::Uuid>, i64) = sqlx::query_as(
        "SELECT coalesce(current_setting('renrakucho.directory', true), ''),
                current_facility_id(), (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(
        after,
        (String::new(), Some(net.a.id.as_uuid()), 1),
        "no flag left set, the caller's own context, its own facility only"
    );
    let directory: Vec<String> =
        sqlx::query_scalar("SELECT code FROM facility_directory(NULL, NULL) ORDER BY code")
            .fetch_all(&mut *c)
            .await
            .unwrap();
    assert_eq!(directory, ["ISO-A", "ISO-B", "ISO-C"]);
    let after: (String, i64) = sqlx::query_as(
        "SELECT coalesce(current_setting('renrakucho.directory', true), ''),
                (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(after, (String::new(), 1), "after the directory too");
    drop(tx);

    // Sign-in itself runs on a web connection with no tenant at all: the lookup answers, and
    // leaves nothing behind.
    let mut pooled = net.app.db.connection().await.unwrap();
    let c = pooled.raw_connection_for_tests();
    let found: (uuid::Uuid, String) =
        sqlx::query_as("SELECT facility_id, status FROM facility_for_sign_in('ISO-A')")
            .fetch_one(&mut *c)
            .await
            .unwrap();
    assert_eq!(found, (net.a.id.as_uuid(), "active".to_string()));
    let after: (String, Option<uuid::Uuid>, i64) = sqlx::query_as(
        "SELECT coalesce(current_setting('renrakucho.directory', true), ''),
                current_facility_id(), (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(after, (String::new(), None, 0));
    pooled.done();

    // Platform scope (its own role) is not granted the web role's lookup: refused (stricter
    // than before, when it ran there and restored the platform flag).
    let mut tx = net.app.db.begin(Scope::Platform).await.unwrap();
    let refused = sqlx::query_as::<_, (uuid::Uuid, String)>(
        "SELECT facility_id, status FROM facility_for_sign_in('iso-b')",
    )
    .fetch_one(tx.raw_connection_for_tests())
    .await;
    assert_eq!(
        refusal(refused),
        (
            "42501".to_string(),
            "permission denied for function facility_for_sign_in".to_string()
        )
    );
}
