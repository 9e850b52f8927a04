//! Re-encryption: moving values to their owner's newest key version and to the current format
//! (`renrakucho keys bind-versions`).

use std::sync::atomic::Ordering;

use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::encrypted::{self, EncryptedColumn};
use renrakucho_store::{Database, Scope, ScopedTx};
use serde_json::json;
use uuid::Uuid;

use super::{undecryptable, Keyring};
use crate::envelope::{self, Binding, Header, KeyOwner, FORMAT_V1};
use crate::KeyringError;

/// What a re-encryption did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Values looked at.
    pub values: u64,
    /// Values moved to the newest key version.
    pub moved: u64,
}

/// How far `renrakucho keys bind-versions` got, for its progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindProgress {
    /// A pass starts: patients in all, and how many were done before (resumed).
    Start { total: u64, done: u64 },
    /// This many more patients were done.
    Done(u64),
}

/// What `renrakucho keys bind-versions` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindReport {
    /// Patients whose values were looked at in this run.
    pub patients: u64,
    /// Values looked at.
    pub values: u64,
    /// Values re-encrypted in the current format (bound to their version).
    pub rebound: u64,
    /// Whether the migration is complete: values of format 1 are refused from now on.
    pub completed: bool,
    /// Values of format 1 the database still counts (0 when completed).
    pub remaining: i64,
}

impl Keyring {
    /// The value re-encrypted under the owner's newest key and in the current format (bound to
    /// its version), or `None` when it already is.
    pub async fn reencrypt(
        &self,
        tx: &mut ScopedTx,
        binding: &Binding<'_>,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        self.reencrypt_stored(tx, binding.row, binding, value).await
    }

    /// As [`Keyring::reencrypt`], for a value stored in row `stored_at`: a value of format 1 was
    /// bound to that row (an entry's history names the entry instead from format 2 on).
    async fn reencrypt_stored(
        &self,
        tx: &mut ScopedTx,
        stored_at: Uuid,
        binding: &Binding<'_>,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        let header = Header::parse(value).map_err(|p| undecryptable(binding, p))?;
        let newest = self.writing_key(tx, binding.owner).await?;
        if header.format != FORMAT_V1 && header.key_version >= newest.version {
            return Ok(None);
        }
        let plaintext = if header.format == FORMAT_V1 {
            let legacy = Binding {
                row: stored_at,
                ..*binding
            };
            self.decrypt(tx, &legacy, value).await?
        } else {
            self.decrypt(tx, binding, value).await?
        };
        Ok(Some(envelope::seal(
            &newest.cipher,
            newest.version,
            binding,
            &plaintext,
        )))
    }

