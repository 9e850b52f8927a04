//! Support requests (支援依頼, tables `support_requests` and `support_request_items`): one
//! facility asks another for a remote diagnosis, a second opinion or information, with the
//! entries and files it chooses.

use renrakucho_core::{FacilityId, PatientId, StaffId, SupportStatus};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct StoredRequest {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub to_facility_id: Uuid,
    pub kind: String,
    pub status: String,
    pub requested_by: Uuid,
    pub question_enc: Vec<u8>,
    pub summary_enc: Vec<u8>,
    pub answer_enc: Option<Vec<u8>>,
    pub answered_by_name: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug)]
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub patient: PatientId,
    pub to: FacilityId,
    pub kind: &'a str,
    pub requested_by: StaffId,
    pub question_enc: &'a [u8],
    pub summary_enc: &'a [u8],
    pub entries: &'a [Uuid],
    pub attachments: &'a [Uuid],
}

/// Sends a request with its items (the transaction's facility asks).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewRequest<'_>) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                       requested_by, question_enc, summary_enc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        new.id,
        new.patient.as_uuid(),
        facility.as_uuid(),
        new.to.as_uuid(),
        new.kind,
        new.requested_by.as_uuid(),
        new.question_enc,
        new.summary_enc
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!(
        "INSERT INTO support_request_items (request_id, patient_id, facility_id, entry_id)
         SELECT $1, $2, $3, e FROM unnest($4::uuid[]) AS e",
        new.id,
        new.patient.as_uuid(),
        facility.as_uuid(),
        new.entries
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!(
        "INSERT INTO support_request_items (request_id, patient_id, facility_id, attachment_id)
         SELECT $1, $2, $3, a FROM unnest($4::uuid[]) AS a",
        new.id,
        new.patient.as_uuid(),
        facility.as_uuid(),
        new.attachments
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: Uuid) -> Result<StoredRequest, StoreError> {
    Ok(sqlx::query_as!(
        StoredRequest,
        "SELECT id, patient_id, facility_id, to_facility_id,
            kind, status, requested_by, question_enc, summary_enc, answer_enc,
            answered_by_name, created_at, updated_at FROM support_requests WHERE id = $1",
        id
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Requests the facility sent or received, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn visible(tx: &mut ScopedTx, limit: i64) -> Result<Vec<StoredRequest>, StoreError> {
    Ok(sqlx::query_as!(
        StoredRequest,
        "SELECT id, patient_id, facility_id, to_facility_id,
            kind, status, requested_by, question_enc, summary_enc, answer_enc,
            answered_by_name, created_at, updated_at FROM support_requests ORDER BY
            created_at DESC LIMIT $1",
        limit
    )
    .fetch_all(tx.conn())
    .await?)
}

/// The entries and files a request names.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn items(tx: &mut ScopedTx, id: Uuid) -> Result<(Vec<Uuid>, Vec<Uuid>), StoreError> {
    let rows = sqlx::query!(
        "SELECT entry_id, attachment_id FROM support_request_items WHERE request_id = $1",
        id,
    )
    .fetch_all(tx.conn())
    .await?;
    Ok((
        rows.iter().filter_map(|r| r.entry_id).collect(),
        rows.iter().filter_map(|r| r.attachment_id).collect(),
    ))
}

/// Moves a request from `from` to `to` (the database decides who may).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn set_status(
    tx: &mut ScopedTx,
    id: Uuid,
    from: SupportStatus,
    to: SupportStatus,
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE support_requests SET status = $3, updated_at = now() WHERE id = $1 AND status = $2",
        id,
        from.as_str(),
        to.as_str()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Stores the answer (the asked facility, an accepted request).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id, by = %by))]
pub async fn answer(
    tx: &mut ScopedTx,
    id: Uuid,
    by: StaffId,
    by_name: &str,
    answer_enc: &[u8],
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE support_requests
            SET status = $6, answer_enc = $2, answered_by = $3, answered_by_name = $4,
                updated_at = now()
          WHERE id = $1 AND status = $5",
        id,
        answer_enc,
        by.as_uuid(),
        by_name,
        SupportStatus::Accepted.as_str(),
        SupportStatus::Answered.as_str()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}
