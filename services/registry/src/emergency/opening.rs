//! Opening a patient's notebook in an emergency: the patient identified by card number and
//! date of birth, failures counted and audited (and announced to the operators when they lock
//! a card or a facility), the grant opened with its reason sealed; and the asking facility's
//! own count of failures and lockout.

use renrakucho_core::{BirthDate, FacilityId, PatientId};
use renrakucho_keyring::blind_index::BlindIndexKey;
use renrakucho_keyring::Keyring;
use renrakucho_store::audit::Origin;
use renrakucho_store::emergency::{self, Identified, StoredGrant};
use renrakucho_store::{care_team, facilities, Database, ScopedTx};
use serde::Serialize;
use serde_json::json;
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{reason_binding, EmergencyGrant, EmergencyRequest, IDENTIFICATION_LIMIT};
use crate::audit::{record, refused};
use crate::{may, CareError, Permitted, StaffActor};

/// What a number that names no card is compared with: the same 32-byte comparison as for a
/// real card, against a value no check can equal (the result is also masked by "found").
const DECOY_CHECK: [u8; 32] = [0; 32];

/// Opens the notebook for the actor's facility.
///
/// `NotIdentified` when the number and the date of birth do not name a patient together —
/// whether the number is unknown, the date wrong or the card locked: the same answer, after
/// the same work. The failure is counted, audited in the asking facility's chain (without the
/// patient) and in the registering facility's (by the database). `Locked` when the asking
/// facility has failed too often within the hour (nothing is looked up); `Conflict` when the
/// facility already sees the patient.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn open_emergency(
    db: &Database,
    keyring: &Keyring,
    allowed: &Permitted<may::EmergencyOpen>,
    origin: &Origin,
    request: EmergencyRequest,
) -> Result<EmergencyGrant, CareError> {
    let who = StaffActor::from(allowed);
    let mut tx = db.begin(who.scope()).await?;
    let index = keyring.blind_index_key(&mut tx).await?;
    let lookup = index.card_lookup(request.card.canonical());
    let found = emergency::identify(&mut tx, &lookup).await?;
    if let Some(until) = found.facility_locked_until {
        refuse_locked_out(tx, who, origin, until).await?;
        return Err(CareError::Locked { until });
    }
    let (check, patient) = match_birth_date(&index, &found, &request.birth_date);
    let Some(patient) = patient else {
        refuse_unidentified(tx, who, origin, &lookup).await?;
        return Err(CareError::NotIdentified);
    };
    refuse_if_shared(&mut tx, patient).await?;
    // The database confirms the identification itself: it accepts a grant only after this.
    let confirmed = emergency::confirm_identified(&mut tx, &lookup, &check).await?;
    if confirmed != patient {
        return Err(CareError::NotIdentified);
    }
    let (id, grant) = open_grant(&mut tx, keyring, who, origin, patient, &request).await?;
    let name = facility_name(&mut tx, who.facility).await?;
    tx.commit().await?;
    Ok(opened_view(id, patient, who, name, &request, &grant))
}

/// Refuses an asking facility locked out after repeated failures; audited, nothing looked up.
async fn refuse_locked_out(
    tx: ScopedTx,
    who: StaffActor,
    origin: &Origin,
    until: OffsetDateTime,
) -> Result<(), CareError> {
    refused(
        tx,
        who,
        origin,
        "emergency.open",
        None,
        json!({ "why": "facility locked out after repeated failed identifications",
                "locked_until": until.unix_timestamp() }),
    )
    .await
}

/// Compares the date of birth with the card's check. Returns the check (for the database's
/// own confirmation) and the patient when both match.
///
/// The same work whether or not the number named a card: one keyed hash, one comparison of
/// 32 bytes in constant time, the outcome masked by whether a card was found.
fn match_birth_date(
    index: &BlindIndexKey,
    found: &Identified,
    birth_date: &BirthDate,
) -> ([u8; 32], Option<PatientId>) {
    let candidate = found.patient_id.unwrap_or(Uuid::nil());
    let check = index.birth_check(candidate, &birth_date.date().to_string());
    let stored = found.birth_check.as_deref().unwrap_or(&DECOY_CHECK);
    let same = stored.ct_eq(&check) & Choice::from(u8::from(found.patient_id.is_some()));
    let patient = match found.patient_id {
        Some(id) if bool::from(same) => Some(PatientId::from_uuid(id)),
        _ => None,
    };
    (check, patient)
}

