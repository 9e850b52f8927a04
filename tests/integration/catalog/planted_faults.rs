//! Each check notices the faults planted for it in a database a careless migration changed, and
//! nothing else is reported.

use renrakucho_store::{check_runtime_role, RuntimeRoleProblem};
use renrakucho_testkit::spawn_app;

use super::*;

/// Asserts that `check`'s problems include every one of `expected`.
fn noticed(check: &str, problems: &[String], expected: &[&str]) {
    for expected in expected {
        assert!(
            problems.iter().any(|p| p == expected),
            "{check} did not notice: {expected}\nit noticed:\n{}",
            problems.join("\n")
        );
    }
}

#[tokio::test]
async fn the_catalog_checks_notice_each_planted_fault() {
    let app = spawn_app().await;
    let database = app.database.name().to_string();
    // As the owner, as a careless migration would.
    let mut owner = app.database.owner_options().connect().await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE notes (id uuid PRIMARY KEY, facility_id uuid NOT NULL, body text);
         CREATE TABLE half (id uuid PRIMARY KEY, facility_id uuid NOT NULL);
         CREATE INDEX half_facility ON half (facility_id);
         ALTER TABLE half ENABLE ROW LEVEL SECURITY;
         CREATE POLICY half_own ON half USING (facility_id = current_facility_id());
         ALTER TABLE private.sessions NO FORCE ROW LEVEL SECURITY;
         CREATE VIEW all_staff AS SELECT * FROM staff_accounts;
         CREATE FUNCTION leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER
             AS 'SELECT count(*) FROM staff_accounts';
         GRANT TRUNCATE, UPDATE ON audit_log TO renrakucho_runtime;

         -- Policies: a new one for PUBLIC, one for the owner without a flag, an existing one
         -- widened to another role.
         CREATE POLICY everyone ON patients FOR SELECT
             USING ((SELECT current_facility_id()) IS NOT NULL);
         CREATE POLICY owner_reads_staff ON staff_accounts FOR SELECT TO CURRENT_USER
             USING (true);
         ALTER POLICY facilities_own ON facilities TO renrakucho_runtime, renrakucho_platform;

         -- Functions: a definer function granted to the web role; search paths with pg_temp
         -- first (implicitly) and none at all; a definer function that keeps the caller's
         -- owner-only flags.
         GRANT EXECUTE ON FUNCTION refresh_patient_access(uuid) TO renrakucho_runtime;
         CREATE FUNCTION sloppy_path() RETURNS bigint LANGUAGE plpgsql
             SET search_path = pg_catalog, public
             AS $$ BEGIN RETURN (SELECT count(*) FROM staff_accounts); END $$;
         CREATE FUNCTION unpinned_trigger() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RETURN NEW; END $$;
         CREATE FUNCTION flagless() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
             SET search_path = pg_catalog, pg_temp
             AS $$ BEGIN RETURN (SELECT count(*) FROM public.patients); END $$;
         REVOKE ALL ON FUNCTION flagless() FROM PUBLIC;

         -- Privileges: a new column, the chain sequence (setval would let the web role replay
         -- a context), schema private, temporary tables, CREATE, and a grant to the login role
         -- itself.
         GRANT UPDATE (requested_by) ON deletion_requests TO renrakucho_runtime;
         GRANT UPDATE ON SEQUENCE private.context_chain TO renrakucho_runtime;
         GRANT USAGE ON SCHEMA private TO renrakucho_runtime;
         GRANT SELECT ON private.server_keys TO renrakucho_runtime;
         GRANT EXECUTE ON FUNCTION private.context_parts() TO renrakucho_runtime;
         GRANT TEMPORARY ON DATABASE {database} TO renrakucho_runtime;
         GRANT CREATE ON SCHEMA public TO renrakucho_runtime;
         GRANT SELECT ON platform_operators TO renrakucho_app;

         -- Encrypted columns: one nobody listed, and history made re-encryptable.
         ALTER TABLE entries ADD COLUMN summary_enc bytea;
         CREATE OR REPLACE FUNCTION public.encrypted_column_owner(p_table text, p_column text)
             RETURNS text LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC
                 SELECT CASE p_table || '.' || p_column
                     WHEN 'patients.name_enc' THEN 'id'
                     WHEN 'patients.kana_enc' THEN 'id'
                     WHEN 'patients.profile_enc' THEN 'id'
                     WHEN 'consents.details_enc' THEN 'patient_id'
                     WHEN 'emergency_grants.reason_enc' THEN 'patient_id'
                     WHEN 'entries.body_enc' THEN 'patient_id'
                     WHEN 'entries.vitals_enc' THEN 'patient_id'
                     WHEN 'entries.withdrawal_reason_enc' THEN 'patient_id'
                     WHEN 'entry_versions.body_enc' THEN 'patient_id'
                     WHEN 'attachments.file_name_enc' THEN 'patient_id'
                     WHEN 'support_requests.question_enc' THEN 'patient_id'
                     WHEN 'support_requests.summary_enc' THEN 'patient_id'
                     WHEN 'support_requests.answer_enc' THEN 'id'
                     WHEN 'patient_cards.number_enc' THEN 'patient_id'
                 END;
             END;
         -- And an entry's body no longer bound to its version.
         CREATE OR REPLACE FUNCTION public.encrypted_column_binding(p_table text, p_column text)
             RETURNS text[] LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC
                 SELECT CASE p_table || '.' || p_column
                     WHEN 'entries.body_enc' THEN ARRAY['id', NULL]
                     ELSE ARRAY['id', 'version']
                 END;
             END;"
    ))
    .execute(&mut owner)
    .await
    .unwrap();

    let mut conn = superuser_of(&app).await;
    noticed(
        "table_problems",
        &table_problems(&mut conn).await,
        &[
            "public.notes: row-level security is not enabled",
            "public.notes: row-level security is not forced",
            "public.notes: row-level security without any policy",
            "public.notes: no index leads with facility_id",
            "public.half: row-level security is not forced",
            "private.sessions: row-level security is not forced",
        ],
    );
    noticed(
        "view_problems",
        &view_problems(&mut conn).await,
        &["public.all_staff: view without security_invoker"],
    );
    noticed(
        "policy_list_problems",
        &policy_list_problems(&mut conn).await,
        &[
            "public.half: policy half_own (ALL) TO public: policy not on the expected list",
            "public.patients: policy everyone (SELECT) TO public: policy not on the expected list",
            "public.staff_accounts: policy owner_reads_staff (SELECT) TO renrakucho_owner: \
             policy not on the expected list",
            "public.facilities: policy facilities_own (SELECT) TO renrakucho_platform, \
             renrakucho_runtime: policy not on the expected list",
            "public.facilities: policy facilities_own (SELECT) TO renrakucho_runtime: \
             policy on the expected list but missing",
        ],
    );
    noticed(
        "policy_shape_problems",
        &policy_shape_problems(&mut conn).await,
        &[
            "public.half: policy half_own (ALL) has no WITH CHECK",
            "public.half: policy half_own calls current_facility_id(…) per row; wrap it as \
             (SELECT current_facility_id(…))",
            "public.half: policy half_own applies to PUBLIC",
            "public.patients: policy everyone applies to PUBLIC",
            "public.staff_accounts: policy owner_reads_staff lets every row through",
            "public.staff_accounts: policy owner_reads_staff for the owner is not gated by an \
             owner-only flag",
            "public.facilities: policy facilities_own for renrakucho_platform does not ask \
             in_platform_scope()",
        ],
    );
    noticed(
        "function_problems",
        &function_problems(&mut conn).await,
        &[
            "public.leak(): SECURITY DEFINER but not on the allow-list",
            "public.leak(): neither pins search_path nor has a SQL-standard body",
            "public.leak(): SECURITY DEFINER without private.definer_flags(…)",
            "public.leak(): SECURITY DEFINER, search_path (none), EXECUTE by PUBLIC: function \
             not on the expected list",
            "public.refresh_patient_access(uuid): SECURITY DEFINER, search_path pg_catalog, \
             pg_temp, EXECUTE by renrakucho_runtime: function not on the expected list",
            "public.refresh_patient_access(uuid): SECURITY DEFINER, search_path pg_catalog, \
             pg_temp, EXECUTE by nobody: function on the expected list but missing",
            "public.sloppy_path(): search_path pg_catalog, public does not end with pg_temp \
             (pg_temp is searched first)",
            "public.unpinned_trigger(): neither pins search_path nor has a SQL-standard body",
            "public.flagless(): SECURITY DEFINER without private.definer_flags(…)",
            "private.context_parts(): INVOKER, search_path pg_catalog, pg_temp, EXECUTE by \
             renrakucho_runtime: function not on the expected list",
        ],
    );
    noticed(
        "privilege_problems",
        &privilege_problems(&mut conn).await,
        &[
            "public.audit_log: the runtime role has TRUNCATE",
            "public.audit_log: the runtime role has UPDATE",
            "public.audit_log: SELECT, INSERT, UPDATE, TRUNCATE: runtime privilege not on the \
             expected list",
            "public.deletion_requests: UPDATE (completed_at, erased, requested_by): runtime \
             privilege not on the expected list",
            "private.context_chain: UPDATE: runtime privilege not on the expected list",
            "private.server_keys: SELECT: runtime privilege not on the expected list",
            "public.platform_operators: SELECT: held by renrakucho_app itself, not its group",
        ],
    );
    noticed(
        "boundary_problems",
        &boundary_problems(&mut conn).await,
        &[
            "renrakucho_runtime has USAGE on schema private",
            "renrakucho_app has USAGE on schema private",
            "renrakucho_runtime may create temporary tables in the database",
            "renrakucho_app may create temporary tables in the database",
            "renrakucho_runtime may create objects in schema public",
            "private.server_keys: SELECT: renrakucho_runtime has privileges in schema private",
            "private.context_chain: UPDATE: renrakucho_runtime has privileges in schema \
             private",
            "private.context_parts(): renrakucho_runtime may execute it",
        ],
    );
    noticed(
        "encrypted_column_problems",
        &encrypted_column_problems(&mut conn).await,
        &[
            "public.entries.summary_enc: an encrypted column in neither ENCRYPTED_COLUMNS nor \
             HISTORY_COLUMNS",
            "public.entry_versions.vitals_enc: encrypted by the application but unknown to \
             encrypted_column_owner()",
            "public.support_requests.answer_enc: encrypted_column_owner() names id, the \
             application patient_id",
            "public.entries.body_enc: encrypted_column_binding() binds row Some(\"id\") version \
             None, the application row \"id\" version Some(\"version\")",
        ],
    );

    // Nothing but the planted faults is reported.
    let planted = [
        "notes",
        "half",
        "all_staff",
        "leak",
        "audit_log",
        "private.sessions",
        "everyone",
        "owner_reads_staff",
        "facilities_own",
        "refresh_patient_access",
        "sloppy_path",
        "unpinned_trigger",
        "flagless",
        "deletion_requests",
        "context_chain",
        "server_keys",
        "context_parts",
        "schema private",
        "temporary tables",
        "schema public",
        "platform_operators",
        "summary_enc",
        "entry_versions.vitals_enc",
        "support_requests.answer_enc",
        "encrypted_column_owner",
        "encrypted_column_binding",
    ];
    let problems = schema_problems(&mut conn).await;
    let unexplained: Vec<&String> = problems
        .iter()
        .filter(|p| !planted.iter().any(|planted| p.contains(planted)))
        .collect();
    assert!(unexplained.is_empty(), "{unexplained:#?}");

    // The server's own start-up check sees the database-level faults too.
    let refused = check_runtime_role(&app.database.runtime_options())
        .await
        .unwrap();
    assert!(
        refused.contains(&RuntimeRoleProblem::MayCreateTemporaryTables(database)),
        "{refused:?}"
    );
    assert!(
        refused.contains(&RuntimeRoleProblem::MayCreateIn("public".into())),
        "{refused:?}"
    );
}
