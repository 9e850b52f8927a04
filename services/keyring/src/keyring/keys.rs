//! Data keys: loaded from the database and unwrapped by the master key (through the caches),
//! or created on first use; and the network's blind-index key.

use std::sync::Arc;

use rand::RngCore;
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::data_keys::{self, NewKey, OwnerKind, StoredKey};
use renrakucho_store::{Database, Scope, ScopedTx, StoreError};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::cache::{fresh, Cached, DataKey, ScopeKey};
use super::Keyring;
use crate::blind_index::BlindIndexKey;
use crate::envelope::KeyOwner;
use crate::provider::{KeyBytes, WrapContext};
use crate::{KeyringError, Problem};

/// The owner of the network's blind-index key.
const BLIND_INDEX_OWNER: Uuid = Uuid::nil();

pub(super) fn context(kind: OwnerKind, owner: Uuid, version: u32) -> WrapContext {
    WrapContext {
        owner_kind: kind.as_str(),
        owner_id: owner,
        version,
    }
}

fn fresh_key() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    key
}

impl Keyring {
    /// Creates the network's blind-index key if this is the first start. Run once at start,
    /// before serving.
    pub async fn prepare(&self, db: &Database) -> Result<(), KeyringError> {
        let mut tx = db.begin(Scope::KeyMaintenance).await?;
        if data_keys::get(&mut tx, OwnerKind::BlindIndex, BLIND_INDEX_OWNER, 1)
            .await?
            .is_none()
        {
            let key = fresh_key();
            let (master_key_id, wrapped) = self
                .master
                .wrap(&key, &context(OwnerKind::BlindIndex, BLIND_INDEX_OWNER, 1))
                .await?;
            let created = data_keys::insert(
                &mut tx,
                &NewKey {
                    owner_kind: OwnerKind::BlindIndex,
                    owner_id: BLIND_INDEX_OWNER,
                    version: 1,
                    facility: None,
                    master_key_id: &master_key_id,
                    wrapped: &wrapped,
                },
            )
            .await?;
            if created {
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: Actor::System,
                        action: "data_key.create",
                        outcome: Outcome::Success,
                        target: None,
                        origin: &Origin::default(),
                        details: json!({ "owner_kind": "blind_index", "version": 1,
                                         "master_key_id": master_key_id }),
                    },
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The owner's newest key: from the cache without touching the database, else loaded
    /// (boxed, so that the futures of the cache-hit path stay small).
    pub(super) async fn writing_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
    ) -> Result<Arc<Cached>, KeyringError> {
        let owner_id = (tx.scope().facility(), owner.kind(), owner.id());
        match fresh(&self.caches.newest, &owner_id, self.caches.clock.now()) {
            Some(key) => Ok(key),
            None => Box::pin(self.load_writing_key(tx, owner)).await,
        }
    }

    async fn load_writing_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
    ) -> Result<Arc<Cached>, KeyringError> {
        let scope = tx.scope().facility();
        let kind = owner.kind();
        let read_after = self.forgotten_so_far();
        let key = match data_keys::newest(tx, kind, owner.id()).await? {
            Some(stored) if stored.wrapped.is_none() => return Err(KeyringError::OwnerShredded),
            Some(stored) => {
                let bytes = self.unwrap_stored(&stored).await?;
                self.cached(DataKey::new(&bytes, stored.version))
            }
            None => self.cached(self.create_key(tx, owner, 1).await?),
        };
        self.remember_newest(scope, kind, owner.id(), &key, read_after);
        Ok(key)
    }

    fn remember_newest(
        &self,
        scope: ScopeKey,
        kind: OwnerKind,
        owner: Uuid,
        key: &Arc<Cached>,
        read_after: u64,
    ) {
        let by_version = (scope, kind, owner, key.version);
        self.keep(&self.caches.keys, by_version, key, read_after);
        self.keep(&self.caches.newest, (scope, kind, owner), key, read_after);
    }

    /// Loads the newest keys of many owners that are not cached, in one statement (a listing's
    /// patients), so that [`Keyring::owner_keys`] then finds each in the cache instead of
    /// reading it on its own. Owners without a key, or whose key was destroyed, are left to
    /// `owner_keys` (which creates or refuses as usual).
    pub async fn preload_newest(
        &self,
        tx: &mut ScopedTx,
        owners: &[KeyOwner],
    ) -> Result<(), KeyringError> {
        let scope = tx.scope().facility();
        let now = self.caches.clock.now();
        let read_after = self.forgotten_so_far();
        let mut missing: Vec<(OwnerKind, Uuid)> = owners
            .iter()
            .map(|o| (o.kind(), o.id()))
            .filter(|(kind, id)| fresh(&self.caches.newest, &(scope, *kind, *id), now).is_none())
            .collect();
        missing.sort_unstable_by_key(|(kind, id)| (kind.as_str(), *id));
        missing.dedup();
        for kind in [OwnerKind::Patient, OwnerKind::Facility] {
            let ids: Vec<Uuid> = missing
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            for stored in data_keys::newest_of_each(tx, kind, &ids).await? {
                if stored.wrapped.is_none() {
                    continue;
                }
                let bytes = self.unwrap_stored(&stored).await?;
                let key = self.cached(DataKey::new(&bytes, stored.version));
                self.remember_newest(scope, kind, stored.owner_id, &key, read_after);
            }
        }
        Ok(())
    }

