//! The zero-configuration master key: files in a directory of the server's own (generated on
//! first run, mode 0600 in a 0700 directory, refused when others can read them), or keys given
//! in the environment.
//!
//! The key material and its files are in [`files`]; a rotation's steps in this directory (a
//! new current key, the destruction of old ones) in [`rotation`]; wrapping and unwrapping data
//! keys in [`wrapping`].

mod files;
mod rotation;
#[cfg(test)]
mod tests;
mod wrapping;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

use super::MasterKeyProvider;
use crate::KeyringError;
use files::{check_private, decode, file_name, key_id};
use wrapping::cipher;

const CURRENT_FILE: &str = "current";

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

fn fail(message: impl Into<String>) -> KeyringError {
    KeyringError::MasterKey(message.into())
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
