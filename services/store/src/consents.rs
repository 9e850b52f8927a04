//! Consents (table `consents`): recorded with the signer's details encrypted, withdrawn but
//! never deleted.

use renrakucho_core::{FacilityId, PatientId, StaffId};
use time::Date;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// A consent to record, collected by the transaction's facility.
#[derive(Debug)]
pub struct NewConsent<'a> {
    pub id: Uuid,
    pub patient: PatientId,
    pub registering_facility: FacilityId,
    /// `patient` or `family`.
    pub signer: &'static str,
    pub details_enc: &'a [u8],
    pub signed_on: Date,
    pub recorded_by: StaffId,
}

pub async fn insert(tx: &mut ScopedTx, new: &NewConsent<'_>) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query(
        "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id, signer,
                               details_enc, signed_on, recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.id)
    .bind(new.patient.as_uuid())
    .bind(new.registering_facility.as_uuid())
    .bind(facility.as_uuid())
    .bind(new.signer)
    .bind(new.details_enc)
    .bind(new.signed_on)
    .bind(new.recorded_by.as_uuid())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Whether a consent is on file (not withdrawn) for the patient, as this scope sees it.
pub async fn is_on_file(tx: &mut ScopedTx, patient: PatientId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM consents WHERE patient_id = $1 AND withdrawn_at IS NULL)",
    )
    .bind(patient.as_uuid())
    .fetch_one(tx.conn())
    .await?)
}

/// Withdraws every consent on file for the patient. Returns how many.
pub async fn withdraw_all(
    tx: &mut ScopedTx,
    patient: PatientId,
    by: StaffId,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE consents SET withdrawn_at = now(), withdrawn_by = $2
          WHERE patient_id = $1 AND withdrawn_at IS NULL",
    )
    .bind(patient.as_uuid())
    .bind(by.as_uuid())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}
