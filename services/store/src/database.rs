use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool, Row};

use crate::keys::{self, ServerKeys};
use crate::pool::{self, Pool, PoolRole};
use crate::scope::WebConnection;
use crate::{Scope, ScopedTx, StoreError};
use renrakucho_core::{FacilityId, StaffId};

/// Where the server's connections come from: the owner (migrations, the server's keys, and
/// the privileged pools, which SET ROLE to their scope's role) and the runtime role (the web
/// pool, the only one a request's SQL runs in).
#[derive(Debug, Clone)]
pub struct Connections {
    pub owner: PgConnectOptions,
    pub runtime: PgConnectOptions,
}

/// The process's connections to the database, one pool per role. [`Database::begin`] opens a
/// transaction in the pool whose role the scope needs: facility scopes in the web pool, with a
/// tenant context the database accepts only from this server (docs/adr/0013-database-boundary.md);
/// privileged scopes in pools of their own.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    web: Pool,
    platform: Pool,
    key_maintenance: Pool,
    access_sync: Pool,
    digest: Pool,
    /// LISTEN connections and reading announcements (role renrakucho_listener).
    listener: PgPool,
    keys: ServerKeys,
    /// How many times the web pool has handed out a connection (see [`Database::web_checkouts`]).
    web_checkouts: AtomicU64,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The database lacks migrations this binary was built with (or has ones it does not know).
    MigrationsBehind {
        applied: i64,
        expected: i64,
    },
}

