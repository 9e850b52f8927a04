//! A rotation's steps in a key directory: a new current key, and the destruction of the keys
//! no data key needs any more.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use super::files::{file_name, generate, key_id, shred, write_private};
use super::{fail, LocalMasterKeys, CURRENT_FILE};
use crate::KeyringError;

impl LocalMasterKeys {
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
}
