//! Files attached to the notebook (第13条: images and documents): photos and PDFs, the type
//! told from the content, photos re-encoded without their metadata (EXIF location included)
//! and turned upright, a thumbnail made; then encrypted with the patient's key and kept in the
//! file store. Downloads go through the same authorization as everything else.

use renrakucho_core::{InvalidValue, PatientId};
use renrakucho_files::media::Limits;
use renrakucho_files::FileStore;
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_registry::audit::record;
use renrakucho_registry::{may, Authorized, CareError, StaffActor};
use renrakucho_store::attachments::{self, NewAttachment};
use renrakucho_store::audit::Origin;
use renrakucho_store::{patients, Database};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::entries::file_name_binding;

fn content_binding(patient: PatientId, id: Uuid, thumbnail: bool) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "attachments",
        column: if thumbnail { "thumbnail" } else { "content" },
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}

fn object_name(patient: PatientId, id: Uuid, thumbnail: bool) -> String {
    let suffix = if thumbnail { ".thumb" } else { "" };
    format!("attachments/{}/{}{suffix}", patient.as_uuid(), id)
}

/// A file name as shown: the last path component, without control characters or invisible
/// ones (a right-to-left override would show `\u{202E}gnp.exe` as "exe.png"), 1–200
/// characters. No name becomes 「添付ファイル」; a name with nothing left to show is refused
/// (`file_name`), since whoever sent it meant something else.
fn file_name(raw: &str) -> Result<String, InvalidValue> {
    Ok(renrakucho_core::text::file_name(raw)?.unwrap_or_else(|| "添付ファイル".to_string()))
}

/// An uploaded file, not yet attached to an entry.
#[derive(Clone, Serialize)]
pub struct Uploaded {
    pub id: Uuid,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub has_thumbnail: bool,
}

renrakucho_core::redacted_debug!(Uploaded {
    id,
    media_type,
    size,
    has_thumbnail
});

/// A file as a person sent it: its name as given (cleaned before it is kept) and its bytes.
pub struct FileUpload<'a> {
    pub name: &'a str,
    pub bytes: Vec<u8>,
}

renrakucho_core::redacted_debug!(FileUpload<'_>);

/// Checks, cleans and stores a file for the patient's notebook (refused over `max_bytes`);
/// it is attached to the entry posted with it.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn upload_attachment(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    allowed: &Authorized<may::NotebookWrite>,
    origin: &Origin,
    upload: FileUpload<'_>,
    max_bytes: usize,
) -> Result<Uploaded, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let name = file_name(upload.name)?;
    let limits = Limits {
        max_bytes,
        ..Limits::default()
    };
    let processed =
        renrakucho_registry::uploads::clean(who.staff, "file", upload.bytes, limits).await?;
    let id = Uuid::now_v7();
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let sealed = keys.encrypt(&content_binding(patient, id, false), &processed.bytes)?;
    let object = object_name(patient, id, false);
    let thumbnail = match &processed.thumbnail {
        Some(t) => Some((
            object_name(patient, id, true),
            keys.encrypt(&content_binding(patient, id, true), t)?,
        )),
        None => None,
    };
    let file_name_enc = keys.encrypt(&file_name_binding(patient, id), name.as_bytes())?;
    files.put(&object, sealed).await?;
    if let Some((thumb_object, thumb)) = &thumbnail {
        files.put(thumb_object, thumb.clone()).await?;
    }
    let inserted = attachments::insert(
        &mut tx,
        &NewAttachment {
            id,
            patient,
            uploaded_by: who.staff,
            media_type: processed.kind.media_type(),
            size: processed.bytes.len() as i64,
            file_name_enc: &file_name_enc,
            object: &object,
            thumbnail: thumbnail.as_ref().map(|t| t.0.as_str()),
            width: processed.width.map(|w| w as i32),
            height: processed.height.map(|h| h as i32),
        },
    )
    .await;
    if let Err(e) = inserted {
        // Nothing refers to the stored files: do not leave them behind.
        let _ = files.delete(&object).await;
        if let Some((thumb_object, _)) = &thumbnail {
            let _ = files.delete(thumb_object).await;
        }
        return Err(e.into());
    }
    record(
        &mut tx,
        who,
        origin,
        "attachment.upload",
        Some(("patient", patient.as_uuid())),
        json!({ "attachment": id, "media_type": processed.kind.media_type(),
                "size": processed.bytes.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Uploaded {
        id,
        file_name: name,
        media_type: processed.kind.media_type().to_string(),
        size: processed.bytes.len() as i64,
        has_thumbnail: thumbnail.is_some(),
    })
}

/// A file to send back.
pub struct Download {
    pub media_type: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

renrakucho_core::redacted_debug!(Download { media_type });

/// A file of the notebook (or its thumbnail), decrypted for someone who may read it. Audited.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient(), id = %id))]
pub async fn attachment_content(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    allowed: &Authorized<may::AttachmentRead>,
    origin: &Origin,
    id: Uuid,
    thumbnail: bool,
) -> Result<Download, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = attachments::get(&mut tx, patient, id).await?;
    let object = if thumbnail {
        stored.thumbnail.clone().ok_or(CareError::NotFound)?
    } else {
        stored.object.clone()
    };
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let sealed = files.get(&object).await?;
    let bytes = keys
        .decrypt(&mut tx, &content_binding(patient, id, thumbnail), &sealed)
        .await?;
    let name = keys
        .decrypt(
            &mut tx,
            &file_name_binding(patient, id),
            &stored.file_name_enc,
        )
        .await?;
    record(
        &mut tx,
        who,
        origin,
        if thumbnail {
            "attachment.thumbnail"
        } else {
            "attachment.read"
        },
        Some(("patient", patient.as_uuid())),
        json!({ "attachment": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(Download {
        media_type: if thumbnail {
            "image/jpeg".to_string()
        } else {
            stored.media_type
        },
        file_name: String::from_utf8(name).map_err(|e| CareError::corrupt("file name", e))?,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_lose_paths_control_and_invisible_characters() {
        let name = |raw: &str| super::file_name(raw).unwrap();
        assert_eq!(name("C:\\Users\\me\\写真.jpg"), "写真.jpg");
        assert_eq!(name("../../etc/passwd"), "passwd");
        assert_eq!(name("a\u{0}b\nc.pdf"), "abc.pdf");
        assert_eq!(name("\u{202E}gnp.exe"), "gnp.exe");
        assert_eq!(name("  "), "添付ファイル");
        let refused = super::file_name("\u{202E}\u{200B}").unwrap_err();
        assert_eq!(refused.field, "file_name");
    }
}