    /// Re-encrypts, where needed, one owner's values of `columns` (newest key, current format),
    /// each bound to the row and version the database names for it. Returns (values, moved).
    async fn reencrypt_columns(
        &self,
        tx: &mut ScopedTx,
        owner: KeyOwner,
        columns: &[EncryptedColumn<'_>],
    ) -> Result<(u64, u64), KeyringError> {
        let (mut values, mut moved) = (0, 0);
        for column in columns.iter().filter(|c| c.owner_kind == owner.kind()) {
            for stored in encrypted::values_of(tx, column, owner.id()).await? {
                values += 1;
                let binding = Binding {
                    owner,
                    table: column.table,
                    column: column.column,
                    row: stored.bound_row,
                    version: u64::try_from(stored.version).unwrap_or(u64::MAX),
                };
                let Some(new) = self
                    .reencrypt_stored(tx, stored.row, &binding, &stored.value)
                    .await?
                else {
                    continue;
                };
                if encrypted::replace_value(tx, column, owner.id(), stored.row, &stored.value, &new)
                    .await?
                {
                    moved += 1;
                }
            }
        }
        Ok((values, moved))
    }

    /// `renrakucho keys bind-versions`: re-encrypts every value still in format 1 in the current
    /// format, bound to its version, patient by patient in batches of `batch` patients. Each
    /// batch commits on its own with its audit record and where it got to, so the server keeps
    /// serving and `resume` goes on after an interruption (otherwise a run starts from the first
    /// patient; values already bound are only read). When the database counts no value of
    /// format 1 left, it records that they are refused from then on; a value written meanwhile
    /// by an older server sends the run round once more.
    pub async fn bind_versions(
        &self,
        db: &Database,
        batch: i64,
        resume: bool,
        mut progress: impl FnMut(BindProgress),
    ) -> Result<BindReport, KeyringError> {
        let mut report = BindReport::default();
        let mut restart = !resume;
        let mut passes = 0;
        loop {
            passes += 1;
            {
                let mut tx = db.begin(Scope::KeyMaintenance).await?;
                let state = encrypted::binding_state(&mut tx, restart).await?;
                let (total, done) = encrypted::patients_count(&mut tx, state.done_through).await?;
                tx.commit().await?;
                if !state.legacy_readable {
                    report.completed = true;
                    return Ok(report);
                }
                progress(BindProgress::Start {
                    total: u64::try_from(total).unwrap_or(0),
                    done: u64::try_from(done).unwrap_or(0),
                });
            }
            while let Some((patients, values, rebound)) = self.bind_batch(db, batch).await? {
                report.patients += patients;
                report.values += values;
                report.rebound += rebound;
                progress(BindProgress::Done(patients));
            }
            let mut tx = db.begin(Scope::KeyMaintenance).await?;
            let remaining = encrypted::binding_complete(&mut tx).await?;
            if remaining == 0 {
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: Actor::System,
                        action: "data_value.bind_versions_complete",
                        outcome: Outcome::Success,
                        target: None,
                        origin: &Origin::default(),
                        details: json!({ "rebound": report.rebound }),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            report.remaining = remaining;
            if remaining == 0 {
                self.caches.legacy_refused.store(true, Ordering::Release);
                report.completed = true;
                return Ok(report);
            }
            if passes >= 3 {
                return Ok(report);
            }
            // Written meanwhile by a server of the earlier format: go round once more.
            restart = true;
        }
    }

    /// One batch of [`Keyring::bind_versions`]: the next `batch` patients after where the run
    /// got to, re-encrypted and committed with their audit record and the new position. Returns
    /// (patients, values, rebound), or `None` when no patient is left.
    async fn bind_batch(
        &self,
        db: &Database,
        batch: i64,
    ) -> Result<Option<(u64, u64, u64)>, KeyringError> {
        let mut tx = db.begin(Scope::KeyMaintenance).await?;
        let state = encrypted::binding_state(&mut tx, false).await?;
        let patients = encrypted::patients_after(&mut tx, state.done_through, batch).await?;
        let Some(last) = patients.last().copied() else {
            tx.commit().await?;
            return Ok(None);
        };
        let (mut values, mut rebound) = (0, 0);
        for patient in &patients {
            let owner = KeyOwner::Patient(renrakucho_core::PatientId::from_uuid(*patient));
            let columns = encrypted::ENCRYPTED_COLUMNS
                .iter()
                .chain(encrypted::HISTORY_COLUMNS)
                .copied()
                .collect::<Vec<_>>();
            match self.reencrypt_columns(&mut tx, owner, &columns).await {
                Ok((v, r)) => {
                    values += v;
                    rebound += r;
                }
                // An erased patient's key is gone, and so are its values.
                Err(KeyringError::OwnerShredded) => {}
                Err(e) => return Err(e),
            }
        }
        encrypted::binding_advance(&mut tx, last).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor: Actor::System,
                action: "data_value.bind_versions",
                outcome: Outcome::Success,
                target: None,
                origin: &Origin::default(),
                details: json!({ "patients": patients.len(), "values": values,
                                 "rebound": rebound }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some((patients.len() as u64, values, rebound)))
    }

    /// Moves every value of `owner` in `columns` to the owner's newest key version, as key
    /// maintenance (which reads wrapped keys and ciphertexts, and writes ciphertexts only through
    /// `reencrypt_value`), audited in the platform's chain. Values changed meanwhile by someone
    /// else are left to them (they were written with the newest key). An entry's earlier
    /// versions are history and keep the key version they were written with.
    pub async fn reencrypt_owner(
        &self,
        db: &Database,
        owner: KeyOwner,
        columns: &[EncryptedColumn<'_>],
        actor: Actor,
        origin: &Origin,
    ) -> Result<ReencryptReport, KeyringError> {
        let mut tx = db.begin(Scope::KeyMaintenance).await?;
        let (values, moved) = self.reencrypt_columns(&mut tx, owner, columns).await?;
        let report = ReencryptReport { values, moved };
        audit::record(
            &mut tx,
            AuditEvent {
                actor,
                action: "data_key.reencrypt",
                outcome: Outcome::Success,
                target: Some((owner.kind().as_str(), owner.id())),
                origin,
                details: json!({ "values": report.values, "moved": report.moved }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}
