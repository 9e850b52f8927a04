//! The catalog test: the schema itself is checked, so that a later migration cannot quietly
//! add a table without row-level security, a view that runs with its owner's rights, a
//! SECURITY DEFINER function without a pinned `search_path`, a policy calling its context
//! function per row, or a privilege the runtime role must not have. Each check is also run
//! against a database where the fault was planted on purpose, to prove it notices.

use renrakucho_store::{check_runtime_role, RuntimeRoleProblem, RUNTIME_GROUP};
use renrakucho_testkit::{TestDatabase, RUNTIME_PASSWORD};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// Tables allowed to go without row-level security, and why.
const WITHOUT_RLS: &[(&str, &str)] = &[
    (
        "public._sqlx_migrations",
        "migration bookkeeping: versions and checksums, no tenant data",
    ),
    (
        "tower_sessions.session",
        "opaque session records keyed by a random ID, holding who is signed in, never patient \
         data; the server looks them up before any tenant is known",
    ),
];

/// SECURITY DEFINER functions allowed, and why.
const SECURITY_DEFINER: &[(&str, &str)] = &[
    (
        "public.facility_for_sign_in",
        "sign-in names a facility by its public code before any tenant context exists",
    ),
    (
        "public.facility_directory",
        "the public directory of participating facilities (第16条): code, name and kind only",
    ),
    (
        "public.refresh_patient_access",
        "derives a patient's relation rows from every facility's memberships, consents and \
         emergency grants; the runtime role cannot write patient_access itself",
    ),
    (
        "public.patient_access_changed",
        "the trigger that calls refresh_patient_access on every such change",
    ),
    (
        "public.encrypted_values",
        "re-encryption reads every encrypted value of one patient, for the registering \
         facility only, over a fixed list of columns",
    ),
    (
        "public.reencrypt_value",
        "re-encryption replaces one such value, under the same conditions",
    ),
    (
        "public.erase_patient",
        "carries out a recorded deletion request (第12条2–3) across every facility's rows, \
         only for a facility that shares the patient and has a pending request",
    ),
];

/// The schemas the application's migrations create objects in (everything but PostgreSQL's).
const OUR_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
                           AND n.nspname NOT LIKE 'pg\\_%'";

/// A row of `pg_policies`.
#[derive(sqlx::FromRow)]
struct Policy {
    table: String,
    policy: String,
    cmd: String,
    qual: Option<String>,
    with_check: Option<String>,
}

