//! `renrakucho keys …`: master keys and data keys, one function per subcommand.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use renrakucho_keyring::{BindProgress, KeyOwner, Keyring, LocalMasterKeys};
use renrakucho_store::{audit, Database};

use super::Failure;
use crate::config::{KeyProvider, Settings};
use crate::keys;

#[derive(Subcommand)]
pub(super) enum KeysTask {
    /// Show which master key wraps how many data keys.
    Status,
    /// Re-wrap every data key under a new master key, without re-encrypting data, while the
    /// server keeps serving. Local keys: a new master key is generated in the key directory
    /// first. RENRAKUCHO_MASTER_KEY or AWS KMS: re-wraps under the configured key (configure
    /// the new one first; the previous one must still be available to unwrap).
    RotateMaster {
        /// Data keys per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
        /// Finish an interrupted rotation instead of starting a new one.
        #[arg(long)]
        resume: bool,
    },
    /// Start a new version of one owner's data key: new values use it, old ones still read.
    RotateDataKey {
        /// `patient:<uuid>`, `facility:<uuid>` or `platform`.
        owner: String,
        /// Also move the owner's existing values to the new version.
        #[arg(long)]
        reencrypt: bool,
    },
    /// Move every value of one owner to its newest data key version.
    Reencrypt {
        /// `patient:<uuid>`, `facility:<uuid>` or `platform`.
        owner: String,
    },
    /// Start a new master key epoch now (local key directory, or AWS KMS by alias): make a new
    /// master key, re-wrap every data key under it, destroy every older master key. The server does
    /// this by itself after each erasure and every RENRAKUCHO_MASTER_KEY_EPOCH; run it to cut
    /// the readable life of existing backups short, or to finish an interrupted rotation.
    RotateEpoch,
    /// Re-encrypt every value written before values were bound to their version (ciphertext
    /// format 1), while the server keeps serving. Once none is left, values of format 1 are
    /// refused for good (an earlier value put back into its row no longer reads).
    BindVersions {
        /// Patients per transaction.
        #[arg(long, default_value_t = 100)]
        batch: i64,
        /// Go on after the last patient an interrupted run finished, instead of from the first.
        #[arg(long)]
        resume: bool,
    },
    /// Remove a master key no data key needs any more (after a rotation).
    RetireMaster {
        /// The master key ID, as `keys status` shows it.
        key_id: String,
    },
}

/// Runs a `keys` subcommand.
pub(super) async fn run(db: Database, settings: &Settings, task: KeysTask) -> Result<(), Failure> {
    // Opening the keyring as a server would (creating the first master key and the network's
    // blind-index key on a new installation).
    keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?
        .prepare(&db)
        .await
        .map_err(Failure::runtime)?;
    match task {
        KeysTask::Status => status(&db, settings).await,
        KeysTask::RotateMaster { batch, resume } => {
            rotate_master(&db, settings, batch, resume).await
        }
        KeysTask::RotateDataKey { owner, reencrypt } => {
            rotate_data_key(&db, settings, &owner, reencrypt).await
        }
        KeysTask::Reencrypt { owner } => reencrypt(&db, settings, &owner).await,
        KeysTask::RotateEpoch => rotate_epoch(&db, settings).await,
        KeysTask::BindVersions { batch, resume } => {
            bind_versions(&db, settings, batch, resume).await
        }
        KeysTask::RetireMaster { key_id } => retire_master(&db, settings, key_id).await,
    }
}

/// Which master key wraps how many data keys.
async fn status(db: &Database, settings: &Settings) -> Result<(), Failure> {
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    let current = keyring.master_keys().current_key_id();
    println!("Current master key: {current}");
    for (id, count) in Keyring::keys_by_master(db)
        .await
        .map_err(Failure::runtime)?
    {
        let mark = if id == current { " (current)" } else { "" };
        println!("{id}{mark}: {count} data keys");
    }
    Ok(())
}

