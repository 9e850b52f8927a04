//! SECURITY DEFINER functions reach no further than their caller, whatever owner flags the
//! web role sets; re-encryption is for key maintenance only.

use super::*;

const OWNER_FLAGS: [&str; 4] = [
    "access_maintenance",
    "directory",
    "session_store",
    "announcing",
];

/// Sets every owner-only flag as the attacker would: the two patient flags to B's patient, the
/// others on.
async fn set_owner_flags(conn: &mut PgConnection, patient: Uuid, local: bool) {
    for flag in ["erasure_patient", "reencrypt_patient"] {
        probe(
            conn,
            &format!("SELECT set_config('renrakucho.{flag}', '{patient}', {local})"),
        )
        .await
        .unwrap();
    }
    for flag in OWNER_FLAGS {
        probe(
            conn,
            &format!("SELECT set_config('renrakucho.{flag}', 'on', {local})"),
        )
        .await
        .unwrap();
    }
}

/// As the superuser: how many rows of each table are about `patient`.
async fn rows_about(app: &TestApp, patient: Uuid) -> BTreeMap<String, i64> {
    let mut su = superuser(app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.columns
          WHERE table_schema = 'public' AND column_name = 'patient_id' ORDER BY 1",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    let mut rows = BTreeMap::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE patient_id = $1"
        ))
        .bind(patient)
        .fetch_one(&mut su)
        .await
        .unwrap();
        rows.insert(table, n);
    }
    for (name, sql) in [
        (
            "public.patients",
            "SELECT count(*) FROM patients WHERE id = $1",
        ),
        (
            "public.data_keys",
            "SELECT count(*) FROM data_keys WHERE owner_id = $1 AND wrapped IS NOT NULL",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(patient)
            .fetch_one(&mut su)
            .await
            .unwrap();
        rows.insert(name.to_string(), n);
    }
    rows
}

