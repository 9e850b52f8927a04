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
    // Unchecked: role and database names are identifiers, not values (DDL takes no binds).
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
#[tracing::instrument(level = "debug", skip_all)]
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
    sqlx::query!("SELECT pg_advisory_lock(hashtextextended('renrakucho.provision', 0))")
        .fetch_one(&mut conn)
        .await?;
    let owner_exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) AS "exists!""#,
        &roles.owner
    )
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
    let db_exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1) AS "exists!""#,
        database
    )
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
    sqlx::query!("SELECT pg_advisory_unlock(hashtextextended('renrakucho.provision', 0))")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Applies the embedded migrations as the owner, then [`harden_database`]. Safe to run from
/// several processes at once (sqlx takes an advisory lock).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn run_migrations(owner: &PgConnectOptions) -> Result<(), StoreError> {
    let mut conn = owner.connect().await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    harden_database(owner).await
}

/// What the migrations cannot do because it belongs to the database, not the schema (a copy of
/// a database does not carry it): no temporary objects for anyone but the owner, so nothing a
/// session creates can stand in for a table another request on the same connection uses.
/// Effective when the owner owns the database (as provisioned here); otherwise
/// [`check_runtime_role`] names the fix.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn harden_database(owner: &PgConnectOptions) -> Result<(), StoreError> {
    let mut conn = owner.connect().await?;
    sqlx::raw_sql(
        "DO $$ BEGIN
             IF (SELECT datdba FROM pg_database WHERE datname = current_database())
                = (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
                 EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
             END IF;
         END $$",
    )
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// As the owner (which needs CREATEROLE): makes sure the runtime login role exists, is a
/// member of the runtime group, and has none of the powers it must not have. Returns true when
/// the role was created now.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_runtime_login(
    owner: &PgConnectOptions,
    runtime: &str,
    password: Option<&str>,
) -> Result<bool, StoreError> {
    valid_identifier(runtime)?;
    let mut conn = owner.connect().await?;
    sqlx::query!("SELECT pg_advisory_lock(hashtextextended('renrakucho.provision', 0))")
        .fetch_one(&mut conn)
        .await?;
    let exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) AS "exists!""#,
        runtime
    )
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
    let member: bool = sqlx::query_scalar!(
        r#"SELECT pg_has_role($1, $2, 'MEMBER') AS "member!""#,
        runtime,
        RUNTIME_GROUP
    )
    .fetch_one(&mut conn)
    .await?;
    if !member {
        execute_formatted(&mut conn, "GRANT %I TO %I", &[RUNTIME_GROUP, runtime]).await?;
    }
    sqlx::query!("SELECT pg_advisory_unlock(hashtextextended('renrakucho.provision', 0))")
        .fetch_one(&mut conn)
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
    /// Member of a role that is a superuser or bypasses RLS (SET ROLE would give it that).
    MemberOfPowerfulRole(String),
    /// Member of a privileged role of this schema (platform, key maintenance, …).
    MemberOfPrivilegedRole(String),
    /// A setting the role or database carries (`ALTER ROLE … SET`), with the command that
    /// removes it.
    Setting {
        setting: String,
        fix: String,
    },
    /// May create temporary tables in the database.
    MayCreateTemporaryTables(String),
    /// May create objects in a schema.
    MayCreateIn(String),
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
            Self::MemberOfPowerfulRole(role) => write!(
                f,
                "the runtime role is a member of {role}, which is a superuser or bypasses \
                 row-level security (REVOKE {role} FROM the runtime role)"
            ),
            Self::MemberOfPrivilegedRole(role) => write!(
                f,
                "the runtime role is a member of the privileged role {role} \
                 (REVOKE {role} FROM the runtime role)"
            ),
            Self::Setting { setting, fix } => write!(
                f,
                "the runtime role starts with the setting {setting}; remove it with `{fix}`"
            ),
            Self::MayCreateTemporaryTables(db) => write!(
                f,
                "the runtime role may create temporary tables in {db} (as the database's owner: \
                 REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC)"
            ),
            Self::MayCreateIn(schema) => write!(
                f,
                "the runtime role may create objects in schema {schema} \
                 (REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC)"
            ),
        }
    }
}

/// The privileged NOLOGIN roles the migrations create (docs/adr/0013-database-boundary.md).
pub const PRIVILEGED_ROLES: [&str; 5] = [
    "renrakucho_platform",
    "renrakucho_key_maintenance",
    "renrakucho_access_sync",
    "renrakucho_digest",
    "renrakucho_listener",
];

/// The one setting a role or database may carry for the runtime role: every other one either
/// changes what it sees (`row_security`, `search_path`, …) or can deny service (a
/// `statement_timeout` of a millisecond), and the server sets what it needs itself.
const HARMLESS_SETTINGS: [&str; 1] = ["application_name"];

/// Checks, on the runtime connection, that row-level security really applies to it and that it
/// can reach nothing more: not a superuser, no BYPASSRLS, owns nothing, cannot become the owner,
/// a superuser, a BYPASSRLS role or a privileged role, starts with no setting that changes what
/// it sees (`ALTER ROLE … SET`), and can create nothing (no temporary tables either). The server
/// refuses to start otherwise.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn check_runtime_role(
    runtime: &PgConnectOptions,
) -> Result<Vec<RuntimeRoleProblem>, StoreError> {
    // With the web connections' own startup settings, so that a setting planted on the role
    // (a statement timeout of a millisecond) cannot stop the check that names it.
    let mut conn = crate::database::web_options(runtime).connect().await?;
    let mut problems = role_powers(&mut conn).await?;
    let whoami = sqlx::query!(
        r#"SELECT current_user::text AS "role!", current_database()::text AS "database!""#
    )
    .fetch_one(&mut conn)
    .await?;
    let (role, database) = (whoami.role, whoami.database);
    problems.extend(planted_settings(&mut conn, &role, &database).await?);
    problems.extend(creation_rights(&mut conn, &database).await?);
    conn.close().await?;
    Ok(problems)
}

