//! Master key material and the files that hold it: IDs and file names, base64 text, private
//! modes, atomic writes, and shredding.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::fail;
use crate::provider::KeyBytes;
use crate::KeyringError;

const ID_PREFIX: &str = "local:";

/// The public ID of a master key: derived from it, revealing nothing about it.
pub(super) fn key_id(key: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(b"renrakucho.master-key-id");
    let digest = mac.finalize().into_bytes();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{ID_PREFIX}{hex}")
}

pub(super) fn file_name(id: &str) -> String {
    format!("{}.key", id.trim_start_matches(ID_PREFIX))
}

pub(super) fn decode(text: &str, what: &str) -> Result<KeyBytes, KeyringError> {
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
pub(super) fn check_private(path: &Path, expected: u32) -> Result<(), KeyringError> {
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
pub(super) fn write_private(dir: &Path, name: &str, contents: &[u8]) -> Result<(), KeyringError> {
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

pub(super) fn generate() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    key
}

/// Overwrites a file with zeros, syncs it and unlinks it.
pub(super) fn shred(path: &Path) -> Result<(), KeyringError> {
    let io = |e: std::io::Error| fail(format!("{}: {e}", path.display()));
    let len = fs::metadata(path).map_err(io)?.len();
    let mut file = fs::OpenOptions::new().write(true).open(path).map_err(io)?;
    file.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    drop(file);
    fs::remove_file(path).map_err(io)
}
