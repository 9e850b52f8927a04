//! The catalog test: the schema itself is checked, so that a later migration cannot quietly
//! add a table without row-level security, a view that runs with its owner's rights, a policy
//! for a role it should not serve, a function that runs with a search path an attacker can
//! stand a temporary object in, a SECURITY DEFINER function someone new may call, or a
//! privilege the runtime role must not have.
//!
//! Policies, functions and the runtime role's privileges are compared with the lists written
//! out in the files of this folder: a new policy, grant or function fails this test until the list is changed on
//! purpose, in the same change. Each check is a function returning the problems it finds, and
//! each is also run against a database where faults were planted on purpose, to prove it
//! notices them. The catalog is read as a superuser, in a database migrated as for a server
//! that has started on it (`spawn_app`).
//!
//! Shared here: the roles as the lists name them, the comparison of a list with the catalog, and
//! every check run at once; each kind of object (tables and views, policies, functions,
//! privileges, encrypted columns) has its list and its check in a file of its own, and the tests
//! are beside them.

mod encrypted_columns;
mod functions;
mod migrated_schema;
mod planted_faults;
mod policies;
mod privileges;
mod runtime_role;
mod tables;

use std::collections::BTreeSet;

use renrakucho_store::RoleNames;
use renrakucho_testkit::TestApp;
use sqlx::{ConnectOptions, PgConnection};

use self::encrypted_columns::encrypted_column_problems;
use self::functions::function_problems;
use self::policies::{policy_list_problems, policy_shape_problems};
use self::privileges::{boundary_problems, privilege_problems};
use self::tables::{table_problems, view_problems};

// Roles, as the lists name them.
const OWNER: &str = "renrakucho_owner";
const RUNTIME: &str = "renrakucho_runtime";
const PLATFORM: &str = "renrakucho_platform";
const KEY_MAINTENANCE: &str = "renrakucho_key_maintenance";
const ACCESS_SYNC: &str = "renrakucho_access_sync";
const DIGEST: &str = "renrakucho_digest";

/// The schemas the application's migrations create objects in (everything but PostgreSQL's).
const OUR_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
                           AND n.nspname NOT LIKE 'pg\\_%'";

/// The runtime login role (a member of [`RUNTIME_GROUP`](renrakucho_store::RUNTIME_GROUP)).
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
