//! The zero-configuration master key: files in a directory of the server's own (generated on
//! first run, mode 0600 in a 0700 directory, refused when others can read them), or keys given
//! in the environment.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use aes_gcm::Aes256Gcm;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{KeyBytes, MasterKeyProvider, WrapContext};
use crate::KeyringError;

const ID_PREFIX: &str = "local:";
const CURRENT_FILE: &str = "current";
const WRAP_DOMAIN: &[u8] = b"renrakucho.dek.v1";
const WRAPPED_LEN: usize = 12 + 32 + 16;

/// Master keys held by this server itself.
pub struct LocalMasterKeys {
    dir: Option<PathBuf>,
    state: RwLock<State>,
}

struct State {
    current: String,
    keys: HashMap<String, Arc<Aes256Gcm>>,
}

impl std::fmt::Debug for LocalMasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMasterKeys")
            .field("dir", &self.dir)
            .field("current", &self.current_key_id())
            .finish_non_exhaustive()
    }
}

/// The public ID of a master key: derived from it, revealing nothing about it.
fn key_id(key: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(b"renrakucho.master-key-id");
    let digest = mac.finalize().into_bytes();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{ID_PREFIX}{hex}")
}

fn file_name(id: &str) -> String {
    format!("{}.key", id.trim_start_matches(ID_PREFIX))
}

fn fail(message: impl Into<String>) -> KeyringError {
    KeyringError::MasterKey(message.into())
}

fn decode(text: &str, what: &str) -> Result<KeyBytes, KeyringError> {
    let bytes = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| {
        fail(format!(
            "{what} is not base64 (generate one with `openssl rand -base64 32`)"
        ))
    })?);
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        fail(format!(
            "{what} must be 32 bytes in base64 (generate one with `openssl rand -base64 32`)"
        ))
    })?;
    Ok(Zeroizing::new(key))
}

