//! Files attached to notebook entries (table `attachments`): the encrypted content lives in the
//! file store; here its encrypted name, type, size and where it is.

use renrakucho_core::{PatientId, StaffId};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct StoredAttachment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub entry_id: Option<Uuid>,
    pub facility_id: Uuid,
    pub uploaded_by: Uuid,
    pub media_type: String,
    pub size: i64,
    pub file_name_enc: Vec<u8>,
    pub object: String,
    pub thumbnail: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: OffsetDateTime,
}

/// A file uploaded by the transaction's facility, not yet attached to an entry.
#[derive(Debug)]
pub struct NewAttachment<'a> {
    pub id: Uuid,
    pub patient: PatientId,
    pub uploaded_by: StaffId,
    pub media_type: &'a str,
    pub size: i64,
    pub file_name_enc: &'a [u8],
    pub object: &'a str,
    pub thumbnail: Option<&'a str>,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewAttachment<'_>) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO attachments (id, patient_id, facility_id, uploaded_by, media_type, size,
                                  file_name_enc, object, thumbnail, width, height)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        new.id,
        new.patient.as_uuid(),
        facility.as_uuid(),
        new.uploaded_by.as_uuid(),
        new.media_type,
        new.size,
        new.file_name_enc,
        new.object,
        new.thumbnail,
        new.width,
        new.height,
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Attaches uploaded files to an entry. Returns how many were attached (files not uploaded by
/// this facility, for another patient or already attached are left alone).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, entry = %entry))]
pub async fn attach(
    tx: &mut ScopedTx,
    patient: PatientId,
    entry: Uuid,
    ids: &[Uuid],
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "UPDATE attachments SET entry_id = $2
          WHERE patient_id = $1 AND id = ANY($3) AND entry_id IS NULL",
        patient.as_uuid(),
        entry,
        ids,
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, id = %id))]
pub async fn get(
    tx: &mut ScopedTx,
    patient: PatientId,
    id: Uuid,
) -> Result<StoredAttachment, StoreError> {
    Ok(sqlx::query_as!(
        StoredAttachment,
        "SELECT id, patient_id, entry_id, facility_id, uploaded_by, media_type, size,
                file_name_enc, object, thumbnail, width, height, created_at
           FROM attachments WHERE patient_id = $1 AND id = $2",
        patient.as_uuid(),
        id,
    )
    .fetch_one(tx.conn())
    .await?)
}

/// The files of these entries.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn of_entries(
    tx: &mut ScopedTx,
    entries: &[Uuid],
) -> Result<Vec<StoredAttachment>, StoreError> {
    Ok(sqlx::query_as!(
        StoredAttachment,
        "SELECT id, patient_id, entry_id, facility_id, uploaded_by, media_type, size,
                file_name_enc, object, thumbnail, width, height, created_at
           FROM attachments WHERE entry_id = ANY($1) ORDER BY created_at",
        entries,
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Every file object stored for the patient that this scope sees (to remove after erasure).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn objects_of_patient(
    tx: &mut ScopedTx,
    patient: PatientId,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query!(
        "SELECT object, thumbnail FROM attachments WHERE patient_id = $1",
        patient.as_uuid(),
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .flat_map(|r| std::iter::once(r.object).chain(r.thumbnail))
        .collect())
}