#[tokio::test]
async fn security_definer_functions_reach_no_further_than_their_caller() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-DEF").await;
    let (a, p) = (t.a.id.as_uuid(), t.b_patient);
    let b_rows = rows_about(&app, p).await;
    assert!(
        b_rows["public.entries"] >= 3 && b_rows["public.patients"] == 1,
        "{b_rows:?}"
    );
    let before = snapshot(&app).await;
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;

    // Functions the web role may not execute at all.
    for call in [
        format!("SELECT refresh_patient_access('{p}')"),
        "SELECT patient_access_changed()".to_string(),
        "SELECT data_keys_announce()".to_string(),
        "SELECT entries_announce()".to_string(),
        "SELECT private.definer_flags('directory')".to_string(),
        "SELECT private.definer_flags('directory')".to_string(),
        "SELECT private.context_parts()".to_string(),
        "SELECT private.announce('renrakucho_events', '{}'::jsonb)".to_string(),
    ] {
        refused(&mut me, &call, &["42501"]).await;
    }

    // The ones it may: each for its own caller and arguments only.
    for local in [false, true] {
        if local {
            set_owner_flags(&mut me, p, true).await;
        }
        refused(&mut me, &format!("SELECT erase_patient('{p}')"), &["P0002"]).await;
        let sign_in = probe(
            &mut me,
            &format!("SELECT * FROM facility_for_sign_in('{}')", t.b.code),
        )
        .await
        .unwrap();
        assert_eq!(sign_in.len(), 1);
        let columns: Vec<&str> = sign_in[0]
            .columns()
            .iter()
            .map(sqlx::Column::name)
            .collect();
        assert_eq!(columns, ["facility_id", "status"]);
        let directory = probe(&mut me, "SELECT * FROM facility_directory(NULL, NULL)")
            .await
            .unwrap();
        assert_eq!(directory.len(), 3, "the three active facilities");
        let columns: Vec<&str> = directory[0]
            .columns()
            .iter()
            .map(sqlx::Column::name)
            .collect();
        assert_eq!(columns, ["id", "code", "name", "kind"]);
        for id in ["made-up", "", "%", "' OR true --"] {
            nothing(
                &mut me,
                &format!("SELECT * FROM session_load('{}')", id.replace('\'', "''")),
            )
            .await;
        }
        let expired = count(&mut me, "SELECT session_delete_expired()").await;
        assert_eq!(expired, 0);
        sees_nothing(&mut me, "after the definer functions").await;
        set_owner_flags(&mut me, p, false).await;
    }
    exec(&mut me, "ROLLBACK").await;

    // Injected into A's genuine transaction: erasing B's patient, with and without a deletion
    // request (which A may not record for a patient it does not share).
    let mut tx = app.db.begin(staff_scope(&t.a, &t.a_admin)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    set_owner_flags(raw, p, true).await;
    refused(raw, &format!("SELECT erase_patient('{p}')"), &["P0002"]).await;
    refused(
        raw,
        &format!(
            "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
             VALUES (gen_random_uuid(), '{a}', '{p}', '{}') RETURNING 1",
            t.a_admin.id.as_uuid()
        ),
        &["42501"],
    )
    .await;
    refused(raw, &format!("SELECT erase_patient('{p}')"), &["P0002"]).await;
    assert_eq!(rows_of_b(raw, &t).await, 0, "A with every owner flag on");
    drop(tx);
    settled(&app).await;
    unchanged(&before, &snapshot(&app).await, &[], "definer functions");

    // A erases its own patient — legitimately, with a deletion request recorded in the same
    // transaction — while every owner flag names B's patient: only A's patient goes.
    let a_rows = rows_about(&app, t.a_patient).await;
    assert_eq!(a_rows["public.patients"], 1);
    let mut tx = app.db.begin(staff_scope(&t.a, &t.a_admin)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    set_owner_flags(raw, p, true).await;
    // Not in a savepoint: the request must be the transaction's own (its xmin).
    exec(
        raw,
        &format!(
            "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
             VALUES (gen_random_uuid(), '{a}', '{}', '{}')",
            t.a_patient,
            t.a_admin.id.as_uuid()
        ),
    )
    .await;
    set_owner_flags(raw, p, true).await;
    let erased: String =
        sqlx::query_scalar(&format!("SELECT erase_patient('{}')::text", t.a_patient))
            .fetch_one(&mut *raw)
            .await
            .unwrap();
    assert!(erased.contains("\"patients\": 1"), "{erased}");
    assert_eq!(
        rows_of_b(raw, &t).await,
        0,
        "erasing its own patient shows A nothing of B"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        rows_about(&app, p).await,
        b_rows,
        "B's patient is untouched"
    );
    assert_eq!(
        rows_about(&app, t.a_patient).await["public.patients"],
        0,
        "A's patient is erased"
    );
}

/// Re-encryption reads and rewrites any patient's encrypted cells past every guard trigger: key
/// maintenance only (ADR 0013 §3).
#[tokio::test]
async fn re_encryption_is_for_key_maintenance_only() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-REENC").await;
    let p = t.b_patient;
    let before = snapshot(&app).await;
    let mut me = attacker(&app).await;
    let privileges: Vec<(String, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, has_function_privilege(p.oid, 'EXECUTE')
           FROM pg_proc p WHERE p.proname IN ('encrypted_values', 'reencrypt_value') ORDER BY 1",
    )
    .fetch_all(&mut me)
    .await
    .unwrap();
    exec(&mut me, "BEGIN").await;
    let mut got_through = Vec::new();
    for call in [
        format!("SELECT row_id, value FROM encrypted_values('entries', 'body_enc', '{p}')"),
        format!("SELECT row_id, value FROM encrypted_values('patients', 'name_enc', '{p}')"),
        format!(
            "SELECT reencrypt_value('entries', 'body_enc', '{p}', '{}', '\\x00'::bytea, '\\x00'::bytea)",
            t.b_entries[0]
        ),
    ] {
        match probe(&mut me, &call).await {
            Err(code) if code == "42501" => {}
            other => got_through.push(format!(
                "{call}: {}",
                match other {
                    Ok(rows) => format!("{} rows", rows.len()),
                    Err(code) => code,
                }
            )),
        }
    }
    // What an attacker would do with it: overwrite B's entry with a ciphertext of its choice.
    let rows = probe(
        &mut me,
        &format!("SELECT row_id, value FROM encrypted_values('entries', 'body_enc', '{p}')"),
    )
    .await
    .unwrap_or_default();
    if let Some(row) = rows.first() {
        let (id, value): (Uuid, Vec<u8>) = (row.get(0), row.get(1));
        let replaced = probe(
            &mut me,
            &format!(
                "SELECT reencrypt_value('entries', 'body_enc', '{p}', '{id}', '\\x{}'::bytea, '\\xdeadbeef'::bytea)",
                value.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        )
        .await;
        got_through.push(format!("overwriting B's entry {id}: {replaced:?}"));
    }
    exec(&mut me, "ROLLBACK").await;
    unchanged(
        &before,
        &snapshot(&app).await,
        &[],
        "re-encryption functions",
    );
    assert!(
        got_through.is_empty(),
        "the web role executes the re-encryption functions (privileges: {privileges:?}):\n{}",
        got_through.join("\n")
    );
}
