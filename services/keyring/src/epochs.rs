//! Master key epochs: how erasure reaches copies nobody can edit (the WAL, dead tuples, backups;
//! docs/adr/0015-erasure-reaches-the-disk.md).
//!
//! An erased patient's data key lives on in old WAL segments, dead tuples and backups, wrapped
//! under the master key of its time. Each master key (a local key file, or an AWS KMS key
//! behind an alias) is therefore an *epoch*: after every erasure (and on a schedule) a new
//! master key is made, every live data key is re-wrapped under it, and the older master keys
//! are destroyed, so that no copy of the erased patient's wrapped key can be unwrapped any more. Safe to run from several server processes (one at a
//! time, by an advisory lock), and after a crash at any step (the next run finishes the job).

use std::path::PathBuf;
use std::time::Duration;

use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::epochs::{self, Epoch, EpochState};
use renrakucho_store::{Database, Scope};
use serde_json::json;

use crate::provider::{AwsKms, LocalMasterKeys, MasterKeyProvider};
use crate::{Keyring, KeyringError};

/// Where the epochs' master keys live, and how one is made and destroyed. The keyring's
/// current provider must be the one named here (the same directory, or a clone of the same
/// [`AwsKms`]).
#[derive(Debug, Clone)]
pub enum EpochKeys {
    /// Local key files in a directory (the zero-configuration default).
    Directory(PathBuf),
    /// AWS KMS keys behind an alias, which each new epoch moves. `left_behind` is the local
    /// key directory of before the move to KMS, if it still exists: its keys are epochs too,
    /// destroyed (and the directory with the last) once no data key needs them.
    Kms {
        kms: AwsKms,
        left_behind: Option<PathBuf>,
    },
}

impl EpochKeys {
    /// The current master key, and every master key that exists now (as another process may
    /// have left them).
    async fn present(&self) -> Result<(String, Vec<String>), KeyringError> {
        match self {
            EpochKeys::Directory(dir) => LocalMasterKeys::ids_in(dir),
            EpochKeys::Kms { kms, left_behind } => {
                kms.refresh().await?;
                let current = kms.current_key_id();
                let mut present = vec![current.clone()];
                if let Some(dir) = left_behind.as_deref().filter(|d| d.exists()) {
                    present.extend(LocalMasterKeys::ids_in(dir)?.1);
                }
                Ok((current, present))
            }
        }
    }

    /// Makes a new master key the current one, durably, and returns its ID.
    async fn create(&self) -> Result<String, KeyringError> {
        match self {
            EpochKeys::Directory(dir) => LocalMasterKeys::add_new_current(dir),
            EpochKeys::Kms { kms, .. } => kms.create_epoch_key().await,
        }
    }

    /// Destroys an older master key's material; false when it was already gone.
    async fn destroy(&self, id: &str) -> Result<bool, KeyringError> {
        match self {
            EpochKeys::Directory(dir) => LocalMasterKeys::destroy(dir, id),
            EpochKeys::Kms { kms, .. } if kms.holds(id) => kms.destroy_epoch_key(id).await,
            EpochKeys::Kms {
                left_behind: Some(dir),
                ..
            } => LocalMasterKeys::destroy_left_behind(dir, id),
            EpochKeys::Kms { .. } => Ok(false),
        }
    }

    /// Where the keys are, for messages.
    fn describe(&self) -> String {
        match self {
            EpochKeys::Directory(dir) => dir.display().to_string(),
            EpochKeys::Kms { kms, .. } => format!("AWS KMS ({})", kms.alias().unwrap_or("-")),
        }
    }
}

/// When a new epoch is due, and how the re-wrapping runs.
#[derive(Debug, Clone)]
pub struct EpochPolicy {
    /// Where the epochs' master keys live.
    pub keys: EpochKeys,
    /// The longest an epoch lives without an erasure.
    pub period: Duration,
    /// Data keys re-wrapped per transaction.
    pub batch: i64,
}

