//! The key directory and environment keys: privacy checks, wrapping, rotation and destruction.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::files::file_name;
use super::LocalMasterKeys;
use crate::provider::{MasterKeyProvider, WrapContext};
use crate::KeyringError;

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
