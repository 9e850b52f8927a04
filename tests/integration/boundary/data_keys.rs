//! Data keys: neither destroyed nor replaced outside erasure.

use super::*;

#[tokio::test]
async fn data_keys_are_neither_destroyed_nor_replaced_outside_erasure() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-KEYS").await;
    let (a, b, p, ap) = (t.a.id.as_uuid(), t.b.id.as_uuid(), t.b_patient, t.a_patient);
    let before = snapshot(&app).await;

    let mut tx = app.db.begin(staff_scope(&t.a, &t.a_admin)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    let own = count(
        raw,
        &format!("SELECT count(*) FROM data_keys WHERE owner_id = '{ap}'"),
    )
    .await;
    assert!(own >= 1, "A reads its own patient's key");
    nothing(raw, &format!("UPDATE data_keys SET wrapped = '\\xdeadbeef'::bytea WHERE owner_id = '{ap}' RETURNING 1")).await;
    nothing(raw, &format!("UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE owner_id = '{ap}' RETURNING 1")).await;
    nothing(raw, &format!("UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE owner_id = '{a}' RETURNING 1")).await;
    nothing(raw, &format!("UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE owner_id = '{p}' RETURNING 1")).await;
    refused(
        raw,
        "UPDATE data_keys SET master_key_id = 'attacker' RETURNING 1",
        &["42501"],
    )
    .await;
    refused(raw, "DELETE FROM data_keys RETURNING 1", &["42501"]).await;
    let insert = |kind: &str, owner: Uuid, version: i32, facility: &str| {
        format!(
            "INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id, wrapped)
             VALUES ('{kind}', '{owner}', {version}, {facility}, 'local:attacker', '\\xdeadbeef'::bytea)
             RETURNING 1"
        )
    };
    for facility in [format!("'{a}'"), format!("'{b}'")] {
        refused(raw, &insert("patient", p, 2, &facility), &["42501"]).await;
        refused(
            raw,
            &insert("patient", p, 1, &facility),
            &["42501", "23505"],
        )
        .await;
    }
    refused(
        raw,
        &insert("facility", b, 2, &format!("'{b}'")),
        &["42501"],
    )
    .await;
    refused(
        raw,
        &insert("facility", b, 2, &format!("'{a}'")),
        &["23514", "42501"],
    )
    .await;
    let blind: Option<(Uuid, i32)> = probe(
        raw,
        "SELECT owner_id, max(version) FROM data_keys WHERE owner_kind = 'blind_index' GROUP BY 1",
    )
    .await
    .unwrap()
    .first()
    .map(|r| (r.get(0), r.get(1)));
    if let Some((owner, version)) = blind {
        refused(
            raw,
            &insert("blind_index", owner, version + 1, "NULL"),
            &["42501"],
        )
        .await;
    }
    drop(tx);

    // Key maintenance re-wraps, nothing else: never `wrapped` alone, never to NULL, no new
    // patient key; and it reads no patient data.
    let mut tx = app.db.begin(Scope::KeyMaintenance).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    let keys = count(raw, "SELECT count(*) FROM data_keys").await;
    let mut su = superuser(&app).await;
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(keys, all, "key maintenance reads every key");
    for owner in [p, ap] {
        refused(raw, &format!("UPDATE data_keys SET wrapped = '\\xdeadbeef'::bytea WHERE owner_id = '{owner}' RETURNING 1"), &["42501"]).await;
        refused(
            raw,
            &format!("UPDATE data_keys SET wrapped = NULL WHERE owner_id = '{owner}' RETURNING 1"),
            &["42501", "23514"],
        )
        .await;
        refused(raw, &format!("UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE owner_id = '{owner}' RETURNING 1"), &["42501"]).await;
        refused(raw, &format!("UPDATE data_keys SET wrapped = NULL, master_key_id = 'x' WHERE owner_id = '{owner}' RETURNING 1"), &["42501", "23514"]).await;
    }
    refused(raw, &insert("patient", p, 2, &format!("'{b}'")), &["42501"]).await;
    refused(
        raw,
        &insert("patient", Uuid::new_v4(), 1, &format!("'{b}'")),
        &["42501"],
    )
    .await;
    refused(
        raw,
        &insert("facility", b, 2, &format!("'{b}'")),
        &["42501"],
    )
    .await;
    for table in [
        "patients",
        "entries",
        "consents",
        "staff_accounts",
        "notification_settings",
    ] {
        nothing(raw, &format!("SELECT * FROM {table}")).await;
    }
    drop(tx);
    settled(&app).await;
    unchanged(&before, &snapshot(&app).await, &[], "data keys");
}
