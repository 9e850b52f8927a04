//! Deletion requests (第12条2–3, table `deletion_requests`) and the erasure that carries them
//! out: every row about the patient, in every facility, removed in the caller's transaction by
//! the database function `erase_patient`.

use renrakucho_core::{PatientId, StaffId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// Records a deletion request by the transaction's facility (which must share the patient).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id, patient = %patient, by = %by))]
pub async fn record(
    tx: &mut ScopedTx,
    id: Uuid,
    patient: PatientId,
    by: StaffId,
) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
         VALUES ($1, $2, $3, $4)",
        id,
        facility.as_uuid(),
        patient.as_uuid(),
        by.as_uuid(),
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Removes everything stored about the patient (the pending request must be recorded in this
/// transaction first). Returns how many rows of each kind went, by table.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn erase(tx: &mut ScopedTx, patient: PatientId) -> Result<serde_json::Value, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT erase_patient($1) AS "erased!""#,
        patient.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Marks the request carried out, with what was erased (counts only).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn complete(
    tx: &mut ScopedTx,
    id: Uuid,
    erased: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE deletion_requests SET completed_at = now(), erased = $2 WHERE id = $1",
        id,
        erased,
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A carried-out request, as the requesting facility sees it.
#[derive(Debug, Clone)]
pub struct DeletionRecord {
    pub id: Uuid,
    pub patient: PatientId,
    pub requested_by: StaffId,
    pub requested_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    pub erased: serde_json::Value,
}

/// The facility's deletion requests, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx, limit: i64) -> Result<Vec<DeletionRecord>, StoreError> {
    let rows = sqlx::query!(
        "SELECT id, patient_id, requested_by, requested_at, completed_at, erased
           FROM deletion_requests ORDER BY requested_at DESC LIMIT $1",
        limit,
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DeletionRecord {
            id: r.id,
            patient: PatientId::from_uuid(r.patient_id),
            requested_by: StaffId::from_uuid(r.requested_by),
            requested_at: r.requested_at,
            completed_at: r.completed_at,
            erased: r.erased,
        })
        .collect())
}
