//! A patient's notebook as a reference copy for a facility's own records (第15条: the shared
//! data is a reference; originals stay in each facility's records): as JSON, complete with every
//! version, and as the model the PDF is drawn from. Audited, with the format.

use renrakucho_core::PatientId;
use renrakucho_keyring::{KeyOwner, Keyring};
use renrakucho_registry::audit::{record, refused};
use renrakucho_registry::unreadable::{self, Listed};
use renrakucho_registry::{decrypt_identity, may, Authorized, CareError, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::{notebook, patients, Database};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entries::{version_view, views, EntryView, VersionView};

/// The patient as the copy names them.
#[derive(Clone, Serialize)]
pub struct ExportedPatient {
    pub id: PatientId,
    pub name: String,
    pub kana: String,
    pub birth_date: String,
    pub sex: String,
    pub care_level: String,
}

renrakucho_core::redacted_debug!(ExportedPatient { id });

/// An entry with all its versions.
#[derive(Clone, Serialize)]
pub struct ExportedEntry {
    #[serde(flatten)]
    pub entry: EntryView,
    pub versions: Vec<VersionView>,
}

renrakucho_core::redacted_debug!(ExportedEntry { entry });

/// The whole notebook as one facility may read it.
#[derive(Clone, Serialize)]
pub struct NotebookCopy {
    pub notice: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub patient: ExportedPatient,
    /// Oldest first, withdrawn entries included (with their reason).
    pub entries: Vec<ExportedEntry>,
}

renrakucho_core::redacted_debug!(NotebookCopy { patient });

/// The notebook's full copy; the export is audited with its format (`json` or `pdf`). When a
/// value fails its integrity check no copy is made: the refusal (409) names every unreadable
/// item (patient, entry or entry version ID), is audited and alerts the platform operators.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn export_notebook(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::NotebookRead>,
    origin: &Origin,
    format: &'static str,
) -> Result<NotebookCopy, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    // A copy is complete or not made: every value is decrypted, and the IDs of those that fail
    // their integrity check are gathered to name them all in the refusal.
    let mut broken = Vec::new();
    let head = decrypt_identity(&keys, &mut tx, &stored).await;
    let head = unreadable::item(&mut tx, patient.as_uuid(), head).await?;
    broken.extend(head.unreadable_id());
    let all = notebook::all(&mut tx, patient).await?;
    let entries = views(&mut tx, &keys, who.staff, all).await?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry = match entry {
            Listed::Readable(entry) => entry,
            Listed::Unreadable(u) => {
                broken.push(u.id);
                continue;
            }
        };
        let mut versions = Vec::new();
        for v in notebook::versions(&mut tx, patient, entry.id).await? {
            let row = v.id;
            let view = version_view(&mut tx, &keys, patient, v).await;
            match unreadable::item(&mut tx, row, view).await? {
                Listed::Readable(v) => versions.push(v),
                Listed::Unreadable(u) => broken.push(u.id),
            }
        }
        out.push(ExportedEntry { entry, versions });
    }
    let head = match head {
        Listed::Readable(head) if broken.is_empty() => head,
        _ => {
            let ids: Vec<String> = broken.iter().map(Uuid::to_string).collect();
            refused(
                tx,
                who,
                origin,
                "notebook.export",
                Some(("patient", patient.as_uuid())),
                json!({ "format": format, "unreadable": broken }),
            )
            .await?;
            return Err(CareError::Conflict(format!(
                "判読できない記録があるため写しを作成できません（記録ID: {ids}）。運用者に通知しました / the copy cannot be made: these records are unreadable (the platform operators were told): {ids}",
                ids = ids.join(", ")
            )));
        }
    };
    let (name, kana, profile) = head;
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
