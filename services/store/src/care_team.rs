//! Care-team memberships (table `care_team_members`), the registering facility included, and
//! the access relation they imply together with consent.

use renrakucho_core::{FacilityId, PatientId, StaffId};
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// Where a facility stands in a patient's care team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Invited,
    Active,
    Left,
    Removed,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Invited => "invited",
            MemberStatus::Active => "active",
            MemberStatus::Left => "left",
            MemberStatus::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "invited" => MemberStatus::Invited,
            "active" => MemberStatus::Active,
            "left" => MemberStatus::Left,
            "removed" => MemberStatus::Removed,
            other => {
                return Err(StoreError::Misconfigured(format!(
                    "unknown membership status {other:?}"
                )))
            }
        })
    }
}

/// One facility in one patient's care team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub patient: PatientId,
    pub registering_facility: FacilityId,
    pub facility: FacilityId,
    pub registering: bool,
    pub status: MemberStatus,
}

type Row = (Uuid, Uuid, Uuid, String, String);

fn membership(r: Row) -> Result<Membership, StoreError> {
    Ok(Membership {
        patient: PatientId::from_uuid(r.0),
        registering_facility: FacilityId::from_uuid(r.1),
        facility: FacilityId::from_uuid(r.2),
        registering: r.3 == "registering",
        status: MemberStatus::parse(&r.4)?,
    })
}

const COLUMNS: &str = "patient_id, registering_facility_id, facility_id, role, status";

/// The registering facility's own row, written with the patient.
pub async fn add_registering(tx: &mut ScopedTx, patient: PatientId) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query(
        "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id, role,
                                        status, joined_at)
         VALUES ($1, $2, $2, 'registering', 'active', now())",
    )
    .bind(patient.as_uuid())
    .bind(facility.as_uuid())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Invites `facility` (or invites it again after it left or was removed).
pub async fn invite(
    tx: &mut ScopedTx,
    patient: PatientId,
    registering_facility: FacilityId,
    facility: FacilityId,
    by: StaffId,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id, role,
                                        status, invited_by)
         VALUES ($1, $2, $3, 'member', 'invited', $4)
         ON CONFLICT (patient_id, facility_id) DO UPDATE
            SET status = 'invited', invited_by = $4, invited_at = now(), joined_at = NULL,
                ended_at = NULL
          WHERE care_team_members.status IN ('left', 'removed')",
    )
    .bind(patient.as_uuid())
    .bind(registering_facility.as_uuid())
    .bind(facility.as_uuid())
    .bind(by.as_uuid())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Moves the transaction's facility's membership from `from` to `to`. `NotFound` when it is
/// not in state `from`.
pub async fn set_own_status(
    tx: &mut ScopedTx,
    patient: PatientId,
    from: MemberStatus,
    to: MemberStatus,
) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    set_status(tx, patient, facility, from, to).await
}

/// Moves a facility's membership from `from` to `to` (the registering facility removing one).
pub async fn set_status(
    tx: &mut ScopedTx,
    patient: PatientId,
    facility: FacilityId,
    from: MemberStatus,
    to: MemberStatus,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE care_team_members
            SET status = $4,
                joined_at = CASE WHEN $4 = 'active' THEN now() ELSE joined_at END,
                ended_at = CASE WHEN $4 IN ('left', 'removed') THEN now() ELSE ended_at END
          WHERE patient_id = $1 AND facility_id = $2 AND status = $3 AND role = 'member'",
    )
    .bind(patient.as_uuid())
    .bind(facility.as_uuid())
    .bind(from.as_str())
    .bind(to.as_str())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// The memberships visible in this scope for one patient.
pub async fn of_patient(
    tx: &mut ScopedTx,
    patient: PatientId,
) -> Result<Vec<Membership>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM care_team_members WHERE patient_id = $1 ORDER BY invited_at"
    ))
    .bind(patient.as_uuid())
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(membership).collect()
}

/// Who may see which patient (access-sync scope): the registering facility, and active members
/// while consent is on file. `patient` narrows it to one patient.
pub async fn access_links(
    tx: &mut ScopedTx,
    patient: Option<PatientId>,
) -> Result<Vec<(FacilityId, PatientId)>, StoreError> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT m.facility_id, m.patient_id FROM care_team_members m
          WHERE ($1::uuid IS NULL OR m.patient_id = $1)
            AND m.status = 'active'
            AND (m.role = 'registering'
                 OR EXISTS (SELECT FROM consents c
                             WHERE c.patient_id = m.patient_id AND c.withdrawn_at IS NULL))",
    )
    .bind(patient.map(|p| p.as_uuid()))
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(f, p)| (FacilityId::from_uuid(f), PatientId::from_uuid(p)))
        .collect())
}

/// The LISTEN/NOTIFY channel on which access changes are announced; payload: the patient ID.
pub const ACCESS_CHANGES_CHANNEL: &str = "renrakucho_access_changes";

/// Announces (at commit) that who may see `patient` changed.
pub async fn notify_access_changed(
    tx: &mut ScopedTx,
    patient: PatientId,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ACCESS_CHANGES_CHANNEL)
        .bind(patient.as_uuid().to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}
