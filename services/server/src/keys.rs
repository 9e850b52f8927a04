//! The keyring of a server process, assembled from the settings, and the `renrakucho keys`
//! commands' work (rotation, retirement, status).

use std::path::PathBuf;
use std::sync::Arc;

use renrakucho_keyring::{
    AwsKms, AwsKmsSettings, CacheSettings, Keyring, KeyringError, LocalMasterKeys, MasterKeys,
};

use crate::config::{KeyProvider, Settings};

/// The directory of the local master keys.
pub fn local_key_dir(settings: &Settings) -> PathBuf {
    settings
        .master_key_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir().join("keys"))
}

/// The local master keys: given in the settings, or the key directory (created with a first
/// key when `create` and it does not exist yet).
fn local_keys(settings: &Settings, create: bool) -> Result<Option<LocalMasterKeys>, KeyringError> {
    if let Some(key) = &settings.master_key {
        let previous: Vec<String> = settings
            .previous_master_keys
            .as_ref()
            .map(|p| {
                p.expose()
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        return LocalMasterKeys::from_base64(key.expose(), &previous).map(Some);
    }
    let dir = local_key_dir(settings);
    if !create && !dir.exists() {
        return Ok(None);
    }
    LocalMasterKeys::open_dir(&dir).map(Some)
}

/// The master keys of this server: the configured provider wraps; with AWS KMS, local keys
/// that exist still unwrap (moving from the zero-configuration default to KMS is a
/// `keys rotate-master`).
pub async fn master_keys(settings: &Settings) -> Result<MasterKeys, KeyringError> {
    match settings.key_provider {
        KeyProvider::Local => {
            let local = local_keys(settings, true)?.expect("created when missing");
            Ok(MasterKeys::new(Arc::new(local)))
        }
        KeyProvider::AwsKms => {
            let kms = AwsKms::connect(&AwsKmsSettings {
                key_id: settings.aws_kms_key_id.clone().unwrap_or_default(),
                region: settings.aws_region.clone(),
                endpoint: settings.aws_kms_endpoint.clone(),
            })
            .await?;
            let mut keys = MasterKeys::new(Arc::new(kms));
            if let Some(local) = local_keys(settings, false)? {
                keys = keys.with_previous(Arc::new(local));
            }
            Ok(keys)
        }
    }
}

/// The keyring, with the cache bounds of the settings.
pub async fn open_keyring(settings: &Settings) -> Result<Keyring, KeyringError> {
    Ok(Keyring::new(
        master_keys(settings).await?,
        CacheSettings {
            capacity: settings.key_cache_capacity,
            max_age: settings.key_cache_max_age,
        },
    ))
}
