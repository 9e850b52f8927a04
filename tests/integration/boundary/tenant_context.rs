//! The tenant context: one the web role makes itself, or copies from a genuine transaction
//! of the server, grants nothing; a captured context does not replay on its own backend; a
//! statement prepared in one request does not run in the next.

use super::*;

#[tokio::test]
async fn a_tenant_context_the_web_role_makes_or_copies_grants_nothing() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-CTX").await;
    let (b, p) = (t.b.id.as_uuid(), t.b_patient);
    let before = snapshot(&app).await;
    let mut me = attacker(&app).await;

    // A genuine transaction of B, kept open: its statement and its context value, as the
    // attacker can read them.
    let mut live = app.db.begin(staff_scope(&t.b, &t.b_admin)).await.unwrap();
    let (live_pid, copied_enter) = captured_enter(&mut me, b).await;
    let copied_context: String = sqlx::query_scalar("SELECT current_setting('renrakucho.context')")
        .fetch_one(live.raw_connection_for_tests())
        .await
        .unwrap();
    assert!(copied_context.contains(&b.to_string()), "{copied_context}");
    // The genuine transaction does see B's patient (the attacks below are not vacuous).
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE id = $1")
        .bind(p)
        .fetch_one(live.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(seen, 1);

    exec(&mut me, "BEGIN").await;
    let (my_pid, my_chain): (i32, i64) =
        sqlx::query_as("SELECT pid, chain FROM renrakucho_connection()")
            .fetch_one(&mut me)
            .await
            .unwrap();
    assert_ne!(my_pid, live_pid);
    let zeros = "00".repeat(32);
    let forged_settings = [
        ("renrakucho.facility_id", b.to_string()),
        ("renrakucho.context", format!("{my_chain}:{b}::{zeros}")),
        (
            "renrakucho.context",
            format!("{my_chain}:{b}:{}:{zeros}", t.b_admin.id.as_uuid()),
        ),
        ("renrakucho.context", copied_context.clone()),
        // The copied proof with the attacker's own chain value.
        ("renrakucho.context", {
            let mut parts: Vec<&str> = copied_context.split(':').collect();
            let chain = my_chain.to_string();
            parts[0] = &chain;
            parts.join(":")
        }),
        ("renrakucho.context", b.to_string()),
    ];
    for (name, value) in &forged_settings {
        for local in [true, false] {
            let set = format!("SELECT set_config('{name}', '{value}', {local})");
            probe(&mut me, &set).await.unwrap();
            sees_nothing(&mut me, &format!("{name} = {value} (local: {local})")).await;
            assert_eq!(rows_of_b(&mut me, &t).await, 0, "{set}");
            probe(&mut me, &format!("SELECT set_config('{name}', '', false)"))
                .await
                .unwrap();
        }
    }

    // renrakucho_enter with made-up MACs, another backend's ID, a stale chain value.
    let enter = |pid: i32, chain: i64, mac: &str| {
        format!("SELECT renrakucho_enter({pid}, {chain}, '{b}', NULL, '\\x{mac}'::bytea)")
    };
    for attempt in [
        enter(my_pid, my_chain, &zeros),
        enter(my_pid, my_chain, &"ab".repeat(32)),
        enter(my_pid, my_chain, ""),
        enter(live_pid, my_chain, &zeros),
        enter(my_pid, my_chain - 1, &zeros),
        enter(my_pid, my_chain + 1, &zeros),
        format!("SELECT renrakucho_enter({my_pid}, {my_chain}, NULL, NULL, NULL)"),
    ] {
        refused(&mut me, &attempt, &["42501"]).await;
        sees_nothing(&mut me, &attempt).await;
    }
    // The copied statement: another backend's, another chain value.
    refused(&mut me, &copied_enter, &["42501", "55000"]).await;
    sees_nothing(&mut me, "the copied renrakucho_enter").await;
    // The same with the attacker's own backend ID and chain value, and the copied MAC.
    let copied_mac = copied_enter
        .rsplit("'\\x")
        .next()
        .and_then(|m| m.split('\'').next())
        .unwrap()
        .to_string();
    refused(
        &mut me,
        &format!(
            "SELECT renrakucho_enter({my_pid}, {my_chain}, '{b}', '{}', '\\x{copied_mac}'::bytea)",
            t.b_admin.id.as_uuid()
        ),
        &["42501"],
    )
    .await;
    exec(&mut me, "ROLLBACK").await;

    // A fresh session, where the chain has no value yet.
    let mut fresh = attacker(&app).await;
    exec(&mut fresh, "BEGIN").await;
    refused(&mut fresh, &copied_enter, &["42501", "55000"]).await;
    sees_nothing(&mut fresh, "a fresh session with the copied statement").await;
    exec(&mut fresh, "ROLLBACK").await;

    // Injected into a genuine transaction of A: the copied statement, the copied value.
    let mut a_tx = app.db.begin(Scope::Facility(t.a.id)).await.unwrap();
    let raw = a_tx.raw_connection_for_tests();
    assert_eq!(rows_of_b(raw, &t).await, 0, "A's own context");
    refused(raw, &copied_enter, &["25001"]).await;
    probe(raw, "SELECT set_config('renrakucho.context', '', true)")
        .await
        .unwrap();
    refused(raw, &copied_enter, &["42501", "55000"]).await;
    probe(
        raw,
        &format!("SELECT set_config('renrakucho.context', '{copied_context}', true)"),
    )
    .await
    .unwrap();
    assert_eq!(rows_of_b(raw, &t).await, 0, "A with B's copied context");
    sees_nothing(raw, "A with B's copied context").await;
    drop(a_tx);

    // B's own transaction still stands, untouched by all this.
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE id = $1")
        .bind(p)
        .fetch_one(live.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(seen, 1);
    drop(live);
    settled(&app).await;
    unchanged(
        &before,
        &snapshot(&app).await,
        &[],
        "forging a tenant context",
    );
}

/// The server's own connection, after the genuine transaction whose statement the attacker
/// captured: the statement replayed there (an injection in a later request that lands on the
/// same backend) is refused, also after `DISCARD SEQUENCES`.
#[tokio::test]
async fn a_captured_context_does_not_replay_on_its_own_backend() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-REPLAY").await;
    let b = t.b.id.as_uuid();
    let before = snapshot(&app).await;
    let db = Database::connect(&app.database.connections(), 1)
        .await
        .unwrap();
    let mut me = attacker(&app).await;

    let tx = db.begin(staff_scope(&t.b, &t.b_admin)).await.unwrap();
    let (pid, captured) = captured_enter(&mut me, b).await;
    drop(tx);
    wait_until("the rolled-back connection is back", || async {
        db.web_pool_size() == (1, 1)
    })
    .await;

    let mut conn = db.connection().await.unwrap();
    let raw = conn.raw_connection_for_tests();
    let same: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *raw)
        .await
        .unwrap();
    assert_eq!(same, pid, "the very backend the statement was captured on");
    exec(raw, "BEGIN").await;
    sees_nothing(raw, "between transactions").await;
    refused(raw, &captured, &["42501"]).await;
    sees_nothing(raw, "the captured statement replayed").await;
    exec(raw, "ROLLBACK").await;
    exec(raw, "DISCARD SEQUENCES").await;
    exec(raw, "BEGIN").await;
    refused(raw, &captured, &["42501", "55000"]).await;
    sees_nothing(raw, "replayed after DISCARD SEQUENCES").await;
    exec(raw, "ROLLBACK").await;
    // Not done(): the pool closes it.
    drop(conn);

    // The server carries on (a new connection), its context accepted.
    let mut tx = db.begin(Scope::Facility(t.b.id)).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE id = $1")
        .bind(t.b_patient)
        .fetch_one(tx.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(seen, 1);
    drop(tx);
    settled(&app).await;
    unchanged(&before, &snapshot(&app).await, &[], "replaying a context");
}

