//! Connection pools that know what each connection is: for the web role, its backend and its
//! context chain (which the next tenant context must name); for every role, whether its last
//! operation is known to have completed. A connection that is not is closed, never handed out
//! again: nothing of one request (an open transaction, a setting) reaches the next.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use crate::StoreError;

/// Whom a pool's connections act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolRole {
    /// The runtime (web) role: every transaction opens with a tenant context the server vouches
    /// for, and ends by resetting the session.
    Web,
    /// The owner, SET ROLE to a privileged NOLOGIN role for the whole session.
    Privileged(&'static str),
}

/// One pooled connection.
pub(crate) struct Conn {
    pub(crate) raw: PgConnection,
    /// The backend's process ID (web connections; 0 otherwise).
    pub(crate) pid: i32,
    /// The connection's current context chain value (web connections).
    pub(crate) chain: i64,
    /// False from the moment something that changes the session's state is sent until it is
    /// known to have completed.
    pub(crate) settled: bool,
}

pub(crate) struct Manager {
    options: PgConnectOptions,
    role: PoolRole,
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Conn, sqlx::Error> {
        let mut raw = self.options.connect().await?;
        let (pid, chain) = match self.role {
            PoolRole::Web => {
                let row = sqlx::query!(
                    r#"SELECT pid AS "pid!", chain AS "chain!" FROM renrakucho_connection()"#
                )
                .fetch_one(&mut raw)
                .await?;
                (row.pid, row.chain)
            }
            PoolRole::Privileged(role) => {
                // A constant role name, never input.
                raw.execute(format!("SET ROLE {role}").as_str()).await?;
                (0, 0)
            }
        };
        Ok(Conn {
            raw,
            pid,
            chain,
            settled: true,
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if !conn.settled {
            return Err(RecycleError::message(
                "an operation on this connection did not complete",
            ));
        }
        // A connection idle for a while may have been closed by the server meanwhile.
        if metrics.last_used() > Duration::from_secs(60) {
            conn.raw.ping().await.map_err(RecycleError::Backend)?;
        }
        Ok(())
    }
}

pub(crate) type Pool = managed::Pool<Manager>;
pub(crate) type Object = managed::Object<Manager>;

/// A pool of at most `max` connections for `role`.
pub(crate) fn build(
    options: PgConnectOptions,
    role: PoolRole,
    max: usize,
) -> Result<Pool, StoreError> {
    let timeout = Some(Duration::from_secs(5));
    managed::Pool::builder(Manager { options, role })
        .max_size(max)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Misconfigured(format!("building a connection pool: {e}")))
}

/// A connection from the pool, or why there is none (a timeout is "unavailable", as sqlx's).
pub(crate) async fn get(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|e| match e {
        managed::PoolError::Backend(e) => StoreError::from(e),
        managed::PoolError::Timeout(_) => StoreError::Database(sqlx::Error::PoolTimedOut),
        managed::PoolError::Closed => StoreError::Database(sqlx::Error::PoolClosed),
        other => StoreError::Misconfigured(format!("connection pool: {other}")),
    })
}

/// Closes the idle connections gracefully (a Terminate message, not a dropped socket).
pub(crate) async fn close(pool: &Pool) {
    let idle = pool.retain(|_, _| false);
    pool.close();
    for conn in idle.removed {
        let _ = conn.raw.close().await;
    }
}

/// Whether `error` is the database refusing a tenant context (the connection's chain no longer
/// matches, e.g. after `DISCARD SEQUENCES` on it): another connection will do.
pub(crate) fn context_refused(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42501" || code == "55000")
}
