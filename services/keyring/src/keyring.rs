//! The keyring: data keys created on first use, cached unwrapped for a bounded time, rotated,
//! destroyed; values encrypted and decrypted with them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use std::time::Instant;

use quick_cache::sync::Cache;
use rand::RngCore;
use renrakucho_core::FacilityId;
use renrakucho_store::announcements::{self, Announcements};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::data_keys::{self, NewKey, OwnerKind, StoredKey};
use renrakucho_store::encrypted::{self, EncryptedColumn};
use renrakucho_store::{Database, Scope, ScopedTx, StoreError};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::blind_index::BlindIndexKey;
use crate::envelope::{self, Binding, Header, KeyOwner, FORMAT_V1};
use crate::provider::{KeyBytes, MasterKeys, WrapContext};
use crate::{KeyringError, Problem};

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

    fn now(&self) -> Instant {
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
struct DataKey {
    cipher: Aes256Gcm,
    version: u32,
}

impl DataKey {
    fn new(bytes: &KeyBytes, version: u32) -> Self {
        Self {
            cipher: Aes256Gcm::new(&(**bytes).into()),
            version,
        }
    }
}

/// Cached keys are per scope: a facility only ever uses keys its own scope could read.
type ScopeKey = Option<FacilityId>;
type KeyId = (ScopeKey, OwnerKind, Uuid, u32);
type OwnerId = (ScopeKey, OwnerKind, Uuid);

/// An unwrapped key in the cache, until its age runs out.
struct Cached {
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
struct Caches {
    max_age: Duration,
    clock: CacheClock,
    /// By version, for reading.
    keys: Cache<KeyId, Arc<Cached>>,
    /// The newest version of each owner, for writing.
    newest: Cache<OwnerId, Arc<Cached>>,
    blind: std::sync::RwLock<Option<(Arc<BlindIndexKey>, Instant)>>,
    /// Erasures committed by this process, for its master key epoch rotation.
    erasures: tokio::sync::Notify,
    /// The database said values of format 1 are refused: they are, for good (it never says
    /// otherwise again).
    legacy_refused: AtomicBool,
}

fn fresh<K>(cache: &Cache<K, Arc<Cached>>, id: &K, now: Instant) -> Option<Arc<Cached>>
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

/// The owner of the network's blind-index key.
const BLIND_INDEX_OWNER: Uuid = Uuid::nil();

/// Envelope encryption for the whole server: one per process, shared by every request.
#[derive(Clone)]
pub struct Keyring {
    master: MasterKeys,
    caches: Arc<Caches>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master)
            .field("cached_keys", &self.caches.keys.len())
            .finish()
    }
}

/// One owner's keys, for many values in one transaction ([`Keyring::owner_keys`]).
pub struct OwnerKeys {
    owner: KeyOwner,
    newest: Arc<Cached>,
    keyring: Keyring,
    /// Whether values of format 1 may be read, asked once for the batch (only if one shows up).
    legacy_readable: OnceLock<bool>,
}

impl std::fmt::Debug for OwnerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerKeys")
            .field("owner", &self.owner)
            .field("newest_version", &self.newest.version)
            .finish_non_exhaustive()
    }
}

impl OwnerKeys {
    /// Encrypts a value of this owner with its newest key.
    pub fn encrypt(
        &self,
        binding: &Binding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        if binding.owner != self.owner {
            return Err(undecryptable(binding, Problem::WrongOwner));
        }
        Ok(envelope::seal(
            &self.newest.cipher,
            self.newest.version,
            binding,
            plaintext,
        ))
    }

    /// Decrypts a value of this owner; values under an older key version go through the
    /// keyring (and its cache).
    pub async fn decrypt(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        value: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let header = Header::parse(value).map_err(|p| undecryptable(binding, p))?;
        if header.owner != binding.owner || binding.owner != self.owner {
            return Err(undecryptable(binding, Problem::WrongOwner));
        }
        if header.format == FORMAT_V1 {
            let readable = match self.legacy_readable.get() {
                Some(readable) => *readable,
                None => {
                    let readable = self.keyring.legacy_readable(tx).await?;
                    *self.legacy_readable.get_or_init(|| readable)
                }
            };
            if !readable {
                return Err(undecryptable(binding, Problem::UnboundVersion));
            }
        }
        if header.key_version == self.newest.version {
            return envelope::open(&self.newest.cipher, &header, binding, value)
                .map_err(|p| undecryptable(binding, p));
        }
        Box::pin(self.keyring.decrypt_parsed(tx, binding, &header, value)).await
    }
}