/// Everything wrong with the schema, one line per fault.
async fn schema_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();

    let tables: Vec<(String, bool, bool)> = sqlx::query_as(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND {OUR_SCHEMAS} ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (table, enabled, forced) in tables {
        if WITHOUT_RLS.iter().any(|(t, _)| *t == table) {
            continue;
        }
        if !enabled {
            problems.push(format!("{table}: row-level security is not enabled"));
        }
        if !forced {
            problems.push(format!("{table}: row-level security is not forced"));
        }
    }

    // A table holding facility data must say which facility in a column the allow-list
    // tables do not have.
    let allowed_with_facility: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid
          WHERE a.attname = 'facility_id' AND {OUR_SCHEMAS}"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for table in allowed_with_facility {
        if WITHOUT_RLS.iter().any(|(t, _)| *t == table) {
            problems.push(format!(
                "{table}: holds facility data but is allowed without RLS"
            ));
        }
    }

    // Every table has policies, every policy that can write has a WITH CHECK, and the
    // context functions are wrapped in a sub-select (evaluated once, not per row).
    let unpoliced: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND {OUR_SCHEMAS}
            AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for table in unpoliced {
        if WITHOUT_RLS.iter().any(|(t, _)| *t == table) {
            continue;
        }
        problems.push(format!("{table}: row-level security without any policy"));
    }
    let policies: Vec<Policy> = sqlx::query_as(
        "SELECT format('%I.%I', schemaname, tablename) AS table, policyname::text AS policy,
                cmd, qual, with_check
           FROM pg_policies ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for Policy {
        table,
        policy,
        cmd,
        qual,
        with_check,
    } in policies
    {
        if matches!(cmd.as_str(), "ALL" | "UPDATE" | "INSERT") && with_check.is_none() {
            problems.push(format!(
                "{table}: policy {policy} ({cmd}) has no WITH CHECK"
            ));
        }
        for expression in [qual.as_deref(), with_check.as_deref()]
            .into_iter()
            .flatten()
        {
            for function in ["current_facility_id()", "in_platform_scope()"] {
                let total = expression.matches(function).count();
                let wrapped = expression.matches(&format!("SELECT {function}")).count();
                if total != wrapped {
                    problems.push(format!(
                        "{table}: policy {policy} calls {function} per row; wrap it as \
                         (SELECT {function})"
                    ));
                }
            }
            if expression.trim() == "true" {
                problems.push(format!("{table}: policy {policy} lets every row through"));
            }
        }
    }

    // Every column a policy filters on leads an index.
    let unindexed: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'facility_id'
          WHERE c.relkind IN ('r', 'p') AND {OUR_SCHEMAS}
            AND NOT EXISTS (
                SELECT FROM pg_index i
                 WHERE i.indrelid = c.oid
                   AND (i.indkey[0] = a.attnum
                        OR pg_get_indexdef(i.indexrelid) LIKE '%(COALESCE(facility_id,%'))"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for table in unindexed {
        problems.push(format!("{table}: no index leads with facility_id"));
    }

    // Views run with the caller's rights, so RLS applies to the caller.
    let views: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname), c.reloptions
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'v' AND {OUR_SCHEMAS}"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (view, options) in views {
        let invoker = options
            .unwrap_or_default()
            .iter()
            .any(|o| o == "security_invoker=true" || o == "security_invoker=on");
        if !invoker {
            problems.push(format!("{view}: view without security_invoker"));
        }
    }
    let materialized: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'm' AND {OUR_SCHEMAS}"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for view in materialized {
        problems.push(format!(
            "{view}: materialized views have no row-level security"
        ));
    }

    // SECURITY DEFINER functions: on the allow-list, with a pinned search_path.
    let definers: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(&format!(
        "SELECT format('%I.%I', n.nspname, p.proname), p.proconfig
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE p.prosecdef AND {OUR_SCHEMAS}"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (function, config) in definers {
        if !SECURITY_DEFINER.iter().any(|(f, _)| *f == function) {
            problems.push(format!(
                "{function}: SECURITY DEFINER but not on the allow-list"
            ));
        }
        let pinned = config
            .unwrap_or_default()
            .iter()
            .any(|c| c.starts_with("search_path=") && !c.contains("$user"));
        if !pinned {
            problems.push(format!(
                "{function}: SECURITY DEFINER without a pinned search_path"
            ));
        }
    }

    // The runtime group: no TRUNCATE anywhere, no change to the audit log, no grant option,
    // no ownership of anything.
    let privileges: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname), p.privilege
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          CROSS JOIN unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER', 'UPDATE', 'DELETE'])
                AS p(privilege)
          WHERE c.relkind IN ('r', 'p') AND {OUR_SCHEMAS}
            AND has_table_privilege('{RUNTIME_GROUP}', c.oid, p.privilege)"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (table, privilege) in privileges {
        let fine = match privilege.as_str() {
            "UPDATE" => table != "public.audit_log",
            // Sessions end; search terms are derived rows, replaced when a name changes.
            // Preferences (a muted patient), not records.
            "DELETE" => matches!(
                table.as_str(),
                "tower_sessions.session" | "public.patient_name_terms" | "public.patient_mutes"
            ),
            _ => false,
        };
        if !fine {
            problems.push(format!("{table}: the runtime role has {privilege}"));
        }
    }
    let grantable: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM information_schema.role_table_grants
          WHERE grantee = '{RUNTIME_GROUP}' AND is_grantable = 'YES'"
    ))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    if grantable > 0 {
        problems.push(format!(
            "the runtime role may pass on {grantable} privileges"
        ));
    }

    // Every patient column the application encrypts is one the database's re-encryption knows,
    // and the other way round.
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT c.table_name || '.' || c.column_name
           FROM information_schema.columns c
          WHERE c.table_schema = 'public' AND c.data_type = 'bytea'
            AND encrypted_column_owner(c.table_name, c.column_name) IS NOT NULL
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let ours: Vec<String> = renrakucho_store::encrypted::ENCRYPTED_COLUMNS
        .iter()
        .filter(|c| c.owner_kind == renrakucho_store::data_keys::OwnerKind::Patient)
        .map(|c| format!("{}.{}", c.table, c.column))
        .collect();
    for column in &ours {
        if !known.contains(column) {
            problems.push(format!(
                "{column}: encrypted by the application but unknown to encrypted_column_owner()"
            ));
        }
    }
    for column in &known {
        if !ours.contains(column) {
            problems.push(format!(
                "{column}: known to encrypted_column_owner() but not in ENCRYPTED_COLUMNS"
            ));
        }
    }

    problems
}

async fn owner(db: &TestDatabase) -> PgConnection {
    db.owner_options().connect().await.unwrap()
}

