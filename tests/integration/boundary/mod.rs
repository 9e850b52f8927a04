//! The database boundary against the server's own role (issue 10, ADR 0013): an attacker who can
//! run any SQL as the web role, with its real credentials, tries every way past it.
//!
//! Each attack is run for real — as `renrakucho_app` on a connection of its own (a leaked runtime
//! URL), or inside a genuine transaction of the server (SQL injected into a request) — and is
//! asserted to be refused (a specific SQLSTATE, or no rows) with nothing changed: every table
//! of the database is compared, as the superuser, before and after.
//!
//! Shared here: the attacker's tools (a connection as the web role, probes inside savepoints)
//! and the before/after comparison of every table; one file per part of the boundary beside it.

mod data_keys;
mod listen;
mod privileged_scopes;
mod role_settings;
mod security_definer;
mod sessions;
mod temporary_tables;
mod tenant_context;

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
// Cluster-wide changes, undone (role settings and temporary tables).

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
