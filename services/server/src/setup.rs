//! Where the database comes from: `DATABASE_URL` (owner) and `RENRAKUCHO_RUNTIME_DATABASE_URL`
//! (runtime), or a private cluster in the data directory. Either way, migrations run as the
//! owner and the runtime role is checked before the server uses it.

use renrakucho_pgcluster::{ClusterError, LocalCluster, RunningCluster, SUPERUSER};
use renrakucho_store::{
    check_runtime_role, create_runtime_login, provision_cluster, run_migrations, PgConnectOptions,
    RoleNames, RuntimeRoleProblem, StoreError,
};

use crate::config::Settings;

/// The database name inside the private cluster.
pub const PRIVATE_DATABASE: &str = "renrakucho";

/// Connections for the two roles, and the private cluster when we started one.
pub struct Databases {
    pub owner: PgConnectOptions,
    pub runtime: PgConnectOptions,
    pub cluster: Option<LocalCluster>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("database setup failed: {0}")]
    Store(#[from] StoreError),
    #[error("refusing to run: {}. The runtime role must be NOSUPERUSER and NOBYPASSRLS, own and create nothing, be no member of the owner, a superuser, a BYPASSRLS or a privileged role, and start with no settings that change what it sees, or row-level security would not isolate facilities (docs/adr/0013-database-boundary.md)", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnsafeRuntimeRole(Vec<RuntimeRoleProblem>),
}

impl Databases {
    /// The owner's and the runtime role's connections, for [`renrakucho_store::Database`].
    pub fn connections(&self) -> renrakucho_store::Connections {
        renrakucho_store::Connections {
            owner: self.owner.clone(),
            runtime: self.runtime.clone(),
        }
    }

    /// Stops the private cluster, if we started one.
    pub async fn shutdown(self) {
        if let Some(cluster) = self.cluster {
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "could not stop the private PostgreSQL"),
                Err(e) => tracing::error!(error = %e, "could not stop the private PostgreSQL"),
            }
        }
    }
}

/// Options for a role on the private cluster's socket, which asks every role for its password
/// (scram-sha-256).
pub fn socket_options(
    cluster: &LocalCluster,
    user: &str,
    password: &str,
    database: &str,
) -> PgConnectOptions {
    PgConnectOptions::new()
        .socket(cluster.socket_dir())
        .port(renrakucho_pgcluster::SOCKET_PORT)
        .username(user)
        .password(password)
        .database(database)
        .application_name("renrakucho")
}

/// A fresh password for a role of the private cluster: set at every start and kept only in this
/// process's memory (the data directory holds only the superuser's).
fn fresh_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

/// A reader's way into a private cluster that a running server owns: the superuser (for the
/// privileged pools, which `SET ROLE` as the owner's would) and a login of its own in the
/// runtime group, made for this command and dropped by [`Attached::detach`]. The server is
/// not touched: no migration, no restart, its own logins unchanged.
pub struct Attached {
    pub databases: Databases,
    superuser: PgConnectOptions,
    login: String,
}

/// The private cluster of `settings`' data directory, when another process (a `serve`) runs
/// it; `None` when none does (or a database URL is configured): then [`prepare`] as usual.
pub async fn attach_running(settings: &Settings) -> Result<Option<Attached>, SetupError> {
    if settings.database_url.is_some() || settings.runtime_database_url.is_some() {
        return Ok(None);
    }
    let dir = settings.data_dir().join("postgres");
    let running = tokio::task::spawn_blocking(move || RunningCluster::find(&dir))
        .await
        .map_err(|e| ClusterError::Io {
            context: "looking for a running private cluster".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let Some(running) = running else {
        return Ok(None);
    };
    let superuser = PgConnectOptions::new()
        .socket(running.socket_dir())
        .port(renrakucho_pgcluster::SOCKET_PORT)
        .username(SUPERUSER)
        .password(running.superuser_password())
        .database(PRIVATE_DATABASE)
        .application_name("renrakucho");
    let login = format!("renrakucho_reader_{}", fresh_password().to_lowercase());
    let password = fresh_password();
    create_runtime_login(&superuser, &login, Some(&password)).await?;
    let attached = Attached {
        databases: Databases {
            owner: superuser.clone(),
            runtime: superuser.clone().username(&login).password(&password),
            cluster: None,
        },
        superuser,
        login,
    };
    match check_runtime_role(&attached.databases.runtime).await {
        Ok(problems) if problems.is_empty() => Ok(Some(attached)),
        Ok(problems) => {
            attached.detach().await;
            Err(SetupError::UnsafeRuntimeRole(problems))
        }
        Err(e) => {
            attached.detach().await;
            Err(e.into())
        }
    }
}

impl Attached {
    /// Drops the command's own login (logged, never fatal: the login can do no more than the
    /// runtime role, and the next start of the server leaves it alone).
    pub async fn detach(self) {
        let dropped = async {
            let mut conn = sqlx::ConnectOptions::connect(&self.superuser).await?;
            sqlx::query(&format!("DROP ROLE IF EXISTS \"{}\"", self.login))
                .execute(&mut conn)
                .await?;
            sqlx::Connection::close(conn).await
        };
        if let Err(e) = dropped.await {
            tracing::warn!(error = %e, login = %self.login, "could not drop the reader's login");
        }
    }
}

/// Makes the database ready: starts the private cluster if needed, provisions it, migrates,
/// and checks the runtime role. `create_runtime_role` also creates the runtime login on an
/// external database when the owner may (returning its generated password).
pub async fn prepare(settings: &Settings) -> Result<Databases, SetupError> {
    let roles = RoleNames::default();
    let mut runtime_password = None;
    let databases = match (&settings.database_url, &settings.runtime_database_url) {
        (Some(owner), Some(runtime)) => Databases {
            owner: owner.expose().parse().map_err(StoreError::Database)?,
            runtime: runtime.expose().parse().map_err(StoreError::Database)?,
            cluster: None,
        },
        _ => {
            let dir = settings.data_dir().join("postgres");
            let cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&dir))
                .await
                .map_err(|e| ClusterError::Io {
                    context: "starting the private cluster".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            let superuser = socket_options(
                &cluster,
                SUPERUSER,
                cluster.superuser_password(),
                "postgres",
            );
            let owner_password = fresh_password();
            provision_cluster(&superuser, PRIVATE_DATABASE, &roles, Some(&owner_password)).await?;
            let owner = socket_options(&cluster, &roles.owner, &owner_password, PRIVATE_DATABASE);
            let password = fresh_password();
            let runtime = socket_options(&cluster, &roles.runtime, &password, PRIVATE_DATABASE);
            runtime_password = Some(password);
            Databases {
                owner,
                runtime,
                cluster: Some(cluster),
            }
        }
    };
    if let Err(e) = finish(&databases, &roles, runtime_password.as_deref()).await {
        databases.shutdown().await;
        return Err(e);
    }
    Ok(databases)
}

/// Migrates, creates the runtime login on the private cluster (with this start's password), and
/// checks the runtime role.
async fn finish(
    databases: &Databases,
    roles: &RoleNames,
    runtime_password: Option<&str>,
) -> Result<(), SetupError> {
    run_migrations(&databases.owner).await?;
    if let Some(password) = runtime_password {
        create_runtime_login(&databases.owner, &roles.runtime, Some(password)).await?;
    }
    let problems = check_runtime_role(&databases.runtime).await?;
    if !problems.is_empty() {
        return Err(SetupError::UnsafeRuntimeRole(problems));
    }
    Ok(())
}
