//! The database boundary against the server's own role (issue 10, ADR 0013): an attacker who can
//! run any SQL as the web role, with its real credentials, tries every way past it.
//!
//! Each attack is run for real — as `renrakucho_app` on a connection of its own (a leaked runtime
//! URL), or inside a genuine transaction of the server (SQL injected into a request) — and is
//! asserted to be refused (a specific SQLSTATE, or no rows) with nothing changed: every table
//! of the database is compared, as the superuser, before and after.

use std::collections::BTreeMap;
use std::time::Duration;

use renrakucho_authz::Action;
use renrakucho_store::{Database, Scope};
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::postgres::PgRow;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use uuid::Uuid;

use crate::support::{
    authorizer_follows, patient_url, superuser, trio, wait_until, Trio, PATIENCE,
};

// ------------------------------------------------------------------------------------------------
// The attacker's tools.

/// The attacker: a connection as the web role, with its real credentials.
async fn attacker(app: &TestApp) -> PgConnection {
    app.database.runtime_options().connect().await.unwrap()
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("not a database error: {e}"))
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs one statement inside a savepoint (the connection is in a transaction), so a refusal
/// does not end the transaction: its rows, or its SQLSTATE.
async fn probe(conn: &mut PgConnection, sql: &str) -> Result<Vec<PgRow>, String> {
    exec(conn, "SAVEPOINT probe").await;
    match sqlx::query(sql).fetch_all(&mut *conn).await {
        Ok(rows) => {
            exec(conn, "RELEASE SAVEPOINT probe").await;
            Ok(rows)
        }
        Err(e) => {
            exec(conn, "ROLLBACK TO SAVEPOINT probe").await;
            Err(sqlstate(&e))
        }
    }
}

/// Asserts `sql` fails with one of `codes`.
async fn refused(conn: &mut PgConnection, sql: &str, codes: &[&str]) {
    match probe(conn, sql).await {
        Ok(rows) => panic!("not refused ({} rows): {sql}", rows.len()),
        Err(code) => assert!(
            codes.contains(&code.as_str()),
            "refused with {code}, expected one of {codes:?}: {sql}"
        ),
    }
}

/// Asserts `sql` returns no rows, or is refused for want of privilege.
async fn nothing(conn: &mut PgConnection, sql: &str) {
    match probe(conn, sql).await {
        Ok(rows) => assert!(rows.is_empty(), "{} rows: {sql}", rows.len()),
        Err(code) => assert_eq!(code, "42501", "{sql}"),
    }
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    let rows = probe(conn, sql)
        .await
        .unwrap_or_else(|code| panic!("{code}: {sql}"));
    rows[0].get::<i64, _>(0)
}

