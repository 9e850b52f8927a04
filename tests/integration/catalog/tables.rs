//! Tables and views: row-level security enabled, forced and with a policy on every table but the
//! few allowed without it (and why), an index leading with `facility_id` wherever a policy
//! filters on it, and views that run with the caller's rights.

use super::*;

/// Tables allowed to go without row-level security, and why. None of them is readable by the
/// runtime role but `_sqlx_migrations` (see
/// [`RUNTIME_PRIVILEGES`](super::privileges::RUNTIME_PRIVILEGES)).
pub(super) const WITHOUT_RLS: &[(&str, &str)] = &[
    (
        "public._sqlx_migrations",
        "migration bookkeeping: versions and checksums, no tenant data",
    ),
    (
        "private.server_keys",
        "the server's context and session keys: no privilege for any role but the owner, \
         which reads them once at start",
    ),
    (
        "private.value_binding",
        "one row: whether ciphertexts of format 1 are still read and where `keys bind-versions` \
         stands (no tenant data), reached only through its SECURITY DEFINER functions",
    ),
    (
        "private.announcements",
        "what the database announced (numbers and IDs, never content), for \
         renrakucho_listener only, which reads every row",
    ),
];

/// Tables: row-level security enabled and forced with at least one policy (but the allowed
/// few), facility data never on the allow-list, an index leading with `facility_id`.
pub(super) async fn table_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    let tables: Vec<(String, bool, bool, bool)> = sqlx::query_as(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity,
                EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND {OUR_SCHEMAS} ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (table, enabled, forced, policed) in tables {
        if WITHOUT_RLS.iter().any(|(t, _)| *t == table) {
            continue;
        }
        if !enabled {
            problems.push(format!("{table}: row-level security is not enabled"));
        }
        if !forced {
            problems.push(format!("{table}: row-level security is not forced"));
        }
        if !policed {
            problems.push(format!("{table}: row-level security without any policy"));
        }
    }

    // A table holding facility data must say which facility in a column the allow-list
    // tables do not have.
    let with_facility: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid
          WHERE a.attname = 'facility_id' AND NOT a.attisdropped AND {OUR_SCHEMAS}"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for table in with_facility {
        if WITHOUT_RLS.iter().any(|(t, _)| *t == table) {
            problems.push(format!(
                "{table}: holds facility data but is allowed without RLS"
            ));
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
    problems
}

/// Views run with the caller's rights, so RLS applies to the caller; no materialized views.
pub(super) async fn view_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
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
    problems
}