/// Refuses a file or directory that anyone but its owner may read or write.
fn check_private(path: &Path, expected: u32) -> Result<(), KeyringError> {
    let mode = fs::metadata(path)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "{} is accessible to other users (mode {:o}); run `chmod {expected:o} {}` \
             and check who may have copied it",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// Writes `contents` to `dir/name` atomically with mode 0600.
fn write_private(dir: &Path, name: &str, contents: &[u8]) -> Result<(), KeyringError> {
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let io = |e: std::io::Error| fail(format!("{}: {e}", target.display()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temporary, &target).map_err(io)?;
    // The new name must survive a crash before any data key is wrapped under the key it holds.
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

fn generate() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    key
}

/// Overwrites a file with zeros, syncs it and unlinks it.
fn shred(path: &Path) -> Result<(), KeyringError> {
    let io = |e: std::io::Error| fail(format!("{}: {e}", path.display()));
    let len = fs::metadata(path).map_err(io)?.len();
    let mut file = fs::OpenOptions::new().write(true).open(path).map_err(io)?;
    file.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    drop(file);
    fs::remove_file(path).map_err(io)
}

fn cipher(key: &[u8; 32]) -> Arc<Aes256Gcm> {
    Arc::new(Aes256Gcm::new(&(*key).into()))
}

fn wrap_aad(context: &WrapContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + 40);
    aad.extend_from_slice(WRAP_DOMAIN);
    aad.extend_from_slice(context.owner_kind.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.owner_id.as_bytes());
    aad.extend_from_slice(&context.version.to_be_bytes());
    aad
}

impl LocalMasterKeys {
    /// Opens the key directory, creating it and a first master key when it does not exist
    /// (the zero-configuration default). Refuses keys that others can read.
    pub fn open_dir(dir: &Path) -> Result<Self, KeyringError> {
        if !dir.exists() {
            // Parents with the usual mode (the data directory must stay traversable for the
            // private PostgreSQL's `postgres` user); the key directory itself private.
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| fail(format!("creating {}: {e}", parent.display())))?;
            }
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
        }
        check_private(dir, 0o700)?;
        if !dir.join(CURRENT_FILE).exists() {
            Self::add_new_current(dir)?;
        }
        let state = Self::load(dir)?;
        Ok(Self {
            dir: Some(dir.to_path_buf()),
            state: RwLock::new(state),
        })
    }

    fn load(dir: &Path) -> Result<State, KeyringError> {
        let current_path = dir.join(CURRENT_FILE);
        check_private(&current_path, 0o600)?;
        let current = fs::read_to_string(&current_path)
            .map_err(|e| fail(format!("{}: {e}", current_path.display())))?
            .trim()
            .to_string();
        let mut keys = HashMap::new();
        let entries = fs::read_dir(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let path = entry
                .map_err(|e| fail(format!("{}: {e}", dir.display())))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            // A key another process destroyed since the directory was listed.
            let text = match fs::read_to_string(&path) {
                Ok(text) => Zeroizing::new(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(fail(format!("{}: {e}", path.display()))),
            };
            check_private(&path, 0o600)?;
            let key = decode(&text, &path.display().to_string())?;
            let id = key_id(&key);
            if path.file_name().and_then(|n| n.to_str()) != Some(file_name(&id).as_str()) {
                return Err(fail(format!(
                    "{} does not hold the key its name says (expected {})",
                    path.display(),
                    file_name(&id)
                )));
            }
            keys.insert(id, cipher(&key));
        }
        if !keys.contains_key(&current) {
            return Err(fail(format!(
                "{} names {current}, which is not in {}",
                current_path.display(),
                dir.display()
            )));
        }
        Ok(State { current, keys })
    }

    /// Keys given as base64 text (e.g. from `RENRAKUCHO_MASTER_KEY`), plus previous keys that
    /// still unwrap data keys wrapped before a rotation.
    pub fn from_base64(current: &str, previous: &[String]) -> Result<Self, KeyringError> {
        let key = decode(current, "RENRAKUCHO_MASTER_KEY")?;
        let current_id = key_id(&key);
        let mut keys = HashMap::from([(current_id.clone(), cipher(&key))]);
        for text in previous {
            let key = decode(text, "RENRAKUCHO_PREVIOUS_MASTER_KEYS")?;
            keys.insert(key_id(&key), cipher(&key));
        }
        Ok(Self {
            dir: None,
            state: RwLock::new(State {
                current: current_id,
                keys,
            }),
        })
    }

    /// Generates a new master key in `dir` and makes it the current one (the first step of a
    /// rotation). Returns its ID. Earlier keys stay until retired.
    pub fn add_new_current(dir: &Path) -> Result<String, KeyringError> {
        let key = generate();
        let id = key_id(&key);
        let text = Zeroizing::new(format!("{}\n", BASE64.encode(key.as_slice())));
        write_private(dir, &file_name(&id), text.as_bytes())?;
        write_private(dir, CURRENT_FILE, format!("{id}\n").as_bytes())?;
        Ok(id)
    }

    /// Deletes a retired master key's file. The caller has checked that no data key is still
    /// wrapped under it; the current key cannot be removed.
    pub fn remove(dir: &Path, id: &str) -> Result<(), KeyringError> {
        if !Self::destroy(dir, id)? {
            return Err(fail(format!("no master key {id} in {}", dir.display())));
        }
        Ok(())
    }

    /// Destroys a master key's material: its file is overwritten with zeros and synced, then
    /// unlinked, and the directory synced, so that neither the name nor the bytes come back
    /// after a crash. Leftovers of an interrupted write of the same key go the same way. The
    /// current key is refused. False when there was no such file (already destroyed). What a
    /// journaling file system or an SSD's wear levelling keeps of the old blocks is beyond a
    /// process's reach (docs/adr/0015-erasure-reaches-the-disk.md).
    pub fn destroy(dir: &Path, id: &str) -> Result<bool, KeyringError> {
        let current = fs::read_to_string(dir.join(CURRENT_FILE))
            .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        if current.trim() == id {
            return Err(fail(format!("{id} is the current master key")));
        }
        Self::shred_key(dir, id)
    }

    /// Destroys a key of a directory that no longer wraps anything new (the server moved to
    /// AWS KMS), its `current` one included, as [`destroy`](Self::destroy) does; with its
    /// last key the directory goes too, so nothing is left to open. False when there was no
    /// such file.
    pub fn destroy_left_behind(dir: &Path, id: &str) -> Result<bool, KeyringError> {
        if !dir.exists() {
            return Ok(false);
        }
        let found = Self::shred_key(dir, id)?;
        let keys_left = fs::read_dir(dir)
            .map_err(|e| fail(format!("{}: {e}", dir.display())))?
            .filter_map(Result::ok)
            .any(|e| e.path().extension().and_then(|x| x.to_str()) == Some("key"));
        if !keys_left {
            fs::remove_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        }
        Ok(found)
    }

    fn shred_key(dir: &Path, id: &str) -> Result<bool, KeyringError> {
        let name = file_name(id);
        let leftovers = format!(".{name}.");
        let mut targets = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file == name || file.starts_with(&leftovers) {
                targets.push(entry.path());
            }
        }
        let found = targets.iter().any(|p| p.file_name() == Some(name.as_ref()));
        for path in &targets {
            // Out of the way of other processes reading the directory first (they would see
            // a key file of zeros), under a name the next run finds if this one stops here.
            let path = if path.file_name() == Some(name.as_ref()) {
                let hidden = dir.join(format!("{leftovers}shred"));
                fs::rename(path, &hidden).map_err(|e| fail(format!("{}: {e}", path.display())))?;
                hidden
            } else {
                path.clone()
            };
            shred(&path)?;
        }
        if !targets.is_empty() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        }
        Ok(found)
    }

    /// The IDs of the key files in `dir` and the current one, read from the directory as it
    /// is now (another process may have rotated).
    pub fn ids_in(dir: &Path) -> Result<(String, Vec<String>), KeyringError> {
        let state = Self::load(dir)?;
        let mut ids: Vec<String> = state.keys.keys().cloned().collect();
        ids.sort();
        Ok((state.current, ids))
    }

    /// The IDs of the keys held.
    pub fn key_ids(&self) -> Vec<String> {
        let state = self.state.read().expect("master key state lock");
        let mut ids: Vec<String> = state.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn key(&self, id: &str) -> Option<Arc<Aes256Gcm>> {
        self.state
            .read()
            .expect("master key state lock")
            .keys
            .get(id)
            .cloned()
    }
}