/// The tables under row-level security the connection may read.
async fn rls_tables(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity
            AND has_table_privilege(c.oid, 'SELECT')
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

/// Asserts the connection (in a transaction) has no tenant context: every table under row-level
/// security shows no row (or refuses), and `current_facility_id()` is NULL (or refuses).
async fn sees_nothing(conn: &mut PgConnection, what: &str) {
    for table in rls_tables(conn).await {
        match probe(conn, &format!("SELECT count(*) FROM {table}")).await {
            Ok(rows) => assert_eq!(rows[0].get::<i64, _>(0), 0, "{what}: rows of {table}"),
            Err(code) => assert!(
                ["42501", "22P02", "22023"].contains(&code.as_str()),
                "{what}: {table}: {code}"
            ),
        }
    }
    if let Ok(rows) = probe(conn, "SELECT current_facility_id()").await {
        assert_eq!(
            rows[0].get::<Option<Uuid>, _>(0),
            None,
            "{what}: a facility"
        );
    }
}

/// How many rows of B (its facility, staff, patient and everything about the patient) the
/// connection sees: must be 0 for anyone but B and its care team.
async fn rows_of_b(conn: &mut PgConnection, t: &Trio) -> i64 {
    let (b, p) = (t.b.id.as_uuid(), t.b_patient);
    let mut total = 0;
    for sql in [
        format!("SELECT count(*) FROM facilities WHERE id = '{b}'"),
        format!("SELECT count(*) FROM staff_accounts WHERE facility_id = '{b}'"),
        format!("SELECT count(*) FROM audit_log WHERE facility_id = '{b}'"),
        format!("SELECT count(*) FROM notification_settings WHERE facility_id = '{b}'"),
        format!(
            "SELECT count(*) FROM patient_access WHERE facility_id = '{b}' OR patient_id = '{p}'"
        ),
        format!("SELECT count(*) FROM patients WHERE id = '{p}'"),
        format!("SELECT count(*) FROM patient_name_terms WHERE patient_id = '{p}'"),
        format!("SELECT count(*) FROM care_team_members WHERE patient_id = '{p}'"),
        format!("SELECT count(*) FROM consents WHERE patient_id = '{p}'"),
        format!("SELECT count(*) FROM entries WHERE patient_id = '{p}'"),
        format!("SELECT count(*) FROM data_keys WHERE facility_id = '{b}' OR owner_id = '{p}'"),
    ] {
        match probe(conn, &sql).await {
            Ok(rows) => total += rows[0].get::<i64, _>(0),
            Err(code) => assert!(["42501", "22P02"].contains(&code.as_str()), "{code}: {sql}"),
        }
    }
    total
}

/// Every table of the database (public and private), as the superuser sees it: row count and a
/// digest of the rows.
async fn snapshot(app: &TestApp) -> BTreeMap<String, (i64, String)> {
    let mut su = superuser(app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
          WHERE schemaname IN ('public', 'private') ORDER BY 1",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    let mut all = BTreeMap::new();
    for table in tables {
        let row: (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')
               FROM {table} t"
        ))
        .fetch_one(&mut su)
        .await
        .unwrap();
        all.insert(table, row);
    }
    su.close().await.ok();
    all
}

/// Waits until no other connection to the test's database is inside a transaction, so that the
/// tables are compared only once every attack has ended: a dropped transaction is rolled back
/// when its connection is next used or returned to its pool, not at the drop itself.
async fn settled(app: &TestApp) {
    let mut su = superuser(app).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let open: Vec<(i32, String, String)> = sqlx::query_as(
            "SELECT pid, coalesce(state, ''), coalesce(query, '') FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND backend_type = 'client backend' AND xact_start IS NOT NULL",
        )
        .fetch_all(&mut su)
        .await
        .unwrap();
        if open.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transactions still open after {PATIENCE:?}: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    su.close().await.ok();
}

/// Asserts no table changed but those named in `except`.
fn unchanged(
    before: &BTreeMap<String, (i64, String)>,
    after: &BTreeMap<String, (i64, String)>,
    except: &[&str],
    what: &str,
) {
    let changed: Vec<String> = after
        .iter()
        .filter(|(table, now)| before.get(*table) != Some(now) && !except.contains(&table.as_str()))
        .map(|(table, now)| format!("{table}: {:?} -> {now:?}", before.get(table)))
        .collect();
    assert!(changed.is_empty(), "{what}: changed {changed:#?}");
    assert_eq!(before.len(), after.len(), "{what}: tables came or went");
}

/// The statement with which a genuine transaction of the server entered `facility`, read off
/// `pg_stat_activity` (the role sees its own connections' statements): the backend and the
/// `SELECT renrakucho_enter(…)` part.
async fn captured_enter(me: &mut PgConnection, facility: Uuid) -> (i32, String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let found: Option<(i32, String)> = sqlx::query_as(
            "SELECT pid, query FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND state = 'idle in transaction'
                AND query LIKE 'BEGIN; SELECT renrakucho_enter(%' AND position($1 in query) > 0",
        )
        .bind(facility.to_string())
        .fetch_optional(&mut *me)
        .await
        .unwrap();
        if let Some((pid, query)) = found {
            let select = query
                .strip_prefix("BEGIN; ")
                .expect("the statement opens with BEGIN")
                .to_string();
            return (pid, select);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no genuine transaction of {facility} in pg_stat_activity within {PATIENCE:?}");
}

fn staff_scope(
    facility: &renrakucho_store::facilities::Facility,
    staff: &renrakucho_store::staff::StaffAccount,
) -> Scope {
    Scope::Staff {
        facility: facility.id,
        staff: staff.id,
    }
}

// ------------------------------------------------------------------------------------------------
// 1. The tenant context.

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

// ------------------------------------------------------------------------------------------------
// 2. The privileged scopes.

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

// ------------------------------------------------------------------------------------------------
// 3. SECURITY DEFINER functions.

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

// ------------------------------------------------------------------------------------------------
// 4. Data keys.

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

// ------------------------------------------------------------------------------------------------
// 5. Sessions.

/// GET /api/v1/me with exactly this session cookie.
async fn me_with_cookie(app: &TestApp, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header(
            reqwest::header::COOKIE,
            format!("{}={cookie}", renrakucho_http::session::SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn sessions_can_be_neither_read_nor_forged() {
    use base64::Engine;
    let app = spawn_app().await;
    let t = trio(&app, "BND-SESS").await;
    let cookie = crate::support::session_cookie_value(&app, Some(&t.b.code), "admin").await;
    assert_eq!(
        me_with_cookie(&app, &cookie).await,
        200,
        "B's administrator's own cookie"
    );
    let stored = renrakucho_store::sessions::stored_id(&cookie);
    let mut su = superuser(&app).await;
    let genuine: Vec<u8> =
        sqlx::query_scalar("SELECT data FROM private.sessions WHERE id_hash = $1")
            .bind(&stored)
            .fetch_one(&mut su)
            .await
            .unwrap();

    let before = snapshot(&app).await;
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;
    refused(&mut me, "SELECT * FROM private.sessions", &["42501"]).await;
    refused(
        &mut me,
        "UPDATE private.sessions SET expiry_date = now() + interval '1 year' RETURNING 1",
        &["42501"],
    )
    .await;
    refused(
        &mut me,
        "DELETE FROM private.sessions RETURNING 1",
        &["42501"],
    )
    .await;
    refused(
        &mut me,
        "SELECT * FROM tower_sessions.session",
        &["3F000", "42P01"],
    )
    .await;
    // session_load answers only for the cookie value itself, never for its hash.
    nothing(
        &mut me,
        &format!("SELECT * FROM session_load('{}')", hex(&stored)),
    )
    .await;
    assert_eq!(
        probe(&mut me, &format!("SELECT * FROM session_load('{cookie}')"))
            .await
            .unwrap()
            .len(),
        1,
        "(the cookie value itself loads its record)"
    );
    exec(&mut me, "ROLLBACK").await;
    unchanged(&before, &snapshot(&app).await, &[], "reading sessions");

    // Forged records, written through session_save (which the web role may call): one made up
    // in the server's format naming B's administrator, and B's genuine sealed record copied
    // under another ID (as from a leaked dump). Neither signs anyone in.
    let record = &genuine[..genuine.len() - 32];
    let mut made_up = record.to_vec();
    made_up.extend_from_slice(&[0u8; 32]);
    for (id, data) in [
        (
            format!("forged-{}", Uuid::new_v4().simple()),
            made_up.clone(),
        ),
        (
            format!("copied-{}", Uuid::new_v4().simple()),
            genuine.clone(),
        ),
        (format!("bare-{}", Uuid::new_v4().simple()), record.to_vec()),
    ] {
        sqlx::query("SELECT session_save($1, $2, now() + interval '1 hour')")
            .bind(&id)
            .bind(&data)
            .execute(&mut me)
            .await
            .unwrap();
        assert_eq!(
            me_with_cookie(&app, &id).await,
            401,
            "a record the attacker saved under {id}"
        );
    }

    // A dump holds no working cookie: only hashes, and a hash is no cookie.
    let dump: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT id_hash, data FROM private.sessions")
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert!(
        dump.iter().any(|(h, _)| *h == stored),
        "B's session is stored under its hash"
    );
    for (hash, data) in &dump {
        assert!(!crate::support::contains(hash, cookie.as_bytes()));
        assert!(
            !crate::support::contains(data, cookie.as_bytes()),
            "the cookie value in a record"
        );
    }
    let dump_text: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ',') FROM private.sessions t")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(!dump_text.contains(&cookie));
    for as_cookie in [
        hex(&stored),
        base64::engine::general_purpose::STANDARD.encode(&stored),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&stored),
    ] {
        assert_eq!(
            me_with_cookie(&app, &as_cookie).await,
            401,
            "a hash as the cookie"
        );
    }

    // Moving B's record under another ID (as the superuser could): that ID's cookie signs no
    // one in, and B's cookie stops working with it.
    assert_eq!(
        me_with_cookie(&app, &cookie).await,
        200,
        "B's cookie works until then"
    );
    let other = format!("moved-{}", Uuid::new_v4().simple());
    sqlx::query("UPDATE private.sessions SET id_hash = $1 WHERE id_hash = $2")
        .bind(renrakucho_store::sessions::stored_id(&other))
        .bind(&stored)
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(me_with_cookie(&app, &other).await, 401, "a moved record");
    assert_eq!(
        me_with_cookie(&app, &cookie).await,
        401,
        "B's cookie, its record moved away"
    );
}

// ------------------------------------------------------------------------------------------------
// 6. Role settings and memberships.

/// Runs `sql` as the superuser when dropped (also when the test fails): what a test did to
/// cluster-wide roles, undone.
struct Undo {
    superuser: sqlx::postgres::PgConnectOptions,
    sql: String,
}

impl Drop for Undo {
    fn drop(&mut self) {
        let (options, sql) = (self.superuser.clone(), self.sql.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = options.connect().await.ok()?;
                if let Err(e) = sqlx::raw_sql(&sql).execute(&mut conn).await {
                    eprintln!("undoing `{sql}`: {e}");
                }
                conn.close().await.ok()
            })
        })
        .join();
    }
}