/// Settings every web connection starts with, whatever defaults the role or database carry (a
/// connection's startup options outrank them): row-level security on, a search path where no
/// temporary object can stand in for a table, writable transactions, and no timeouts that a
/// setting planted on the role could make deny service.
pub(crate) fn web_options(runtime: &PgConnectOptions) -> PgConnectOptions {
    runtime.clone().options([
        ("row_security", "on"),
        ("search_path", "pg_catalog,public,pg_temp"),
        ("default_transaction_read_only", "off"),
        ("statement_timeout", "0"),
        ("lock_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("idle_session_timeout", "0"),
    ])
}

impl Database {
    /// Connects the pools (connections open on first use). `max_web` bounds the web pool; each
    /// privileged pool may open half as many. Reads the server's keys through the owner,
    /// creating them on the first start.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn connect(connections: &Connections, max_web: u32) -> Result<Self, StoreError> {
        let keys = ServerKeys::load_or_create(&connections.owner).await?;
        let owner = connections.owner.clone();
        // Privileged work is rarer than requests: half the web pool each (connections open on use).
        let privileged_max = (max_web as usize / 2).max(2);
        let privileged =
            |role| pool::build(owner.clone(), PoolRole::Privileged(role), privileged_max);
        let listener = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET ROLE renrakucho_listener").await?;
                    Ok(())
                })
            })
            .connect_lazy_with(owner.clone());
        let db = Self {
            inner: Arc::new(Inner {
                web: pool::build(
                    web_options(&connections.runtime),
                    PoolRole::Web,
                    max_web.max(1) as usize,
                )?,
                platform: privileged("renrakucho_platform")?,
                key_maintenance: privileged("renrakucho_key_maintenance")?,
                access_sync: privileged("renrakucho_access_sync")?,
                digest: privileged("renrakucho_digest")?,
                listener,
                keys,
                web_checkouts: AtomicU64::new(0),
            }),
        };
        // Fail now, not at the first request, when the runtime role cannot connect.
        db.connection().await?.done();
        Ok(db)
    }

    /// Opens a transaction in `scope`, in one round trip: for a facility scope, `BEGIN` and
    /// `renrakucho_enter(…)` with this server's MAC over the backend, the connection's chain
    /// value, the facility and the staff member; for a privileged scope, `BEGIN` in its role's
    /// pool.
    #[tracing::instrument(level = "debug", skip_all, fields(scope = ?scope))]
    pub async fn begin(&self, scope: Scope) -> Result<ScopedTx, StoreError> {
        let pool = match scope {
            Scope::Facility(facility) => return self.begin_web(scope, facility, None).await,
            Scope::Staff { facility, staff } => {
                return self.begin_web(scope, facility, Some(staff)).await
            }
            Scope::Platform => &self.inner.platform,
            Scope::KeyMaintenance => &self.inner.key_maintenance,
            Scope::AccessSync => &self.inner.access_sync,
            Scope::Digest => &self.inner.digest,
        };
        let role = scope.role().expect("a privileged scope names its role");
        let mut conn = pool::get(pool).await?;
        conn.settled = false;
        conn.raw.execute("BEGIN").await?;
        conn.settled = true;
        Ok(ScopedTx::new(conn, scope, PoolRole::Privileged(role)))
    }

    async fn begin_web(
        &self,
        scope: Scope,
        facility: FacilityId,
        staff: Option<StaffId>,
    ) -> Result<ScopedTx, StoreError> {
        let staff = staff.map(|s| s.as_uuid());
        // A connection whose chain the database no longer recognises (its session was reset
        // under it) is closed and another one tried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.web().await?;
            let mac = keys::enter_mac(
                &self.inner.keys.context,
                conn.pid,
                conn.chain,
                facility.as_uuid(),
                staff,
            );
            // Every value is a number, a formatted UUID or hex digits: nothing to inject.
            let statement = format!(
                "BEGIN; SELECT renrakucho_enter({}, {}, '{}', {}, '\\x{}'::bytea)",
                conn.pid,
                conn.chain,
                facility.as_uuid().hyphenated(),
                staff.map_or("NULL".to_string(), |s| format!("'{}'", s.hyphenated())),
                hex(&mac),
            );
            conn.settled = false;
            match conn.raw.fetch_one(statement.as_str()).await {
                Ok(row) => {
                    conn.chain = row.try_get(0)?;
                    conn.settled = true;
                    return Ok(ScopedTx::new(conn, scope, PoolRole::Web));
                }
                Err(e) if attempt < 3 && pool::context_refused(&e) => {
                    tracing::warn!("a web connection's tenant context was refused; closing it");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A web connection for one statement without a tenant (see [`WebConnection`]).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn connection(&self) -> Result<WebConnection, StoreError> {
        Ok(WebConnection::new(self.web().await?))
    }

    async fn web(&self) -> Result<pool::Object, StoreError> {
        self.inner.web_checkouts.fetch_add(1, Ordering::Relaxed);
        pool::get(&self.inner.web).await
    }

    /// How many times the web pool has handed out a connection since this process connected:
    /// each is a transaction or a statement of a request (or of a background task's web work).
    /// Tests and benches read it to count what a request costs the database.
    pub fn web_checkouts(&self) -> u64 {
        self.inner.web_checkouts.load(Ordering::Relaxed)
    }

    /// Database reachable, and exactly this binary's migrations applied.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        let mut conn = self.connection().await?;
        let applied: i64 = sqlx::query_scalar!(
            r#"SELECT coalesce(max(version), 0) AS "applied!" FROM _sqlx_migrations WHERE success"#
        )
        .fetch_one(conn.conn())
        .await?;
        conn.done();
        let expected = crate::migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        if applied == expected {
            Ok(Readiness::Ready)
        } else {
            Ok(Readiness::MigrationsBehind { applied, expected })
        }
    }

    pub(crate) fn keys(&self) -> &ServerKeys {
        &self.inner.keys
    }

    pub(crate) fn listener_pool(&self) -> &PgPool {
        &self.inner.listener
    }

    /// How many connections the web pool holds now, and how many of them are idle.
    pub fn web_pool_size(&self) -> (usize, usize) {
        let status = self.inner.web.status();
        (status.size, status.available)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn close(&self) {
        for pool in [
            &self.inner.web,
            &self.inner.platform,
            &self.inner.key_maintenance,
            &self.inner.access_sync,
            &self.inner.digest,
        ] {
            pool::close(pool).await;
        }
        self.inner.listener.close().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
