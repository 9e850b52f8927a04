use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::{Scope, ScopedTx, StoreError};

/// The runtime connection pool, as the role that owns nothing and cannot bypass RLS.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
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

impl Database {
    /// Connects the pool. `max_connections` bounds what one server process takes.
    pub async fn connect(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Opens a transaction whose tenant context is `scope`, in one round trip.
    pub async fn begin(&self, scope: Scope) -> Result<ScopedTx, StoreError> {
        let tx = self.pool.begin_with(scope.begin_statement()).await?;
        Ok(ScopedTx::new(tx, scope))
    }

    /// Database reachable, and exactly this binary's migrations applied.
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        let applied: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&self.pool)
        .await?;
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

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool, for the session store (tower-sessions), whose table holds no tenant data.
    pub fn session_pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// A LISTEN connection on `channel` (cache invalidation across server processes).
    pub async fn listen(&self, channel: &str) -> Result<sqlx::postgres::PgListener, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
