//! Emergency access (break-glass), as the Japanese guideline for medical information systems
//! asks: a doctor or nurse of a facility outside the care team opens a patient's notebook
//! read-only for a limited time after stating a reason. The patient is named by the number on
//! the patient's card (a random number of its own) and confirmed by the date of birth. Failed
//! identifications are counted in the database: five within an hour lock the asking facility
//! and the card; each is recorded in the registering facility's audit chain, and a locked card
//! is announced to it and to the platform's operators (docs/adr/0018). The care team sees every
//! grant at once and reviews it; the grant ends by itself.

use crate::{may, Authorized, Permitted};
use rand::RngCore;
use renrakucho_core::{
    BirthDate, CardNumber, FacilityId, InvalidValue, PatientId, PatientProfile, StaffId,
};
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_store::audit::{self as store_audit, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::emergency::{self, NewCard, StoredGrant};
use renrakucho_store::{care_team, facilities, patients, Database, Scope, ScopedTx};
use serde::Serialize;
use serde_json::json;
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{record, refused};
use crate::patients::{binding, text};
use crate::{CareError, StaffActor};

/// Failed identifications within an hour before the asking facility, or the card, is locked
/// (the database's rule, `private.identification_locked_until`, restated for messages).
pub const IDENTIFICATION_LIMIT: i32 = 5;

/// Why the notebook is opened, in the words of the person opening it (10–500 characters).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmergencyReason(String);

renrakucho_core::redacted_debug!(EmergencyReason);

impl EmergencyReason {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = renrakucho_core::text::multi_line("reason", raw)?;
        let n = text.chars().count();
        if !(10..=500).contains(&n) {
            return Err(InvalidValue::new(
                "reason",
                "緊急閲覧の理由を10〜500文字で具体的に入力してください / state the reason for emergency access in 10 to 500 characters",
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request to open a patient's notebook in an emergency.
#[derive(Clone)]
pub struct EmergencyRequest {
    /// The number on the patient's card.
    pub card: CardNumber,
    /// Confirms the number: a mistyped or guessed number with the wrong date opens nothing.
    pub birth_date: BirthDate,
    pub reason: EmergencyReason,
    /// How long the grant lasts (the server's setting, 24 hours by default).
    pub duration: time::Duration,
}

renrakucho_core::redacted_debug!(EmergencyRequest);

/// A grant, as the opening facility or the care team sees it.
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[schema(as = GrantView)]
pub struct EmergencyGrant {
    pub id: Uuid,
    pub patient: PatientId,
    /// The facility that opened the notebook, and its name from the directory.
    pub facility: FacilityId,
    pub facility_name: Option<String>,
    pub opened_by: StaffId,
    /// The reason, when this facility can still read it (the care team always can; the
    /// opening facility while its grant is open).
    pub reason: Option<String>,
    /// The reason is stored but failed its integrity check (ADR 0017).
    pub reason_unreadable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub reviewed_at: Option<OffsetDateTime>,
    pub open: bool,
    /// Opened by the asking facility (otherwise: a grant on one of its patients, to review).
    pub ours: bool,
}

renrakucho_core::redacted_debug!(EmergencyGrant {
    id,
    patient,
    facility,
    opened_by,
    open,
    ours
});

fn reason_binding(patient: PatientId, id: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "emergency_grants",
        column: "reason_enc",
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}

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
        refused(
            tx,
            who,
            origin,
            "emergency.open",
            None,
            json!({ "why": "facility locked out after repeated failed identifications",
                    "locked_until": until.unix_timestamp() }),
        )
        .await?;
        return Err(CareError::Locked { until });
    }
    // The same work whether or not the number named a card: one keyed hash, one comparison of
    // 32 bytes in constant time, the outcome masked by whether a card was found.
    let candidate = found.patient_id.unwrap_or(Uuid::nil());
    let check = index.birth_check(candidate, &request.birth_date.date().to_string());
    let stored = found.birth_check.as_deref().unwrap_or(&DECOY_CHECK);
    let same = stored.ct_eq(&check) & Choice::from(u8::from(found.patient_id.is_some()));
    let patient = match found.patient_id {
        Some(id) if bool::from(same) => PatientId::from_uuid(id),
        _ => {
            let failure = emergency::identification_failed(&mut tx, &lookup).await?;
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
            .await?;
            return Err(CareError::NotIdentified);
        }
    };
    let relations = care_team::own_relations(&mut tx, patient).await?;
    if relations.iter().any(|r| r == "sharing") {
        return Err(CareError::Conflict(
            "この対象者の連絡帳はすでに閲覧できます / your facility already sees this patient's notebook".into(),
        ));
    }
    // The database confirms the identification itself: it accepts a grant only after this.
    let confirmed = emergency::confirm_identified(&mut tx, &lookup, &check).await?;
    if confirmed != patient {
        return Err(CareError::NotIdentified);
    }
    let id = Uuid::now_v7();
    let grant = emergency::open(&mut tx, id, patient, who.staff, request.duration).await?;
    let reason_enc = keyring
        .encrypt(
            &mut tx,
            &reason_binding(patient, id),
            request.reason.as_str().as_bytes(),
        )
        .await?;
    emergency::give_reason(&mut tx, id, &reason_enc).await?;
    record(
        &mut tx,
        who,
        origin,
        "emergency.open",
        Some(("patient", patient.as_uuid())),
        json!({ "grant": id, "expires_at": grant.expires_at.unix_timestamp() }),
    )
    .await?;
    let name = facilities::directory(&mut tx, Some(&[who.facility]), None)
        .await?
        .into_iter()
        .next()
        .map(|d| d.name);
    tx.commit().await?;
    Ok(EmergencyGrant {
        id,
        patient,
        facility: who.facility,
        facility_name: name,
        opened_by: who.staff,
        reason: Some(request.reason.as_str().to_string()),
        reason_unreadable: false,
        opened_at: grant.opened_at,
        expires_at: grant.expires_at,
        ended_at: None,
        reviewed_at: None,
        open: true,
        ours: true,
    })
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
#[derive(Debug, Clone, Serialize)]
pub struct IdentificationStatus {
    pub failures_within_hour: i32,
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

// Cards ------------------------------------------------------------------------------------------

/// A failed identification of the patient's card, as the registering facility sees it.
#[derive(Debug, Clone, Serialize)]
pub struct CardAttempt {
    pub facility: FacilityId,
    pub facility_name: Option<String>,
    pub staff: StaffId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The patient's card, for the registering facility to print, with the failed identifications
/// of the last day and the lock they put on it.
#[derive(Clone, Serialize)]
pub struct PatientCard {
    pub patient: PatientId,
    /// As printed: four groups of four characters.
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

/// The grants the actor's facility opened and those on patients it shares, newest first.
/// A reason (clinical context about the patient) is decrypted only where the key is (the care
/// team; the opening facility while its grant is open) and `may_read_reason(patient, ours)`
/// says this person may read it. Audited (the list names patients).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn emergency_grants<Allowed>(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    limit: i64,
    may_read_reason: impl Fn(PatientId, bool) -> Allowed,
) -> Result<Vec<EmergencyGrant>, CareError>
where
    Allowed: std::future::Future<Output = bool>,
{
    let mut tx = db.begin(who.scope()).await?;
    let stored: Vec<StoredGrant> = emergency::visible(&mut tx, limit).await?;
    let ids: Vec<FacilityId> = stored.iter().map(|g| g.facility).collect();
    let directory = facilities::directory(&mut tx, Some(&ids), None).await?;
    let now = OffsetDateTime::now_utc();
    let mut grants = Vec::with_capacity(stored.len());
    for g in stored {
        // Readable where the patient's key is: to the care team, and to the opening facility
        // while the grant is open.
        let ours = g.facility == who.facility;
        let mut reason_unreadable = false;
        let reason = match &g.reason_enc {
            Some(sealed) if (!ours || g.is_open(now)) && may_read_reason(g.patient, ours).await => {
                let decrypted = keyring
                    .decrypt(&mut tx, &reason_binding(g.patient, g.id), sealed)
                    .await
                    .map_err(CareError::from)
                    .and_then(|b| {
                        String::from_utf8(b).map_err(|e| CareError::corrupt("reason", e))
                    });
                match decrypted {
                    Ok(text) => Some(text),
                    // One broken reason does not take the list down (ADR 0017): marked,
                    // logged once and alerted; an outage still fails the whole request.
                    Err(e) if crate::unreadable::report(&mut tx, &e).await? => {
                        reason_unreadable = true;
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        grants.push(EmergencyGrant {
            id: g.id,
            patient: g.patient,
            facility: g.facility,
            facility_name: directory
                .iter()
                .find(|d| d.id == g.facility)
                .map(|d| d.name.clone()),
            opened_by: g.opened_by,
            reason,
            reason_unreadable,
            opened_at: g.opened_at,
            expires_at: g.expires_at,
            ended_at: g.ended_at,
            reviewed_at: g.reviewed_at,
            open: g.is_open(now),
            ours,
        });
    }
    record(
        &mut tx,
        who,
        origin,
        "emergency.list",
        None,
        json!({ "grants": grants.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(grants)
}

/// The opening facility ends its grant before it runs out.
#[tracing::instrument(level = "debug", skip_all, fields(grant = %grant))]
pub async fn end_emergency(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    grant: Uuid,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = emergency::get(&mut tx, grant).await?;
    emergency::end(&mut tx, grant).await?;
    record(
        &mut tx,
        who,
        origin,
        "emergency.end",
        Some(("patient", stored.patient.as_uuid())),
        json!({ "grant": grant }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A facility of the care team marks a grant on its patient as reviewed.
#[tracing::instrument(level = "debug", skip_all, fields(grant = %grant))]
pub async fn review_emergency(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    grant: Uuid,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = emergency::get(&mut tx, grant).await?;
    if stored.facility == who.facility {
        return Err(CareError::Conflict(
            "自施設の緊急閲覧は、ケアチームの施設が確認します / a grant is reviewed by the care team, not by the facility that opened it".into(),
        ));
    }
    if stored.reviewed_at.is_some() {
        return Err(CareError::Conflict(
            "この緊急閲覧はすでに確認済みです / this grant has already been reviewed".into(),
        ));
    }
    emergency::review(&mut tx, grant, who.staff).await?;
    record(
        &mut tx,
        who,
        origin,
        "emergency.review",
        Some(("patient", stored.patient.as_uuid())),
        json!({ "grant": grant }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
