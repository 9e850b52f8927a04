//! Stored entries and versions turned into what their readers see: decrypted with the patient's
//! keys, with their files, read marks and facility names; an entry whose value fails its
//! integrity check is listed as unreadable.

use std::collections::HashMap;

use renrakucho_core::{FacilityId, PatientId, StaffId, Vitals};
use renrakucho_keyring::OwnerKeys;
use renrakucho_registry::unreadable::{self, Listed};
use renrakucho_registry::CareError;
use renrakucho_store::notebook::{self, StoredEntry};
use renrakucho_store::{attachments, ScopedTx};
use uuid::Uuid;

use super::bindings::{
    body_binding, file_name_binding, history_binding, reason_binding, vitals_binding,
};
use super::views::{AttachmentLine, EntryView, VersionView};
use crate::directory;

pub(crate) fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, CareError> {
    String::from_utf8(bytes).map_err(|e| CareError::corrupt(what, e))
}

/// What a page already knows of an entry besides the entry: whether the reader read it, its
/// files (names still encrypted).
pub(crate) struct Extras {
    read: bool,
    files: Vec<FileRow>,
}

/// A file of an entry before decryption: ID, media type, size, thumbnail?, encrypted name.
type FileRow = (Uuid, String, i64, bool, Vec<u8>);

/// Decrypts stored entries for people who may read them, fetching their files and read marks;
/// an entry that fails its integrity check is listed as unreadable.
pub(crate) async fn views(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    stored: Vec<StoredEntry>,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    let rows = with_extras(tx, reader, stored).await?;
    build_views(tx, keys, reader, rows).await
}

/// Decrypts one entry read on its own: an integrity failure is the error (see
/// [`unreadable::refuse`]).
pub(crate) async fn view_one(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    stored: StoredEntry,
) -> Result<EntryView, CareError> {
    let (e, extras) = with_extras(tx, reader, vec![stored])
        .await?
        .pop()
        .ok_or(CareError::NotFound)?;
    let facility = FacilityId::from_uuid(e.facility_id);
    let facility_name = directory::names(tx, &[facility]).await?.remove(&facility);
    build_view(tx, keys, reader, e, extras, facility_name).await
}

/// Stored entries with their files and the reader's read marks.
async fn with_extras(
    tx: &mut ScopedTx,
    reader: StaffId,
    stored: Vec<StoredEntry>,
) -> Result<Vec<(StoredEntry, Extras)>, CareError> {
    let ids: Vec<Uuid> = stored.iter().map(|e| e.id).collect();
    let files = attachments::of_entries(tx, &ids).await?;
    let read: std::collections::HashSet<Uuid> = notebook::read_by(tx, reader, &ids)
        .await?
        .into_iter()
        .collect();
    let mut by_entry: HashMap<Uuid, Vec<FileRow>> = HashMap::new();
    for f in files {
        if let Some(entry) = f.entry_id {
            by_entry.entry(entry).or_default().push((
                f.id,
                f.media_type,
                f.size,
                f.thumbnail.is_some(),
                f.file_name_enc,
            ));
        }
    }
    let rows = stored
        .into_iter()
        .map(|e| {
            let extras = Extras {
                read: read.contains(&e.id),
                files: by_entry.remove(&e.id).unwrap_or_default(),
            };
            (e, extras)
        })
        .collect();
    Ok(rows)
}

/// Decrypts a timeline page (read marks and files came with it).
pub(crate) async fn page_views(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    rows: Vec<notebook::PageRow>,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    use base64::Engine;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut files = Vec::with_capacity(r.files.0.len());
        for f in r.files.0 {
            let name = base64::engine::general_purpose::STANDARD
                .decode(&f.name)
                .map_err(|e| CareError::corrupt("file name", e))?;
            files.push((f.id, f.media_type, f.size, f.thumbnail, name));
        }
        out.push((
            r.entry,
            Extras {
                read: r.read,
                files,
            },
        ));
    }
    build_views(tx, keys, reader, out).await
}

