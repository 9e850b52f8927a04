//! The runtime role's privileges: on tables, views and sequences exactly the list written out
//! here (and never what no list may hold), and beyond them nothing in schema `private`, no
//! temporary objects and nowhere to create one.

use renrakucho_store::RUNTIME_GROUP;

use super::*;

/// Every privilege the runtime role (its group, renrakucho_runtime) holds on a table, view or
/// sequence, as GRANT would name it: table-wide, or on the columns listed. Nothing in schema
/// `private`, no sequence.
const RUNTIME_PRIVILEGES: &[&str] = &[
    "public._sqlx_migrations: SELECT",
    "public.account_notices: SELECT, INSERT",
    "public.account_notices: UPDATE (claimed_until, sent_at)",
    "public.attachments: SELECT, INSERT",
    "public.attachments: UPDATE (entry_id)",
    "public.audit_log: SELECT, INSERT",
    "public.care_team_members: SELECT, INSERT",
    "public.care_team_members: UPDATE (ended_at, invited_at, invited_by, joined_at, status)",
    "public.consent_changes: SELECT",
    "public.consents: SELECT, INSERT",
    "public.consents: UPDATE (withdrawn_at, withdrawn_by, withdrawn_by_facility)",
    "public.data_keys: SELECT, INSERT",
    "public.data_keys: UPDATE (destroyed_at, wrapped)",
    "public.deletion_requests: SELECT, INSERT",
    "public.deletion_requests: UPDATE (completed_at, erased)",
    "public.emergency_grants: SELECT, INSERT",
    "public.emergency_grants: UPDATE (ended_at, reason_enc, reviewed_at, reviewed_by, \
     reviewed_by_facility)",
    "public.emergency_identification_failures: SELECT",
    "public.entries: SELECT, INSERT",
    "public.entries: UPDATE (body_enc, category, mentions, priority, updated_at, version, \
     vitals_enc, withdrawal_reason_enc, withdrawn_at, withdrawn_by)",
    "public.entry_reads: SELECT, INSERT",
    "public.entry_versions: SELECT, INSERT",
    "public.external_identities: SELECT, INSERT, DELETE",
    "public.facilities: SELECT",
    "public.identity_providers: SELECT, INSERT, DELETE",
    "public.identity_providers: UPDATE (account_policy, allowed_domains, client_id, \
     client_secret_enc, enabled, issuer, login_claim, revision, scopes, tested_at, \
     tested_revision, updated_at)",
    "public.master_key_epochs: SELECT (master_key_id, state)",
    "public.notification_settings: SELECT, INSERT, UPDATE",
    "public.patient_access: SELECT",
    "public.patient_cards: SELECT, INSERT",
    "public.patient_cards: UPDATE (birth_check, issued_at, issued_by, lookup, number_enc)",
    "public.patient_mutes: SELECT, INSERT, DELETE",
    "public.patient_name_terms: SELECT, INSERT, DELETE",
    "public.patients: SELECT, INSERT",
    "public.patients: UPDATE (kana_enc, name_enc, profile_enc, updated_at)",
    "public.staff_accounts: SELECT, INSERT",
    "public.staff_accounts: UPDATE (display_name, may_accept_invitations, passkey_count, \
     password_changed_at, password_hash, password_must_change, password_version, \
     previous_password_hashes, profession, recovery_code_hashes, role, status, \
     totp_confirmed_at, totp_last_step, totp_secret_enc, totp_started_at, updated_at)",
    "public.staff_passkeys: SELECT, INSERT, DELETE",
    "public.staff_passkeys: UPDATE (last_used_at, passkey)",
    "public.support_request_items: SELECT, INSERT",
    "public.support_requests: SELECT, INSERT",
    "public.support_requests: UPDATE (answer_enc, answered_by, answered_by_name, status, \
     updated_at)",
];

