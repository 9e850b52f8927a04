use renrakucho_core::{FacilityId, StaffId};
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::pool::{Object, PoolRole};
use crate::StoreError;

/// Whose data a transaction may see, and so which role it runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One facility's rows, for the facility itself (sign-in, system work): the web role with a
    /// tenant context the server vouches for.
    Facility(FacilityId),
    /// One facility's rows, acting for one of its staff: audit records in a staff member's name
    /// must name this one.
    Staff {
        facility: FacilityId,
        staff: StaffId,
    },
    /// Operator work on tenants (role renrakucho_platform): facilities and operator accounts,
    /// the platform's audit chain, never patient data.
    Platform,
    /// Re-wrapping data keys under a new master key, creating the network's blind-index key,
    /// re-encryption (role renrakucho_key_maintenance): wrapped keys and ciphertexts only.
    KeyMaintenance,
    /// Loading who may see which patient into the authorizer (role renrakucho_access_sync):
    /// relation rows (IDs and relation names), nothing of the patients themselves.
    AccessSync,
    /// The daily digest job (role renrakucho_digest): every facility's notification settings.
    Digest,
}

impl Scope {
    /// The facility whose audit chain this scope writes to (none for the platform).
    pub fn facility(self) -> Option<FacilityId> {
        match self {
            Scope::Facility(id) | Scope::Staff { facility: id, .. } => Some(id),
            Scope::Platform | Scope::KeyMaintenance | Scope::AccessSync | Scope::Digest => None,
        }
    }

    /// The staff member the transaction acts for, if any.
    pub fn staff(self) -> Option<StaffId> {
        match self {
            Scope::Staff { staff, .. } => Some(staff),
            _ => None,
        }
    }

    /// The NOLOGIN role a privileged scope runs as (none for the web role's scopes).
    pub fn role(self) -> Option<&'static str> {
        match self {
            Scope::Facility(_) | Scope::Staff { .. } => None,
            Scope::Platform => Some("renrakucho_platform"),
            Scope::KeyMaintenance => Some("renrakucho_key_maintenance"),
            Scope::AccessSync => Some("renrakucho_access_sync"),
            Scope::Digest => Some("renrakucho_digest"),
        }
    }
}

/// What ends a web transaction: the transaction, then everything a statement in it may have
/// changed for the rest of the session (settings, role, session-level advisory locks), so the
/// next request starts from the connection's defaults whatever ran in this one; and a count of
/// the session's prepared statements. sqlx keeps its statements prepared under fixed names: a
/// statement that SQL prepared (`PREPARE`, e.g. one planted under sqlx's name after a
/// `DEALLOCATE`) would run in the next request's context. A connection with one is closed.
const WEB_COMMIT: &str = "COMMIT; RESET ALL; RESET ROLE; \
     SELECT pg_advisory_unlock_all(), count(*) FILTER (WHERE from_sql), \
            count(*) FILTER (WHERE NOT from_sql) \
       FROM pg_prepared_statements";
const WEB_ROLLBACK: &str = "ROLLBACK; RESET ALL; RESET ROLE; \
     SELECT pg_advisory_unlock_all(), count(*) FILTER (WHERE from_sql), \
            count(*) FILTER (WHERE NOT from_sql) \
       FROM pg_prepared_statements";

/// Ends a transaction with `statement`; true when the connection may serve another request.
async fn end(conn: &mut Object, role: PoolRole, statement: &str) -> Result<bool, StoreError> {
    if let PoolRole::Privileged(_) = role {
        conn.raw.execute(statement).await?;
        return Ok(true);
    }
    // The statements before the last one return no rows: the row is the last statement's.
    let row = conn.raw.fetch_one(statement).await?;
    let planted: i64 = row.try_get(1)?;
    let prepared: i64 = row.try_get(2)?;
    let clean = planted == 0 && prepared == conn.raw.cached_statements_size() as i64;
    if !clean {
        tracing::warn!(
            planted,
            "a web connection's prepared statements were changed by SQL; closing it"
        );
    }
    Ok(clean)
}