/// What a connection keeps from one transaction to the next is not only settings: a statement
/// prepared under a name sqlx already uses (read off `pg_prepared_statements`) is what the next
/// request on that connection executes, inside *its* genuine context.
#[tokio::test]
async fn a_statement_prepared_in_one_request_does_not_run_in_the_next() {
    let app = spawn_app().await;
    let t = trio(&app, "BND-PREP").await;
    let (a, b, p) = (t.a.id.as_uuid(), t.b.id.as_uuid(), t.b_patient);
    // One connection, so the next request surely lands on it.
    let db = Database::connect(&app.database.connections(), 1)
        .await
        .unwrap();

    // B's administrator reads the audit log: sqlx prepares the statement and keeps it.
    let mut tx = db.begin(staff_scope(&t.b, &t.b_admin)).await.unwrap();
    assert!(!renrakucho_store::audit::recent(&mut tx, 10)
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();

    // SQL injected into a request of A, on that connection.
    let mut tx = db.begin(Scope::Facility(t.a.id)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    let prepared: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, statement, array_to_string(parameter_types, ',')
           FROM pg_prepared_statements WHERE NOT from_sql",
    )
    .fetch_all(&mut *raw)
    .await
    .unwrap();
    let (name, statement, types) = prepared
        .iter()
        .find(|(_, s, _)| s.contains("FROM audit_log ORDER BY seq DESC LIMIT $1"))
        .cloned()
        .unwrap_or_else(|| panic!("the audit statement is prepared: {prepared:#?}"));
    let planted = format!(
        "DEALLOCATE {name};
         PREPARE {name} ({types}) AS
         WITH planted AS (
             INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id,
                                            role, status)
             SELECT pt.id, pt.facility_id, '{a}', 'member', 'invited' FROM patients pt
              WHERE pt.facility_id = current_facility_id()
             ON CONFLICT DO NOTHING RETURNING 1)
         {statement}"
    );
    let planting = sqlx::raw_sql(&planted).execute(&mut *raw).await;
    tx.commit().await.unwrap();

    // B's administrator reads the audit log again, on the same connection.
    let mut tx = db.begin(staff_scope(&t.b, &t.b_admin)).await.unwrap();
    let read = renrakucho_store::audit::recent(&mut tx, 10).await;
    tx.commit().await.unwrap();

    let mut su = superuser(&app).await;
    let membership: Option<String> = sqlx::query_scalar(
        "SELECT status FROM care_team_members WHERE patient_id = $1 AND facility_id = $2",
    )
    .bind(p)
    .bind(a)
    .fetch_optional(&mut su)
    .await
    .unwrap();
    // What the attacker does next, through the ordinary API: accept, and read B's notebook.
    let accepted = t
        .a_client
        .post(patient_url(&app, p, "/care-team/accept"))
        .send()
        .await
        .unwrap()
        .status();
    // Should A now be a member after all, the server's authorizer learns of it before A reads
    // (the breach shows in the notebook's answer too); otherwise there is nothing to wait for.
    let now_member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM care_team_members
                         WHERE patient_id = $1 AND facility_id = $2 AND status = 'member')",
    )
    .bind(p)
    .bind(a)
    .fetch_one(&mut su)
    .await
    .unwrap();
    if now_member {
        authorizer_follows(&app, &t.a, p, Action::PatientRead, true).await;
    }
    let notebook = t
        .a_client
        .get(patient_url(&app, p, "/entries"))
        .send()
        .await
        .unwrap();
    let notebook_status = notebook.status().as_u16();
    let notebook_body = notebook.text().await.unwrap_or_default();
    assert!(
        membership.is_none() && notebook_status == 404,
        "a statement A planted under sqlx's name {name} (planting: {planting:?}) ran inside B's \
         next genuine transaction on that connection (B's read answered normally: {:?} records): \
         A's membership of B's patient: {membership:?}; A accepts: {accepted}; A reads B's \
         notebook: {notebook_status} {}",
        read.map(|r| r.len()),
        notebook_body.chars().take(200).collect::<String>()
    );
    let _ = b;
}
