//! Master key epochs: how erasure reaches copies nobody can edit (the WAL, dead tuples, backups;
//! docs/adr/0015-erasure-reaches-the-disk.md).
//!
//! An erased patient's data key lives on in old WAL segments, dead tuples and backups, wrapped
//! under the master key of its time. Each local master key is therefore an *epoch*: after every
//! erasure (and on a schedule) a new master key is generated, every live data key is re-wrapped
//! under it, and the older master keys are destroyed, so that no copy of the erased patient's
//! wrapped key can be unwrapped any more. Safe to run from several server processes (one at a
//! time, by an advisory lock), and after a crash at any step (the next run finishes the job).

use std::path::PathBuf;
use std::time::Duration;

use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::epochs::{self, EpochState};
use renrakucho_store::{Database, Scope};
use serde_json::json;

use crate::provider::LocalMasterKeys;
use crate::{Keyring, KeyringError};

/// When a new epoch is due, and how the re-wrapping runs.
#[derive(Debug, Clone)]
pub struct EpochPolicy {
    /// The local master key directory (the keyring's current provider must be the
    /// [`LocalMasterKeys`] opened on it).
    pub dir: PathBuf,
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
    /// rotation: a new master key (durably on disk before anything is wrapped under it), every
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
        provider.refresh().await?;
        let (current, present) = LocalMasterKeys::ids_in(&policy.dir)?;
        if provider.current_key_id() != current {
            return Err(KeyringError::MasterKey(format!(
                "the keyring does not use the master keys of {}",
                policy.dir.display()
            )));
        }

        // The erasures committed so far: counted before a new key exists, so that every
        // erasure counted here committed before anything could be wrapped under that key.
        let mut tx = db.begin(Scope::KeyMaintenance).await?;
        let erasures = epochs::erasures_completed(&mut tx).await?;
        // A key file not recorded yet (the first start, a manual rotation, or a crash right
        // after a key was generated) covers no erasure: it is retired by the next rotation.
        for id in &present {
            epochs::register(&mut tx, id, 0).await?;
        }
        let known = epochs::list(&mut tx).await?;
        tx.commit().await?;
        let Some(now) = known.iter().find(|e| e.master_key_id == current) else {
            return Err(KeyringError::MasterKey(format!(
                "the current master key {current} has no epoch"
            )));
        };
        let unfinished = known
            .iter()
            .any(|e| e.master_key_id != current && e.state != EpochState::Destroyed);
        let reason = if force {
            EpochReason::Requested
        } else if erasures > now.erasures_covered {
            EpochReason::Erasure
        } else if now.state != EpochState::Active || now.age_seconds >= policy.period.as_secs_f64()
        {
            EpochReason::Schedule
        } else if unfinished {
            EpochReason::Unfinished
        } else {
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
            let id = LocalMasterKeys::add_new_current(&policy.dir)?;
            provider.refresh().await?;
            let mut tx = db.begin(Scope::KeyMaintenance).await?;
            epochs::register(&mut tx, &id, erasures).await?;
            let details = json!({ "master_key_id": id, "reason": reason.as_str(),
                                  "erasures_covered": erasures });
            record(&mut tx, "master_key.epoch", details).await?;
            tx.commit().await?;
            tracing::info!(master_key = %id, reason = reason.as_str(), "new master key epoch");
            report.new_master_key = Some(id);
        }
        let current = provider.current_key_id();

        // From here on no data key is wrapped under an older epoch (a wrap in flight finishes
        // first, and is re-wrapped below).
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

        report.rewrapped = self.rewrap_all(db, policy.batch, |_| {}).await?.rewrapped;

        for id in &open {
            let mut tx = db.begin(Scope::KeyMaintenance).await?;
            let live = epochs::live_keys_under(&mut tx, id).await?;
            if live > 0 {
                return Err(KeyringError::MasterKey(format!(
                    "{live} live data keys are still wrapped under {id}; it is kept (the next \
                     rotation tries again)"
                )));
            }
            let found = LocalMasterKeys::destroy(&policy.dir, id)?;
            epochs::mark_destroyed(&mut tx, id).await?;
            let details = json!({ "master_key_id": id, "file_found": found });
            record(&mut tx, "master_key.destroy", details).await?;
            tx.commit().await?;
            tracing::info!(master_key = %id, "master key destroyed");
            report.destroyed.push(id.clone());
        }
        provider.refresh().await?;
        guard.commit().await?;
        Ok(Some(report))
    }
}
