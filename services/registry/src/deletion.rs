//! A patient's deletion request (第12条2–3): recorded by a staff member of a facility sharing
//! the patient and carried out at once, in one transaction: every row about the patient, in
//! every facility, removed; the patient's data keys destroyed (crypto-shredding), which makes
//! any copy left in a backup unreadable once the master key epoch it was wrapped under is
//! destroyed; the stored files and the patient's folders removed after the commit, and the
//! epoch rotation started (docs/adr/0015-erasure-reaches-the-disk.md). What remains is the
//! request (IDs, times, counts) and audit records without personal data.

use crate::{may, Authorized};
use renrakucho_files::FileStore;
use renrakucho_keyring::{KeyOwner, Keyring};
use renrakucho_store::audit::{Actor, Origin};
use renrakucho_store::{attachments, consents, deletions, patients, Database};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::audit::record;
use crate::{CareError, StaffActor};

/// What a deletion request removed.
#[derive(Debug, Clone, Serialize)]
pub struct Erasure {
    pub request: Uuid,
    /// Rows removed per kind, and data key versions destroyed.
    pub erased: serde_json::Value,
}

/// Records the patient's deletion request and carries it out.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn request_deletion(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    allowed: &Authorized<may::DeletionRecord>,
    origin: &Origin,
) -> Result<Erasure, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let mut scans: Vec<String> = consents::of_patient(&mut tx, patient)
        .await?
        .into_iter()
        .filter_map(|c| c.scan.map(|s| s.object))
        .collect();
    scans.extend(attachments::objects_of_patient(&mut tx, patient).await?);
    let request = Uuid::now_v7();
    deletions::record(&mut tx, request, patient, who.staff).await?;
    let mut erased = deletions::erase(&mut tx, patient).await?;
    let versions = keyring
        .destroy(
            &mut tx,
            KeyOwner::Patient(patient),
            Actor::Staff(who.staff),
            origin,
        )
        .await?;
    erased["data_key_versions"] = json!(versions);
    erased["files"] = json!(scans.len());
    deletions::complete(&mut tx, request, &erased).await?;
    record(
        &mut tx,
        who,
        origin,
        "patient.erase",
        Some(("patient", patient.as_uuid())),
        json!({ "request": request, "erased": erased }),
    )
    .await?;
    tx.commit().await?;
    // The WAL, dead tuples and backups still hold the patient's data key, wrapped under the
    // current master key: the next epoch destroys it (soon, in the background).
    keyring.erasure_committed();
    // The files are unreadable already (their key is gone); remove them too: every file in
    // the patient's folders, not only those this facility could see, and the folders, whose
    // names are the patient's ID.
    for folder in ["consents", "attachments"] {
        let prefix = format!("{folder}/{}", patient.as_uuid());
        if let Err(e) = files.delete_prefix(&prefix).await {
            tracing::warn!(error = %e, folder, "an erased patient's files could not be removed");
        }
    }
    Ok(Erasure { request, erased })
}
