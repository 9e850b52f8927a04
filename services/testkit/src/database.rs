use std::sync::OnceLock;

use renrakucho_pgcluster::{LocalCluster, SOCKET_PORT, SUPERUSER};
use renrakucho_store::{
    create_runtime_login, harden_database, provision_cluster, run_migrations, Connections,
    PgConnectOptions, RoleNames,
};
use sqlx::{ConnectOptions, Connection};

/// The runtime and owner roles' password in tests (the private cluster asks every role for its
/// password, as does a server given by `DATABASE_URL`).
pub const RUNTIME_PASSWORD: &str = "renrakucho-test-only";

struct TestServer {
    superuser: PgConnectOptions,
    template: String,
    roles: RoleNames,
    /// Kept alive for the whole process; its watchdog stops and removes it afterwards.
    _cluster: Option<LocalCluster>,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();

fn server() -> &'static TestServer {
    SERVER.get_or_init(|| {
        // Its own thread and runtime: the tests' runtimes come and go.
        std::thread::spawn(start_server)
            .join()
            .expect("the test database server could not be prepared")
    })
}

fn start_server() -> TestServer {
    let (superuser, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (
            url.parse::<PgConnectOptions>()
                .expect("DATABASE_URL is not a PostgreSQL URL"),
            None,
        ),
        Err(_) => {
            let dir = std::env::temp_dir().join(format!(
                "renrakucho-test-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            let cluster = LocalCluster::start_ephemeral(&dir)
                .unwrap_or_else(|e| panic!("could not start a private PostgreSQL for tests: {e}"));
            let options = PgConnectOptions::new()
                .socket(cluster.socket_dir())
                .port(SOCKET_PORT)
                .username(SUPERUSER)
                .password(cluster.superuser_password())
                .database("postgres");
            (options, Some(cluster))
        }
    };
    let roles = RoleNames::default();
    // One template per migration set, so a shared server never mixes versions.
    let checksum: u64 = renrakucho_store::migrator()
        .iter()
        .flat_map(|m| m.checksum.iter().copied())
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    let template = format!("renrakucho_tpl_{checksum:016x}");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        provision_cluster(&superuser, &template, &roles, Some(RUNTIME_PASSWORD))
            .await
            .expect("provisioning the test cluster");
        let owner = superuser
            .clone()
            .username(&roles.owner)
            .password(RUNTIME_PASSWORD)
            .database(&template);
        run_migrations(&owner)
            .await
            .expect("migrating the template");
        create_runtime_login(&owner, &roles.runtime, Some(RUNTIME_PASSWORD))
            .await
            .expect("creating the runtime role");
    });
    TestServer {
        superuser,
        template,
        roles,
        _cluster: cluster,
    }
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Clones the migrated template (milliseconds, not a migration run).
    pub async fn create() -> Self {
        let server = server();
        let name = format!("renrakucho_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = server
            .superuser
            .connect()
            .await
            .expect("connecting as the test superuser");
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {name} TEMPLATE {} OWNER {}",
            server.template, server.roles.owner
        ))
        .execute(&mut conn)
        .await
        .expect("cloning the template database");
        conn.close().await.ok();
        let database = Self { name };
        // A clone does not carry the database's privileges: harden it as the server would.
        harden_database(&database.owner_options())
            .await
            .expect("hardening the test database");
        database
    }

    /// The owner's and the runtime role's connections, as the server has them.
    pub fn connections(&self) -> Connections {
        Connections {
            owner: self.owner_options(),
            runtime: self.runtime_options(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime role, as the server's pool connects.
    pub fn runtime_options(&self) -> PgConnectOptions {
        let server = server();
        server
            .superuser
            .clone()
            .username(&server.roles.runtime)
            .password(RUNTIME_PASSWORD)
            .database(&self.name)
    }

    /// The owner that ran the migrations (subject to forced RLS like everyone but superusers).
    pub fn owner_options(&self) -> PgConnectOptions {
        let server = server();
        server
            .superuser
            .clone()
            .username(&server.roles.owner)
            .password(RUNTIME_PASSWORD)
            .database(&self.name)
    }

    /// The PostgreSQL server's log, when the tests run on their private cluster (not with
    /// `DATABASE_URL`): tests that must show the server never complained read it.
    pub fn server_log(&self) -> Option<std::path::PathBuf> {
        server()
            ._cluster
            .as_ref()
            .map(|c| c.dir().join("postgresql.log"))
    }

    /// A superuser, for tests that play an attacker with full database access (tampering
    /// with the audit log) or inspect the catalog.
    pub fn superuser_options(&self) -> PgConnectOptions {
        server().superuser.clone().database(&self.name)
    }

    /// A URL for a role on this database, for running the binary against it.
    pub fn url_for(&self, options: &PgConnectOptions, user: &str) -> String {
        let host_part = match options.get_socket() {
            Some(dir) => format!(
                "localhost:{}/{}?host={}",
                options.get_port(),
                self.name,
                dir.display()
            ),
            None => format!(
                "{}:{}/{}",
                options.get_host(),
                options.get_port(),
                self.name
            ),
        };
        format!("postgres://{user}:{RUNTIME_PASSWORD}@{host_part}")
    }

    pub fn owner_url(&self) -> String {
        self.url_for(&self.owner_options(), &server().roles.owner)
    }

    pub fn runtime_url(&self) -> String {
        self.url_for(&self.runtime_options(), &server().roles.runtime)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let superuser = server().superuser.clone();
        // Async work in Drop: a short-lived thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = superuser.connect().await.ok()?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}
