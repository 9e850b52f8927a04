//! Consents (table `consents`): recorded with the signer's details and scope encrypted and the
//! scan of the signed form named (the file itself is an encrypted object); withdrawn, never
//! deleted (except by a patient's deletion request, with everything else).

use renrakucho_core::{FacilityId, PatientId, StaffId};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// The stored scan of a signed consent form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRef {
    /// The object's name in the file store.
    pub object: String,
    pub media_type: String,
    pub size: i64,
}

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
    pub scan: Option<&'a ScanRef>,
    pub recorded_by: StaffId,
}

/// Inserts the consent; returns whether the database recorded it as a renewal (it decides:
/// a consent recorded while the consent is withdrawn).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewConsent<'_>) -> Result<bool, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let renewal = sqlx::query_scalar!(
        "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id, signer,
                               details_enc, signed_on, scan_object, scan_media_type, scan_size,
                               recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING renewal",
        new.id,
        new.patient.as_uuid(),
        new.registering_facility.as_uuid(),
        facility.as_uuid(),
        new.signer,
        new.details_enc,
        new.signed_on,
        new.scan.map(|s| s.object.as_str()),
        new.scan.map(|s| s.media_type.as_str()),
        new.scan.map(|s| s.size),
        new.recorded_by.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(renewal)
}

/// A consent as stored: the details still encrypted.
#[derive(Debug, Clone)]
pub struct StoredConsent {
    pub id: Uuid,
    pub patient: PatientId,
    /// The facility that collected the form.
    pub facility: FacilityId,
    pub signer: String,
    pub details_enc: Vec<u8>,
    pub signed_on: Date,
    pub scan: Option<ScanRef>,
    pub recorded_by: StaffId,
    pub recorded_at: OffsetDateTime,
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawn_by_facility: Option<FacilityId>,
    /// Recorded after a withdrawal (a renewal).
    pub renewal: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    patient_id: Uuid,
    facility_id: Uuid,
    signer: String,
    details_enc: Vec<u8>,
    signed_on: Date,
    scan_object: Option<String>,
    scan_media_type: Option<String>,
    scan_size: Option<i64>,
    recorded_by: Uuid,
    recorded_at: OffsetDateTime,
    withdrawn_at: Option<OffsetDateTime>,
    withdrawn_by_facility: Option<Uuid>,
    renewal: bool,
}

impl From<Row> for StoredConsent {
    fn from(r: Row) -> Self {
        let scan = match (r.scan_object, r.scan_media_type, r.scan_size) {
            (Some(object), Some(media_type), Some(size)) => Some(ScanRef {
                object,
                media_type,
                size,
            }),
            _ => None,
        };
        Self {
            id: r.id,
            patient: PatientId::from_uuid(r.patient_id),
            facility: FacilityId::from_uuid(r.facility_id),
            signer: r.signer,
            details_enc: r.details_enc,
            signed_on: r.signed_on,
            scan,
            recorded_by: StaffId::from_uuid(r.recorded_by),
            recorded_at: r.recorded_at,
            withdrawn_at: r.withdrawn_at,
            withdrawn_by_facility: r.withdrawn_by_facility.map(FacilityId::from_uuid),
            renewal: r.renewal,
        }
    }
}

/// The patient's consents visible in this scope, newest first.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn of_patient(
    tx: &mut ScopedTx,
    patient: PatientId,
) -> Result<Vec<StoredConsent>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "SELECT id, patient_id, facility_id, signer,
            details_enc, signed_on, scan_object, scan_media_type, scan_size, recorded_by,
            recorded_at, withdrawn_at, withdrawn_by_facility, renewal FROM consents WHERE
            patient_id = $1 ORDER BY recorded_at DESC",
        patient.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One consent of a patient, if visible.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, id = %id))]
pub async fn get(
    tx: &mut ScopedTx,
    patient: PatientId,
    id: Uuid,
) -> Result<StoredConsent, StoreError> {
    let row: Row = sqlx::query_as!(
        Row,
        "SELECT id, patient_id, facility_id, signer,
            details_enc, signed_on, scan_object, scan_media_type, scan_size, recorded_by,
            recorded_at, withdrawn_at, withdrawn_by_facility, renewal FROM consents WHERE
            patient_id = $1 AND id = $2",
        patient.as_uuid(),
        id
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// Whether a consent is on file (not withdrawn) for the patient, as this scope sees it.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn is_on_file(tx: &mut ScopedTx, patient: PatientId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT FROM consents WHERE patient_id = $1 AND
            withdrawn_at IS NULL) AS "on_file!""#,
        patient.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Withdraws every consent on file for the patient. Returns how many.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, by = %by))]
pub async fn withdraw_all(
    tx: &mut ScopedTx,
    patient: PatientId,
    by: StaffId,
) -> Result<u64, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let done = sqlx::query!(
        "UPDATE consents SET withdrawn_at = now(), withdrawn_by = $2, withdrawn_by_facility = $3
          WHERE patient_id = $1 AND withdrawn_at IS NULL",
        patient.as_uuid(),
        by.as_uuid(),
        facility.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// A consent change, as the care team's notifications show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentChange {
    pub patient_id: Uuid,
    /// `recorded`, `renewed` or `withdrawn`.
    pub kind: String,
    /// The facility that made it.
    pub facility_id: Uuid,
    pub changed_at: OffsetDateTime,
}

/// Consent changes made by other facilities since `since`, on patients whose care team the
/// transaction's facility belongs to (registering or active member), newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn changes_since(
    tx: &mut ScopedTx,
    since: OffsetDateTime,
    limit: i64,
) -> Result<Vec<ConsentChange>, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    Ok(sqlx::query_as!(
        ConsentChange,
        "SELECT patient_id, kind, facility_id, changed_at FROM consent_changes
          WHERE changed_at >= $1 AND facility_id <> $2
          ORDER BY changed_at DESC LIMIT $3",
        since,
        facility.as_uuid(),
        limit,
    )
    .fetch_all(tx.conn())
    .await?)
}
