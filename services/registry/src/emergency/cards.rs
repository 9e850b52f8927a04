//! The patient's card: issued at registration (or re-issued) with a fresh random number,
//! stored by its keyed hash and encrypted with the patient's key; shown to the registering
//! facility with the failed identifications of the last day and the lock they put on it.

use rand::RngCore;
use renrakucho_core::{BirthDate, CardNumber, FacilityId, PatientId, PatientProfile, StaffId};
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_store::audit::{self as store_audit, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::emergency::{self, NewCard};
use renrakucho_store::{facilities, patients, Database, Scope, ScopedTx};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::IDENTIFICATION_LIMIT;
use crate::audit::record;
use crate::patients::{binding, text};
use crate::{may, Authorized, CareError, StaffActor};

/// Where a card number is stored: the patient's card, at its revision (one more at every
/// re-issue, so an earlier card's number put back into the row does not decrypt).
fn card_binding(patient: PatientId, revision: i64) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "patient_cards",
        column: "number_enc",
        row: patient.as_uuid(),
        version: crate::bound_version(revision),
    }
}

/// A failed identification of the patient's card, as the registering facility sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CardAttemptView)]
pub struct CardAttempt {
    pub facility: FacilityId,
    pub facility_name: Option<String>,
    pub staff: StaffId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The patient's card, for the registering facility to print, with the failed identifications
/// of the last day and the lock they put on it.
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CardView)]
pub struct PatientCard {
    pub patient: PatientId,
    /// As printed on the card: four groups of four characters.
    pub number: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    pub failures_within_hour: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
    pub recent_failures: Vec<CardAttempt>,
}

renrakucho_core::redacted_debug!(PatientCard { patient });

