//! Emergency (break-glass) grants (table `emergency_grants`): a facility outside the care team
//! reads a patient's notebook for a limited time; the care team reviews every grant.

use renrakucho_core::{FacilityId, PatientId, StaffId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// A grant as stored: the reason still encrypted.
#[derive(Debug, Clone)]
pub struct StoredGrant {
    pub id: Uuid,
    /// The facility that opened the notebook.
    pub facility: FacilityId,
    pub patient: PatientId,
    pub opened_by: StaffId,
    pub reason_enc: Option<Vec<u8>>,
    pub opened_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub reviewed_at: Option<OffsetDateTime>,
    pub reviewed_by_facility: Option<FacilityId>,
}

impl StoredGrant {
    /// Whether the grant still opens the notebook at `now`.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.ended_at.is_none() && self.expires_at > now
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    facility_id: Uuid,
    patient_id: Uuid,
    opened_by: Uuid,
    reason_enc: Option<Vec<u8>>,
    opened_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    ended_at: Option<OffsetDateTime>,
    reviewed_at: Option<OffsetDateTime>,
    reviewed_by_facility: Option<Uuid>,
}

impl From<Row> for StoredGrant {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            facility: FacilityId::from_uuid(r.facility_id),
            patient: PatientId::from_uuid(r.patient_id),
            opened_by: StaffId::from_uuid(r.opened_by),
            reason_enc: r.reason_enc,
            opened_at: r.opened_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            reviewed_at: r.reviewed_at,
            reviewed_by_facility: r.reviewed_by_facility.map(FacilityId::from_uuid),
        }
    }
}

const COLUMNS: &str = "id, facility_id, patient_id, opened_by, reason_enc, opened_at, expires_at, \
                       ended_at, reviewed_at, reviewed_by_facility";

/// Opens a grant for the transaction's facility, lasting `duration` from now. Its reason must
/// be given with [`give_reason`] in the same transaction (the patient's key only becomes
/// readable once the grant exists). A patient that does not exist is `MissingReference`.
pub async fn open(
    tx: &mut ScopedTx,
    id: Uuid,
    patient: PatientId,
    opened_by: StaffId,
    duration: time::Duration,
) -> Result<StoredGrant, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(facility.as_uuid())
    .bind(patient.as_uuid())
    .bind(opened_by.as_uuid())
    .bind(duration.as_seconds_f64())
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// Stores the (encrypted) reason of a grant just opened.
pub async fn give_reason(tx: &mut ScopedTx, id: Uuid, reason_enc: &[u8]) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE emergency_grants SET reason_enc = $2 WHERE id = $1 AND reason_enc IS NULL",
    )
    .bind(id)
    .bind(reason_enc)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// One grant, if visible (the opening facility's, or one on a patient this facility shares).
pub async fn get(tx: &mut ScopedTx, id: Uuid) -> Result<StoredGrant, StoreError> {
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM emergency_grants WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// The grants this facility opened and the grants on patients it shares, newest first.
pub async fn visible(tx: &mut ScopedTx, limit: i64) -> Result<Vec<StoredGrant>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM emergency_grants ORDER BY opened_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Ends the transaction's facility's open grant early.
pub async fn end(tx: &mut ScopedTx, id: Uuid) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let done = sqlx::query(
        "UPDATE emergency_grants SET ended_at = now()
          WHERE id = $1 AND facility_id = $2 AND ended_at IS NULL AND expires_at > now()",
    )
    .bind(id)
    .bind(facility.as_uuid())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Marks a grant on a patient this facility shares as reviewed.
pub async fn review(tx: &mut ScopedTx, id: Uuid, by: StaffId) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let done = sqlx::query(
        "UPDATE emergency_grants
            SET reviewed_at = now(), reviewed_by = $2, reviewed_by_facility = $3
          WHERE id = $1 AND facility_id <> $3 AND reviewed_at IS NULL",
    )
    .bind(id)
    .bind(by.as_uuid())
    .bind(facility.as_uuid())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}