async fn build_views(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    rows: Vec<(StoredEntry, Extras)>,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    let facility_ids: Vec<FacilityId> = rows
        .iter()
        .map(|(e, _)| FacilityId::from_uuid(e.facility_id))
        .collect();
    let names = directory::names(tx, &facility_ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (e, extras) in rows {
        let id = e.id;
        let facility_name = names.get(&FacilityId::from_uuid(e.facility_id)).cloned();
        let view = build_view(tx, keys, reader, e, extras, facility_name).await;
        out.push(unreadable::item(tx, id, view).await?);
    }
    Ok(out)
}

/// Decrypts one entry; its body, vitals, withdrawal reason and file names.
async fn build_view(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    e: StoredEntry,
    extras: Extras,
    facility_name: Option<String>,
) -> Result<EntryView, CareError> {
    let patient = PatientId::from_uuid(e.patient_id);
    let body = keys
        .decrypt(
            tx,
            &body_binding(patient, "entries", e.id, e.version),
            &e.body_enc,
        )
        .await?;
    let vitals = match &e.vitals_enc {
        Some(v) => Some(
            serde_json::from_slice::<Vitals>(
                &keys
                    .decrypt(tx, &vitals_binding(patient, "entries", e.id, e.version), v)
                    .await?,
            )
            .map_err(|err| CareError::corrupt("vitals", err))?,
        ),
        None => None,
    };
    let withdrawal_reason = match &e.withdrawal_reason_enc {
        Some(r) => Some(utf8(
            keys.decrypt(tx, &reason_binding(patient, e.id), r).await?,
            "reason",
        )?),
        None => None,
    };
    let mut attachments = Vec::with_capacity(extras.files.len());
    for (id, media_type, size, has_thumbnail, name_enc) in extras.files {
        let name = keys
            .decrypt(tx, &file_name_binding(patient, id), &name_enc)
            .await?;
        attachments.push(AttachmentLine {
            id,
            file_name: utf8(name, "file name")?,
            media_type,
            size,
            has_thumbnail,
        });
    }
    Ok(EntryView {
        id: e.id,
        patient,
        facility: FacilityId::from_uuid(e.facility_id),
        facility_name,
        author: StaffId::from_uuid(e.author_id),
        author_name: e.author_name,
        author_profession: e.author_profession,
        category: e
            .category
            .parse()
            .map_err(|err| CareError::corrupt("category", err))?,
        priority: e
            .priority
            .parse()
            .map_err(|err| CareError::corrupt("priority", err))?,
        body: utf8(body, "body")?,
        vitals,
        reply_to: e.reply_to,
        mentions: e.mentions.into_iter().map(FacilityId::from_uuid).collect(),
        version: e.version,
        created_at: e.created_at,
        updated_at: e.updated_at,
        attachments,
        read: extras.read || e.author_id == reader.as_uuid(),
        withdrawn_at: e.withdrawn_at,
        withdrawal_reason,
    })
}

/// Decrypts one stored version of an entry.
pub(crate) async fn version_view(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    patient: PatientId,
    v: notebook::StoredVersion,
) -> Result<VersionView, CareError> {
    let body = keys
        .decrypt(
            tx,
            &history_binding(patient, "body_enc", &v, &v.body_enc),
            &v.body_enc,
        )
        .await?;
    let vitals = match &v.vitals_enc {
        Some(enc) => Some(
            serde_json::from_slice::<Vitals>(
                &keys
                    .decrypt(tx, &history_binding(patient, "vitals_enc", &v, enc), enc)
                    .await?,
            )
            .map_err(|e| CareError::corrupt("vitals", e))?,
        ),
        None => None,
    };
    Ok(VersionView {
        version: v.version,
        editor_name: v.edited_by_name,
        editor_facility: FacilityId::from_uuid(v.facility_id),
        edited_at: v.edited_at,
        category: v.category,
        priority: v.priority,
        body: utf8(body, "body")?,
        vitals,
    })
}
