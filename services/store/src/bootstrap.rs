//! Setting up a database: roles, the database itself, migrations, and the checks the server
//! runs before it trusts its runtime role.

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::StoreError;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The migrations built into this binary (forward-only; never edit a landed one).
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// The group role the migrations grant privileges to.
pub const RUNTIME_GROUP: &str = "renrakucho_runtime";

/// The two login roles: the owner that runs migrations, and the runtime role of the pool.
#[derive(Debug, Clone)]
pub struct RoleNames {
    pub owner: String,
    pub runtime: String,
}

impl Default for RoleNames {
    fn default() -> Self {
        Self {
            owner: "renrakucho_owner".into(),
            runtime: "renrakucho_app".into(),
        }
    }
}

fn valid_identifier(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Misconfigured(format!(
            "`{name}` is not a plain PostgreSQL identifier (lower-case letters, digits, _)"
        )))
    }
}

/// Runs a statement built server-side with `format()` (%I quotes identifiers, %L literals),
/// so role names and passwords never need quoting in Rust.
async fn execute_formatted(
    conn: &mut PgConnection,
    template: &str,
    args: &[&str],
) -> Result<(), StoreError> {
    let placeholders: Vec<String> = (1..=args.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT format('{template}', {})", placeholders.join(", "));
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for arg in args {
        query = query.bind(*arg);
    }
    let statement = query.fetch_one(&mut *conn).await?;
    sqlx::raw_sql(&statement).execute(&mut *conn).await?;
    Ok(())
}

/// As a cluster superuser (the private cluster, or a test server): creates the owner role and
/// a database owned by it, unless they exist. `owner_password` is set when given.
pub async fn provision_cluster(
    superuser: &PgConnectOptions,
    database: &str,
    roles: &RoleNames,
    owner_password: Option<&str>,
) -> Result<(), StoreError> {
    valid_identifier(database)?;
    valid_identifier(&roles.owner)?;
    let mut conn = superuser.connect().await?;
    // Serialise concurrent provisioning (several test processes on one server).
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('renrakucho.provision', 0))")
        .execute(&mut conn)
        .await?;
    let owner_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(&roles.owner)
            .fetch_one(&mut conn)
            .await?;
    if !owner_exists {
        execute_formatted(
            &mut conn,
            "CREATE ROLE %I LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS NOCREATEDB",
            &[&roles.owner],
        )
        .await?;
    }
    if let Some(password) = owner_password {
        execute_formatted(
            &mut conn,
            "ALTER ROLE %I PASSWORD %L",
            &[&roles.owner, password],
        )
        .await?;
    }
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !db_exists {
        execute_formatted(
            &mut conn,
            "CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0",
            &[database, &roles.owner, "UTF8"],
        )
        .await?;
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended('renrakucho.provision', 0))")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Applies the embedded migrations as the owner. Safe to run from several processes at once
/// (sqlx takes an advisory lock).
pub async fn run_migrations(owner: &PgConnectOptions) -> Result<(), StoreError> {
    let mut conn = owner.connect().await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// As the owner (which needs CREATEROLE): makes sure the runtime login role exists, is a
/// member of the runtime group, and has none of the powers it must not have. Returns true when
/// the role was created now.
pub async fn create_runtime_login(
    owner: &PgConnectOptions,
    runtime: &str,
    password: Option<&str>,
) -> Result<bool, StoreError> {
    valid_identifier(runtime)?;
    let mut conn = owner.connect().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('renrakucho.provision', 0))")
        .execute(&mut conn)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(runtime)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        execute_formatted(
            &mut conn,
            "CREATE ROLE %I LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
            &[runtime],
        )
        .await?;
    }
    if let Some(password) = password {
        execute_formatted(&mut conn, "ALTER ROLE %I PASSWORD %L", &[runtime, password]).await?;
    }
    let member: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(runtime)
        .bind(RUNTIME_GROUP)
        .fetch_one(&mut conn)
        .await?;
    if !member {
        execute_formatted(&mut conn, "GRANT %I TO %I", &[RUNTIME_GROUP, runtime]).await?;
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended('renrakucho.provision', 0))")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(!exists)
}

/// Why the server refuses to run with its runtime role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeRoleProblem {
    Superuser,
    BypassesRls,
    OwnsObjects(i64),
    MemberOfOwner(String),
    NotInRuntimeGroup,
}

impl std::fmt::Display for RuntimeRoleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Superuser => write!(f, "the runtime role is a superuser"),
            Self::BypassesRls => write!(f, "the runtime role has BYPASSRLS"),
            Self::OwnsObjects(n) => write!(f, "the runtime role owns {n} tables or functions"),
            Self::MemberOfOwner(owner) => {
                write!(f, "the runtime role is a member of the owner role {owner}")
            }
            Self::NotInRuntimeGroup => {
                write!(f, "the runtime role is not a member of {RUNTIME_GROUP}")
            }
        }
    }
}

/// Checks, on the runtime connection, that row-level security really applies to it: not a
/// superuser, no BYPASSRLS, owns nothing, cannot become the owner. The server refuses to start
/// otherwise.
pub async fn check_runtime_role(
    runtime: &PgConnectOptions,
) -> Result<Vec<RuntimeRoleProblem>, StoreError> {
    let mut conn = runtime.connect().await?;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut conn)
            .await?;
    let owned: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
              + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
           FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'public' AND tablename = 'facilities'",
    )
    .fetch_optional(&mut conn)
    .await?;
    let in_group: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'USAGE')")
        .bind(RUNTIME_GROUP)
        .fetch_one(&mut conn)
        .await?;
    let mut problems = Vec::new();
    if superuser {
        problems.push(RuntimeRoleProblem::Superuser);
    }
    if bypass {
        problems.push(RuntimeRoleProblem::BypassesRls);
    }
    if owned > 0 {
        problems.push(RuntimeRoleProblem::OwnsObjects(owned));
    }
    if let Some(owner) = owner {
        let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
            .bind(&owner)
            .fetch_one(&mut conn)
            .await?;
        if member {
            problems.push(RuntimeRoleProblem::MemberOfOwner(owner));
        }
    }
    if !in_group {
        problems.push(RuntimeRoleProblem::NotInRuntimeGroup);
    }
    conn.close().await?;
    Ok(problems)
}