    /// The key of one version, or the reason the data cannot be read (unknown version,
    /// destroyed) as the inner error; the outer one is infrastructure (database, provider).
    pub(super) async fn reading_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        version: u32,
    ) -> Result<Result<Arc<Cached>, Problem>, KeyringError> {
        let id = (tx.scope().facility(), owner.kind(), owner.id(), version);
        match fresh(&self.caches.keys, &id, self.caches.clock.now()) {
            Some(key) => Ok(Ok(key)),
            None => Box::pin(self.load_reading_key(tx, owner, version)).await,
        }
    }

    async fn load_reading_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        version: u32,
    ) -> Result<Result<Arc<Cached>, Problem>, KeyringError> {
        let id = (tx.scope().facility(), owner.kind(), owner.id(), version);
        let read_after = self.forgotten_so_far();
        let Some(stored) = data_keys::get(tx, owner.kind(), owner.id(), version).await? else {
            return Ok(Err(Problem::UnknownKeyVersion(version)));
        };
        if stored.wrapped.is_none() {
            return Ok(Err(Problem::KeyDestroyed));
        }
        let bytes = self.unwrap_stored(&stored).await?;
        let key = self.cached(DataKey::new(&bytes, version));
        self.keep(&self.caches.keys, id, &key, read_after);
        Ok(Ok(key))
    }

    /// Generates, wraps and stores a new key version. If another request stored that version
    /// first, uses theirs.
    pub(super) async fn create_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        version: u32,
    ) -> Result<DataKey, KeyringError> {
        let kind = owner.kind();
        let facility = match owner {
            KeyOwner::Facility(f) => Some(f),
            KeyOwner::Patient(_) => tx.scope().facility(),
            KeyOwner::Platform => None,
        };
        let bytes = fresh_key();
        let (master_key_id, wrapped) = self
            .master
            .wrap(&bytes, &context(kind, owner.id(), version))
            .await?;
        let created = data_keys::insert(
            tx,
            &NewKey {
                owner_kind: kind,
                owner_id: owner.id(),
                version,
                facility,
                master_key_id: &master_key_id,
                wrapped: &wrapped,
            },
        )
        .await?;
        if created {
            return Ok(DataKey::new(&bytes, version));
        }
        let stored = data_keys::get(tx, kind, owner.id(), version)
            .await?
            .ok_or(KeyringError::Store(StoreError::NotFound))?;
        let bytes = self.unwrap_stored(&stored).await?;
        Ok(DataKey::new(&bytes, version))
    }

    pub(super) async fn unwrap_stored(&self, stored: &StoredKey) -> Result<KeyBytes, KeyringError> {
        let wrapped = stored
            .wrapped
            .as_deref()
            .ok_or(KeyringError::OwnerShredded)?;
        self.master
            .unwrap(
                &stored.master_key_id,
                wrapped,
                &context(stored.owner_kind, stored.owner_id, stored.version),
            )
            .await
    }

    /// The network's blind-index key (names, card numbers), cached like data keys.
    pub async fn blind_index_key(
        &self,
        tx: &mut ScopedTx,
    ) -> Result<Arc<BlindIndexKey>, KeyringError> {
        if let Some((key, expires)) = self
            .caches
            .blind
            .read()
            .expect("blind-index cache")
            .as_ref()
        {
            if *expires > self.caches.clock.now() {
                return Ok(key.clone());
            }
        }
        let stored = data_keys::get(tx, OwnerKind::BlindIndex, BLIND_INDEX_OWNER, 1)
            .await?
            .ok_or_else(|| {
                KeyringError::Store(StoreError::Misconfigured(
                    "the blind-index key does not exist; the keyring was not prepared".into(),
                ))
            })?;
        let key = Arc::new(BlindIndexKey::new(self.unwrap_stored(&stored).await?));
        *self.caches.blind.write().expect("blind-index cache") =
            Some((key.clone(), self.caches.clock.now() + self.caches.max_age));
        Ok(key)
    }
}
