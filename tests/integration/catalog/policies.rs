//! Row-level security policies: every one on the list written out here, for exactly the roles
//! named there, and each shaped as a policy must be whatever the list says.

use super::*;

/// Every row-level security policy: table, name, command, and the roles it applies to
/// (`pg_policies.roles`; the owner's policies apply only inside the SECURITY DEFINER functions
/// that switch on their flag).
#[rustfmt::skip]
const POLICIES: &[(&str, &str, &str, &str)] = &[
    ("public.account_notices", "account_notices_digest", "SELECT", DIGEST),
    ("public.account_notices", "account_notices_own", "ALL", RUNTIME),
    ("private.emergency_identifications", "emergency_identifications_confirm", "ALL", OWNER),
    ("private.platform_alerts", "platform_alerts_platform", "ALL", PLATFORM),
    ("private.platform_alerts", "platform_alerts_raise", "ALL", OWNER),
    ("private.sessions", "sessions_store", "ALL", OWNER),
    ("public.attachments", "attachments_attach", "UPDATE", RUNTIME),
    ("public.attachments", "attachments_erasure", "DELETE", OWNER),
    ("public.attachments", "attachments_erasure_read", "SELECT", OWNER),
    ("public.attachments", "attachments_read", "SELECT", RUNTIME),
    ("public.attachments", "attachments_reencrypt", "ALL", OWNER),
    ("public.attachments", "attachments_upload", "INSERT", RUNTIME),
    ("public.attachments", "attachments_value_check", "SELECT", OWNER),
    ("public.audit_log", "audit_log_facility", "ALL", RUNTIME),
    ("public.audit_log", "audit_log_identification", "ALL", OWNER),
    ("public.audit_log", "audit_log_platform", "ALL", "renrakucho_key_maintenance, renrakucho_platform"),
    ("public.care_team_members", "care_team_members_erasure", "DELETE", OWNER),
    ("public.care_team_members", "care_team_members_insert", "INSERT", RUNTIME),
    ("public.care_team_members", "care_team_members_maintenance", "SELECT", OWNER),
    ("public.care_team_members", "care_team_members_read", "SELECT", RUNTIME),
    ("public.care_team_members", "care_team_members_update", "UPDATE", RUNTIME),
    ("public.consent_changes", "consent_changes_log", "INSERT", OWNER),
    ("public.consent_changes", "consent_changes_team", "SELECT", RUNTIME),
    ("public.consents", "consents_erasure", "DELETE", OWNER),
    ("public.consents", "consents_insert", "INSERT", RUNTIME),
    ("public.consents", "consents_maintenance", "SELECT", OWNER),
    ("public.consents", "consents_read", "SELECT", RUNTIME),
    ("public.consents", "consents_reencrypt", "ALL", OWNER),
    ("public.consents", "consents_value_check", "SELECT", OWNER),
    ("public.consents", "consents_withdraw", "UPDATE", RUNTIME),
    ("public.data_keys", "data_keys_create", "INSERT", RUNTIME),
    ("public.data_keys", "data_keys_erasure", "UPDATE", RUNTIME),
    ("public.data_keys", "data_keys_maintenance", "ALL", KEY_MAINTENANCE),
    ("public.data_keys", "data_keys_platform", "ALL", PLATFORM),
    ("public.data_keys", "data_keys_read", "SELECT", RUNTIME),
    ("public.deletion_requests", "deletion_requests_complete", "UPDATE", RUNTIME),
    ("public.deletion_requests", "deletion_requests_epochs", "SELECT", KEY_MAINTENANCE),
    ("public.deletion_requests", "deletion_requests_maintenance", "SELECT", OWNER),
    ("public.deletion_requests", "deletion_requests_own", "SELECT", RUNTIME),
    ("public.deletion_requests", "deletion_requests_record", "INSERT", RUNTIME),
    ("public.emergency_grants", "emergency_grants_erasure", "DELETE", OWNER),
    ("public.emergency_grants", "emergency_grants_maintenance", "SELECT", OWNER),
    ("public.emergency_grants", "emergency_grants_open", "INSERT", RUNTIME),
    ("public.emergency_grants", "emergency_grants_read", "SELECT", RUNTIME),
    ("public.emergency_grants", "emergency_grants_reencrypt", "ALL", OWNER),
    ("public.emergency_grants", "emergency_grants_update", "UPDATE", RUNTIME),
    ("public.emergency_grants", "emergency_grants_value_check", "SELECT", OWNER),
    ("public.emergency_identification_failures", "emergency_identification_failures_record", "ALL", OWNER),
    ("public.emergency_identification_failures", "emergency_identification_failures_registering", "SELECT", RUNTIME),
    ("public.external_identities", "external_identities_own", "ALL", RUNTIME),
    ("public.identity_providers", "identity_providers_maintenance", "ALL", KEY_MAINTENANCE),
    ("public.identity_providers", "identity_providers_own", "ALL", RUNTIME),
    ("public.staff_passkeys", "staff_passkeys_own", "ALL", RUNTIME),
    ("public.entries", "entries_announce_read", "SELECT", OWNER),
    ("public.entries", "entries_edit", "UPDATE", RUNTIME),
    ("public.entries", "entries_erasure", "DELETE", OWNER),
    ("public.entries", "entries_erasure_read", "SELECT", OWNER),
    ("public.entries", "entries_post", "INSERT", RUNTIME),
    ("public.entries", "entries_read", "SELECT", RUNTIME),
    ("public.entries", "entries_reencrypt", "ALL", OWNER),
    ("public.entries", "entries_value_check", "SELECT", OWNER),
    ("public.entry_reads", "entry_reads_erasure", "DELETE", OWNER),
    ("public.entry_reads", "entry_reads_erasure_read", "SELECT", OWNER),
    ("public.entry_reads", "entry_reads_mark", "INSERT", RUNTIME),
    ("public.entry_reads", "entry_reads_read", "SELECT", RUNTIME),
    ("public.entry_versions", "entry_versions_erasure", "DELETE", OWNER),
    ("public.entry_versions", "entry_versions_erasure_read", "SELECT", OWNER),
    ("public.entry_versions", "entry_versions_read", "SELECT", RUNTIME),
    ("public.entry_versions", "entry_versions_reencrypt", "ALL", OWNER),
    ("public.entry_versions", "entry_versions_value_check", "SELECT", OWNER),
    ("public.entry_versions", "entry_versions_write", "INSERT", RUNTIME),
    ("public.facilities", "facilities_directory", "SELECT", OWNER),
    ("public.facilities", "facilities_own", "SELECT", RUNTIME),
    ("public.facilities", "facilities_platform", "ALL", PLATFORM),
    ("public.master_key_epochs", "master_key_epochs_maintenance", "ALL", KEY_MAINTENANCE),
    ("public.master_key_epochs", "master_key_epochs_platform", "SELECT", PLATFORM),
    ("public.master_key_epochs", "master_key_epochs_read", "SELECT", RUNTIME),
    ("public.notification_settings", "notification_settings_digest", "SELECT", DIGEST),
    ("public.notification_settings", "notification_settings_own", "ALL", RUNTIME),
    ("public.operator_identities", "operator_identities_platform", "ALL", PLATFORM),
    ("public.operator_passkeys", "operator_passkeys_platform", "ALL", PLATFORM),
    ("public.patient_access", "patient_access_maintenance", "ALL", OWNER),
    ("public.patient_access", "patient_access_own", "SELECT", RUNTIME),
    ("public.patient_access", "patient_access_sync", "SELECT", ACCESS_SYNC),
    ("public.patient_cards", "patient_cards_identify", "SELECT", OWNER),
    ("public.patient_cards", "patient_cards_reencrypt", "ALL", OWNER),
    ("public.patient_cards", "patient_cards_registering", "ALL", RUNTIME),
    ("public.patient_cards", "patient_cards_value_check", "SELECT", OWNER),
    ("public.patient_mutes", "patient_mutes_erasure", "DELETE", OWNER),
    ("public.patient_mutes", "patient_mutes_erasure_read", "SELECT", OWNER),
    ("public.patient_mutes", "patient_mutes_own", "ALL", RUNTIME),
    ("public.patient_name_terms", "patient_name_terms_erasure", "DELETE", OWNER),
    ("public.patient_name_terms", "patient_name_terms_erasure_read", "SELECT", OWNER),
    ("public.patient_name_terms", "patient_name_terms_read", "SELECT", RUNTIME),
    ("public.patient_name_terms", "patient_name_terms_replace", "DELETE", RUNTIME),
    ("public.patient_name_terms", "patient_name_terms_write", "INSERT", RUNTIME),
    ("public.patients", "patients_erasure", "DELETE", OWNER),
    ("public.patients", "patients_erasure_read", "SELECT", OWNER),
    ("public.patients", "patients_read", "SELECT", RUNTIME),
    ("public.patients", "patients_reencrypt", "ALL", OWNER),
    ("public.patients", "patients_register", "INSERT", RUNTIME),
    ("public.patients", "patients_update", "UPDATE", RUNTIME),
    ("public.patients", "patients_value_check", "SELECT", OWNER),
    ("public.platform_operators", "platform_operators_maintenance", "ALL", KEY_MAINTENANCE),
    ("public.platform_operators", "platform_operators_platform", "ALL", PLATFORM),
    ("public.staff_accounts", "staff_accounts_maintenance", "ALL", KEY_MAINTENANCE),
    ("public.staff_accounts", "staff_accounts_own", "ALL", RUNTIME),
    ("public.support_request_items", "support_request_items_add", "INSERT", RUNTIME),
    ("public.support_request_items", "support_request_items_erasure", "DELETE", OWNER),
    ("public.support_request_items", "support_request_items_erasure_read", "SELECT", OWNER),
    ("public.support_request_items", "support_request_items_read", "SELECT", RUNTIME),
    ("public.support_requests", "support_requests_erasure", "DELETE", OWNER),
    ("public.support_requests", "support_requests_maintenance", "SELECT", OWNER),
    ("public.support_requests", "support_requests_move", "UPDATE", RUNTIME),
    ("public.support_requests", "support_requests_read", "SELECT", RUNTIME),
    ("public.support_requests", "support_requests_reencrypt", "ALL", OWNER),
    ("public.support_requests", "support_requests_send", "INSERT", RUNTIME),
    ("public.support_requests", "support_requests_value_check", "SELECT", OWNER),
];