#[async_trait]
impl MasterKeyProvider for LocalMasterKeys {
    fn current_key_id(&self) -> String {
        self.state
            .read()
            .expect("master key state lock")
            .current
            .clone()
    }

    fn holds(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    async fn wrap(&self, key: &[u8; 32], context: &WrapContext) -> Result<Vec<u8>, KeyringError> {
        // A rotation run by another process may have made a new key current (and an old one
        // may be about to be retired): new data keys always go under the directory's current
        // key. Wrapping is rare (a new key per patient), so reading one small file is cheap.
        if let Some(dir) = &self.dir {
            let on_disk = fs::read_to_string(dir.join(CURRENT_FILE))
                .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            if on_disk.trim() != self.current_key_id() {
                self.refresh().await?;
            }
        }
        let id = self.current_key_id();
        let master = self
            .key(&id)
            .ok_or_else(|| KeyringError::UnknownMasterKey(id.clone()))?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key);
        let tag = master
            .encrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &wrap_aad(context),
                (&mut out[12..]).into(),
            )
            .map_err(|_| fail("wrapping a data key failed"))?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &WrapContext,
    ) -> Result<KeyBytes, KeyringError> {
        let master = self
            .key(key_id)
            .ok_or_else(|| KeyringError::UnknownMasterKey(key_id.to_string()))?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(KeyringError::ProviderRefused(
                "the wrapped data key has the wrong length".into(),
            ));
        }
        let nonce: [u8; 12] = wrapped[..12].try_into().expect("12 bytes");
        let tag = Tag::<Aes256Gcm>::try_from(&wrapped[44..]).expect("16 bytes");
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&wrapped[12..44]);
        master
            .decrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &wrap_aad(context),
                key.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| {
                KeyringError::ProviderRefused(
                    "the wrapped data key was altered or belongs to another owner".into(),
                )
            })?;
        Ok(key)
    }

    async fn refresh(&self) -> Result<(), KeyringError> {
        if let Some(dir) = &self.dir {
            // Gone with its last key (moved to KMS): nothing is held any more.
            let state = if dir.exists() {
                Self::load(dir)?
            } else {
                State {
                    current: String::new(),
                    keys: HashMap::new(),
                }
            };
            *self.state.write().expect("master key state lock") = state;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> WrapContext {
        WrapContext {
            owner_kind: "patient",
            owner_id: uuid::Uuid::now_v7(),
            version: 1,
        }
    }

    #[tokio::test]
    async fn a_new_directory_gets_a_private_key_that_wraps_and_unwraps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let keys = LocalMasterKeys::open_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let id = keys.current_key_id();
        let file = dir.join(file_name(&id));
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let data_key = [7u8; 32];
        let ctx = context();
        let wrapped = keys.wrap(&data_key, &ctx).await.unwrap();
        assert!(!wrapped.windows(32).any(|w| w == data_key));
        assert_eq!(*keys.unwrap(&id, &wrapped, &ctx).await.unwrap(), data_key);

        // Reopening finds the same key.
        let again = LocalMasterKeys::open_dir(&dir).unwrap();
        assert_eq!(again.current_key_id(), id);
        assert_eq!(*again.unwrap(&id, &wrapped, &ctx).await.unwrap(), data_key);
    }

    #[tokio::test]
    async fn a_wrapped_key_does_not_unwrap_for_another_owner_or_version() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = LocalMasterKeys::open_dir(&tmp.path().join("k")).unwrap();
        let id = keys.current_key_id();
        let ctx = context();
        let wrapped = keys.wrap(&[1u8; 32], &ctx).await.unwrap();
        for other in [
            WrapContext { version: 2, ..ctx },
            WrapContext {
                owner_id: uuid::Uuid::now_v7(),
                ..ctx
            },
            WrapContext {
                owner_kind: "facility",
                ..ctx
            },
        ] {
            assert!(matches!(
                keys.unwrap(&id, &wrapped, &other).await,
                Err(KeyringError::ProviderRefused(_))
            ));
        }
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let keys = LocalMasterKeys::open_dir(&dir).unwrap();
        let file = dir.join(file_name(&keys.current_key_id()));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = LocalMasterKeys::open_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("accessible to other users"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");

        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = LocalMasterKeys::open_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn environment_keys_must_be_32_bytes_of_base64() {
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let err = LocalMasterKeys::from_base64(bad, &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("RENRAKUCHO_MASTER_KEY"), "{err}");
        }
        let good = BASE64.encode([3u8; 32]);
        let keys = LocalMasterKeys::from_base64(&good, &[]).unwrap();
        assert!(keys.current_key_id().starts_with("local:"));
        assert!(!format!("{keys:?}").contains(&good));
    }

    #[tokio::test]
    async fn rotation_adds_a_current_key_and_keeps_the_old_one_until_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let keys = LocalMasterKeys::open_dir(&dir).unwrap();
        let old = keys.current_key_id();
        let ctx = context();
        let wrapped = keys.wrap(&[9u8; 32], &ctx).await.unwrap();

        let new = LocalMasterKeys::add_new_current(&dir).unwrap();
        assert_ne!(old, new);
        assert!(!keys.holds(&new), "not seen before a refresh");
        // The next wrap notices the rotation and uses the new key.
        let rewrapped = keys.wrap(&[9u8; 32], &ctx).await.unwrap();
        assert_eq!(keys.current_key_id(), new);
        assert_eq!(
            *keys.unwrap(&new, &rewrapped, &ctx).await.unwrap(),
            [9u8; 32]
        );
        assert_eq!(*keys.unwrap(&old, &wrapped, &ctx).await.unwrap(), [9u8; 32]);

        assert!(LocalMasterKeys::remove(&dir, &new).is_err(), "current");
        LocalMasterKeys::remove(&dir, &old).unwrap();
        keys.refresh().await.unwrap();
        assert!(!keys.holds(&old));
    }

    #[test]
    fn destroying_a_key_removes_it_and_its_leftovers_never_the_current_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let keys = LocalMasterKeys::open_dir(&dir).unwrap();
        let old = keys.current_key_id();
        let new = LocalMasterKeys::add_new_current(&dir).unwrap();
        // What an interrupted write of the old key would have left.
        let leftover = dir.join(format!(".{}.12345", file_name(&old)));
        fs::write(&leftover, b"key material").unwrap();

        assert!(LocalMasterKeys::destroy(&dir, &new).is_err(), "current");
        assert!(LocalMasterKeys::destroy(&dir, &old).unwrap());
        assert!(!dir.join(file_name(&old)).exists());
        assert!(!leftover.exists());
        assert!(
            !LocalMasterKeys::destroy(&dir, &old).unwrap(),
            "already gone"
        );
        assert_eq!(
            LocalMasterKeys::ids_in(&dir).unwrap(),
            (new.clone(), vec![new])
        );
    }

    #[tokio::test]
    async fn a_directory_left_behind_goes_with_its_last_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let keys = LocalMasterKeys::open_dir(&dir).unwrap();
        let old = keys.current_key_id();
        let new = LocalMasterKeys::add_new_current(&dir).unwrap();

        assert!(LocalMasterKeys::destroy_left_behind(&dir, &old).unwrap());
        assert!(dir.exists(), "one key is left");
        // The directory's current key too: nothing wraps under it any more.
        assert!(LocalMasterKeys::destroy_left_behind(&dir, &new).unwrap());
        assert!(!dir.exists(), "gone with its last key");
        assert!(!LocalMasterKeys::destroy_left_behind(&dir, &new).unwrap());
        // A process that held them lets them go at its next refresh.
        keys.refresh().await.unwrap();
        assert!(!keys.holds(&new) && !keys.holds(&old));
    }
}
