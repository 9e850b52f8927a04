//! The keyring: data keys created on first use, cached unwrapped for a bounded time, rotated,
//! destroyed; values encrypted and decrypted with them.
//!
//! This module holds the keyring and its encryption and decryption; `cache` the unwrapped keys,
//! `keys` how a data key is loaded or created, `reencrypt` moving values to a newer key or
//! format, `rotation` new key versions, crypto-shredding and master-key re-wrapping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use quick_cache::sync::Cache;
use renrakucho_store::announcements::{self, Announcements};
use renrakucho_store::data_keys;
use renrakucho_store::encrypted;
use renrakucho_store::{Database, ScopedTx};

use crate::envelope::{self, Binding, Header, KeyOwner, FORMAT_V1};
use crate::provider::MasterKeys;
use crate::{KeyringError, Problem};

mod cache;
mod keys;
mod reencrypt;
mod rotation;

pub use cache::{CacheClock, CacheSettings};
use cache::{Cached, Caches};
pub use reencrypt::{BindProgress, BindReport, ReencryptReport};
pub use rotation::RewrapReport;

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
                forgotten: std::sync::atomic::AtomicU64::new(0),
            }),
        }
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

    /// The blind-index terms of a name, to store beside it or to search by.
    pub async fn name_terms(
        &self,
        tx: &mut ScopedTx,
        name: &str,
    ) -> Result<Vec<Vec<u8>>, KeyringError> {
        Ok(self.blind_index_key(tx).await?.terms(name))
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
}