/// What an owner-only policy must be gated by: a flag only a SECURITY DEFINER function sets
/// for its own statements (or the target it names).
const OWNER_FLAGS: &[&str] = &[
    "owner_flag(",
    "erasure_target()",
    "reencrypt_target()",
    "in_access_maintenance()",
];

/// What a privileged role's policy must ask: that the statement runs as the role itself (the
/// owner is a member of each, and must not get their policies inside its functions).
const ROLE_CHECKS: &[(&str, &str)] = &[
    (PLATFORM, "in_platform_scope()"),
    (KEY_MAINTENANCE, "in_key_maintenance()"),
    (ACCESS_SYNC, "in_access_sync()"),
    (DIGEST, "in_digest_scope()"),
];

/// Functions policies call that must be evaluated once per statement, `(SELECT f(…))`.
const ONCE_PER_STATEMENT: &[&str] = &[
    "current_facility_id(",
    "in_platform_scope(",
    "in_key_maintenance(",
    "in_access_sync(",
    "in_digest_scope(",
    "in_access_maintenance(",
    "erasure_target(",
    "reencrypt_target(",
    "owner_flag(",
];

/// A row of `pg_policies`.
#[derive(sqlx::FromRow)]
struct Policy {
    table: String,
    policy: String,
    cmd: String,
    roles: Vec<String>,
    qual: Option<String>,
    with_check: Option<String>,
}

