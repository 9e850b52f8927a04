//! Patients (table `patients`) and their blind-index terms (`patient_name_terms`). Values
//! arrive and leave encrypted: this module never sees a name.

use renrakucho_core::{FacilityId, PatientId, StaffId};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// A patient row as stored: encrypted fields.
#[derive(Debug, Clone)]
pub struct StoredPatient {
    pub id: PatientId,
    pub registering_facility: FacilityId,
    pub name_enc: Vec<u8>,
    pub kana_enc: Vec<u8>,
    pub profile_enc: Vec<u8>,
    /// The revision of the encrypted fields (their associated data names it): 1 at
    /// registration, counted up by the database at every change.
    pub revision: i64,
    pub registered_by: StaffId,
    pub created_at: OffsetDateTime,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    facility_id: Uuid,
    name_enc: Vec<u8>,
    kana_enc: Vec<u8>,
    profile_enc: Vec<u8>,
    revision: i64,
    registered_by: Uuid,
    created_at: OffsetDateTime,
}

impl From<Row> for StoredPatient {
    fn from(r: Row) -> Self {
        Self {
            id: PatientId::from_uuid(r.id),
            registering_facility: FacilityId::from_uuid(r.facility_id),
            name_enc: r.name_enc,
            kana_enc: r.kana_enc,
            profile_enc: r.profile_enc,
            revision: r.revision,
            registered_by: StaffId::from_uuid(r.registered_by),
            created_at: r.created_at,
        }
    }
}

/// The revision of a newly registered patient's fields.
pub const FIRST_REVISION: i64 = 1;

/// A patient to store, registered by the transaction's facility.
#[derive(Debug)]
pub struct NewStoredPatient<'a> {
    pub id: PatientId,
    pub registered_by: StaffId,
    pub name_enc: &'a [u8],
    pub kana_enc: &'a [u8],
    pub profile_enc: &'a [u8],
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewStoredPatient<'_>) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO patients (id, facility_id, name_enc, kana_enc, profile_enc, registered_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
        new.id.as_uuid(),
        facility.as_uuid(),
        new.name_enc,
        new.kana_enc,
        new.profile_enc,
        new.registered_by.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Replaces the patient's search terms.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn set_terms(
    tx: &mut ScopedTx,
    patient: PatientId,
    terms: &[Vec<u8>],
) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "DELETE FROM patient_name_terms WHERE patient_id = $1",
        patient.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!(
        "INSERT INTO patient_name_terms (patient_id, facility_id, term)
         SELECT $1, $2, t FROM unnest($3::bytea[]) AS t ON CONFLICT DO NOTHING",
        patient.as_uuid(),
        facility.as_uuid(),
        terms
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// One patient, if visible in this scope (not visible and not existing are not told apart).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: PatientId) -> Result<StoredPatient, StoreError> {
    let row: Row = sqlx::query_as!(
        Row,
        "SELECT id, facility_id, name_enc, kana_enc,
            profile_enc, revision, registered_by, created_at FROM patients WHERE id = $1",
        id.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// Patients with a name or reading term equal to `term`, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_by_term(
    tx: &mut ScopedTx,
    term: &[u8],
    limit: i64,
) -> Result<Vec<StoredPatient>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "SELECT id, facility_id, name_enc, kana_enc,
            profile_enc, revision, registered_by, created_at FROM patients p
          WHERE p.id IN (SELECT a.patient_id FROM patient_access a
                          WHERE a.facility_id = (SELECT current_facility_id())
                            AND a.relation = ANY ('{sharing,emergency}')
                            AND (a.expires_at IS NULL OR a.expires_at > now()))
            AND EXISTS (SELECT FROM patient_name_terms t WHERE t.patient_id = p.id AND t.term = $1)
          ORDER BY p.created_at DESC LIMIT $2",
        term,
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The patients visible in this scope, newest first.
///
/// This and [`find_by_term`] name the facility's own access rows (a few hundred at most), so
/// that the statement starts from them rather than from every patient of the network:
/// row-level security alone shows the same patients, but only after reading the network's
/// patients one by one in date order until enough turned out to be visible (at a city,
/// thousands per page). Here the rows are materialized first, which measured faster under the
/// policies than leaving the order to the planner; the search, which its term narrows, is left
/// to the planner (docs/performance.md).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx, limit: i64) -> Result<Vec<StoredPatient>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "WITH visible AS MATERIALIZED (
             SELECT DISTINCT a.patient_id FROM patient_access a
              WHERE a.facility_id = (SELECT current_facility_id())
                AND a.relation = ANY ('{sharing,emergency}')
                AND (a.expires_at IS NULL OR a.expires_at > now()))
         SELECT p.id, p.facility_id, p.name_enc, p.kana_enc,
            p.profile_enc, p.revision, p.registered_by, p.created_at
           FROM visible v JOIN patients p ON p.id = v.patient_id
          ORDER BY p.created_at DESC LIMIT $1",
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Replaces the encrypted fields (the registering facility), if they are still at revision
/// `expected` (the values were encrypted for the next one, which the database counts). Returns
/// the new revision; a change saved meanwhile is a conflict on `patients_revision`.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn update(
    tx: &mut ScopedTx,
    id: PatientId,
    expected: i64,
    name_enc: &[u8],
    kana_enc: &[u8],
    profile_enc: &[u8],
) -> Result<i64, StoreError> {
    let revision: Option<i64> = sqlx::query_scalar!(
        "UPDATE patients SET name_enc = $2, kana_enc = $3, profile_enc = $4, updated_at = now()
          WHERE id = $1 AND revision = $5
         RETURNING revision",
        id.as_uuid(),
        name_enc,
        kana_enc,
        profile_enc,
        expected
    )
    .fetch_optional(tx.conn())
    .await?;
    match revision {
        Some(r) if r == expected + 1 => Ok(r),
        Some(_) => Err(StoreError::Misconfigured(
            "the patients_revision trigger did not count the change".into(),
        )),
        None => {
            get(tx, id).await?;
            Err(StoreError::Conflict {
                constraint: "patients_revision".into(),
            })
        }
    }
}