/// What the role is or belongs to: a superuser, past RLS, an owner, outside the runtime
/// group, a member of a powerful or privileged role.
async fn role_powers(conn: &mut PgConnection) -> Result<Vec<RuntimeRoleProblem>, StoreError> {
    let powers = sqlx::query!(
        r#"SELECT rolsuper AS "superuser!", rolbypassrls AS "bypass!"
             FROM pg_roles WHERE rolname = current_user"#
    )
    .fetch_one(&mut *conn)
    .await?;
    let (superuser, bypass) = (powers.superuser, powers.bypass);
    let owned: i64 = sqlx::query_scalar!(
        r#"SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
              + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) AS "owned!"
           FROM pg_roles r WHERE r.rolname = current_user"#
    )
    .fetch_one(&mut *conn)
    .await?;
    let owner: Option<String> = sqlx::query_scalar!(
        r#"SELECT tableowner::text AS "owner!"
            FROM pg_tables WHERE schemaname = 'public' AND tablename = 'facilities'"#
    )
    .fetch_optional(&mut *conn)
    .await?;
    let in_group: bool = sqlx::query_scalar!(
        r#"SELECT pg_has_role(current_user, $1, 'USAGE') AS "usage!""#,
        RUNTIME_GROUP
    )
    .fetch_one(&mut *conn)
    .await?;
    let powerful: Vec<String> = sqlx::query_scalar!(
        r#"SELECT r.rolname::text AS "role!" FROM pg_roles r
          WHERE (r.rolsuper OR r.rolbypassrls) AND r.rolname <> current_user
            AND pg_has_role(current_user, r.oid, 'MEMBER')
          ORDER BY 1"#
    )
    .fetch_all(&mut *conn)
    .await?;
    let privileged: Vec<String> = sqlx::query_scalar!(
        r#"SELECT r.rolname::text AS "role!" FROM pg_roles r
          WHERE r.rolname = ANY ($1) AND pg_has_role(current_user, r.oid, 'MEMBER')
          ORDER BY 1"#,
        &PRIVILEGED_ROLES[..] as &[&str]
    )
    .fetch_all(&mut *conn)
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
        let member: bool = sqlx::query_scalar!(
            r#"SELECT pg_has_role(current_user, $1::text, 'MEMBER') AS "member!""#,
            owner
        )
        .fetch_one(&mut *conn)
        .await?;
        if member {
            problems.push(RuntimeRoleProblem::MemberOfOwner(owner));
        }
    }
    if !in_group {
        problems.push(RuntimeRoleProblem::NotInRuntimeGroup);
    }
    problems.extend(
        powerful
            .into_iter()
            .map(RuntimeRoleProblem::MemberOfPowerfulRole),
    );
    problems.extend(
        privileged
            .into_iter()
            .map(RuntimeRoleProblem::MemberOfPrivilegedRole),
    );
    Ok(problems)
}

/// Settings planted on the role or the database (a statement timeout, a search path) that
/// the server does not set itself, each with the statement that removes it.
async fn planted_settings(
    conn: &mut PgConnection,
    role: &str,
    database: &str,
) -> Result<Vec<RuntimeRoleProblem>, StoreError> {
    // Role settings for this role (in any database or this one) and database settings for
    // every role in this database.
    let settings = sqlx::query!(
        r#"SELECT split_part(cfg, '=', 1) AS "name!", cfg AS "setting!",
                s.setrole <> 0 AS "for_role!", s.setdatabase <> 0 AS "in_database!"
           FROM pg_db_role_setting s
          CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
          WHERE (s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                 OR s.setrole = 0)
            AND (s.setdatabase = 0
                 OR s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))
            AND NOT (s.setrole = 0 AND s.setdatabase = 0)
          ORDER BY 1"#,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut problems = Vec::new();
    for row in settings {
        let (name, setting, for_role, in_database) =
            (row.name, row.setting, row.for_role, row.in_database);
        if HARMLESS_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let fix = match (for_role, in_database) {
            (true, false) => format!("ALTER ROLE {role} RESET {name}"),
            (true, true) => format!("ALTER ROLE {role} IN DATABASE {database} RESET {name}"),
            _ => format!("ALTER DATABASE {database} RESET {name}"),
        };
        problems.push(RuntimeRoleProblem::Setting { setting, fix });
    }
    Ok(problems)
}

/// Where the role could create objects of its own: temporary tables, or any schema.
async fn creation_rights(
    conn: &mut PgConnection,
    database: &str,
) -> Result<Vec<RuntimeRoleProblem>, StoreError> {
    let temporary: bool = sqlx::query_scalar!(
        r#"SELECT has_database_privilege(current_database(), 'TEMPORARY') AS "temporary!""#
    )
    .fetch_one(&mut *conn)
    .await?;
    let creatable: Vec<String> = sqlx::query_scalar!(
        r#"SELECT nspname::text AS "schema!" FROM pg_namespace
          WHERE has_schema_privilege(oid, 'CREATE') AND nspname !~ '^pg_(toast_)?temp_'
          ORDER BY 1"#
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut problems = Vec::new();
    if temporary {
        problems.push(RuntimeRoleProblem::MayCreateTemporaryTables(
            database.to_string(),
        ));
    }
    problems.extend(creatable.into_iter().map(RuntimeRoleProblem::MayCreateIn));
    Ok(problems)
}