/// Re-wraps every data key under a new master key (generated first for local keys), with a progress bar.
async fn rotate_master(
    db: &Database,
    settings: &Settings,
    batch: i64,
    resume: bool,
) -> Result<(), Failure> {
    if batch < 1 {
        return Err(Failure::config("--batch: must be at least 1"));
    }
    let generates =
        settings.key_provider == KeyProvider::Local && settings.master_key.is_none() && !resume;
    if generates {
        let dir = keys::local_key_dir(settings);
        LocalMasterKeys::open_dir(&dir).map_err(Failure::runtime)?;
        let id = LocalMasterKeys::add_new_current(&dir).map_err(Failure::runtime)?;
        println!("New master key {id} generated in {}.", dir.display());
    }
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    let current = keyring.master_keys().current_key_id();
    let pending: i64 = Keyring::keys_by_master(db)
        .await
        .map_err(Failure::runtime)?
        .iter()
        .filter(|(id, _)| *id != current)
        .map(|(_, n)| n)
        .sum();
    let bar = ProgressBar::new(u64::try_from(pending).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} data keys re-wrapped ({eta})")
            .map_err(Failure::runtime)?,
    );
    let report = keyring
        .rewrap_all(db, batch, |n| bar.inc(n))
        .await
        .map_err(|e| {
            Failure::runtime(format!(
                "{e} (nothing is lost: run `renrakucho keys rotate-master --resume` to continue)"
            ))
        })?;
    bar.finish_and_clear();
    println!(
        "Re-wrapped {} data keys under {}. Every data key now uses it; earlier master keys \
         can be retired with `renrakucho keys retire-master KEY_ID`.",
        report.rewrapped, report.master_key_id
    );
    Ok(())
}

/// Starts a new version of one owner's data key, in the owner's scope (its facility's, or the
/// platform's for the platform's key).
async fn rotate_data_key(
    db: &Database,
    settings: &Settings,
    owner: &str,
    reencrypt: bool,
) -> Result<(), Failure> {
    let owner = parse_owner(owner)?;
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    let scope = if owner == KeyOwner::Platform {
        renrakucho_store::Scope::Platform
    } else {
        let mut maintenance = db
            .begin(renrakucho_store::Scope::KeyMaintenance)
            .await
            .map_err(Failure::runtime)?;
        let facility =
            renrakucho_store::data_keys::facility_of(&mut maintenance, owner.kind(), owner.id())
                .await
                .map_err(Failure::runtime)?
                .ok_or_else(|| Failure::runtime(format!("{owner} has no data key")))?;
        maintenance.commit().await.map_err(Failure::runtime)?;
        renrakucho_store::Scope::Facility(facility)
    };
    let mut tx = db.begin(scope).await.map_err(Failure::runtime)?;
    let version = keyring
        .rotate_data_key(
            &mut tx,
            owner,
            audit::Actor::System,
            &audit::Origin::default(),
        )
        .await
        .map_err(Failure::runtime)?;
    tx.commit().await.map_err(Failure::runtime)?;
    println!("The data key of {owner} is now at version {version}.");
    if reencrypt {
        reencrypt_owner(db, &keyring, owner).await?;
    }
    Ok(())
}

/// Moves every value of one owner to its newest data key version.
async fn reencrypt(db: &Database, settings: &Settings, owner: &str) -> Result<(), Failure> {
    let owner = parse_owner(owner)?;
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    reencrypt_owner(db, &keyring, owner).await
}

/// Starts a new master key epoch now, where the server can replace its master keys.
async fn rotate_epoch(db: &Database, settings: &Settings) -> Result<(), Failure> {
    let keys::ServerKeys { keyring, epochs } =
        keys::open_keys(settings).await.map_err(Failure::runtime)?;
    let Some(policy) = epochs else {
        return Err(Failure::config(
            "master key epochs need keys the server can replace: local keys in a \
             directory, or AWS KMS configured by an alias \
             (RENRAKUCHO_AWS_KMS_KEY_ID=alias/…); with RENRAKUCHO_MASTER_KEY or a KMS \
             key ID, rotate with `renrakucho keys rotate-master` and destroy the old \
             key yourself (README, \"Erasure and backups\")",
        ));
    };
    let report = keyring.rotate_epoch(db, &policy, true).await.map_err(|e| {
        Failure::runtime(format!(
            "{e} (nothing is lost: run `renrakucho keys rotate-epoch` again)"
        ))
    })?;
    match report {
        Some(report) => println!(
            "New master key epoch {}: {} data keys re-wrapped, {} older master keys \
             destroyed.",
            report.new_master_key.as_deref().unwrap_or("-"),
            report.rewrapped,
            report.destroyed.len()
        ),
        None => {
            return Err(Failure::runtime(
                "another process is rotating the master key epoch right now; try again \
                 when it has finished",
            ))
        }
    }
    Ok(())
}

