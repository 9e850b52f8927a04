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

/// Opens a grant for the transaction's facility, lasting `duration` from now. Its reason must
/// be given with [`give_reason`] in the same transaction (the patient's key only becomes
/// readable once the grant exists), and the patient identified with [`confirm_identified`]
/// before it (the database refuses the grant otherwise). A patient that does not exist is
/// `MissingReference`.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id, patient = %patient, opened_by = %opened_by))]
pub async fn open(
    tx: &mut ScopedTx,
    id: Uuid,
    patient: PatientId,
    opened_by: StaffId,
    duration: time::Duration,
) -> Result<StoredGrant, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let row: Row = sqlx::query_as!(
        Row,
        "INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING id, facility_id, patient_id, opened_by, reason_enc, opened_at, expires_at,
                   ended_at, reviewed_at, reviewed_by_facility",
        id,
        facility.as_uuid(),
        patient.as_uuid(),
        opened_by.as_uuid(),
        duration.as_seconds_f64(),
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// Stores the (encrypted) reason of a grant just opened.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn give_reason(tx: &mut ScopedTx, id: Uuid, reason_enc: &[u8]) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE emergency_grants SET reason_enc = $2 WHERE id = $1 AND reason_enc IS NULL",
        id,
        reason_enc
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// One grant, if visible (the opening facility's, or one on a patient this facility shares).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: Uuid) -> Result<StoredGrant, StoreError> {
    let row: Row = sqlx::query_as!(
        Row,
        "SELECT id, facility_id, patient_id, opened_by,
            reason_enc, opened_at, expires_at, ended_at, reviewed_at, reviewed_by_facility
            FROM emergency_grants WHERE id = $1",
        id
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// The grants this facility opened and the grants on patients it shares, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn visible(tx: &mut ScopedTx, limit: i64) -> Result<Vec<StoredGrant>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "SELECT id, facility_id, patient_id,
            opened_by, reason_enc, opened_at, expires_at, ended_at, reviewed_at,
            reviewed_by_facility FROM emergency_grants ORDER BY opened_at DESC LIMIT $1",
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Ends the transaction's facility's open grant early.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn end(tx: &mut ScopedTx, id: Uuid) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let done = sqlx::query!(
        "UPDATE emergency_grants SET ended_at = now()
          WHERE id = $1 AND facility_id = $2 AND ended_at IS NULL AND expires_at > now()",
        id,
        facility.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Marks a grant on a patient this facility shares as reviewed.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id, by = %by))]
pub async fn review(tx: &mut ScopedTx, id: Uuid, by: StaffId) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let done = sqlx::query!(
        "UPDATE emergency_grants
            SET reviewed_at = now(), reviewed_by = $2, reviewed_by_facility = $3
          WHERE id = $1 AND facility_id <> $3 AND reviewed_at IS NULL",
        id,
        by.as_uuid(),
        facility.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

// Patient cards and emergency identification (table `patient_cards`,
// `emergency_identification_failures`; docs/adr/0018-break-glass-identification.md).

/// A patient's card as the registering facility reads it: the number still encrypted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCard {
    pub patient_id: Uuid,
    pub number_enc: Vec<u8>,
    /// Counted by the database at every re-issue; the number's associated data names it.
    pub revision: i64,
    pub issued_at: OffsetDateTime,
    pub issued_by: Option<Uuid>,
}

/// A card to store (a new one, or the replacement of a re-issue).
#[derive(Debug)]
pub struct NewCard<'a> {
    pub patient: PatientId,
    pub lookup: &'a [u8],
    pub birth_check: &'a [u8],
    pub number_enc: &'a [u8],
    /// The revision `number_enc` is bound to: 1 for a new card, the stored one plus one for a
    /// re-issue (the database counts it and refuses the write if they differ).
    pub revision: i64,
    /// `None` when the server issues it itself (patients registered before cards existed).
    pub issued_by: Option<StaffId>,
}

/// The card of a patient the transaction's facility registered, if it has one.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn card(tx: &mut ScopedTx, patient: PatientId) -> Result<Option<StoredCard>, StoreError> {
    Ok(sqlx::query_as!(
        StoredCard,
        "SELECT patient_id, number_enc, revision, issued_at, issued_by FROM patient_cards
          WHERE patient_id = $1",
        patient.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// Issues the card, or replaces its number (a re-issue: the old number stops working with this
/// commit, and the failures counted against it no longer lock the new one). Only the
/// registering facility may (row-level security).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn put_card(tx: &mut ScopedTx, card: &NewCard<'_>) -> Result<OffsetDateTime, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    // A re-issue replaces the revision it was bound after: a concurrent re-issue that got
    // there first leaves nothing to update (the caller gets a conflict, nothing is written).
    let issued = sqlx::query!(
        "INSERT INTO patient_cards (patient_id, facility_id, lookup, birth_check, number_enc,
                                    issued_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (patient_id) DO UPDATE
            SET lookup = EXCLUDED.lookup, birth_check = EXCLUDED.birth_check,
                number_enc = EXCLUDED.number_enc, issued_at = now(),
                issued_by = EXCLUDED.issued_by
          WHERE patient_cards.revision + 1 = $7
         RETURNING issued_at, revision",
        card.patient.as_uuid(),
        facility.as_uuid(),
        card.lookup,
        card.birth_check,
        card.number_enc,
        card.issued_by.map(|s| s.as_uuid()),
        card.revision,
    )
    .fetch_optional(tx.conn())
    .await?
    .map(|r| (r.issued_at, r.revision));
    match issued {
        Some((issued_at, revision)) if revision == card.revision => Ok(issued_at),
        _ => Err(StoreError::Conflict {
            constraint: "patient_cards_revision".into(),
        }),
    }
}

/// Replaces what confirms the card after the date of birth was corrected.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn set_birth_check(
    tx: &mut ScopedTx,
    patient: PatientId,
    birth_check: &[u8],
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE patient_cards SET birth_check = $2 WHERE patient_id = $1",
        patient.as_uuid(),
        birth_check
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Patients the transaction's facility registered that have no card yet.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn patients_without_card(
    tx: &mut ScopedTx,
    limit: i64,
) -> Result<Vec<PatientId>, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let ids: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT p.id FROM patients p
          WHERE p.facility_id = $1
            AND NOT EXISTS (SELECT FROM patient_cards c WHERE c.patient_id = p.id)
          ORDER BY p.id LIMIT $2",
        facility.as_uuid(),
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(ids.into_iter().map(PatientId::from_uuid).collect())
}

