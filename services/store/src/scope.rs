use renrakucho_core::FacilityId;
use sqlx::{PgConnection, Postgres, Transaction};

/// Whose data a transaction may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One facility's rows: everything a staff member's request touches.
    Facility(FacilityId),
    /// Operator work on tenants: facilities and operator accounts, never patient data.
    Platform,
    /// Re-wrapping data keys under a new master key (`renrakucho keys rotate-master`) and
    /// creating the network's blind-index key: wrapped keys only, no tenant data. Its audit
    /// records go to the platform's chain.
    KeyMaintenance,
    /// Loading who may see which patient into the authorizer: care-team memberships and
    /// consent status (IDs and states), nothing of the patients themselves.
    AccessSync,
    /// The daily digest job: reads every facility's notification settings (who wants a digest,
    /// where, when), nothing else.
    Digest,
}

impl Scope {
    /// The statement that opens the transaction and sets its context in one round trip.
    /// The facility ID is a formatted UUID (hex and hyphens only), so nothing can be injected.
    pub(crate) fn begin_statement(self) -> String {
        match self {
            Scope::Facility(id) => format!(
                "BEGIN; SELECT set_config('renrakucho.facility_id', '{}', true)",
                id.as_uuid().hyphenated()
            ),
            Scope::Platform => {
                "BEGIN; SELECT set_config('renrakucho.platform', 'on', true)".to_string()
            }
            Scope::KeyMaintenance => {
                "BEGIN; SELECT set_config('renrakucho.key_maintenance', 'on', true)".to_string()
            }
            Scope::AccessSync => {
                "BEGIN; SELECT set_config('renrakucho.access_sync', 'on', true)".to_string()
            }
            Scope::Digest => {
                "BEGIN; SELECT set_config('renrakucho.digest', 'on', true)".to_string()
            }
        }
    }

    /// The facility whose audit chain this scope writes to (none for the platform).
    pub fn facility(self) -> Option<FacilityId> {
        match self {
            Scope::Facility(id) => Some(id),
            Scope::Platform | Scope::KeyMaintenance | Scope::AccessSync | Scope::Digest => None,
        }
    }
}

/// A transaction with its tenant context set. Dropping it without [`ScopedTx::commit`] rolls
/// back, and the context goes with it.
pub struct ScopedTx {
    tx: Transaction<'static, Postgres>,
    scope: Scope,
}

impl ScopedTx {
    pub(crate) fn new(tx: Transaction<'static, Postgres>, scope: Scope) -> Self {
        Self { tx, scope }
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub async fn commit(self) -> Result<(), crate::StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The connection, for this crate's repositories only.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Raw access for the adversarial isolation tests, which must issue SQL the repositories
    /// never would. Not for application code.
    #[doc(hidden)]
    pub fn raw_connection_for_tests(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
