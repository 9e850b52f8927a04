//! The care team: the facilities caring for a patient. A facility sharing the patient invites
//! another; that facility's administrator (or staff it allows) accepts or declines; a member
//! leaves; the registering facility removes members, cancels invitations and invites former
//! members again. The database derives who may see the patient from these rows and announces
//! every change, so every server process's authorizer follows.

use crate::{may, Authorized};
use renrakucho_core::{FacilityCode, FacilityId, FacilityKind, MemberMover, PatientId};
use renrakucho_store::audit::Origin;
use renrakucho_store::care_team::{self, AccessRow, MemberStatus, Membership};
use renrakucho_store::facilities::{self, DirectoryEntry};
use renrakucho_store::{patients, Database, Scope, ScopedTx};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::record;
use crate::{CareError, StaffActor};

/// A facility in a patient's care team, named from the public directory.
#[derive(Debug, Clone, Serialize)]
pub struct TeamMember {
    pub facility: FacilityId,
    /// Code, name and kind; `None` if the facility is no longer active.
    pub code: Option<String>,
    pub name: Option<String>,
    pub kind: Option<FacilityKind>,
    pub registering: bool,
    pub status: &'static str,
    pub status_ja: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub joined_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

/// An invitation waiting for the actor's facility.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub patient: PatientId,
    /// The facility that registered the patient.
    pub registering_facility: FacilityId,
    pub registering_facility_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
}

async fn named(tx: &mut ScopedTx, members: Vec<Membership>) -> Result<Vec<TeamMember>, CareError> {
    let ids: Vec<FacilityId> = members.iter().map(|m| m.facility).collect();
    let directory = facilities::directory(tx, Some(&ids), None).await?;
    let find = |id: FacilityId| directory.iter().find(|d| d.id == id);
    Ok(members
        .into_iter()
        .map(|m| {
            let entry = find(m.facility);
            TeamMember {
                facility: m.facility,
                code: entry.map(|e| e.code.clone()),
                name: entry.map(|e| e.name.clone()),
                kind: entry.map(|e| e.kind),
                registering: m.registering,
                status: m.status.as_str(),
                status_ja: m.status.label_ja(),
                invited_at: m.invited_at,
                joined_at: m.joined_at,
                ended_at: m.ended_at,
            }
        })
        .collect())
}

/// The care team, for a facility that sees the patient; the read is audited.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn care_team_of(
    db: &Database,
    allowed: &Authorized<may::CareTeamRead>,
    origin: &Origin,
) -> Result<Vec<TeamMember>, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let members = care_team::of_patient(&mut tx, patient).await?;
    let team = named(&mut tx, members).await?;
    record(
        &mut tx,
        who,
        origin,
        "care_team.read",
        Some(("patient", patient.as_uuid())),
        json!({ "members": team.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(team)
}

/// Invites the facility with `code` into the patient's care team. Consent already on file is
/// reused: the facility sees the patient as soon as it accepts (第12条 ただし書き).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn invite(
    db: &Database,
    allowed: &Authorized<may::CareTeamInvite>,
    origin: &Origin,
    code: &str,
) -> Result<TeamMember, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    // Parsed before the database sees it: a code of another shape names no facility anyway,
    // and a control character in it (a NUL) is the database's error, not a 422.
    let code = FacilityCode::parse(code)?;
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, patient).await?;
    let target: DirectoryEntry = facilities::directory(&mut tx, None, Some(code.as_str()))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            CareError::Conflict(
                "その施設コードの参加施設はありません / no participating facility has that code"
                    .into(),
            )
        })?;
    if target.id == who.facility {
        return Err(CareError::Conflict(
            "自施設を招待することはできません / a facility cannot invite itself".into(),
        ));
    }
    let existing = care_team::of_patient(&mut tx, patient)
        .await?
        .into_iter()
        .find(|m| m.facility == target.id);
    match existing.map(|m| m.status) {
        None => {
            care_team::invite(
                &mut tx,
                patient,
                stored.registering_facility,
                target.id,
                who.staff,
            )
            .await?
        }
        Some(MemberStatus::Active) => {
            return Err(CareError::Conflict(
                "この施設はすでにケアチームに参加しています / this facility is already in the care team".into(),
            ))
        }
        Some(MemberStatus::Invited) => {
            return Err(CareError::Conflict(
                "この施設はすでに招待中です / this facility has already been invited".into(),
            ))
        }
        Some(_) if stored.registering_facility != who.facility => {
            return Err(CareError::Conflict(
                "以前参加していた施設の再招待は、対象者を登録した施設が行います / only the registering facility can invite a former member again".into(),
            ))
        }
        Some(_) => care_team::invite_again(&mut tx, patient, target.id, who.staff).await?,
    }
    record(
        &mut tx,
        who,
        origin,
        "care_team.invite",
        Some(("patient", patient.as_uuid())),
        json!({ "facility": target.id.as_uuid() }),
    )
    .await?;
    let member = care_team::of_patient(&mut tx, patient)
        .await?
        .into_iter()
        .filter(|m| m.facility == target.id)
        .collect();
    let member = named(&mut tx, member).await?.into_iter().next();
    tx.commit().await?;
    member.ok_or(CareError::NotFound)
}

