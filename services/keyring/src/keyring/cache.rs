//! The caches of unwrapped data keys, bounded in number and in age.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use quick_cache::sync::Cache;
use renrakucho_core::FacilityId;
use renrakucho_store::data_keys::OwnerKind;
use uuid::Uuid;

use super::Keyring;
use crate::blind_index::BlindIndexKey;
use crate::provider::KeyBytes;

/// Bounds of the cache of unwrapped keys.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// At most this many unwrapped keys in memory.
    pub capacity: u64,
    /// An unwrapped key is dropped (and zeroed) this long after it was unwrapped.
    pub max_age: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Where the caches of unwrapped keys read the time: the monotonic clock, or (in tests) a clock
/// of the test's own, so that a key's expiry is seen without waiting for it.
#[derive(Clone)]
pub struct CacheClock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl CacheClock {
    /// `Instant::now`.
    pub fn system() -> Self {
        Self(Arc::new(Instant::now))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub(super) fn now(&self) -> Instant {
        (self.0)()
    }
}

impl std::fmt::Debug for CacheClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheClock")
    }
}

/// An unwrapped data key, ready to use. The AES key schedule is zeroed on drop (aes-gcm's
/// `zeroize` feature); there is no way to print it.
pub(super) struct DataKey {
    pub(super) cipher: Aes256Gcm,
    pub(super) version: u32,
}

impl DataKey {
    pub(super) fn new(bytes: &KeyBytes, version: u32) -> Self {
        Self {
            cipher: Aes256Gcm::new(&(**bytes).into()),
            version,
        }
    }
}

/// Cached keys are per scope: a facility only ever uses keys its own scope could read.
pub(super) type ScopeKey = Option<FacilityId>;
type KeyId = (ScopeKey, OwnerKind, Uuid, u32);
type OwnerId = (ScopeKey, OwnerKind, Uuid);

/// An unwrapped key in the cache, until its age runs out.
pub(super) struct Cached {
    key: DataKey,
    expires: Instant,
}

impl std::ops::Deref for Cached {
    type Target = DataKey;
    fn deref(&self) -> &DataKey {
        &self.key
    }
}

/// The caches of unwrapped keys: bounded in number (quick_cache's CLOCK-Pro eviction) and in
/// age (checked on every hit). Shared by the clones of a keyring.
pub(super) struct Caches {
    pub(super) max_age: Duration,
    pub(super) clock: CacheClock,
    /// By version, for reading.
    pub(super) keys: Cache<KeyId, Arc<Cached>>,
    /// The newest version of each owner, for writing.
    pub(super) newest: Cache<OwnerId, Arc<Cached>>,
    pub(super) blind: std::sync::RwLock<Option<(Arc<BlindIndexKey>, Instant)>>,
    /// Erasures committed by this process, for its master key epoch rotation.
    pub(super) erasures: tokio::sync::Notify,
    /// The database said values of format 1 are refused: they are, for good (it never says
    /// otherwise again).
    pub(super) legacy_refused: AtomicBool,
    /// How many times keys were forgotten: a key read from the database before a forgetting
    /// (a new version, a destroyed key, announced meanwhile) is used once but not kept.
    pub(super) forgotten: AtomicU64,
}

pub(super) fn fresh<K>(cache: &Cache<K, Arc<Cached>>, id: &K, now: Instant) -> Option<Arc<Cached>>
where
    K: Eq + std::hash::Hash + Clone,
{
    let hit = cache.get(id)?;
    if hit.expires > now {
        return Some(hit);
    }
    cache.remove(id);
    None
}

impl Keyring {
    pub(super) fn cached(&self, key: DataKey) -> Arc<Cached> {
        Arc::new(Cached {
            key,
            expires: self.caches.clock.now() + self.caches.max_age,
        })
    }

    /// Taken before a key is read from the database, and given back to [`Keyring::keep`].
    pub(super) fn forgotten_so_far(&self) -> u64 {
        self.caches.forgotten.load(Ordering::SeqCst)
    }

    /// Caches a key read from the database, unless keys were forgotten since `read_after`
    /// was taken: the key may be the one a change just retired. Checked after the insert too,
    /// so a forgetting that runs between the check and the insert cannot be undone by it.
    pub(super) fn keep<K>(
        &self,
        cache: &Cache<K, Arc<Cached>>,
        id: K,
        key: &Arc<Cached>,
        read_after: u64,
    ) where
        K: Eq + std::hash::Hash + Clone,
    {
        if self.forgotten_so_far() != read_after {
            return;
        }
        cache.insert(id.clone(), key.clone());
        if self.forgotten_so_far() != read_after {
            cache.remove(&id);
        }
    }

    pub(super) fn forget(&self, kind: OwnerKind, owner: Uuid) {
        self.caches.forgotten.fetch_add(1, Ordering::SeqCst);
        self.caches
            .keys
            .retain(|k, _| !(k.1 == kind && k.2 == owner));
        self.caches
            .newest
            .retain(|k, _| !(k.1 == kind && k.2 == owner));
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::provider::{LocalMasterKeys, MasterKeys};

    #[test]
    fn a_key_read_before_a_forgetting_is_used_but_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let local = LocalMasterKeys::open_dir(&tmp.path().join("keys")).unwrap();
        let keyring = Keyring::new(MasterKeys::new(Arc::new(local)), CacheSettings::default());
        let owner = Uuid::now_v7();
        let id = (None, OwnerKind::Patient, owner);
        let key = keyring.cached(DataKey::new(&Zeroizing::new([7u8; 32]), 1));

        // A change announced while the key was being read: it is not kept.
        let read_after = keyring.forgotten_so_far();
        keyring.forget(OwnerKind::Patient, owner);
        keyring.keep(&keyring.caches.newest, id, &key, read_after);
        assert!(keyring.caches.newest.get(&id).is_none());

        // Read with nothing announced meanwhile: kept, until the next change forgets it.
        let read_after = keyring.forgotten_so_far();
        keyring.keep(&keyring.caches.newest, id, &key, read_after);
        assert!(keyring.caches.newest.get(&id).is_some());
        keyring.forget(OwnerKind::Patient, owner);
        assert!(keyring.caches.newest.get(&id).is_none());
    }
}
