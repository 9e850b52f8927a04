//! Where the database comes from: `DATABASE_URL` (owner) and `RENRAKUCHO_RUNTIME_DATABASE_URL`
//! (runtime), or a private cluster in the data directory. Either way, migrations run as the
//! owner and the runtime role is checked before the server uses it.

use renrakucho_pgcluster::{ClusterError, LocalCluster, SUPERUSER};
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
    #[error("refusing to run: {}. The runtime role must be NOSUPERUSER, NOBYPASSRLS, own nothing and not be a member of the owner, or row-level security would not isolate facilities", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnsafeRuntimeRole(Vec<RuntimeRoleProblem>),
}

impl Databases {
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

/// Options for a role on the private cluster's socket.
pub fn socket_options(cluster: &LocalCluster, user: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .socket(cluster.socket_dir())
        .port(renrakucho_pgcluster::SOCKET_PORT)
        .username(user)
        .database(database)
        .application_name("renrakucho")
}

/// Makes the database ready: starts the private cluster if needed, provisions it, migrates,
/// and checks the runtime role. `create_runtime_role` also creates the runtime login on an
/// external database when the owner may (returning its generated password).
pub async fn prepare(settings: &Settings) -> Result<Databases, SetupError> {
    let roles = RoleNames::default();
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
            let superuser = socket_options(&cluster, SUPERUSER, "postgres");
            provision_cluster(&superuser, PRIVATE_DATABASE, &roles, None).await?;
            let owner = socket_options(&cluster, &roles.owner, PRIVATE_DATABASE);
            let runtime = socket_options(&cluster, &roles.runtime, PRIVATE_DATABASE);
            Databases {
                owner,
                runtime,
                cluster: Some(cluster),
            }
        }
    };
    if let Err(e) = finish(&databases, &roles).await {
        databases.shutdown().await;
        return Err(e);
    }
    Ok(databases)
}

async fn finish(databases: &Databases, roles: &RoleNames) -> Result<(), SetupError> {
    run_migrations(&databases.owner).await?;
    if databases.cluster.is_some() {
        create_runtime_login(&databases.owner, &roles.runtime, None).await?;
    }
    let problems = check_runtime_role(&databases.runtime).await?;
    if !problems.is_empty() {
        return Err(SetupError::UnsafeRuntimeRole(problems));
    }
    Ok(())
}
