//! The lifecycle of keys: a data key's new versions and its destruction (crypto-shredding),
//! and re-wrapping every data key under the current master key.

use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::data_keys;
use renrakucho_store::{Database, Scope, ScopedTx, StoreError};
use serde_json::json;

use super::keys::context;
use super::Keyring;
use crate::envelope::KeyOwner;
use crate::KeyringError;

/// What a master-key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub rewrapped: u64,
    pub master_key_id: String,
}

impl Keyring {
    /// Starts a new version of the owner's key: new writes use it, older values still
    /// decrypt until re-encrypted. Returns the new version.
    pub async fn rotate_data_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        actor: Actor,
        origin: &Origin,
    ) -> Result<u32, KeyringError> {
        let kind = owner.kind();
        let version = match data_keys::newest(tx, kind, owner.id()).await? {
            Some(k) if k.wrapped.is_none() => return Err(KeyringError::OwnerShredded),
            Some(k) => k.version + 1,
            None => 1,
        };
        self.create_key(tx, owner, version).await?;
        let details = json!({ "version": version });
        self.keys_changed(tx, owner, "data_key.rotate", actor, origin, details)
            .await?;
        Ok(version)
    }

    /// Crypto-shredding: destroys every version of the owner's key, so every value ever
    /// encrypted for it (here, in replicas and in backups whose master key is retired) can
    /// never be read again. Audited in the same transaction. Returns the versions destroyed.
    /// The database allows it only in the transaction that records the patient's deletion
    /// request: a live version left behind means it refused, and so does this.
    pub async fn destroy(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        actor: Actor,
        origin: &Origin,
    ) -> Result<u64, KeyringError> {
        let destroyed = data_keys::destroy_all(tx, owner.kind(), owner.id()).await?;
        if data_keys::newest(tx, owner.kind(), owner.id())
            .await?
            .is_some_and(|key| key.wrapped.is_some())
        {
            return Err(KeyringError::Store(StoreError::Forbidden));
        }
        let details = json!({ "versions": destroyed });
        self.keys_changed(tx, owner, "data_key.destroy", actor, origin, details)
            .await?;
        Ok(destroyed)
    }

    /// After an owner's keys changed: audit it in the same transaction and drop this process's
    /// cached copies (the database announces the change to every server process at commit).
    async fn keys_changed(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        action: &'static str,
        actor: Actor,
        origin: &Origin,
        details: serde_json::Value,
    ) -> Result<(), KeyringError> {
        let kind = owner.kind();
        audit::record(
            tx,
            AuditEvent {
                actor,
                action,
                outcome: Outcome::Success,
                target: Some((kind.as_str(), owner.id())),
                origin,
                details,
            },
        )
        .await?;
        self.forget(kind, owner.id());
        Ok(())
    }

    /// Re-wraps, in batches, every data key not yet under the current master key. Each batch
    /// commits on its own (with its audit record), so the server keeps serving and an
    /// interrupted run simply continues where it stopped when started again.
    pub async fn rewrap_all(
        &self,
        db: &Database,
        batch: i64,
        mut progress: impl FnMut(u64),
    ) -> Result<RewrapReport, KeyringError> {
        let current = self.master.current_key_id();
        let mut report = RewrapReport {
            rewrapped: 0,
            master_key_id: current.clone(),
        };
        loop {
            let mut tx = db.begin(Scope::KeyMaintenance).await?;
            let keys = data_keys::lock_not_wrapped_by(&mut tx, &current, batch).await?;
            if keys.is_empty() {
                tx.commit().await?;
                return Ok(report);
            }
            for key in &keys {
                let bytes = self.unwrap_stored(key).await?;
                let wrap_context = context(key.owner_kind, key.owner_id, key.version);
                let (id, wrapped) = self.master.wrap(&bytes, &wrap_context).await?;
                // Never replace a working wrap with one that does not give the key back: a
                // master key that encrypts but cannot decrypt would lose every value for good.
                let back = self.master.unwrap(&id, &wrapped, &wrap_context).await?;
                if back.as_slice() != bytes.as_slice() {
                    return Err(KeyringError::MasterKey(format!(
                        "the new wrap under {id} does not unwrap to the same key; nothing was \
                         re-wrapped in this batch"
                    )));
                }
                data_keys::set_wrapping(&mut tx, key, &id, &wrapped).await?;
            }
            audit::record(
                &mut tx,
                AuditEvent {
                    actor: Actor::System,
                    action: "master_key.rewrap",
                    outcome: Outcome::Success,
                    target: None,
                    origin: &Origin::default(),
                    details: json!({ "keys": keys.len(), "master_key_id": current }),
                },
            )
            .await?;
            tx.commit().await?;
            report.rewrapped += keys.len() as u64;
            progress(keys.len() as u64);
        }
    }

    /// How many live data keys each master key wraps.
    pub async fn keys_by_master(db: &Database) -> Result<Vec<(String, i64)>, KeyringError> {
        let mut tx = db.begin(Scope::KeyMaintenance).await?;
        let counts = data_keys::count_by_master_key(&mut tx).await?;
        tx.commit().await?;
        Ok(counts)
    }
}