/// A transaction with its scope established. Dropping it without [`ScopedTx::commit`] rolls
/// back (at once, on a task of its own), and the context goes with it.
pub struct ScopedTx {
    conn: Option<Object>,
    scope: Scope,
    role: PoolRole,
    /// Statements sent with the commit, in its round trip (audit records, ADR 0026). Each is
    /// parameterless SQL built from values that cannot change its meaning (`audit::literal`).
    deferred: Vec<String>,
}

impl ScopedTx {
    pub(crate) fn new(conn: Object, scope: Scope, role: PoolRole) -> Self {
        Self {
            conn: Some(conn),
            scope,
            role,
            deferred: Vec::new(),
        }
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let mut conn = self
            .conn
            .take()
            .expect("a transaction holds its connection");
        let commit = match self.role {
            PoolRole::Web => WEB_COMMIT,
            PoolRole::Privileged(_) => "COMMIT",
        };
        let statement = if self.deferred.is_empty() {
            std::borrow::Cow::Borrowed(commit)
        } else {
            let mut all = self.deferred.join("; ");
            all.push_str("; ");
            all.push_str(commit);
            std::borrow::Cow::Owned(all)
        };
        conn.settled = false;
        conn.settled = end(&mut conn, self.role, &statement).await?;
        Ok(())
    }

    /// Sends `statement` with the commit (for this crate's audit records).
    pub(crate) fn defer(&mut self, statement: String) {
        self.deferred.push(statement);
    }

    /// Sends the deferred statements now (before the transaction reads what they write).
    pub(crate) async fn write_deferred(&mut self) -> Result<(), StoreError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let statements = std::mem::take(&mut self.deferred).join("; ");
        self.conn().execute(statements.as_str()).await?;
        Ok(())
    }

    /// The connection, for this crate's repositories only.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self
            .conn
            .as_mut()
            .expect("a transaction holds its connection")
            .raw
    }

    /// Raw access for the adversarial isolation tests, which must issue SQL the repositories
    /// never would. Not for application code: only with the `raw-sql` feature, which tests and
    /// benches turn on (`tests/raw_sql_stays_in_tests.rs` keeps production code from naming it).
    /// Audit records written so far are sent with the commit: [`ScopedTx::write_deferred_for_tests`]
    /// sends them first for a test that reads them inside the transaction.
    #[cfg(feature = "raw-sql")]
    pub fn raw_connection_for_tests(&mut self) -> &mut PgConnection {
        self.conn()
    }

    /// Sends the audit records written so far (`raw-sql` feature, as above).
    #[cfg(feature = "raw-sql")]
    pub async fn write_deferred_for_tests(&mut self) -> Result<(), StoreError> {
        self.write_deferred().await
    }
}

impl Drop for ScopedTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let statement = match self.role {
            PoolRole::Web => WEB_ROLLBACK,
            PoolRole::Privileged(_) => "ROLLBACK",
        };
        // Until the rollback is known to be done, the pool treats the connection as unusable.
        conn.settled = false;
        let role = self.role;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                conn.settled = end(&mut conn, role, statement).await.unwrap_or(false);
            });
        }
    }
}

/// A web connection for one statement outside any transaction, before a tenant is known (which
/// facility a sign-in names, sessions, readiness). Call [`WebConnection::done`] once the
/// statement has completed; a connection dropped before that is closed, not reused.
pub struct WebConnection {
    conn: Object,
}

impl WebConnection {
    pub(crate) fn new(mut conn: Object) -> Self {
        conn.settled = false;
        Self { conn }
    }

    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn.raw
    }

    /// The statement completed: the connection may serve the next one.
    pub fn done(mut self) {
        self.conn.settled = true;
    }

    /// Raw access for tests that look at a pooled web connection as it is between requests
    /// (`raw-sql` feature, as above).
    #[cfg(feature = "raw-sql")]
    pub fn raw_connection_for_tests(&mut self) -> &mut PgConnection {
        &mut self.conn.raw
    }
}