/// What the first step of an identification found (`emergency_identify`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Identified {
    /// The card's patient, unless the number names none or the card is locked.
    pub patient_id: Option<Uuid>,
    pub birth_check: Option<Vec<u8>>,
    /// Set when the asking facility is locked out: nothing was looked up.
    pub facility_locked_until: Option<OffsetDateTime>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn identify(tx: &mut ScopedTx, lookup: &[u8]) -> Result<Identified, StoreError> {
    Ok(sqlx::query_as!(
        Identified,
        "SELECT patient_id, birth_check, facility_locked_until FROM emergency_identify($1)",
        lookup
    )
    .fetch_one(tx.conn())
    .await?)
}

/// The database's own confirmation of an identification the server has just made
/// (`emergency_identified`): without it in the same transaction, [`open`] is refused. Returns
/// the card's patient.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn confirm_identified(
    tx: &mut ScopedTx,
    lookup: &[u8],
    birth_check: &[u8],
) -> Result<PatientId, StoreError> {
    let patient: Uuid = sqlx::query_scalar!(
        r#"SELECT emergency_identified($1, $2) AS "patient!""#,
        lookup,
        birth_check
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(PatientId::from_uuid(patient))
}

/// A failed identification as recorded (`emergency_identification_failed`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Failure {
    pub failure_id: i64,
    /// The patient whose card the number named, if any: never shown to the asking facility.
    pub patient_id: Option<Uuid>,
    pub registering_facility_id: Option<Uuid>,
    /// Failures on that card within the hour (since it was issued).
    pub card_failures: i32,
    /// Failures of the asking facility within the hour.
    pub facility_failures: i32,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn identification_failed(
    tx: &mut ScopedTx,
    lookup: &[u8],
) -> Result<Failure, StoreError> {
    Ok(sqlx::query_as!(
        Failure,
        r#"SELECT failure_id AS "failure_id!", patient_id, registering_facility_id,
                card_failures AS "card_failures!", facility_failures AS "facility_failures!"
           FROM emergency_identification_failed($1)"#,
        lookup
    )
    .fetch_one(tx.conn())
    .await?)
}

/// The transaction's facility's own failed identifications within the hour, and its lockout.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn identification_status(
    tx: &mut ScopedTx,
) -> Result<(i32, Option<OffsetDateTime>), StoreError> {
    let status = sqlx::query!(
        r#"SELECT failures AS "failures!", locked_until FROM emergency_identification_status()"#
    )
    .fetch_one(tx.conn())
    .await?;
    Ok((status.failures, status.locked_until))
}

/// A failed identification of one of the facility's patients' cards, as the registering
/// facility sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardFailure {
    pub patient_id: Uuid,
    /// The facility that tried, and who.
    pub facility_id: Uuid,
    pub staff_id: Uuid,
    pub attempted_at: OffsetDateTime,
    /// Failures on the card within the hour up to this one (5: the card locked here).
    pub within_hour: i64,
}

/// Failures on the cards of the facility's patients since `since` (counted since each card was
/// issued), newest first; `patient` narrows to one.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn card_failures(
    tx: &mut ScopedTx,
    patient: Option<PatientId>,
    since: OffsetDateTime,
    limit: i64,
) -> Result<Vec<CardFailure>, StoreError> {
    Ok(sqlx::query_as!(
        CardFailure,
        r#"SELECT patient_id AS "patient_id!", facility_id AS "facility_id!",
                staff_id AS "staff_id!", attempted_at AS "attempted_at!",
                within_hour AS "within_hour!" FROM (
             SELECT f.patient_id, f.requesting_facility_id AS facility_id, f.staff_id,
                    f.attempted_at,
                    count(*) OVER (PARTITION BY f.patient_id ORDER BY f.attempted_at
                                   RANGE BETWEEN interval '1 hour' PRECEDING AND CURRENT ROW)
                        AS within_hour
               FROM emergency_identification_failures f
               JOIN patient_cards c ON c.patient_id = f.patient_id
              WHERE f.attempted_at > c.issued_at
                AND ($1::uuid IS NULL OR f.patient_id = $1)) w
          WHERE attempted_at > $2
          ORDER BY attempted_at DESC LIMIT $3"#,
        patient.map(|p| p.as_uuid()),
        since,
        limit
    )
    .fetch_all(tx.conn())
    .await?)
}
