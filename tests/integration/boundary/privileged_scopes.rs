//! The privileged scopes (platform, key maintenance, access sync, digest): no scope flag and
//! no privileged role opens one to the web role.

use super::*;

const SCOPE_FLAGS: [&str; 4] = [
    "renrakucho.platform",
    "renrakucho.key_maintenance",
    "renrakucho.access_sync",
    "renrakucho.digest",
];

/// What each privileged scope would open, read as the web role with the old scope settings on:
/// operators' password hashes, wrapped keys, everyone's relations, staff e-mail addresses, the
/// platform's audit chain.
async fn privileged_reads_give_nothing(conn: &mut PgConnection, a: Uuid) {
    refused(
        conn,
        "SELECT login_id, password_hash FROM platform_operators",
        &["42501"],
    )
    .await;
    refused(conn, "SELECT * FROM private.server_keys", &["42501"]).await;
    refused(conn, "SELECT * FROM private.announcements", &["42501"]).await;
    refused(conn, "SELECT * FROM private.sessions", &["42501"]).await;
    nothing(conn, &format!("SELECT * FROM data_keys WHERE facility_id IS DISTINCT FROM '{a}' AND owner_kind <> 'blind_index'")).await;
    nothing(
        conn,
        &format!("SELECT * FROM patient_access WHERE facility_id <> '{a}'"),
    )
    .await;
    nothing(
        conn,
        &format!("SELECT * FROM notification_settings WHERE facility_id <> '{a}'"),
    )
    .await;
    nothing(conn, "SELECT * FROM audit_log WHERE facility_id IS NULL").await;
    nothing(conn, &format!("SELECT * FROM facilities WHERE id <> '{a}'")).await;
    nothing(
        conn,
        "UPDATE data_keys SET wrapped = '\\xdeadbeef'::bytea RETURNING 1",
    )
    .await;
    refused(
        conn,
        "UPDATE data_keys SET master_key_id = 'attacker' RETURNING 1",
        &["42501"],
    )
    .await;
    refused(conn, "DELETE FROM data_keys RETURNING 1", &["42501"]).await;
    refused(
        conn,
        "UPDATE facilities SET status = 'suspended' RETURNING 1",
        &["42501"],
    )
    .await;
    refused(
        conn,
        "INSERT INTO facilities (id, code, name, kind) VALUES (gen_random_uuid(), 'EVIL', 'evil', 'clinic') RETURNING 1",
        &["42501"],
    )
    .await;
    refused(
        conn,
        "INSERT INTO audit_log (facility_id, seq, actor_kind, action, outcome, details, prev_hash, hash)
         VALUES (NULL, 0, 'system', 'platform.forged', 'success', '{}', '', '') RETURNING 1",
        &["42501"],
    )
    .await;
    refused(conn, "SELECT nextval('private.context_chain')", &["42501"]).await;
    refused(
        conn,
        "SELECT setval('private.context_chain', 1)",
        &["42501"],
    )
    .await;
}

#[tokio::test]
async fn no_privileged_scope_opens_to_the_web_role() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-PRIV").await;
    app.seed_operator("bnd-operator").await;
    let a = t.a.id.as_uuid();
    let before = snapshot(&app).await;
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;
    let mut roles: Vec<&str> = renrakucho_store::PRIVILEGED_ROLES.to_vec();
    roles.push("renrakucho_owner");
    for role in &roles {
        refused(&mut me, &format!("SET ROLE {role}"), &["42501"]).await;
        refused(
            &mut me,
            &format!("SET SESSION AUTHORIZATION {role}"),
            &["42501"],
        )
        .await;
        refused(
            &mut me,
            &format!("SELECT set_config('role', '{role}', false)"),
            &["42501"],
        )
        .await;
    }
    for flag in SCOPE_FLAGS {
        probe(
            &mut me,
            &format!("SELECT set_config('{flag}', 'on', false)"),
        )
        .await
        .unwrap();
        privileged_reads_give_nothing(&mut me, a).await;
    }
    sees_nothing(&mut me, "every scope flag on").await;
    exec(&mut me, "ROLLBACK").await;

    // The same, injected into a genuine transaction of A.
    let mut tx = app.db.begin(staff_scope(&t.a, &t.a_admin)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    for role in &roles {
        refused(raw, &format!("SET LOCAL ROLE {role}"), &["42501"]).await;
    }
    for flag in SCOPE_FLAGS {
        probe(raw, &format!("SELECT set_config('{flag}', 'on', true)"))
            .await
            .unwrap();
    }
    privileged_reads_give_nothing(raw, a).await;
    assert_eq!(rows_of_b(raw, &t).await, 0, "A with every scope flag on");
    drop(tx);
    settled(&app).await;
    unchanged(&before, &snapshot(&app).await, &[], "privileged scopes");
}