/// What a re-encryption did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Values looked at.
    pub values: u64,
    /// Values moved to the newest key version.
    pub moved: u64,
}

/// How far `renrakucho keys bind-versions` got, for its progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindProgress {
    /// A pass starts: patients in all, and how many were done before (resumed).
    Start { total: u64, done: u64 },
    /// This many more patients were done.
    Done(u64),
}

/// What `renrakucho keys bind-versions` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindReport {
    /// Patients whose values were looked at in this run.
    pub patients: u64,
    /// Values looked at.
    pub values: u64,
    /// Values re-encrypted in the current format (bound to their version).
    pub rebound: u64,
    /// Whether the migration is complete: values of format 1 are refused from now on.
    pub completed: bool,
    /// Values of format 1 the database still counts (0 when completed).
    pub remaining: i64,
}

/// What a master-key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub rewrapped: u64,
    pub master_key_id: String,
}

fn context(kind: OwnerKind, owner: Uuid, version: u32) -> WrapContext {
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

/// Decrypts a value with a data key given directly, as someone holding a copy of the data
/// directory and an unwrapped key would: for the tests that scan a data directory for what an
/// erasure must have made unreadable. The server never has a data key outside the keyring.
#[doc(hidden)]
pub fn open_with_data_key(
    key: &[u8; 32],
    binding: &Binding<'_>,
    value: &[u8],
) -> Result<Vec<u8>, Problem> {
    let header = Header::parse(value)?;
    envelope::open(&Aes256Gcm::new(&(*key).into()), &header, binding, value)
}

fn undecryptable(binding: &Binding<'_>, problem: Problem) -> KeyringError {
    KeyringError::Undecryptable {
        table: binding.table.to_string(),
        column: binding.column.to_string(),
        row: binding.row,
        problem,
    }
}

impl Keyring {
    pub fn new(master: MasterKeys, cache: CacheSettings) -> Self {
        Self::with_cache_clock(master, cache, CacheClock::system())
    }

    /// Like [`Keyring::new`], with the caches reading the time from `clock`.
    pub fn with_cache_clock(master: MasterKeys, cache: CacheSettings, clock: CacheClock) -> Self {
        let capacity = usize::try_from(cache.capacity).unwrap_or(usize::MAX).max(1);
        Self {
            master,
            caches: Arc::new(Caches {
                max_age: cache.max_age,
                clock,
                keys: Cache::new(capacity),
                newest: Cache::new(capacity),
                blind: std::sync::RwLock::new(None),
                erasures: tokio::sync::Notify::new(),
                legacy_refused: AtomicBool::new(false),
            }),
        }
    }

    fn cached(&self, key: DataKey) -> Arc<Cached> {
        Arc::new(Cached {
            key,
            expires: self.caches.clock.now() + self.caches.max_age,
        })
    }

    pub fn master_keys(&self) -> &MasterKeys {
        &self.master
    }

    /// Says that an erasure committed in this process: its master key epoch rotation
    /// ([`Keyring::rotate_epoch`]) runs soon, instead of at its next scheduled check.
    pub fn erasure_committed(&self) {
        self.caches.erasures.notify_one();
    }

    /// Completes when an erasure committed in this process since the last time it completed.
    pub async fn erasure_announced(&self) {
        self.caches.erasures.notified().await;
    }

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

    /// Encrypts `plaintext` for where it will be stored, with the owner's newest key (created
    /// on first use, in the transaction's facility).
    pub async fn encrypt(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let key = self.writing_key(tx, binding.owner).await?;
        Ok(envelope::seal(&key.cipher, key.version, binding, plaintext))
    }

    /// Encrypts in format 1, as servers did before values were bound to their version: for
    /// tests of the migration only (feature `legacy-format`).
    #[cfg(feature = "legacy-format")]
    pub async fn encrypt_legacy(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let key = self.writing_key(tx, binding.owner).await?;
        Ok(envelope::seal_legacy(
            &key.cipher,
            key.version,
            binding,
            plaintext,
        ))
    }

    /// Whether values of format 1 may still be read: the database says, until it said no once.
    async fn legacy_readable(&self, tx: &mut ScopedTx) -> Result<bool, KeyringError> {
        if self.caches.legacy_refused.load(Ordering::Acquire) {
            return Ok(false);
        }
        let readable = encrypted::legacy_values_readable(tx).await?;
        if !readable {
            self.caches.legacy_refused.store(true, Ordering::Release);
        }
        Ok(readable)
    }

    /// Decrypts a stored value read from where `binding` says. A value that does not belong
    /// there, was altered, or whose key was destroyed is an error naming the row.
    pub async fn decrypt(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        value: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let header = Header::parse(value).map_err(|p| undecryptable(binding, p))?;
        if header.owner != binding.owner {
            return Err(undecryptable(binding, Problem::WrongOwner));
        }
        if header.format == FORMAT_V1 && !self.legacy_readable(tx).await? {
            return Err(undecryptable(binding, Problem::UnboundVersion));
        }
        self.decrypt_parsed(tx, binding, &header, value).await
    }

    /// Decrypts a value whose header was read and whose format was accepted.
    async fn decrypt_parsed(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        header: &Header,
        value: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        if header.owner != binding.owner {
            return Err(undecryptable(binding, Problem::WrongOwner));
        }
        let key = self
            .reading_key(tx, binding.owner, header.key_version)
            .await?
            .map_err(|p| undecryptable(binding, p))?;
        envelope::open(&key.cipher, header, binding, value).map_err(|p| undecryptable(binding, p))
    }

    /// One owner's keys for a batch of values (a page of notebook entries, the fields of one
    /// patient): the newest key is looked up once, instead of once per value.
    pub async fn owner_keys(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
    ) -> Result<OwnerKeys, KeyringError> {
        Ok(OwnerKeys {
            owner,
            newest: self.writing_key(tx, owner).await?,
            keyring: self.clone(),
            legacy_readable: OnceLock::new(),
        })
    }

    /// The value re-encrypted under the owner's newest key and in the current format (bound to
    /// its version), or `None` when it already is.
    pub async fn reencrypt(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        self.reencrypt_stored(tx, binding.row, binding, value).await
    }

    /// As [`Keyring::reencrypt`], for a value stored in row `stored_at`: a value of format 1 was
    /// bound to that row (an entry's history names the entry instead from format 2 on).
    async fn reencrypt_stored(
        &self,
        tx: &mut ScopedTx,
        stored_at: Uuid,
        binding: &Binding<'_>,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        let header = Header::parse(value).map_err(|p| undecryptable(binding, p))?;
        let newest = self.writing_key(tx, binding.owner).await?;
        if header.format != FORMAT_V1 && header.key_version >= newest.version {
            return Ok(None);
        }
        let plaintext = if header.format == FORMAT_V1 {
            let legacy = Binding {
                row: stored_at,
                ..*binding
            };
            self.decrypt(tx, &legacy, value).await?
        } else {
            self.decrypt(tx, binding, value).await?
        };
        Ok(Some(envelope::seal(
            &newest.cipher,
            newest.version,
            binding,
            &plaintext,
        )))
    }

    /// Re-encrypts, where needed, one owner's values of `columns` (newest key, current format),
    /// each bound to the row and version the database names for it. Returns (values, moved).
    async fn reencrypt_columns(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        columns: &[EncryptedColumn<'_>],
    ) -> Result<(u64, u64), KeyringError> {
        let (mut values, mut moved) = (0, 0);
        for column in columns.iter().filter(|c| c.owner_kind == owner.kind()) {
            for stored in encrypted::values_of(tx, column, owner.id()).await? {
                values += 1;
                let binding = Binding {
                    owner,
                    table: column.table,
                    column: column.column,
                    row: stored.bound_row,
                    version: u64::try_from(stored.version).unwrap_or(u64::MAX),
                };
                let Some(new) = self
                    .reencrypt_stored(tx, stored.row, &binding, &stored.value)
                    .await?
                else {
                    continue;
                };
                if encrypted::replace_value(tx, column, owner.id(), stored.row, &stored.value, &new)
                    .await?
                {
                    moved += 1;
                }
            }
        }
        Ok((values, moved))
    }

    /// `renrakucho keys bind-versions`: re-encrypts every value still in format 1 in the current
    /// format, bound to its version, patient by patient in batches of `batch` patients. Each
    /// batch commits on its own with its audit record and where it got to, so the server keeps
    /// serving and `resume` goes on after an interruption (otherwise a run starts from the first
    /// patient; values already bound are only read). When the database counts no value of
    /// format 1 left, it records that they are refused from then on; a value written meanwhile
    /// by an older server sends the run round once more.
    pub async fn bind_versions(
        &self,
        db: &Database,
        batch: i64,
        resume: bool,
        mut progress: impl FnMut(BindProgress),
    ) -> Result<BindReport, KeyringError> {
        let mut report = BindReport::default();
        let mut restart = !resume;
        let mut passes = 0;
        loop {
            passes += 1;
            {
                let mut tx = db.begin(Scope::KeyMaintenance).await?;
                let state = encrypted::binding_state(&mut tx, restart).await?;
                let (total, done) = encrypted::patients_count(&mut tx, state.done_through).await?;
                tx.commit().await?;
                if !state.legacy_readable {
                    report.completed = true;
                    return Ok(report);
                }
                progress(BindProgress::Start {
                    total: u64::try_from(total).unwrap_or(0),
                    done: u64::try_from(done).unwrap_or(0),
                });
            }
            loop {
                let mut tx = db.begin(Scope::KeyMaintenance).await?;
                let state = encrypted::binding_state(&mut tx, false).await?;
                let patients =
                    encrypted::patients_after(&mut tx, state.done_through, batch).await?;
                let Some(last) = patients.last().copied() else {
                    tx.commit().await?;
                    break;
                };
                let (mut values, mut rebound) = (0, 0);
                for patient in &patients {
                    let owner = KeyOwner::Patient(renrakucho_core::PatientId::from_uuid(*patient));
                    let columns = encrypted::ENCRYPTED_COLUMNS
                        .iter()
                        .chain(encrypted::HISTORY_COLUMNS)
                        .copied()
                        .collect::<Vec<_>>();
                    match self.reencrypt_columns(&mut tx, owner, &columns).await {
                        Ok((v, r)) => {
                            values += v;
                            rebound += r;
                        }
                        // An erased patient's key is gone, and so are its values.
                        Err(KeyringError::OwnerShredded) => {}
                        Err(e) => return Err(e),
                    }
                }
                encrypted::binding_advance(&mut tx, last).await?;
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: Actor::System,
                        action: "data_value.bind_versions",
                        outcome: Outcome::Success,
                        target: None,
                        origin: &Origin::default(),
                        details: json!({ "patients": patients.len(), "values": values,
                                         "rebound": rebound }),
                    },
                )
                .await?;
                tx.commit().await?;
                report.patients += patients.len() as u64;
                report.values += values;
                report.rebound += rebound;
                progress(BindProgress::Done(patients.len() as u64));
            }
            let mut tx = db.begin(Scope::KeyMaintenance).await?;
            let remaining = encrypted::binding_complete(&mut tx).await?;
            if remaining == 0 {
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: Actor::System,
                        action: "data_value.bind_versions_complete",
                        outcome: Outcome::Success,
                        target: None,
                        origin: &Origin::default(),
                        details: json!({ "rebound": report.rebound }),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            report.remaining = remaining;
            if remaining == 0 {
                self.caches.legacy_refused.store(true, Ordering::Release);
                report.completed = true;
                return Ok(report);
            }
            if passes >= 3 {
                return Ok(report);
            }
            // Written meanwhile by a server of the earlier format: go round once more.
            restart = true;
        }
    }

    /// Moves every value of `owner` in `columns` to the owner's newest key version, as key
    /// maintenance (which reads wrapped keys and ciphertexts, and writes ciphertexts only through
    /// `reencrypt_value`), audited in the platform's chain. Values changed meanwhile by someone
    /// else are left to them (they were written with the newest key). An entry's earlier
    /// versions are history and keep the key version they were written with.
    pub async fn reencrypt_owner(
        &self,
        db: &Database,
        owner: KeyOwner,
        columns: &[EncryptedColumn<'_>],
        actor: Actor,
        origin: &Origin,
    ) -> Result<ReencryptReport, KeyringError> {
        let mut tx = db.begin(Scope::KeyMaintenance).await?;
        let (values, moved) = self.reencrypt_columns(&mut tx, owner, columns).await?;
        let report = ReencryptReport { values, moved };
        audit::record(
            &mut tx,
            AuditEvent {
                actor,
                action: "data_key.reencrypt",
                outcome: Outcome::Success,
                target: Some((owner.kind().as_str(), owner.id())),
                origin,
                details: json!({ "values": report.values, "moved": report.moved }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

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

    /// The blind-index terms of a name, to store beside it or to search by.
    pub async fn name_terms(
        &self,
        tx: &mut ScopedTx,
        name: &str,
    ) -> Result<Vec<Vec<u8>>, KeyringError> {
        Ok(self.blind_index_key(tx).await?.terms(name))
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

    /// Drops cached keys of owners whose keys changed in any server process, as the database
    /// announces them (a new version, a destroyed key). Runs until the connection goes away.
    pub async fn follow_key_changes(self, db: Database) -> Result<(), KeyringError> {
        self.key_change_follower(db).await?.await
    }

    /// [`Keyring::follow_key_changes`] in two steps: listening has begun when this returns (a
    /// change committed from then on is heard); the future it gives follows them.
    pub async fn key_change_follower(
        self,
        db: Database,
    ) -> Result<impl std::future::Future<Output = Result<(), KeyringError>>, KeyringError> {
        let mut listener = Announcements::listen(&db, announcements::KEY_CHANGES).await?;
        Ok(async move {
            loop {
                let payload = listener.recv().await?;
                if let Some((kind, owner)) = data_keys::parse_change(&payload) {
                    self.forget(kind, owner);
                }
            }
        })
    }

    fn forget(&self, kind: OwnerKind, owner: Uuid) {
        self.caches
            .keys
            .retain(|k, _| !(k.1 == kind && k.2 == owner));
        self.caches
            .newest
            .retain(|k, _| !(k.1 == kind && k.2 == owner));
    }

    /// The owner's newest key: from the cache without touching the database, else loaded
    /// (boxed, so that the futures of the cache-hit path stay small).
    async fn writing_key(
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
        let key = match data_keys::newest(tx, kind, owner.id()).await? {
            Some(stored) if stored.wrapped.is_none() => return Err(KeyringError::OwnerShredded),
            Some(stored) => {
                let bytes = self.unwrap_stored(&stored).await?;
                self.cached(DataKey::new(&bytes, stored.version))
            }
            None => self.cached(self.create_key(tx, owner, 1).await?),
        };
        self.caches
            .keys
            .insert((scope, kind, owner.id(), key.version), key.clone());
        self.caches
            .newest
            .insert((scope, kind, owner.id()), key.clone());
        Ok(key)
    }

    /// The key of one version, or the reason the data cannot be read (unknown version,
    /// destroyed) as the inner error; the outer one is infrastructure (database, provider).
    async fn reading_key(
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
        let Some(stored) = data_keys::get(tx, owner.kind(), owner.id(), version).await? else {
            return Ok(Err(Problem::UnknownKeyVersion(version)));
        };
        if stored.wrapped.is_none() {
            return Ok(Err(Problem::KeyDestroyed));
        }
        let bytes = self.unwrap_stored(&stored).await?;
        let key = self.cached(DataKey::new(&bytes, version));
        self.caches.keys.insert(id, key.clone());
        Ok(Ok(key))
    }

    /// Generates, wraps and stores a new key version. If another request stored that version
    /// first, uses theirs.
    async fn create_key(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        version: u32,
    ) -> Result<DataKey, KeyringError> {
        let kind = owner.kind();
        let facility = match owner {
            KeyOwner::Facility(f) => Some(f),
            KeyOwner::Patient(_) => tx.scope().facility(),
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

    async fn unwrap_stored(&self, stored: &StoredKey) -> Result<KeyBytes, KeyringError> {
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