/// Why a rotation ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochReason {
    /// A deletion request was carried out after the current epoch began.
    Erasure,
    /// The current epoch is older than the period.
    Schedule,
    /// An earlier rotation was interrupted: older epochs are not destroyed yet.
    Unfinished,
    /// Asked for (`renrakucho keys rotate-epoch`).
    Requested,
}

impl EpochReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EpochReason::Erasure => "erasure",
            EpochReason::Schedule => "schedule",
            EpochReason::Unfinished => "unfinished",
            EpochReason::Requested => "requested",
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochReport {
    pub reason: EpochReason,
    /// The master key generated for the new epoch (none when finishing an earlier one).
    pub new_master_key: Option<String>,
    pub rewrapped: u64,
    /// The master keys destroyed.
    pub destroyed: Vec<String>,
}

async fn record(
    tx: &mut renrakucho_store::ScopedTx,
    action: &'static str,
    details: serde_json::Value,
) -> Result<(), KeyringError> {
    audit::record(
        tx,
        AuditEvent {
            actor: Actor::System,
            action,
            outcome: Outcome::Success,
            target: None,
            origin: &Origin::default(),
            details,
        },
    )
    .await?;
    Ok(())
}

impl Keyring {
    /// Rotates the master key epoch if one is due (or `force`), and finishes an interrupted
    /// rotation: a new master key (durably on disk, or created in KMS and the alias moved,
    /// before anything is wrapped under it), every
    /// live data key re-wrapped under it (each checked to unwrap before it commits), then each
    /// older master key destroyed once no live data key is wrapped under it. `None` when
    /// nothing was due, or another process is rotating right now. Audited in the platform's
    /// chain.
    pub async fn rotate_epoch(
        &self,
        db: &Database,
        policy: &EpochPolicy,
        force: bool,
    ) -> Result<Option<EpochReport>, KeyringError> {
        // Held to the end: one rotation at a time across every server process. The transaction
        // runs one statement and holds no snapshot while it waits.
        let mut guard = db.begin(Scope::KeyMaintenance).await?;
        if !epochs::try_lock_rotation(&mut guard).await? {
            return Ok(None);
        }
        let provider = self.master_keys().current().clone();
        let (current, present) = present_keys(provider.as_ref(), policy).await?;
        let (erasures, known) = take_stock(db, &present).await?;
        let Some(reason) = due(policy, force, erasures, &known, &current)? else {
            guard.commit().await?;
            return Ok(None);
        };

        let mut report = EpochReport {
            reason,
            new_master_key: None,
            rewrapped: 0,
            destroyed: Vec::new(),
        };
        if reason != EpochReason::Unfinished {
            let id = begin_epoch(db, policy, provider.as_ref(), reason, erasures).await?;
            report.new_master_key = Some(id);
        }
        // From here on no data key is wrapped under an older epoch (a wrap in flight finishes
        // first, and is re-wrapped below).
        let open = retire_older(db, &provider.current_key_id()).await?;
        report.rewrapped = self.rewrap_all(db, policy.batch, |_| {}).await?.rewrapped;
        for id in &open {
            destroy_epoch(db, policy, id).await?;
            report.destroyed.push(id.clone());
        }
        provider.refresh().await?;
        guard.commit().await?;
        Ok(Some(report))
    }
}

/// The current master key and every one present now, once the keyring's provider (refreshed:
/// another process may have rotated) is seen to use the same keys.
async fn present_keys(
    provider: &dyn MasterKeyProvider,
    policy: &EpochPolicy,
) -> Result<(String, Vec<String>), KeyringError> {
    provider.refresh().await?;
    let (current, present) = policy.keys.present().await?;
    if provider.current_key_id() != current {
        return Err(KeyringError::MasterKey(format!(
            "the keyring does not use the master keys of {}",
            policy.keys.describe()
        )));
    }
    Ok((current, present))
}