#[tokio::test]
async fn role_settings_the_web_role_gives_itself_are_named_and_change_nothing() {
    use renrakucho_store::{check_runtime_role, RuntimeRoleProblem};
    let app = spawn_app().await;
    let t = trio(&app, "BND-ROLE").await;
    let db = app.database.name().to_string();
    let _undo = Undo {
        superuser: app.database.superuser_options(),
        sql: format!("ALTER ROLE renrakucho_app IN DATABASE {db} RESET ALL"),
    };
    assert_eq!(
        check_runtime_role(&app.database.runtime_options())
            .await
            .unwrap(),
        []
    );

    let mut me = attacker(&app).await;
    // Only this test's database: the role is shared with every test running meanwhile.
    for setting in [
        "row_security = off",
        "search_path = pg_temp, public",
        "default_transaction_read_only = on",
    ] {
        exec(
            &mut me,
            &format!("ALTER ROLE CURRENT_USER IN DATABASE {db} SET {setting}"),
        )
        .await;
    }
    match sqlx::raw_sql(&format!("ALTER DATABASE {db} SET row_security = off"))
        .execute(&mut me)
        .await
    {
        Err(e) => assert_eq!(sqlstate(&e), "42501"),
        Ok(_) => panic!("the web role altered the database's settings"),
    }
    let problems = check_runtime_role(&app.database.runtime_options())
        .await
        .unwrap();
    for (setting, name) in [
        ("row_security=off", "row_security"),
        ("search_path=pg_temp, public", "search_path"),
        (
            "default_transaction_read_only=on",
            "default_transaction_read_only",
        ),
    ] {
        assert!(
            problems.contains(&RuntimeRoleProblem::Setting {
                setting: setting.into(),
                fix: format!("ALTER ROLE renrakucho_app IN DATABASE {db} RESET {name}"),
            }),
            "{setting}: {problems:?}"
        );
    }
    let message = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        message.contains("row_security=off") && message.contains("RESET row_security"),
        "{message}"
    );

    // A connection of its own starts with them: row-level security off means refusals, not rows.
    let mut own = attacker(&app).await;
    let row_security: String = sqlx::query_scalar("SHOW row_security")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(row_security, "off");
    exec(&mut own, "BEGIN READ WRITE").await;
    assert_eq!(rows_of_b(&mut own, &t).await, 0);
    sees_nothing(&mut own, "row_security off").await;
    exec(&mut own, "ROLLBACK").await;

    // Limits that deny service: with them, every genuine transaction would be cut off after a
    // millisecond. The check names them too (and is not itself cut off).
    for setting in [
        "idle_in_transaction_session_timeout = '1ms'",
        "statement_timeout = '1ms'",
    ] {
        exec(
            &mut me,
            &format!("ALTER ROLE CURRENT_USER IN DATABASE {db} SET {setting}"),
        )
        .await;
    }
    let problems = check_runtime_role(&app.database.runtime_options())
        .await
        .unwrap();
    for (setting, name) in [
        (
            "idle_in_transaction_session_timeout=1ms",
            "idle_in_transaction_session_timeout",
        ),
        ("statement_timeout=1ms", "statement_timeout"),
    ] {
        assert!(
            problems.contains(&RuntimeRoleProblem::Setting {
                setting: setting.into(),
                fix: format!("ALTER ROLE renrakucho_app IN DATABASE {db} RESET {name}"),
            }),
            "{setting}: {problems:?}"
        );
    }

    // The server's connections start with their own settings, which outrank the role's: new
    // ones isolate as before.
    let fresh = Database::connect(&app.database.connections(), 2)
        .await
        .unwrap();
    let mut tx = fresh.begin(Scope::Facility(t.a.id)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    let (rls, path, read_only): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('row_security'), current_setting('search_path'),
                current_setting('default_transaction_read_only')",
    )
    .fetch_one(&mut *raw)
    .await
    .unwrap();
    assert_eq!(
        (rls.as_str(), path.as_str(), read_only.as_str()),
        ("on", "pg_catalog,public,pg_temp", "off")
    );
    let (idle, statement): (String, String) = sqlx::query_as(
        "SELECT current_setting('idle_in_transaction_session_timeout'),
                current_setting('statement_timeout')",
    )
    .fetch_one(&mut *raw)
    .await
    .unwrap();
    assert_eq!((idle.as_str(), statement.as_str()), ("0", "0"));
    // A pause inside the transaction longer than the planted limit changes nothing.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(rows_of_b(raw, &t).await, 0, "A sees nothing of B");
    drop(tx);
    let mut tx = fresh.begin(Scope::Facility(t.b.id)).await.unwrap();
    assert_eq!(
        count(
            tx.raw_connection_for_tests(),
            &format!(
                "SELECT count(*) FROM entries WHERE patient_id = '{}'",
                t.b_patient
            )
        )
        .await,
        3,
        "B sees its patient's notebook"
    );
    drop(tx);
    fresh.close().await;
    // And over HTTP.
    let status = t
        .b_client
        .get(patient_url(&app, t.b_patient, "/entries"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "B reads its notebook");
    let status = t
        .a_client
        .get(patient_url(&app, t.b_patient, "/entries"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "A does not");
    exec(
        &mut me,
        &format!("ALTER ROLE CURRENT_USER IN DATABASE {db} RESET ALL"),
    )
    .await;
    assert_eq!(
        check_runtime_role(&app.database.runtime_options())
            .await
            .unwrap(),
        []
    );
}

#[tokio::test]
async fn memberships_and_settings_that_would_weaken_a_runtime_role_are_refused() {
    use renrakucho_store::{check_runtime_role, RuntimeRoleProblem};
    let app = spawn_app().await;
    let db = app.database.name().to_string();
    // A runtime login role of this test's own (memberships are cluster-wide: the shared
    // renrakucho_app is left alone for the tests running meanwhile).
    let id = Uuid::new_v4().simple().to_string();
    let (runtime, bypass, superrole) = (
        format!("bnd_rt_{id}"),
        format!("bnd_bypass_{id}"),
        format!("bnd_super_{id}"),
    );
    let _undo = Undo {
        superuser: app.database.superuser_options(),
        sql: format!(
            "REVOKE TEMPORARY ON DATABASE {db} FROM {runtime};
             DROP ROLE IF EXISTS {bypass}; DROP ROLE IF EXISTS {superrole}; DROP ROLE IF EXISTS {runtime};"
        ),
    };
    let mut su = superuser(&app).await;
    exec(
        &mut su,
        &format!(
            "CREATE ROLE {runtime} LOGIN INHERIT PASSWORD '{}'; GRANT renrakucho_runtime TO {runtime};",
            renrakucho_testkit::RUNTIME_PASSWORD
        ),
    )
    .await;
    let options = app.database.runtime_options().username(&runtime);
    assert_eq!(
        check_runtime_role(&options).await.unwrap(),
        [],
        "as provisioned"
    );

    exec(
        &mut su,
        &format!("CREATE ROLE {bypass} NOLOGIN BYPASSRLS; GRANT {bypass} TO {runtime};"),
    )
    .await;
    exec(
        &mut su,
        &format!("CREATE ROLE {superrole} NOLOGIN SUPERUSER; GRANT {superrole} TO {runtime};"),
    )
    .await;
    exec(&mut su, &format!("GRANT renrakucho_platform TO {runtime}; GRANT TEMPORARY ON DATABASE {db} TO {runtime};")).await;
    // The role itself, for every database.
    let mut own = options.connect().await.unwrap();
    exec(&mut own, "ALTER ROLE CURRENT_USER SET row_security = off").await;
    own.close().await.ok();

    let problems = check_runtime_role(&options).await.unwrap();
    for expected in [
        RuntimeRoleProblem::MemberOfPowerfulRole(bypass.clone()),
        RuntimeRoleProblem::MemberOfPowerfulRole(superrole.clone()),
        RuntimeRoleProblem::MemberOfPrivilegedRole("renrakucho_platform".into()),
        RuntimeRoleProblem::MayCreateTemporaryTables(db.clone()),
        RuntimeRoleProblem::Setting {
            setting: "row_security=off".into(),
            fix: format!("ALTER ROLE {runtime} RESET row_security"),
        },
    ] {
        assert!(problems.contains(&expected), "{expected:?} in {problems:?}");
    }
    exec(&mut su, &format!("REVOKE renrakucho_platform FROM {runtime}; REVOKE TEMPORARY ON DATABASE {db} FROM {runtime}; DROP ROLE {bypass}; DROP ROLE {superrole}; ALTER ROLE {runtime} RESET ALL;")).await;
    assert_eq!(check_runtime_role(&options).await.unwrap(), [], "undone");
}

// ------------------------------------------------------------------------------------------------
// 7. Temporary tables standing in for real ones.

/// The tables triggers and SECURITY DEFINER functions read or write, shadowed by temporary
/// tables of the same name (each with a planted row where one would help the attacker).
const SHADOWED: [&str; 12] = [
    "audit_log",
    "patient_access",
    "deletion_requests",
    "entries",
    "data_keys",
    "care_team_members",
    "consents",
    "patients",
    "facilities",
    "staff_accounts",
    "emergency_grants",
    "support_requests",
];

#[tokio::test]
async fn temporary_tables_stand_in_for_nothing_a_trigger_or_function_uses() {
    use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
    let app = spawn_app().await;
    let t = trio(&app, "BND-TEMP").await;
    let (a, c, p, ap) = (t.a.id.as_uuid(), t.c.id.as_uuid(), t.b_patient, t.a_patient);
    let db = app.database.name().to_string();

    // As deployed, the web role creates no temporary table at all.
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;
    refused(
        &mut me,
        "CREATE TEMP TABLE audit_log (seq bigint)",
        &["42501"],
    )
    .await;
    exec(&mut me, "ROLLBACK").await;

    // A misconfiguration: TEMPORARY granted on this database. The start-up check names it …
    let _undo = Undo {
        superuser: app.database.superuser_options(),
        sql: format!("REVOKE TEMPORARY ON DATABASE {db} FROM renrakucho_app"),
    };
    let mut su = superuser(&app).await;
    exec(
        &mut su,
        &format!("GRANT TEMPORARY ON DATABASE {db} TO renrakucho_app"),
    )
    .await;
    let problems = renrakucho_store::check_runtime_role(&app.database.runtime_options())
        .await
        .unwrap();
    assert!(
        problems
            .contains(&renrakucho_store::RuntimeRoleProblem::MayCreateTemporaryTables(db.clone())),
        "{problems:?}"
    );
    let last_audit: (i64, Vec<u8>) = sqlx::query_as(
        "SELECT seq, hash FROM audit_log WHERE facility_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(a)
    .fetch_one(&mut su)
    .await
    .unwrap();

    // … and even so, inside a genuine transaction of A, temporary tables named like the real
    // ones, first on the search path, change nothing a trigger or function does.
    let one = Database::connect(&app.database.connections(), 1)
        .await
        .unwrap();
    let mut tx = one.begin(staff_scope(&t.a, &t.a_admin)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    for table in SHADOWED {
        exec(
            raw,
            &format!("CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL)"),
        )
        .await;
    }
    let zeros = "00".repeat(32);
    let admin = t.a_admin.id.as_uuid();
    exec(
        raw,
        &format!(
            "SET LOCAL search_path = pg_temp, public;
             INSERT INTO pg_temp.patient_access VALUES ('{a}', '{p}', 'sharing', NULL), ('{a}', '{p}', 'registering', NULL);
             INSERT INTO pg_temp.audit_log (facility_id, seq, occurred_at, actor_kind, action, outcome, details, prev_hash, hash)
                  VALUES ('{a}', 1000000, now(), 'system', 'planted', 'success', '{{}}', '\\x{zeros}', '\\x{zeros}');
             INSERT INTO pg_temp.deletion_requests (id, facility_id, patient_id, requested_by)
                  VALUES (gen_random_uuid(), '{a}', '{p}', '{admin}');
             INSERT INTO pg_temp.patients SELECT * FROM public.patients;"
        ),
    )
    .await;
    let planted: Vec<i64> = {
        let mut n = Vec::new();
        for table in SHADOWED {
            n.push(count(raw, &format!("SELECT count(*) FROM pg_temp.{table}")).await);
        }
        n
    };

    // The writes that fire the triggers, each on a real table.
    exec(
        raw,
        &format!(
            "INSERT INTO public.audit_log (facility_id, seq, actor_kind, actor_id, action, outcome, details, prev_hash, hash)
                  VALUES ('{a}', 0, 'staff', '{admin}', 'boundary.shadow', 'success', '{{}}', '', '');
             INSERT INTO public.entries (id, patient_id, facility_id, author_id, author_name, author_profession,
                                         category, priority, body_enc)
                  VALUES (gen_random_uuid(), '{ap}', '{a}', '{admin}', '試験 太郎', 'pharmacist', 'notice', 'info', '\\x00');
             INSERT INTO public.consents (id, patient_id, registering_facility_id, facility_id, signer, details_enc,
                                          signed_on, recorded_by)
                  VALUES (gen_random_uuid(), '{ap}', '{a}', '{a}', 'patient', '\\x00', current_date, '{admin}');
             INSERT INTO public.care_team_members (patient_id, registering_facility_id, facility_id, role, status)
                  VALUES ('{ap}', '{a}', '{c}', 'member', 'invited');"
        ),
    )
    .await;
    // The functions the policies call read the real relation table, not the planted one.
    let (shares, erasing): (bool, bool) = sqlx::query_as(&format!(
        "SELECT has_access(current_facility_id(), '{p}', '{{sharing}}'), erasing(current_facility_id(), '{p}')"
    ))
    .fetch_one(&mut *raw)
    .await
    .unwrap();
    assert!(
        !shares && !erasing,
        "a planted relation or deletion request counted"
    );
    refused(raw, &format!("SELECT erase_patient('{p}')"), &["P0002"]).await;
    assert_eq!(
        count(
            raw,
            &format!("SELECT count(*) FROM public.patients WHERE id = '{p}'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            raw,
            &format!("SELECT count(*) FROM public.entries WHERE patient_id = '{p}'")
        )
        .await,
        0
    );
    let mut after = Vec::new();
    for table in SHADOWED {
        after.push(count(raw, &format!("SELECT count(*) FROM pg_temp.{table}")).await);
    }
    // The application's own audit record, written while the search path leads with pg_temp.
    exec(raw, "SAVEPOINT app_record").await;
    let record = audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::Staff(t.a_admin.id),
            action: "boundary.shadow_app",
            outcome: Outcome::Success,
            target: None,
            origin: &Origin::default(),
            details: serde_json::json!({}),
        },
    )
    .await;
    let raw = tx.raw_connection_for_tests();
    if record.is_err() {
        exec(raw, "ROLLBACK TO SAVEPOINT app_record").await;
    }
    let diverted = count(
        raw,
        "SELECT count(*) FROM pg_temp.audit_log WHERE action = 'boundary.shadow_app'",
    )
    .await;
    tx.commit().await.unwrap();

    // The next request on that connection (its temporary tables still there) writes the real
    // tables too: the search path is the connection's own again.
    let mut tx = one.begin(staff_scope(&t.b, &t.b_admin)).await.unwrap();
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::Staff(t.b_admin.id),
            action: "boundary.after_shadow",
            outcome: Outcome::Success,
            target: None,
            origin: &Origin::default(),
            details: serde_json::json!({}),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    one.close().await;

    let real: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, action, prev_hash FROM audit_log WHERE facility_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind(a)
    .bind(last_audit.0)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        real[0].0,
        last_audit.0 + 1,
        "the trigger numbered from the real chain: {real:?}"
    );
    assert_eq!(
        real[0].2, last_audit.1,
        "and linked to its real last record"
    );
    for (table, sql) in [
        ("consents", format!("SELECT count(*) FROM consents WHERE patient_id = '{ap}'")),
        ("entries", format!("SELECT count(*) FROM entries WHERE patient_id = '{ap}'")),
        ("care_team_members", format!("SELECT count(*) FROM care_team_members WHERE patient_id = '{ap}' AND facility_id = '{c}'")),
        ("patient_access", format!("SELECT count(*) FROM patient_access WHERE patient_id = '{ap}' AND facility_id = '{c}' AND relation = 'invited'")),
        ("patient_access", format!("SELECT count(*) FROM patient_access WHERE patient_id = '{p}' AND facility_id = '{a}'")),
    ] {
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut su).await.unwrap();
        assert_eq!(n > 0, !sql.contains(&p.to_string()), "{table}: {sql}");
    }
    let b_after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE facility_id = $1 AND action = 'boundary.after_shadow'")
        .bind(t.b.id.as_uuid())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(b_after, 1, "the next request's record is in the real table");
    let report = audit::verify(&app.db).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(
        planted, after,
        "the triggers and functions wrote no temporary table ({SHADOWED:?})"
    );
    // The application's own statement is not qualified: with pg_temp first on the path it
    // writes the temporary table. Only the transaction's own record (the attacker's own
    // request), and only where TEMPORARY was granted, which the start-up check refuses.
    // (Observed: it lands in the temporary table — `diverted` is 1. That diverts only the
    // attacker's own request's record, in its own transaction; the next request writes the real
    // table, as checked above.)
    assert!(record.is_ok() && diverted <= 1, "{record:?}");
}

