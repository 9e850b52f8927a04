//! The keyring of a server process, assembled from the settings, and the `renrakucho keys`
//! commands' work (rotation, retirement, status).

use std::path::PathBuf;
use std::sync::Arc;

use renrakucho_keyring::{
    AwsKms, AwsKmsSettings, CacheSettings, EpochKeys, EpochPolicy, Keyring, KeyringError,
    LocalMasterKeys, MasterKeys,
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

/// The keyring of this server and, when the server manages its master keys itself, their
/// epochs.
pub struct ServerKeys {
    pub keyring: Keyring,
    /// `None` with a key given in the environment (the server cannot replace it) or a KMS key
    /// configured by ID or ARN instead of an alias (the server cannot move it).
    pub epochs: Option<EpochPolicy>,
}

/// Data keys re-wrapped per transaction by an epoch rotation.
const EPOCH_BATCH: i64 = 500;

/// The master keys of this server, assembled from the settings: the configured provider
/// wraps; with AWS KMS, local keys that exist still unwrap (moving from the
/// zero-configuration default to KMS), and with a KMS alias the directory's keys are retired
/// by the epochs like any older one.
pub async fn open_keys(settings: &Settings) -> Result<ServerKeys, KeyringError> {
    let (master, epoch_keys) = match settings.key_provider {
        KeyProvider::Local => {
            let local = local_keys(settings, true)?.expect("created when missing");
            let epochs = settings
                .master_key
                .is_none()
                .then(|| EpochKeys::Directory(local_key_dir(settings)));
            (MasterKeys::new(Arc::new(local)), epochs)
        }
        KeyProvider::AwsKms => {
            let kms = AwsKms::connect(&AwsKmsSettings {
                key_id: settings.aws_kms_key_id.clone().unwrap_or_default(),
                region: settings.aws_region.clone(),
                endpoint: settings.aws_kms_endpoint.clone(),
            })
            .await?;
            let local = local_keys(settings, false)?;
            let left_behind =
                (local.is_some() && settings.master_key.is_none()).then(|| local_key_dir(settings));
            let epochs = kms.alias().is_some().then(|| EpochKeys::Kms {
                kms: kms.clone(),
                left_behind,
            });
            let mut keys = MasterKeys::new(Arc::new(kms));
            if let Some(local) = local {
                keys = keys.with_previous(Arc::new(local));
            }
            (keys, epochs)
        }
    };
    Ok(ServerKeys {
        keyring: Keyring::new(
            master,
            CacheSettings {
                capacity: settings.key_cache_capacity,
                max_age: settings.key_cache_max_age,
            },
        ),
        epochs: epoch_keys.map(|keys| EpochPolicy {
            keys,
            period: settings.master_key_epoch,
            batch: EPOCH_BATCH,
        }),
    })
}

/// The keyring alone (the commands that do not rotate epochs).
pub async fn open_keyring(settings: &Settings) -> Result<Keyring, KeyringError> {
    Ok(open_keys(settings).await?.keyring)
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
