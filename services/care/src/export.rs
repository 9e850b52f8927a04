//! A patient's notebook as a reference copy for a facility's own records (第15条: the shared
//! data is a reference; originals stay in each facility's records): as JSON, complete with every
//! version, and as the model the PDF is drawn from. Audited, with the format.

use renrakucho_core::PatientId;
use renrakucho_keyring::{KeyOwner, Keyring};
use renrakucho_store::audit::Origin;
use renrakucho_store::{notebook, patients, Database};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::record;
use crate::notebook::{views, EntryView, VersionView};
use crate::patients::{decrypt_name, text};
use crate::{CareError, StaffActor};

/// The patient as the copy names them.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedPatient {
    pub id: PatientId,
    pub name: String,
    pub kana: String,
    pub birth_date: String,
    pub sex: String,
    pub care_level: String,
}

/// An entry with all its versions.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedEntry {
    #[serde(flatten)]
    pub entry: EntryView,
    pub versions: Vec<VersionView>,
}

/// The whole notebook as one facility may read it.
#[derive(Debug, Clone, Serialize)]
pub struct NotebookCopy {
    pub notice: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub patient: ExportedPatient,
    /// Oldest first, withdrawn entries included (with their reason).
    pub entries: Vec<ExportedEntry>,
}

/// The notebook's full copy; the export is audited with its format (`json` or `pdf`).
pub async fn export_notebook(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    format: &'static str,
) -> Result<NotebookCopy, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let (name, kana) = decrypt_name(&keys, &mut tx, &stored).await?;
    let profile: renrakucho_core::PatientProfile = text(
        &keys
            .decrypt(
                &mut tx,
                &crate::patients::binding(patient, "profile_enc", stored.revision),
                &stored.profile_enc,
            )
            .await?,
        "profile",
    )?;
    let all = notebook::all(&mut tx, patient).await?;
    let entries = views(&mut tx, &keys, who.staff, all).await?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut versions = Vec::new();
        for v in notebook::versions(&mut tx, patient, entry.id).await? {
            let body = keys
                .decrypt(
                    &mut tx,
                    &crate::notebook::history_binding(patient, "body_enc", &v, &v.body_enc),
                    &v.body_enc,
                )
                .await?;
            let vitals = match &v.vitals_enc {
                Some(enc) => Some(
                    serde_json::from_slice::<renrakucho_core::Vitals>(
                        &keys
                            .decrypt(
                                &mut tx,
                                &crate::notebook::history_binding(patient, "vitals_enc", &v, enc),
                                enc,
                            )
                            .await?,
                    )
                    .map_err(|e| CareError::corrupt("vitals", e))?,
                ),
                None => None,
            };
            versions.push(VersionView {
                version: v.version,
                editor_name: v.edited_by_name,
                editor_facility: renrakucho_core::FacilityId::from_uuid(v.facility_id),
                edited_at: v.edited_at,
                category: v.category,
                priority: v.priority,
                body: String::from_utf8(body).map_err(|e| CareError::corrupt("body", e))?,
                vitals,
            });
        }
        out.push(ExportedEntry { entry, versions });
    }
    record(
        &mut tx,
        who,
        origin,
        "notebook.export",
        Some(("patient", patient.as_uuid())),
        json!({ "format": format, "entries": out.len() }),
    )
    .await?;
    tx.commit().await?;
    let date = time::macros::format_description!("[year]-[month]-[day]");
    Ok(NotebookCopy {
        notice: "参照用の写しです。原本は各施設の記録です（第15条） / A reference copy; the originals are each facility's own records",
        exported_at: OffsetDateTime::now_utc(),
        patient: ExportedPatient {
            id: patient,
            name: name.as_str().to_string(),
            kana: kana.as_str().to_string(),
            birth_date: profile.birth_date.date().format(&date).unwrap_or_default(),
            sex: profile.sex.label_ja().to_string(),
            care_level: profile.care_level.label_ja().to_string(),
        },
        entries: out,
    })
}