/// Invitations waiting for the actor's facility.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn pending_invitations(
    db: &Database,
    who: StaffActor,
) -> Result<Vec<Invitation>, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let pending = care_team::pending_invitations(&mut tx).await?;
    let ids: Vec<FacilityId> = pending.iter().map(|m| m.registering_facility).collect();
    let directory = facilities::directory(&mut tx, Some(&ids), None).await?;
    tx.commit().await?;
    Ok(pending
        .into_iter()
        .map(|m| Invitation {
            patient: m.patient,
            registering_facility: m.registering_facility,
            registering_facility_name: directory
                .iter()
                .find(|d| d.id == m.registering_facility)
                .map(|d| d.name.clone()),
            invited_at: m.invited_at,
        })
        .collect())
}

async fn change_own(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    from: MemberStatus,
    to: MemberStatus,
    action: &'static str,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    care_team::set_status(&mut tx, patient, who.facility, from, to).await?;
    record(
        &mut tx,
        who,
        origin,
        action,
        Some(("patient", patient.as_uuid())),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The invited facility accepts: from now on it sees the patient, if consent is on file.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn accept_invitation(
    db: &Database,
    allowed: &Authorized<may::CareTeamAccept>,
    origin: &Origin,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    change_own(
        db,
        who,
        origin,
        patient,
        MemberStatus::Invited,
        MemberStatus::Active,
        "care_team.accept",
    )
    .await
}

/// The invited facility declines.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn decline_invitation(
    db: &Database,
    allowed: &Authorized<may::CareTeamAccept>,
    origin: &Origin,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    change_own(
        db,
        who,
        origin,
        patient,
        MemberStatus::Invited,
        MemberStatus::Declined,
        "care_team.decline",
    )
    .await
}

/// The facility leaves the care team (the registering facility cannot).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn leave(
    db: &Database,
    allowed: &Authorized<may::CareTeamLeave>,
    origin: &Origin,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    change_own(
        db,
        who,
        origin,
        patient,
        MemberStatus::Active,
        MemberStatus::Left,
        "care_team.leave",
    )
    .await
}

/// The registering facility removes a member, or cancels an invitation.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient(), facility = %facility))]
pub async fn remove_member(
    db: &Database,
    allowed: &Authorized<may::CareTeamRemove>,
    origin: &Origin,
    facility: FacilityId,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, patient).await?;
    if stored.registering_facility != who.facility {
        return Err(CareError::NotFound);
    }
    let current = care_team::of_patient(&mut tx, patient)
        .await?
        .into_iter()
        .find(|m| m.facility == facility && !m.registering)
        .ok_or(CareError::NotFound)?;
    if !current
        .status
        .may_become_by(MemberStatus::Removed, MemberMover::Registering)
    {
        return Err(CareError::Conflict(
            "この施設は現在ケアチームに参加していません / this facility is not in the care team now".into(),
        ));
    }
    care_team::set_status(
        &mut tx,
        patient,
        facility,
        current.status,
        MemberStatus::Removed,
    )
    .await?;
    record(
        &mut tx,
        who,
        origin,
        "care_team.remove",
        Some(("patient", patient.as_uuid())),
        json!({ "facility": facility.as_uuid(), "was": current.status.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The relations the facility holds to the patient now (`registering`, `member`, `invited`,
/// `sharing`, `emergency`): nothing for a patient it has nothing to do with.
#[tracing::instrument(level = "debug", skip_all, fields(facility = %facility, patient = %patient))]
pub async fn relations_to(
    db: &Database,
    facility: FacilityId,
    patient: PatientId,
) -> Result<Vec<String>, CareError> {
    let mut tx = db.begin(Scope::Facility(facility)).await?;
    let relations = care_team::own_relations(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(relations)
}

/// Every facility's relations to patients (all, or one patient's), for the authorizer.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn access_rows(
    db: &Database,
    patient: Option<PatientId>,
) -> Result<Vec<AccessRow>, CareError> {
    let mut tx = db.begin(Scope::AccessSync).await?;
    let rows = care_team::access_rows(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The public directory of participating facilities (第16条).
#[tracing::instrument(level = "debug", skip_all, fields(facility = %facility))]
pub async fn directory(
    db: &Database,
    facility: FacilityId,
) -> Result<Vec<DirectoryEntry>, CareError> {
    let mut tx = db.begin(Scope::Facility(facility)).await?;
    let entries = facilities::directory(&mut tx, None, None).await?;
    tx.commit().await?;
    Ok(entries)
}