// ------------------------------------------------------------------------------------------------
// 8. LISTEN.

#[tokio::test]
async fn listening_on_the_server_s_channels_tells_only_that_something_happened() {
    use renrakucho_store::announcements::{ACCESS_CHANGES, EVENTS, KEY_CHANGES};
    let app = spawn_app().await;
    let t = trio(&app, "BND-LISTEN").await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(app.database.runtime_options())
        .await
        .unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    // And on a channel of the test's own, for the marker below.
    const MARKER: &str = "boundary_test_marker";
    listener
        .listen_all([EVENTS, ACCESS_CHANGES, KEY_CHANGES, MARKER])
        .await
        .unwrap();

    // B writes in its patient's notebook and withdraws the consent.
    let entry = crate::support::post_note(
        &app,
        &t.b_client,
        t.b_patient,
        "urgent",
        "聞かれてはならない記録",
    )
    .await;
    let response = t
        .b_client
        .post(patient_url(&app, t.b_patient, "/consents/withdraw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "B withdraws the consent");

    // Both requests committed before they were answered, and PostgreSQL delivers notifications
    // in commit order, whatever their channel: everything they announced comes before a marker
    // sent now.
    let mut su = superuser(&app).await;
    exec(&mut su, &format!("NOTIFY {MARKER}")).await;
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let n = tokio::time::timeout_at(deadline, listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no marker within {PATIENCE:?}; heard {heard:?}"))
            .unwrap();
        if n.channel() == MARKER {
            break;
        }
        heard.push((n.channel().to_string(), n.payload().to_string()));
    }
    let channels: Vec<&str> = heard.iter().map(|(c, _)| c.as_str()).collect();
    assert!(
        channels.contains(&EVENTS) && channels.contains(&ACCESS_CHANGES),
        "{heard:?}"
    );
    for (channel, payload) in &heard {
        assert!(
            payload.parse::<i64>().is_ok(),
            "{channel} carried more than a number: {payload}"
        );
        for secret in [
            t.b_patient.to_string(),
            entry.to_string(),
            t.b.id.as_uuid().to_string(),
        ] {
            assert!(!payload.contains(&secret), "{channel}: {payload}");
        }
    }
    // The announcement itself is the listener role's to read.
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;
    for (_, payload) in &heard {
        refused(
            &mut me,
            &format!("SELECT payload FROM private.announcements WHERE id = {payload}"),
            &["42501"],
        )
        .await;
    }
    refused(
        &mut me,
        "SELECT count(*) FROM private.announcements",
        &["42501"],
    )
    .await;
    exec(&mut me, "ROLLBACK").await;
    // (The listener holds a connection of the pool: closing the pool would wait for it.)
    drop(listener);
    pool.close().await;
}