/// Re-encrypts values of ciphertext format 1 bound to their version, with a progress bar.
async fn bind_versions(
    db: &Database,
    settings: &Settings,
    batch: i64,
    resume: bool,
) -> Result<(), Failure> {
    if batch < 1 {
        return Err(Failure::config("--batch: must be at least 1"));
    }
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} patients' values bound ({eta})")
            .map_err(Failure::runtime)?,
    );
    let report = keyring
        .bind_versions(db, batch, resume, |step| match step {
            BindProgress::Start { total, done } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            BindProgress::Done(n) => bar.inc(n),
        })
        .await
        .map_err(|e| {
            Failure::runtime(format!(
                "{e} (nothing is lost: run `renrakucho keys bind-versions --resume` to continue)"
            ))
        })?;
    bar.finish_and_clear();
    if report.completed {
        println!(
            "Re-encrypted {} of {} values bound to their version. No value of the earlier \
             format is left: such values are refused from now on.",
            report.rebound, report.values
        );
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "re-encrypted {} values, but {} of the earlier format were written meanwhile \
             (is a server of an earlier release still running?); stop it and run \
             `renrakucho keys bind-versions --resume` again",
            report.rebound, report.remaining
        )))
    }
}

/// Removes a master key no data key needs any more, and records it in the audit log.
async fn retire_master(db: &Database, settings: &Settings, key_id: String) -> Result<(), Failure> {
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    if keyring.master_keys().current_key_id() == key_id {
        return Err(Failure::runtime(format!(
            "{key_id} is the current master key; rotate first"
        )));
    }
    let still = Keyring::keys_by_master(db)
        .await
        .map_err(Failure::runtime)?
        .into_iter()
        .find(|(id, _)| *id == key_id)
        .map_or(0, |(_, n)| n);
    if still > 0 {
        return Err(Failure::runtime(format!(
            "{still} data keys are still wrapped under {key_id}; run \
             `renrakucho keys rotate-master --resume` first"
        )));
    }
    if key_id.starts_with("local:") && settings.master_key.is_none() {
        let dir = keys::local_key_dir(settings);
        LocalMasterKeys::remove(&dir, &key_id).map_err(Failure::runtime)?;
        println!("Master key {key_id} removed from {}.", dir.display());
    } else if key_id.starts_with("local:") {
        println!(
            "No data key needs {key_id} any more: remove it from \
             RENRAKUCHO_PREVIOUS_MASTER_KEYS."
        );
    } else {
        println!(
            "No data key needs {key_id} any more: disable it in AWS KMS, then schedule \
             its deletion."
        );
    }
    let mut tx = db
        .begin(renrakucho_store::Scope::KeyMaintenance)
        .await
        .map_err(Failure::runtime)?;
    audit::record(
        &mut tx,
        audit::AuditEvent {
            actor: audit::Actor::System,
            action: "master_key.retire",
            outcome: audit::Outcome::Success,
            target: None,
            origin: &audit::Origin::default(),
            details: serde_json::json!({ "master_key_id": key_id, "via": "cli" }),
        },
    )
    .await
    .map_err(Failure::runtime)?;
    tx.commit().await.map_err(Failure::runtime)?;
    Ok(())
}

fn parse_owner(text: &str) -> Result<KeyOwner, Failure> {
    let invalid = || {
        Failure::config(format!(
            "{text:?}: expected patient:<uuid>, facility:<uuid> or platform"
        ))
    };
    if text == "platform" {
        return Ok(KeyOwner::Platform);
    }
    let (kind, id) = text.split_once(':').ok_or_else(invalid)?;
    let id: uuid::Uuid = id.parse().map_err(|_| invalid())?;
    match kind {
        "patient" => Ok(KeyOwner::Patient(renrakucho_core::PatientId::from_uuid(id))),
        "facility" => Ok(KeyOwner::Facility(renrakucho_core::FacilityId::from_uuid(
            id,
        ))),
        _ => Err(invalid()),
    }
}

async fn reencrypt_owner(db: &Database, keyring: &Keyring, owner: KeyOwner) -> Result<(), Failure> {
    let report = keyring
        .reencrypt_owner(
            db,
            owner,
            renrakucho_store::encrypted::ENCRYPTED_COLUMNS,
            audit::Actor::System,
            &audit::Origin::default(),
        )
        .await
        .map_err(Failure::runtime)?;
    println!(
        "Re-encrypted {} of {} values of {owner} under its newest data key.",
        report.moved, report.values
    );
    Ok(())
}