/// A role's privileges on every table, view and sequence of `public` and `private`, as lines
/// of [`RUNTIME_PRIVILEGES`]: table-wide privileges, then each privilege granted on some
/// columns only, with the columns.
async fn privilege_lines(conn: &mut PgConnection, role: &str) -> BTreeSet<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname),
                string_agg(u.privilege, ', ' ORDER BY u.ord)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          CROSS JOIN LATERAL unnest(
                CASE WHEN c.relkind = 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
                     ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                'REFERENCES', 'TRIGGER'] END)
                WITH ORDINALITY AS u(privilege, ord)
          WHERE n.nspname IN ('public', 'private')
            AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, u.privilege)
                     ELSE has_table_privilege($1, c.oid, u.privilege) END
          GROUP BY 1",
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), u.privilege,
                string_agg(quote_ident(a.attname), ', ' ORDER BY a.attname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS u(privilege)
          WHERE n.nspname IN ('public', 'private')
            AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND has_column_privilege($1, c.oid, a.attnum, u.privilege)
            AND NOT has_table_privilege($1, c.oid, u.privilege)
          GROUP BY 1, 2",
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    tables
        .into_iter()
        .map(|(table, privileges)| format!("{table}: {privileges}"))
        .chain(
            columns
                .into_iter()
                .map(|(table, privilege, columns)| format!("{table}: {privilege} ({columns})")),
        )
        .collect()
}

/// The runtime role's privileges are [`RUNTIME_PRIVILEGES`], whatever the list says never
/// TRUNCATE, never a change to the audit log, DELETE only where rows are preferences or
/// derived, nothing it may pass on, and its login role holds nothing of its own.
pub(super) async fn privilege_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    let actual = privilege_lines(conn, RUNTIME_GROUP).await;
    let expected: BTreeSet<String> = RUNTIME_PRIVILEGES.iter().map(|l| l.to_string()).collect();
    problems.extend(compare(&actual, &expected, "runtime privilege"));

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
            // Search terms are derived rows, replaced when a name changes. Preferences (a
            // muted patient), not records. A facility's provider settings and its links to
            // accounts are configuration, as are a person's passkeys; the audit chain records
            // each change.
            "DELETE" => matches!(
                table.as_str(),
                "public.patient_name_terms"
                    | "public.patient_mutes"
                    | "public.identity_providers"
                    | "public.external_identities"
                    | "public.staff_passkeys"
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

    // The login role has exactly its group's privileges: nothing granted to it directly.
    let login = runtime_login();
    for own in privilege_lines(conn, &login).await.difference(&actual) {
        problems.push(format!("{own}: held by {login} itself, not its group"));
    }
    problems
}

/// What the runtime role (group and login) can reach beyond the tables: nothing in schema
/// `private` (no USAGE, no privilege on anything in it), no temporary objects, CREATE in no
/// schema and not on the database.
pub(super) async fn boundary_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    for role in [RUNTIME_GROUP.to_string(), runtime_login()] {
        let (usage, temporary, create): (bool, bool, bool) = sqlx::query_as(
            "SELECT has_schema_privilege($1, 'private', 'USAGE'),
                    has_database_privilege($1, current_database(), 'TEMPORARY'),
                    has_database_privilege($1, current_database(), 'CREATE')",
        )
        .bind(&role)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if usage {
            problems.push(format!("{role} has USAGE on schema private"));
        }
        if temporary {
            problems.push(format!(
                "{role} may create temporary tables in the database"
            ));
        }
        if create {
            problems.push(format!("{role} may create schemas in the database"));
        }
        let creatable: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace
              WHERE has_schema_privilege($1, oid, 'CREATE') AND nspname !~ '^pg_(toast_)?temp_'
              ORDER BY 1",
        )
        .bind(&role)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for schema in creatable {
            problems.push(format!("{role} may create objects in schema {schema}"));
        }
        let private: Vec<String> = privilege_lines(conn, &role)
            .await
            .into_iter()
            .filter(|line| line.starts_with("private."))
            .collect();
        for line in private {
            problems.push(format!("{line}: {role} has privileges in schema private"));
        }
        let functions: Vec<String> = sqlx::query_scalar(
            "SELECT format('%s.%s(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes))
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'private' AND has_function_privilege($1, p.oid, 'EXECUTE')
              ORDER BY 1",
        )
        .bind(&role)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for function in functions {
            problems.push(format!("{function}: {role} may execute it"));
        }
    }
    problems
}