/// Counts a failed identification, tells the operators when it locks a card or the facility,
/// and refuses (audited without the patient).
async fn refuse_unidentified(
    mut tx: ScopedTx,
    who: StaffActor,
    origin: &Origin,
    lookup: &[u8],
) -> Result<(), CareError> {
    let failure = emergency::identification_failed(&mut tx, lookup).await?;
    alert_operators(&mut tx, who, &failure).await?;
    refused(
        tx,
        who,
        origin,
        "emergency.open",
        None,
        json!({ "why": "no patient with this card number and date of birth",
                "failures_within_hour": failure.facility_failures }),
    )
    .await
}

/// `Conflict` when the facility already sees the patient: break-glass is for the others.
async fn refuse_if_shared(tx: &mut ScopedTx, patient: PatientId) -> Result<(), CareError> {
    let relations = care_team::own_relations(tx, patient).await?;
    if relations.iter().any(|r| r == "sharing") {
        return Err(CareError::Conflict(
            "この対象者の連絡帳はすでに閲覧できます / your facility already sees this patient's notebook".into(),
        ));
    }
    Ok(())
}

/// Opens the grant, seals its reason with the patient's key and audits the opening.
async fn open_grant(
    tx: &mut ScopedTx,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    request: &EmergencyRequest,
) -> Result<(Uuid, StoredGrant), CareError> {
    let id = Uuid::now_v7();
    let grant = emergency::open(tx, id, patient, who.staff, request.duration).await?;
    let reason_enc = keyring
        .encrypt(
            tx,
            &reason_binding(patient, id),
            request.reason.as_str().as_bytes(),
        )
        .await?;
    emergency::give_reason(tx, id, &reason_enc).await?;
    record(
        tx,
        who,
        origin,
        "emergency.open",
        Some(("patient", patient.as_uuid())),
        json!({ "grant": id, "expires_at": grant.expires_at.unix_timestamp() }),
    )
    .await?;
    Ok((id, grant))
}

/// The facility's name from the directory, for the grant's view.
async fn facility_name(
    tx: &mut ScopedTx,
    facility: FacilityId,
) -> Result<Option<String>, CareError> {
    Ok(facilities::directory(tx, Some(&[facility]), None)
        .await?
        .into_iter()
        .next()
        .map(|d| d.name))
}

/// The grant just opened, as the opening facility sees it.
fn opened_view(
    id: Uuid,
    patient: PatientId,
    who: StaffActor,
    facility_name: Option<String>,
    request: &EmergencyRequest,
    grant: &StoredGrant,
) -> EmergencyGrant {
    EmergencyGrant {
        id,
        patient,
        facility: who.facility,
        facility_name,
        opened_by: who.staff,
        reason: Some(request.reason.as_str().to_string()),
        reason_unreadable: false,
        opened_at: grant.opened_at,
        expires_at: grant.expires_at,
        ended_at: None,
        reviewed_at: None,
        open: true,
        ours: true,
    }
}

/// The platform's operators hear of a card locked by failures (someone is guessing a real
/// patient's date of birth) and of a facility locked out (someone is guessing numbers). IDs and
/// counts only.
async fn alert_operators(
    tx: &mut ScopedTx,
    who: StaffActor,
    failure: &emergency::Failure,
) -> Result<(), CareError> {
    if let (Some(patient), Some(registering)) =
        (failure.patient_id, failure.registering_facility_id)
    {
        if failure.card_failures == IDENTIFICATION_LIMIT {
            crate::alerts::raise(
                tx,
                "emergency_identification.card_locked",
                &format!("card:{patient}:{}", failure.failure_id),
                json!({ "patient": patient, "registering_facility": registering,
                        "requesting_facility": who.facility, "failures": failure.card_failures }),
            )
            .await?;
        }
    }
    if failure.facility_failures == IDENTIFICATION_LIMIT {
        crate::alerts::raise(
            tx,
            "emergency_identification.facility_locked",
            &format!("facility:{}:{}", who.facility, failure.failure_id),
            json!({ "facility": who.facility, "staff": who.staff,
                    "failures": failure.facility_failures }),
        )
        .await?;
    }
    Ok(())
}

/// The asking facility's own failed identifications within the hour and its lockout, as its
/// people (and its administrator) see them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusView)]
pub struct IdentificationStatus {
    pub failures_within_hour: i32,
    /// Failures within an hour that lock the facility.
    pub limit: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn identification_status(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
) -> Result<IdentificationStatus, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let (failures, locked_until) = emergency::identification_status(&mut tx).await?;
    record(
        &mut tx,
        who,
        origin,
        "emergency.status",
        None,
        json!({ "failures_within_hour": failures, "locked": locked_until.is_some() }),
    )
    .await?;
    tx.commit().await?;
    Ok(IdentificationStatus {
        failures_within_hour: failures,
        limit: IDENTIFICATION_LIMIT,
        locked_until,
    })
}