#[tokio::test]
async fn the_schema_passes_every_catalog_check() {
    let db = TestDatabase::create().await;
    let mut conn = owner(&db).await;
    let problems = schema_problems(&mut conn).await;
    assert!(
        problems.is_empty(),
        "catalog problems:\n{}",
        problems.join("\n")
    );

    // The allow-lists name things that exist: a stale entry would hide nothing but mislead.
    for (table, _) in WITHOUT_RLS {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(exists, "{table} is on the allow-list but does not exist");
    }
    // Every column the re-encryption walks exists, holds bytes, and names its owner.
    for c in renrakucho_store::encrypted::ENCRYPTED_COLUMNS {
        for (column, expected) in [
            (c.column, "bytea"),
            (c.id_column, "uuid"),
            (c.owner_column, "uuid"),
        ] {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT data_type FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
            )
            .bind(c.table)
            .bind(column)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
            assert_eq!(found.as_deref(), Some(expected), "{}.{column}", c.table);
        }
    }
    for (function, _) in SECURITY_DEFINER {
        let exists: bool = sqlx::query_scalar("SELECT to_regproc($1) IS NOT NULL")
            .bind(function)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(exists, "{function} is on the allow-list but does not exist");
    }
}

#[tokio::test]
async fn the_catalog_checks_notice_each_planted_fault() {
    let db = TestDatabase::create().await;
    let mut conn = owner(&db).await;
    // As the owner, as a careless migration would.
    sqlx::raw_sql(
        "CREATE TABLE notes (id uuid PRIMARY KEY, facility_id uuid NOT NULL, body text);
         CREATE TABLE half (id uuid PRIMARY KEY, facility_id uuid NOT NULL);
         CREATE INDEX half_facility ON half (facility_id);
         ALTER TABLE half ENABLE ROW LEVEL SECURITY;
         CREATE POLICY half_own ON half USING (facility_id = current_facility_id());
         CREATE VIEW all_staff AS SELECT * FROM staff_accounts;
         CREATE FUNCTION leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER
             AS 'SELECT count(*) FROM staff_accounts';
         GRANT TRUNCATE, UPDATE ON audit_log TO renrakucho_runtime;",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let problems = schema_problems(&mut conn).await;
    for expected in [
        "public.notes: row-level security is not enabled",
        "public.notes: row-level security is not forced",
        "public.notes: row-level security without any policy",
        "public.notes: no index leads with facility_id",
        "public.half: row-level security is not forced",
        "public.half: policy half_own (ALL) has no WITH CHECK",
        "public.half: policy half_own calls current_facility_id() per row; wrap it as \
         (SELECT current_facility_id())",
        "public.all_staff: view without security_invoker",
        "public.leak: SECURITY DEFINER but not on the allow-list",
        "public.leak: SECURITY DEFINER without a pinned search_path",
        "public.audit_log: the runtime role has TRUNCATE",
        "public.audit_log: the runtime role has UPDATE",
    ] {
        assert!(
            problems.iter().any(|p| p == expected),
            "not noticed: {expected}\nnoticed:\n{}",
            problems.join("\n")
        );
    }
    // A policy with WITH CHECK, though absent on the half table, is fine elsewhere: nothing
    // about the real tables is reported.
    assert!(
        problems
            .iter()
            .all(|p| ["notes", "half", "all_staff", "leak", "audit_log"]
                .iter()
                .any(|planted| p.contains(planted))),
        "{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn the_runtime_role_is_what_production_requires() {
    let db = TestDatabase::create().await;
    let mut conn = db.runtime_options().connect().await.unwrap();
    let (superuser, bypass, create_role, create_db, inherit): (bool, bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit
               FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!superuser && !bypass && !create_role && !create_db);
    assert!(inherit, "it takes its privileges from the runtime group");
    let owns: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))
              + (SELECT count(*) FROM pg_proc WHERE proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owns, 0);
    conn.close().await.unwrap();

    assert_eq!(
        check_runtime_role(&db.runtime_options()).await.unwrap(),
        Vec::<RuntimeRoleProblem>::new()
    );
}

#[tokio::test]
async fn the_server_refuses_a_runtime_role_that_could_bypass_isolation() {
    let db = TestDatabase::create().await;
    let mut su = db.superuser_options().connect().await.unwrap();
    let role = format!("bad_runtime_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN BYPASSRLS PASSWORD '{RUNTIME_PASSWORD}';
         GRANT renrakucho_owner TO {role};"
    ))
    .execute(&mut su)
    .await
    .unwrap();

    let options = db.runtime_options().username(&role);
    let problems = check_runtime_role(&options).await;

    sqlx::raw_sql(&format!("DROP ROLE {role}"))
        .execute(&mut su)
        .await
        .unwrap();
    let problems = problems.unwrap();
    assert!(
        problems.contains(&RuntimeRoleProblem::BypassesRls),
        "{problems:?}"
    );
    assert!(
        problems.contains(&RuntimeRoleProblem::MemberOfOwner(
            "renrakucho_owner".into()
        )),
        "{problems:?}"
    );
    assert!(
        problems.contains(&RuntimeRoleProblem::NotInRuntimeGroup),
        "{problems:?}"
    );
}