async fn policies(conn: &mut PgConnection) -> Vec<Policy> {
    sqlx::query_as(
        "SELECT format('%I.%I', schemaname, tablename) AS table, policyname::text AS policy,
                cmd, roles::text[] AS roles, qual, with_check
           FROM pg_policies ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

fn policy_line(table: &str, policy: &str, cmd: &str, roles: &str) -> String {
    format!("{table}: policy {policy} ({cmd}) TO {roles}")
}

/// Every policy is one of [`POLICIES`], for exactly the roles written there.
pub(super) async fn policy_list_problems(conn: &mut PgConnection) -> Vec<String> {
    let actual: BTreeSet<String> = policies(conn)
        .await
        .into_iter()
        .map(|p| {
            let mut roles = p.roles.clone();
            roles.sort();
            policy_line(&p.table, &p.policy, &p.cmd, &roles.join(", "))
        })
        .collect();
    let expected: BTreeSet<String> = POLICIES
        .iter()
        .map(|(table, policy, cmd, roles)| policy_line(table, policy, cmd, roles))
        .collect();
    compare(&actual, &expected, "policy")
}

/// What every policy must look like whatever the list says: a WITH CHECK where it can write,
/// the context and flag functions evaluated once per statement, never every row, never PUBLIC,
/// a runtime policy bound to the tenant context, an owner policy to an owner-only flag, and a
/// privileged role's policy to that role itself.
pub(super) async fn policy_shape_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    for Policy {
        table,
        policy,
        cmd,
        roles,
        qual,
        with_check,
    } in policies(conn).await
    {
        if matches!(cmd.as_str(), "ALL" | "UPDATE" | "INSERT") && with_check.is_none() {
            problems.push(format!(
                "{table}: policy {policy} ({cmd}) has no WITH CHECK"
            ));
        }
        let expressions: Vec<&str> = [qual.as_deref(), with_check.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        for expression in &expressions {
            for function in ONCE_PER_STATEMENT {
                let total = expression.matches(function).count();
                let wrapped = expression.matches(&format!("SELECT {function}")).count();
                if total != wrapped {
                    problems.push(format!(
                        "{table}: policy {policy} calls {function}…) per row; wrap it as \
                         (SELECT {function}…))"
                    ));
                }
            }
            if expression.trim() == "true" {
                problems.push(format!("{table}: policy {policy} lets every row through"));
            }
        }
        // Each expression must ask, not just one of them.
        let all_mention = |what: &[&str]| {
            !expressions.is_empty()
                && expressions
                    .iter()
                    .all(|e| what.iter().any(|w| e.contains(w)))
        };
        for role in &roles {
            match role.as_str() {
                "public" => problems.push(format!("{table}: policy {policy} applies to PUBLIC")),
                RUNTIME => {
                    if !all_mention(&["current_facility_id()"]) {
                        problems.push(format!(
                            "{table}: policy {policy} for the runtime role does not depend on \
                             the tenant context"
                        ));
                    }
                }
                OWNER => {
                    if !all_mention(OWNER_FLAGS) {
                        problems.push(format!(
                            "{table}: policy {policy} for the owner is not gated by an \
                             owner-only flag"
                        ));
                    }
                }
                other => match ROLE_CHECKS.iter().find(|(r, _)| *r == other) {
                    Some((_, check)) if all_mention(&[check]) => {}
                    Some((_, check)) => problems.push(format!(
                        "{table}: policy {policy} for {other} does not ask {check}"
                    )),
                    None => problems.push(format!(
                        "{table}: policy {policy} applies to {other}, a role of no scope"
                    )),
                },
            }
        }
    }
    problems
}
