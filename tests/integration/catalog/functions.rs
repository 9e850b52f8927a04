//! Functions: every one on the list written out here with its search path and who may execute
//! it, SECURITY DEFINER only on the allow-list (with the reason), and each such function
//! switching the owner-only flags.

use renrakucho_store::{PRIVILEGED_ROLES, RUNTIME_GROUP};

use super::*;

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
pub(super) const FUNCTIONS: &[(&str, &str, &[&str])] = &[
    ("private.announce(text, jsonb)", PINNED, NOBODY),
    ("private.principal_changed()", PINNED, NOBODY),
    ("private.sessions_changed()", PINNED, NOBODY),
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
pub(super) const SECURITY_DEFINER: &[(&str, &str)] = &[
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
        "private.principal_changed()",
        "announces a changed staff account, facility or operator by its IDs, so that every \
         server process forgets what it remembered of them (ADR 0025)",
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
pub(super) const CONTEXT_FUNCTIONS: &[&str] = &[
    "public.current_facility_id()",
    "public.current_staff_id()",
    "public.renrakucho_connection()",
    "public.renrakucho_enter(integer, bigint, uuid, uuid, bytea)",
];

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
pub(super) async fn function_problems(conn: &mut PgConnection) -> Vec<String> {
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
