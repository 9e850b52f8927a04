//! Care-team memberships (table `care_team_members`), the registering facility included, and
//! the relation rows they imply (`patient_access`, derived by the database itself whenever a
//! membership, a consent or an emergency grant changes).

use renrakucho_core::{FacilityId, PatientId, StaffId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// Where a facility stands in a patient's care team, and the moves between (`core::states`).
pub use renrakucho_core::MemberStatus;

/// One facility in one patient's care team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub patient: PatientId,
    pub registering_facility: FacilityId,
    pub facility: FacilityId,
    pub registering: bool,
    pub status: MemberStatus,
    pub invited_at: OffsetDateTime,
    pub joined_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Row {
    patient_id: Uuid,
    registering_facility_id: Uuid,
    facility_id: Uuid,
    role: String,
    status: String,
    invited_at: OffsetDateTime,
    joined_at: Option<OffsetDateTime>,
    ended_at: Option<OffsetDateTime>,
}

fn membership(r: Row) -> Result<Membership, StoreError> {
    Ok(Membership {
        patient: PatientId::from_uuid(r.patient_id),
        registering_facility: FacilityId::from_uuid(r.registering_facility_id),
        facility: FacilityId::from_uuid(r.facility_id),
        registering: r.role == "registering",
        status: r.status.parse().map_err(|_| {
            StoreError::Misconfigured(format!("unknown membership status {:?}", r.status))
        })?,
        invited_at: r.invited_at,
        joined_at: r.joined_at,
        ended_at: r.ended_at,
    })
}

/// The registering facility's own row, written with the patient.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn add_registering(tx: &mut ScopedTx, patient: PatientId) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id, role,
                                        status, joined_at)
         VALUES ($1, $2, $2, 'registering', $3, now())",
        patient.as_uuid(),
        facility.as_uuid(),
        MemberStatus::Active.as_str(),
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Invites a facility that has never been in the team.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, registering_facility = %registering_facility, facility = %facility, by = %by))]
pub async fn invite(
    tx: &mut ScopedTx,
    patient: PatientId,
    registering_facility: FacilityId,
    facility: FacilityId,
    by: StaffId,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id, role,
                                        status, invited_by)
         VALUES ($1, $2, $3, 'member', $5, $4)",
        patient.as_uuid(),
        registering_facility.as_uuid(),
        facility.as_uuid(),
        by.as_uuid(),
        MemberStatus::INITIAL.as_str(),
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Invites again a facility that declined, left or was removed (the registering facility):
/// from any state that may become `invited`.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, facility = %facility, by = %by))]
pub async fn invite_again(
    tx: &mut ScopedTx,
    patient: PatientId,
    facility: FacilityId,
    by: StaffId,
) -> Result<(), StoreError> {
    let again = MemberStatus::Invited;
    let from: Vec<&str> = MemberStatus::ALL
        .iter()
        .filter(|s| s.may_become(again))
        .map(|s| s.as_str())
        .collect();
    let done = sqlx::query!(
        "UPDATE care_team_members
            SET status = $4, invited_by = $3, invited_at = now(), joined_at = NULL,
                ended_at = NULL
          WHERE patient_id = $1 AND facility_id = $2 AND status = ANY($5)",
        patient.as_uuid(),
        facility.as_uuid(),
        by.as_uuid(),
        again.as_str(),
        &from as &[&str],
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Moves a facility's membership from `from` to `to`; `NotFound` when it is not in state
/// `from` (or not visible). Which moves are allowed to whom, the database decides (a trigger).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, facility = %facility))]
pub async fn set_status(
    tx: &mut ScopedTx,
    patient: PatientId,
    facility: FacilityId,
    from: MemberStatus,
    to: MemberStatus,
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE care_team_members
            SET status = $4,
                joined_at = CASE WHEN $4 = 'active' THEN now() ELSE joined_at END,
                ended_at = CASE WHEN $4 IN ('declined', 'left', 'removed') THEN now()
                                ELSE ended_at END
          WHERE patient_id = $1 AND facility_id = $2 AND status = $3 AND role = 'member'",
        patient.as_uuid(),
        facility.as_uuid(),
        from.as_str(),
        to.as_str(),
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// The memberships of one patient visible in this scope: the whole team to a facility sharing
/// the patient (or holding an emergency grant), only its own row to anyone else.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn of_patient(
    tx: &mut ScopedTx,
    patient: PatientId,
) -> Result<Vec<Membership>, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT patient_id, registering_facility_id, facility_id, role, status, invited_at,
                joined_at, ended_at
           FROM care_team_members WHERE patient_id = $1
          ORDER BY role DESC, invited_at",
        patient.as_uuid(),
    )
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(membership).collect()
}

/// The transaction's facility's own membership of a patient, if any.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn own(tx: &mut ScopedTx, patient: PatientId) -> Result<Option<Membership>, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let row = sqlx::query_as!(
        Row,
        "SELECT patient_id, registering_facility_id, facility_id, role, status, invited_at,
                joined_at, ended_at
           FROM care_team_members WHERE patient_id = $1 AND facility_id = $2",
        patient.as_uuid(),
        facility.as_uuid(),
    )
    .fetch_optional(tx.conn())
    .await?;
    row.map(membership).transpose()
}

/// Invitations waiting for the transaction's facility, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn pending_invitations(tx: &mut ScopedTx) -> Result<Vec<Membership>, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let rows = sqlx::query_as!(
        Row,
        "SELECT patient_id, registering_facility_id, facility_id, role, status, invited_at,
                joined_at, ended_at
           FROM care_team_members
          WHERE facility_id = $1 AND status = 'invited' ORDER BY invited_at DESC",
        facility.as_uuid(),
    )
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(membership).collect()
}

/// One relation row of `patient_access`, as the authorizer loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRow {
    pub patient: PatientId,
    pub facility: FacilityId,
    /// `registering`, `member`, `invited`, `sharing` or `emergency`.
    pub relation: String,
    pub expires_at: Option<OffsetDateTime>,
}

/// The relation rows (access-sync scope): all of them, or one patient's. Expired emergency
/// rows are left out.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn access_rows(
    tx: &mut ScopedTx,
    patient: Option<PatientId>,
) -> Result<Vec<AccessRow>, StoreError> {
    let rows = sqlx::query!(
        "SELECT patient_id, facility_id, relation, expires_at FROM patient_access
          WHERE ($1::uuid IS NULL OR patient_id = $1)
            AND (expires_at IS NULL OR expires_at > now())",
        patient.map(|p| p.as_uuid()),
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AccessRow {
            patient: PatientId::from_uuid(r.patient_id),
            facility: FacilityId::from_uuid(r.facility_id),
            relation: r.relation,
            expires_at: r.expires_at,
        })
        .collect())
}

/// The relations the transaction's facility holds to a patient now.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn own_relations(
    tx: &mut ScopedTx,
    patient: PatientId,
) -> Result<Vec<String>, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    Ok(sqlx::query_scalar!(
        "SELECT relation FROM patient_access
          WHERE facility_id = $1 AND patient_id = $2
            AND (expires_at IS NULL OR expires_at > now())
          ORDER BY relation",
        facility.as_uuid(),
        patient.as_uuid(),
    )
    .fetch_all(tx.conn())
    .await?)
}