/// The erasures committed so far, and every epoch once the master keys present are registered.
async fn take_stock(db: &Database, present: &[String]) -> Result<(i64, Vec<Epoch>), KeyringError> {
    // The erasures committed so far: counted before a new key exists, so that every
    // erasure counted here committed before anything could be wrapped under that key.
    let mut tx = db.begin(Scope::KeyMaintenance).await?;
    let erasures = epochs::erasures_completed(&mut tx).await?;
    // A key file not recorded yet (the first start, a manual rotation, or a crash right
    // after a key was generated) covers no erasure: it is retired by the next rotation.
    for id in present {
        epochs::register(&mut tx, id, 0).await?;
    }
    let known = epochs::list(&mut tx).await?;
    tx.commit().await?;
    Ok((erasures, known))
}

/// Why a rotation is due now; `None` when none is.
fn due(
    policy: &EpochPolicy,
    force: bool,
    erasures: i64,
    known: &[Epoch],
    current: &str,
) -> Result<Option<EpochReason>, KeyringError> {
    let Some(now) = known.iter().find(|e| e.master_key_id == current) else {
        return Err(KeyringError::MasterKey(format!(
            "the current master key {current} has no epoch"
        )));
    };
    let unfinished = known
        .iter()
        .any(|e| e.master_key_id != current && e.state != EpochState::Destroyed);
    Ok(if force {
        Some(EpochReason::Requested)
    } else if erasures > now.erasures_covered {
        Some(EpochReason::Erasure)
    } else if now.state != EpochState::Active || now.age_seconds >= policy.period.as_secs_f64() {
        Some(EpochReason::Schedule)
    } else if unfinished {
        Some(EpochReason::Unfinished)
    } else {
        None
    })
}

/// Makes a new master key the current one and records its epoch (covering `erasures`) in the
/// audit chain; returns its ID.
async fn begin_epoch(
    db: &Database,
    policy: &EpochPolicy,
    provider: &dyn MasterKeyProvider,
    reason: EpochReason,
    erasures: i64,
) -> Result<String, KeyringError> {
    let id = policy.keys.create().await?;
    provider.refresh().await?;
    let mut tx = db.begin(Scope::KeyMaintenance).await?;
    epochs::register(&mut tx, &id, erasures).await?;
    let details = json!({ "master_key_id": id, "reason": reason.as_str(),
                          "erasures_covered": erasures });
    record(&mut tx, "master_key.epoch", details).await?;
    tx.commit().await?;
    tracing::info!(master_key = %id, reason = reason.as_str(), "new master key epoch");
    Ok(id)
}

/// Marks every epoch older than `current` and not yet destroyed as retiring; returns their
/// master keys.
async fn retire_older(db: &Database, current: &str) -> Result<Vec<String>, KeyringError> {
    let mut tx = db.begin(Scope::KeyMaintenance).await?;
    let open: Vec<String> = epochs::list(&mut tx)
        .await?
        .into_iter()
        .filter(|e| e.master_key_id != current && e.state != EpochState::Destroyed)
        .map(|e| e.master_key_id)
        .collect();
    for id in &open {
        epochs::begin_retiring(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(open)
}

/// Destroys a retiring epoch's master key, refused while a live data key is still wrapped
/// under it, and records the destruction in the audit chain.
async fn destroy_epoch(db: &Database, policy: &EpochPolicy, id: &str) -> Result<(), KeyringError> {
    let mut tx = db.begin(Scope::KeyMaintenance).await?;
    let live = epochs::live_keys_under(&mut tx, id).await?;
    if live > 0 {
        return Err(KeyringError::MasterKey(format!(
            "{live} live data keys are still wrapped under {id}; it is kept (the next \
             rotation tries again)"
        )));
    }
    let found = policy.keys.destroy(id).await?;
    epochs::mark_destroyed(&mut tx, id).await?;
    let details = json!({ "master_key_id": id, "found": found });
    record(&mut tx, "master_key.destroy", details).await?;
    tx.commit().await?;
    tracing::info!(master_key = %id, "master key destroyed");
    Ok(())
}
