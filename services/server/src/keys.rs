//! The keyring of a server process, assembled from the settings, and the `renrakucho keys`
//! commands' work (rotation, retirement, status).

use std::path::PathBuf;
use std::sync::Arc;

use renrakucho_keyring::{
    AwsKms, AwsKmsSettings, CacheSettings, EpochPolicy, Keyring, KeyringError, LocalMasterKeys,
    MasterKeys,
};
use renrakucho_store::Database;

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

/// Data keys re-wrapped per transaction by an epoch rotation.
const EPOCH_BATCH: i64 = 500;

/// The master key epochs of this server, when it manages its master keys itself (local keys in
/// a directory). Keys given in the environment cannot be rotated by the server, and AWS KMS
/// keys are the operator's to rotate and schedule for deletion (README, "Erasure").
pub fn epoch_policy(settings: &Settings) -> Option<EpochPolicy> {
    (settings.key_provider == KeyProvider::Local && settings.master_key.is_none()).then(|| {
        EpochPolicy {
            dir: local_key_dir(settings),
            period: settings.master_key_epoch,
            batch: EPOCH_BATCH,
        }
    })
}

/// Rotates master key epochs while the server runs: at start, every
/// `master_key_epoch_check`, and at once after an erasure in this process. Other processes'
/// erasures are seen at their next check (the database counts them). Between rotations, picks
/// up keys added or destroyed by other processes, so a destroyed key leaves this process's
/// memory too.
pub async fn follow_epochs(
    keyring: Keyring,
    db: Database,
    policy: EpochPolicy,
    check: std::time::Duration,
) {
    loop {
        match keyring.rotate_epoch(&db, &policy, false).await {
            Ok(Some(report)) => tracing::info!(
                reason = report.reason.as_str(),
                new_master_key = report.new_master_key.as_deref().unwrap_or("-"),
                rewrapped = report.rewrapped,
                destroyed = report.destroyed.len(),
                "master key epoch rotated"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(
                error = %e,
                "master key epoch rotation failed; it is retried at the next check"
            ),
        }
        if let Err(e) = keyring.master_keys().current().refresh().await {
            tracing::warn!(error = %e, "re-reading the master keys failed");
        }
        tokio::select! {
            () = tokio::time::sleep(check) => {}
            () = keyring.erasure_announced() => {}
        }
    }
}
