//! The catalog test: the schema itself is checked, so that a later migration cannot quietly
//! add a table without row-level security, a view that runs with its owner's rights, a policy
//! for a role it should not serve, a function that runs with a search path an attacker can
//! stand a temporary object in, a SECURITY DEFINER function someone new may call, or a
//! privilege the runtime role must not have.
//!
//! Policies, functions and the runtime role's privileges are compared with the lists written
//! out below: a new policy, grant or function fails this test until the list is changed on
//! purpose, in the same change. Each check is a function returning the problems it finds, and
//! each is also run against a database where faults were planted on purpose, to prove it
//! notices them. The catalog is read as a superuser, in a database migrated as for a server
//! that has started on it (`spawn_app`).

use std::collections::BTreeSet;

use renrakucho_store::data_keys::OwnerKind;
use renrakucho_store::encrypted::{EncryptedColumn, ENCRYPTED_COLUMNS, HISTORY_COLUMNS};
use renrakucho_store::{
    check_runtime_role, RoleNames, RuntimeRoleProblem, PRIVILEGED_ROLES, RUNTIME_GROUP,
};
use renrakucho_testkit::{spawn_app, TestApp, TestDatabase, RUNTIME_PASSWORD};
use sqlx::{ConnectOptions, Connection, PgConnection};

// Roles, as the lists below name them.
const OWNER: &str = "renrakucho_owner";
const RUNTIME: &str = "renrakucho_runtime";
const PLATFORM: &str = "renrakucho_platform";
const KEY_MAINTENANCE: &str = "renrakucho_key_maintenance";
const ACCESS_SYNC: &str = "renrakucho_access_sync";
const DIGEST: &str = "renrakucho_digest";