fn new_number() -> CardNumber {
    let mut bytes = [0u8; renrakucho_core::card::CARD_RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    CardNumber::from_random(bytes)
}

/// Issues (or re-issues) the patient's card in the transaction of the registering facility:
/// a fresh random number, stored by its keyed hash and encrypted with the patient's key.
pub(crate) async fn issue_card(
    tx: &mut ScopedTx,
    keyring: &Keyring,
    patient: PatientId,
    birth_date: BirthDate,
    issued_by: Option<StaffId>,
) -> Result<(CardNumber, OffsetDateTime), CareError> {
    let number = new_number();
    let revision = emergency::card(tx, patient)
        .await?
        .map_or(1, |card| card.revision + 1);
    let index = keyring.blind_index_key(tx).await?;
    let lookup = index.card_lookup(number.canonical());
    let check = index.birth_check(patient.as_uuid(), &birth_date.date().to_string());
    let number_enc = keyring
        .encrypt(
            tx,
            &card_binding(patient, revision),
            number.canonical().as_bytes(),
        )
        .await?;
    let issued_at = emergency::put_card(
        tx,
        &NewCard {
            patient,
            lookup: &lookup,
            birth_check: &check,
            number_enc: &number_enc,
            revision,
            issued_by,
        },
    )
    .await?;
    Ok((number, issued_at))
}

/// After the date of birth was corrected: the card confirms the new date.
pub(crate) async fn card_birth_changed(
    tx: &mut ScopedTx,
    keyring: &Keyring,
    patient: PatientId,
    birth_date: BirthDate,
) -> Result<(), CareError> {
    let index = keyring.blind_index_key(tx).await?;
    let check = index.birth_check(patient.as_uuid(), &birth_date.date().to_string());
    if !emergency::set_birth_check(tx, patient, &check).await? {
        issue_card(tx, keyring, patient, birth_date, None).await?;
    }
    Ok(())
}

async fn birth_date_of(
    tx: &mut ScopedTx,
    keyring: &Keyring,
    patient: PatientId,
) -> Result<(renrakucho_store::patients::StoredPatient, BirthDate), CareError> {
    let stored = patients::get(tx, patient).await?;
    let profile: PatientProfile = text(
        &keyring
            .decrypt(
                tx,
                &binding(patient, "profile_enc", stored.revision),
                &stored.profile_enc,
            )
            .await?,
        "profile",
    )?;
    Ok((stored, profile.birth_date))
}

async fn card_view(
    tx: &mut ScopedTx,
    patient: PatientId,
    number: CardNumber,
    issued_at: OffsetDateTime,
) -> Result<PatientCard, CareError> {
    let now = OffsetDateTime::now_utc();
    let failures =
        emergency::card_failures(tx, Some(patient), now - time::Duration::DAY, 100).await?;
    let hour_ago = now - time::Duration::HOUR;
    let within: Vec<&emergency::CardFailure> = failures
        .iter()
        .filter(|f| f.attempted_at > hour_ago)
        .collect();
    let locked_until = within
        .get(IDENTIFICATION_LIMIT as usize - 1)
        .map(|f| f.attempted_at + time::Duration::HOUR);
    let ids: Vec<FacilityId> = failures
        .iter()
        .map(|f| FacilityId::from_uuid(f.facility_id))
        .collect();
    let directory = facilities::directory(tx, Some(&ids), None).await?;
    Ok(PatientCard {
        patient,
        number: number.printed(),
        issued_at,
        failures_within_hour: within.len() as i64,
        locked_until,
        recent_failures: failures
            .iter()
            .map(|f| CardAttempt {
                facility: FacilityId::from_uuid(f.facility_id),
                facility_name: directory
                    .iter()
                    .find(|d| d.id.as_uuid() == f.facility_id)
                    .map(|d| d.name.clone()),
                staff: StaffId::from_uuid(f.staff_id),
                at: f.attempted_at,
            })
            .collect(),
    })
}

/// The patient's card, for the registering facility (anyone else: `NotFound`). A patient
/// registered before cards existed gets one now. Audited.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn patient_card(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::PatientRead>,
    origin: &Origin,
) -> Result<PatientCard, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, patient).await?;
    if stored.registering_facility != who.facility {
        return Err(CareError::NotFound);
    }
    let (number, issued_at) = match emergency::card(&mut tx, patient).await? {
        Some(card) => {
            let raw = keyring
                .decrypt(
                    &mut tx,
                    &card_binding(patient, card.revision),
                    &card.number_enc,
                )
                .await?;
            let number = std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| CardNumber::parse(s).ok())
                .ok_or_else(|| CareError::Corrupt("patient_cards.number_enc".into()))?;
            (number, card.issued_at)
        }
        None => {
            let (_, birth) = birth_date_of(&mut tx, keyring, patient).await?;
            issue_card(&mut tx, keyring, patient, birth, Some(who.staff)).await?
        }
    };
    let view = card_view(&mut tx, patient, number, issued_at).await?;
    record(
        &mut tx,
        who,
        origin,
        "patient.card_read",
        Some(("patient", patient.as_uuid())),
        json!({ "failures_within_hour": view.failures_within_hour }),
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// Re-issues the patient's card (the registering facility): a new number, the old one stops
/// working with this commit and the failures counted against it no longer lock the card.
/// Audited (never the number).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn reissue_card(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::PatientCardReissue>,
    origin: &Origin,
) -> Result<PatientCard, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let (stored, birth) = birth_date_of(&mut tx, keyring, patient).await?;
    if stored.registering_facility != who.facility {
        return Err(CareError::NotFound);
    }
    let had = emergency::card(&mut tx, patient).await?.is_some();
    let (number, issued_at) = issue_card(&mut tx, keyring, patient, birth, Some(who.staff)).await?;
    let view = card_view(&mut tx, patient, number, issued_at).await?;
    record(
        &mut tx,
        who,
        origin,
        "patient.card_reissue",
        Some(("patient", patient.as_uuid())),
        json!({ "replaced": had }),
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// Gives every patient without a card one (patients registered before cards existed), each
/// facility in its own scope, audited in its chain as the server's act. Run at start; returns
/// how many cards were issued.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn ensure_cards(db: &Database, keyring: &Keyring) -> Result<u64, CareError> {
    let mut tx = db.begin(Scope::Platform).await?;
    let all = facilities::list(&mut tx).await?;
    tx.commit().await?;
    let mut issued = 0;
    for facility in all {
        loop {
            let mut tx = db.begin(Scope::Facility(facility.id)).await?;
            let missing = emergency::patients_without_card(&mut tx, 100).await?;
            if missing.is_empty() {
                tx.commit().await?;
                break;
            }
            for patient in &missing {
                let (_, birth) = birth_date_of(&mut tx, keyring, *patient).await?;
                issue_card(&mut tx, keyring, *patient, birth, None).await?;
                store_audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: Actor::System,
                        action: "patient.card_issue",
                        outcome: Outcome::Success,
                        target: Some(("patient", patient.as_uuid())),
                        origin: &Origin::default(),
                        details: json!({ "reason": "patient registered before cards existed" }),
                    },
                )
                .await?;
            }
            issued += missing.len() as u64;
            tx.commit().await?;
        }
    }
    Ok(issued)
}