/// Tables allowed to go without row-level security, and why. None of them is readable by the
/// runtime role but `_sqlx_migrations` (see [`RUNTIME_PRIVILEGES`]).
const WITHOUT_RLS: &[(&str, &str)] = &[
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

/// Every row-level security policy: table, name, command, and the roles it applies to
/// (`pg_policies.roles`; the owner's policies apply only inside the SECURITY DEFINER functions
/// that switch on their flag).
#[rustfmt::skip]
const POLICIES: &[(&str, &str, &str, &str)] = &[
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
    ("public.master_key_epochs", "master_key_epochs_read", "SELECT", RUNTIME),
    ("public.notification_settings", "notification_settings_digest", "SELECT", DIGEST),
    ("public.notification_settings", "notification_settings_own", "ALL", RUNTIME),
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
    ("public.platform_operators", "platform_operators_platform", "ALL", PLATFORM),
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

/// The search paths a function may pin: the catalog first and pg_temp last (a search path
/// without pg_temp searches it *first* for relations).
const PINNED: &str = "pg_catalog, pg_temp";
const PINNED_PUBLIC: &str = "pg_catalog, public, pg_temp";
/// No search path, because the body is SQL-standard (`BEGIN ATOMIC`): parsed at creation, so
/// no object created later can stand in for one it names.
const SQL_BODY: &str = "(SQL-standard body)";

/// Who may execute a function (the owner aside, who always may).
const PUBLIC: &[&str] = &["PUBLIC"];
const NOBODY: &[&str] = &[];
const WEB: &[&str] = &[RUNTIME];
const KEYS: &[&str] = &[KEY_MAINTENANCE];
const WEB_AND_KEYS: &[&str] = &[RUNTIME, KEY_MAINTENANCE];
const CONTEXT_READERS: &[&str] = &[RUNTIME, PLATFORM, KEY_MAINTENANCE, ACCESS_SYNC, DIGEST];

/// Every function of the schemas `public` and `private`: its search path and who may execute
/// it. Whether it is SECURITY DEFINER is [`SECURITY_DEFINER`]'s to say.
#[rustfmt::skip]
const FUNCTIONS: &[(&str, &str, &[&str])] = &[
    ("private.announce(text, jsonb)", PINNED, NOBODY),
    ("private.context_parts()", PINNED, NOBODY),
    ("private.definer_flags(text)", PINNED, NOBODY),
    ("private.legacy_value_count()", PINNED, NOBODY),
    ("private.value_binding_guard()", PINNED, NOBODY),
    ("private.identification_locked_until(uuid, uuid, timestamp with time zone)", PINNED, NOBODY),
    ("public.audit_log_link()", PINNED_PUBLIC, PUBLIC),
    ("public.audit_record_hash(audit_log)", SQL_BODY, PUBLIC),
    ("public.care_team_members_transition()", PINNED_PUBLIC, PUBLIC),
    ("public.consents_admission()", PINNED, NOBODY),
    ("public.consents_announce()", PINNED, NOBODY),
    ("public.consents_withdraw_once()", PINNED_PUBLIC, PUBLIC),
    ("public.current_facility_id()", PINNED, CONTEXT_READERS),
    ("public.current_staff_id()", PINNED, CONTEXT_READERS),
    ("public.data_keys_announce()", PINNED, NOBODY),
    ("public.data_keys_epoch_open()", PINNED_PUBLIC, PUBLIC),
    ("public.data_keys_guard()", PINNED_PUBLIC, PUBLIC),
    ("public.data_keys_no_maintenance_insert()", PINNED_PUBLIC, PUBLIC),
    ("public.emergency_grants_announce()", PINNED, NOBODY),
    ("public.emergency_grants_guard()", PINNED_PUBLIC, PUBLIC),
    ("public.emergency_grants_reason_given()", PINNED_PUBLIC, PUBLIC),
    ("public.encrypted_column_binding(text, text)", SQL_BODY, PUBLIC),
    ("public.emergency_grants_unlocked()", PINNED, NOBODY),
    ("public.emergency_grants_identified()", PINNED, NOBODY),
    ("public.emergency_identification_failed(bytea)", PINNED, WEB),
    ("public.emergency_identified(bytea, bytea)", PINNED, WEB),
    ("public.emergency_identification_status()", PINNED, WEB),
    ("public.emergency_identify(bytea)", PINNED, WEB),
    ("public.encrypted_column_owner(text, text)", SQL_BODY, PUBLIC),
    ("public.encrypted_values(text, text, uuid)", PINNED, KEYS),
    ("public.entries_announce()", PINNED, NOBODY),
    ("public.entries_guard()", PINNED_PUBLIC, PUBLIC),
    ("public.entry_versions_immutable()", PINNED_PUBLIC, PUBLIC),
    ("public.erase_patient(uuid)", PINNED, WEB),
    ("public.erasing(uuid, uuid)", SQL_BODY, PUBLIC),
    ("public.erasure_target()", SQL_BODY, PUBLIC),
    ("public.facility_directory(uuid[], text)", PINNED, WEB),
    ("public.facility_for_sign_in(text)", PINNED, WEB),
    ("public.has_access(uuid, uuid, text[])", SQL_BODY, PUBLIC),
    ("public.in_access_maintenance()", SQL_BODY, PUBLIC),
    ("public.in_access_sync()", SQL_BODY, PUBLIC),
    ("public.in_digest_scope()", SQL_BODY, PUBLIC),
    ("public.in_key_maintenance()", SQL_BODY, PUBLIC),
    ("public.in_platform_scope()", SQL_BODY, PUBLIC),
    ("public.invitations_announce()", PINNED, NOBODY),
    ("public.legacy_values_readable()", PINNED, WEB_AND_KEYS),
    ("public.master_key_epochs_forward()", PINNED_PUBLIC, PUBLIC),
    ("public.owner_flag(text)", SQL_BODY, PUBLIC),
    ("public.patient_access_changed()", PINNED, NOBODY),
    ("public.patient_cards_revision()", PINNED_PUBLIC, PUBLIC),
    ("public.patients_revision()", PINNED_PUBLIC, PUBLIC),
    ("public.raise_platform_alert(text, text, jsonb)", PINNED, WEB),
    ("public.reencrypt_target()", SQL_BODY, PUBLIC),
    ("public.reencrypt_value(text, text, uuid, uuid, bytea, bytea)", PINNED, KEYS),
    ("public.reencrypting(uuid)", SQL_BODY, PUBLIC),
    ("public.refresh_patient_access(uuid)", PINNED, NOBODY),
    ("public.renrakucho_connection()", SQL_BODY, WEB),
    ("public.renrakucho_enter(integer, bigint, uuid, uuid, bytea)", PINNED, WEB),
    ("public.session_create(text, bytea, timestamp with time zone)", PINNED, WEB),
    ("public.session_delete(text)", PINNED, WEB),
    ("public.session_delete_expired()", PINNED, WEB),
    ("public.session_load(text)", PINNED, WEB),
    ("public.session_save(text, bytea, timestamp with time zone)", PINNED, WEB),
    ("public.support_requests_announce()", PINNED, NOBODY),
    ("public.support_requests_transition()", PINNED_PUBLIC, PUBLIC),
    ("public.unreferenced_objects(uuid, text[])", PINNED, KEYS),
    ("public.value_binding_advance(uuid)", PINNED, KEYS),
    ("public.value_binding_complete()", PINNED, KEYS),
    ("public.value_binding_state(boolean)", PINNED, KEYS),
];

/// SECURITY DEFINER functions allowed, and why. Each but the context functions switches the
/// owner-only flags for its duration with `private.definer_flags(…)`.
const SECURITY_DEFINER: &[(&str, &str)] = &[
    (
        "public.current_facility_id()",
        "reads the context key to check the transaction's tenant context (policies call it)",
    ),
    (
        "public.current_staff_id()",
        "the same check, for the staff member the transaction acts for",
    ),
    (
        "public.renrakucho_connection()",
        "draws the connection's first context chain value from a sequence no one else may use",
    ),
    (
        "public.renrakucho_enter(integer, bigint, uuid, uuid, bytea)",
        "accepts a tenant context only with the server's MAC, made with the context key",
    ),
    (
        "public.facility_for_sign_in(text)",
        "sign-in names a facility by its public code before any tenant context exists",
    ),
    (
        "public.facility_directory(uuid[], text)",
        "the public directory of participating facilities (第16条): code, name and kind only",
    ),
    (
        "public.refresh_patient_access(uuid)",
        "derives a patient's relation rows from every facility's memberships, consents and \
         emergency grants; the runtime role cannot write patient_access itself",
    ),
    (
        "public.patient_access_changed()",
        "the trigger that calls refresh_patient_access on every such change",
    ),
    (
        "public.encrypted_values(text, text, uuid)",
        "re-encryption reads every encrypted value of one patient, for key maintenance only, \
         over a fixed list of columns",
    ),
    (
        "public.reencrypt_value(text, text, uuid, uuid, bytea, bytea)",
        "re-encryption replaces one such value, under the same conditions",
    ),
    (
        "public.unreferenced_objects(uuid, text[])",
        "the sweep of orphaned uploads: which of the given file names in one patient's folders \
         no consent or attachment names; key maintenance only, with re-encryption's flag",
    ),
    (
        "public.legacy_values_readable()",
        "whether ciphertexts of format 1 are still read (private.value_binding): one boolean",
    ),
    (
        "public.value_binding_state(boolean)",
        "where `keys bind-versions` stands, locked for the run; key maintenance only",
    ),
    (
        "public.value_binding_advance(uuid)",
        "records the last patient `keys bind-versions` finished; key maintenance only",
    ),
    (
        "public.value_binding_complete()",
        "counts ciphertexts of format 1 in every encrypted column and, when none is left, \
         refuses them for good; key maintenance only",
    ),
    (
        "public.erase_patient(uuid)",
        "carries out a deletion request recorded in the same transaction (第12条2–3) across \
         every facility's rows, only for a facility that shares the patient",
    ),
    (
        "public.session_load(text)",
        "sessions live in private.sessions, reached only for the cookie value presented",
    ),
    (
        "public.session_create(text, bytea, timestamp with time zone)",
        "as session_load",
    ),
    (
        "public.session_save(text, bytea, timestamp with time zone)",
        "as session_load",
    ),
    ("public.session_delete(text)", "as session_load"),
    (
        "public.raise_platform_alert(text, text, jsonb)",
        "raises an alert for the operators in the name of the verified tenant context's \
         facility; the web role can neither read nor change alerts",
    ),
    (
        "public.session_delete_expired()",
        "removes expired session records (which no cookie can use any more); a count only",
    ),
    (
        "public.data_keys_announce()",
        "announces a new key version or a destroyed key into private.announcements",
    ),
    (
        "public.entries_announce()",
        "announces a new entry (IDs and kinds, never content), built from the row itself",
    ),
    (
        "public.support_requests_announce()",
        "as entries_announce, for support requests",
    ),
    (
        "public.invitations_announce()",
        "as entries_announce, for care-team invitations",
    ),
    (
        "public.emergency_grants_announce()",
        "as entries_announce, for emergency access",
    ),
    (
        "public.emergency_identify(bytea)",
        "emergency identification (ADR 0018): the card a keyed lookup names, across \
         facilities, for a staff member's context only, unless the caller's facility or the \
         card is locked; returns the patient and the keyed birth check, nothing readable",
    ),
    (
        "public.emergency_identification_failed(bytea)",
        "records a failed identification (the card resolved from the lookup, never from the \
         caller) and its audit record in the registering facility's (or the platform's) chain",
    ),
    (
        "public.emergency_identification_status()",
        "the caller's facility's own failure count and lockout, without the rows (which name \
         patients)",
    ),
    (
        "public.emergency_identified(bytea, bytea)",
        "the database's confirmation of an identification the server made: the card named \
         by a keyed lookup, its keyed birth check equal, neither facility nor card locked; \
         records it for the transaction's grant and returns the patient",
    ),
    (
        "public.emergency_grants_identified()",
        "refuses a grant without an identification of its patient by its facility and staff \
         member in the same transaction, and uses that identification up",
    ),
    (
        "public.emergency_grants_unlocked()",
        "refuses a grant while the opening facility or the patient's card is locked, counting \
         every facility's failures",
    ),
    (
        "public.consents_announce()",
        "logs a consent change (recorded, renewed, withdrawn: IDs and kind) in consent_changes \
         for the care team's notifications and announces it, built from the row itself",
    ),
    (
        "public.consents_admission()",
        "the trigger that checks a consent about to be recorded against every consent of the \
         patient (signing date, renewal by the registering facility with a scan); it decides, \
         it writes nothing",
    ),
];

/// The SECURITY DEFINER functions that need no owner-only flag: they read the context key
/// and the chain, nothing a flag opens.
const CONTEXT_FUNCTIONS: &[&str] = &[
    "public.current_facility_id()",
    "public.current_staff_id()",
    "public.renrakucho_connection()",
    "public.renrakucho_enter(integer, bigint, uuid, uuid, bytea)",
];

/// Every privilege the runtime role (its group, renrakucho_runtime) holds on a table, view or
/// sequence, as GRANT would name it: table-wide, or on the columns listed. Nothing in schema
/// `private`, no sequence.
const RUNTIME_PRIVILEGES: &[&str] = &[
    "public._sqlx_migrations: SELECT",
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
    "public.facilities: SELECT",
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
    "public.staff_accounts: UPDATE (display_name, may_accept_invitations, password_changed_at, \
     password_hash, profession, role, status, updated_at)",
    "public.support_request_items: SELECT, INSERT",
    "public.support_requests: SELECT, INSERT",
    "public.support_requests: UPDATE (answer_enc, answered_by, answered_by_name, status, \
     updated_at)",
];

/// The schemas the application's migrations create objects in (everything but PostgreSQL's).
const OUR_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
                           AND n.nspname NOT LIKE 'pg\\_%'";

/// The runtime login role (a member of [`RUNTIME_GROUP`]).
fn runtime_login() -> String {
    RoleNames::default().runtime
}

/// What is in `actual` but not `expected` ("… not on the expected list") and the other way
/// round ("… on the expected list but missing").
fn compare(actual: &BTreeSet<String>, expected: &BTreeSet<String>, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for extra in actual.difference(expected) {
        problems.push(format!("{extra}: {what} not on the expected list"));
    }
    for missing in expected.difference(actual) {
        problems.push(format!(
            "{missing}: {what} on the expected list but missing"
        ));
    }
    problems
}

/// Tables: row-level security enabled and forced with at least one policy (but the allowed
/// few), facility data never on the allow-list, an index leading with `facility_id`.
async fn table_problems(conn: &mut PgConnection) -> Vec<String> {
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
async fn view_problems(conn: &mut PgConnection) -> Vec<String> {
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
async fn policy_list_problems(conn: &mut PgConnection) -> Vec<String> {
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
async fn policy_shape_problems(conn: &mut PgConnection) -> Vec<String> {
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

/// A function of `public` or `private` as the catalog has it.
#[derive(sqlx::FromRow)]
struct Function {
    name: String,
    definer: bool,
    search_path: Option<String>,
    sql_body: bool,
    sets_flags: bool,
    public_execute: bool,
    executors: Vec<String>,
}

async fn functions(conn: &mut PgConnection) -> Vec<Function> {
    let mut roles = vec![RUNTIME_GROUP.to_string(), runtime_login()];
    roles.extend(PRIVILEGED_ROLES.iter().map(|r| r.to_string()));
    sqlx::query_as(
        "SELECT format('%s.%s(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes))
                    AS name,
                p.prosecdef AS definer,
                (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) c
                  WHERE c LIKE 'search_path=%') AS search_path,
                p.prosqlbody IS NOT NULL AS sql_body,
                coalesce(CASE WHEN p.prosqlbody IS NULL THEN p.prosrc
                              WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
                         END, '') LIKE '%private.definer_flags(%' AS sets_flags,
                EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                         WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute,
                ARRAY(SELECT r FROM unnest($1::text[]) r
                       WHERE has_function_privilege(r, p.oid, 'EXECUTE')) AS executors
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname IN ('public', 'private')
          ORDER BY 1",
    )
    .bind(&roles)
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

fn function_line(name: &str, definer: bool, path: &str, executors: &[&str]) -> String {
    let executors = if executors.is_empty() {
        "nobody".to_string()
    } else {
        executors.join(", ")
    };
    let security = if definer {
        "SECURITY DEFINER"
    } else {
        "INVOKER"
    };
    format!("{name}: {security}, search_path {path}, EXECUTE by {executors}")
}

/// Every function is one of [`FUNCTIONS`] with the search path and executors written there,
/// SECURITY DEFINER exactly when [`SECURITY_DEFINER`] names it; every search path ends with
/// pg_temp (or the body is SQL-standard); every SECURITY DEFINER function but the context
/// functions switches the owner-only flags.
async fn function_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    let mut actual = BTreeSet::new();
    for f in functions(conn).await {
        let path = match (&f.search_path, f.sql_body) {
            (Some(path), _) => path.clone(),
            (None, true) => SQL_BODY.to_string(),
            (None, false) => "(none)".to_string(),
        };
        match f.search_path.as_deref() {
            Some(PINNED | PINNED_PUBLIC) => {}
            Some(other) if !other.trim_end().ends_with("pg_temp") => problems.push(format!(
                "{}: search_path {other} does not end with pg_temp (pg_temp is searched first)",
                f.name
            )),
            Some(other) => problems.push(format!(
                "{}: search_path {other} is neither `{PINNED}` nor `{PINNED_PUBLIC}`",
                f.name
            )),
            None if f.sql_body => {}
            None => problems.push(format!(
                "{}: neither pins search_path nor has a SQL-standard body",
                f.name
            )),
        }
        if f.definer && !f.sets_flags && !CONTEXT_FUNCTIONS.contains(&f.name.as_str()) {
            problems.push(format!(
                "{}: SECURITY DEFINER without private.definer_flags(…)",
                f.name
            ));
        }
        if f.definer != SECURITY_DEFINER.iter().any(|(name, _)| *name == f.name) {
            problems.push(if f.definer {
                format!("{}: SECURITY DEFINER but not on the allow-list", f.name)
            } else {
                format!("{}: on the SECURITY DEFINER allow-list but is not", f.name)
            });
        }
        // PUBLIC stands for everyone; the login role inherits its group's (and is named only
        // for what it holds of its own).
        let login = runtime_login();
        let executors: Vec<&str> = if f.public_execute {
            vec!["PUBLIC"]
        } else {
            let group = f.executors.iter().any(|r| r == RUNTIME_GROUP);
            f.executors
                .iter()
                .map(String::as_str)
                .filter(|r| !(group && *r == login))
                .collect()
        };
        actual.insert(function_line(&f.name, f.definer, &path, &executors));
    }
    let expected: BTreeSet<String> = FUNCTIONS
        .iter()
        .map(|(name, path, executors)| {
            let definer = SECURITY_DEFINER.iter().any(|(n, _)| n == name);
            function_line(name, definer, path, executors)
        })
        .collect();
    problems.extend(compare(&actual, &expected, "function"));
    problems
}

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
async fn privilege_problems(conn: &mut PgConnection) -> Vec<String> {
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
            // muted patient), not records.
            "DELETE" => matches!(
                table.as_str(),
                "public.patient_name_terms" | "public.patient_mutes"
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
async fn boundary_problems(conn: &mut PgConnection) -> Vec<String> {
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

fn column_name(c: &EncryptedColumn<'_>) -> String {
    format!("public.{}.{}", c.table, c.column)
}

/// The encrypted columns: what the application walks ([`ENCRYPTED_COLUMNS`], and
/// [`HISTORY_COLUMNS`], which only `keys bind-versions` re-encrypts) is what the database's
/// `encrypted_column_owner()` knows, with the same owner column, and what its
/// `encrypted_column_binding()` says each value's associated data names (row, version); no
/// column is in both lists; and every `bytea` column named `*_enc` is in one of them.
async fn encrypted_column_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    let known: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT format('%s.%s.%s', c.table_schema, c.table_name, c.column_name),
                encrypted_column_owner(c.table_name, c.column_name),
                (encrypted_column_binding(c.table_name, c.column_name))[1],
                (encrypted_column_binding(c.table_name, c.column_name))[2]
           FROM information_schema.columns c
          WHERE c.table_schema = 'public' AND c.data_type = 'bytea'
            AND encrypted_column_owner(c.table_name, c.column_name) IS NOT NULL
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let ours: Vec<&EncryptedColumn<'static>> = ENCRYPTED_COLUMNS
        .iter()
        .chain(HISTORY_COLUMNS)
        .filter(|c| c.owner_kind == OwnerKind::Patient)
        .collect();
    for c in &ours {
        match known.iter().find(|(name, ..)| *name == column_name(c)) {
            None => problems.push(format!(
                "{}: encrypted by the application but unknown to encrypted_column_owner()",
                column_name(c)
            )),
            Some((_, owner, row, version)) => {
                if owner != c.owner_column {
                    problems.push(format!(
                        "{}: encrypted_column_owner() names {owner}, the application {}",
                        column_name(c),
                        c.owner_column
                    ));
                }
                if row.as_deref() != Some(c.bound_row_column)
                    || version.as_deref() != c.version_column
                {
                    problems.push(format!(
                        "{}: encrypted_column_binding() binds row {row:?} version {version:?}, \
                         the application row {:?} version {:?}",
                        column_name(c),
                        c.bound_row_column,
                        c.version_column
                    ));
                }
            }
        }
    }
    for (column, ..) in &known {
        if !ours.iter().any(|c| column_name(c) == *column) {
            problems.push(format!(
                "{column}: known to encrypted_column_owner() but in neither ENCRYPTED_COLUMNS \
                 nor HISTORY_COLUMNS"
            ));
        }
    }
    for c in HISTORY_COLUMNS {
        if ENCRYPTED_COLUMNS.contains(c) {
            problems.push(format!(
                "{}: in both ENCRYPTED_COLUMNS and HISTORY_COLUMNS",
                column_name(c)
            ));
        }
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s.%s.%s', c.table_schema, c.table_name, c.column_name)
           FROM information_schema.columns c
          WHERE c.table_schema IN ('public', 'private') AND c.data_type = 'bytea'
            AND c.column_name LIKE '%\\_enc'
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for column in stored {
        if !ENCRYPTED_COLUMNS
            .iter()
            .chain(HISTORY_COLUMNS)
            .any(|c| column_name(c) == column)
        {
            problems.push(format!(
                "{column}: an encrypted column in neither ENCRYPTED_COLUMNS nor HISTORY_COLUMNS"
            ));
        }
    }
    problems
}

/// Everything wrong with the schema, one line per fault.
async fn schema_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = table_problems(conn).await;
    problems.extend(view_problems(conn).await);
    problems.extend(policy_list_problems(conn).await);
    problems.extend(policy_shape_problems(conn).await);
    problems.extend(function_problems(conn).await);
    problems.extend(privilege_problems(conn).await);
    problems.extend(boundary_problems(conn).await);
    problems.extend(encrypted_column_problems(conn).await);
    problems
}

async fn superuser_of(app: &TestApp) -> PgConnection {
    app.database.superuser_options().connect().await.unwrap()
}

#[tokio::test]
async fn the_schema_passes_every_catalog_check() {
    let app = spawn_app().await;
    let mut conn = superuser_of(&app).await;
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
    for (function, _) in SECURITY_DEFINER
        .iter()
        .copied()
        .chain(CONTEXT_FUNCTIONS.iter().map(|f| (*f, "")))
    {
        assert!(
            FUNCTIONS.iter().any(|(name, _, _)| *name == function),
            "{function} is on an allow-list but not among the functions"
        );
    }
    // Every column the re-encryption walks, and every column of history, exists, holds bytes,
    // and names its owner.
    for c in ENCRYPTED_COLUMNS.iter().chain(HISTORY_COLUMNS) {
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
}

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
