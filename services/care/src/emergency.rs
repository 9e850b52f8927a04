//! Emergency access (break-glass), as the Japanese guideline for medical information systems
//! asks: a doctor or nurse of a facility outside the care team opens a patient's notebook
//! read-only for a limited time after stating a reason. The patient is named by the ID on the
//! patient's card and confirmed by the date of birth, so that nobody can find patients by
//! trying IDs. The care team sees every grant at once and reviews it; the grant ends by itself.

use renrakucho_core::{BirthDate, FacilityId, InvalidValue, PatientId, PatientProfile, StaffId};
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_store::audit::Origin;
use renrakucho_store::emergency::{self, StoredGrant};
use renrakucho_store::{care_team, facilities, patients, Database};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::audit::{record, refused};
use crate::patients::{binding, text};
use crate::{CareError, StaffActor};

/// Why the notebook is opened, in the words of the person opening it (10–500 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmergencyReason(String);

impl EmergencyReason {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text: String = raw.nfkc().collect::<String>().trim().to_string();
        let n = text.chars().count();
        if !(10..=500).contains(&n) || text.chars().any(|c| c.is_control() && c != '\n') {
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
#[derive(Debug, Clone)]
pub struct EmergencyRequest {
    /// The ID on the patient's card.
    pub patient: PatientId,
    /// Confirms the ID: a mistyped or guessed ID with the wrong date opens nothing.
    pub birth_date: BirthDate,
    pub reason: EmergencyReason,
    /// How long the grant lasts (the server's setting, 24 hours by default).
    pub duration: time::Duration,
}

/// A grant, as the opening facility or the care team sees it.
#[derive(Debug, Clone, Serialize)]
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

fn reason_binding(patient: PatientId, id: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "emergency_grants",
        column: "reason_enc",
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}

/// Opens the notebook for the actor's facility. `NotFound` when the ID and the date of birth
/// do not name a patient together (the attempt is audited as denied), `Conflict` when the
/// facility already sees the patient.
pub async fn open_emergency(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    request: EmergencyRequest,
) -> Result<EmergencyGrant, CareError> {
    let opened = try_open(db, keyring, who, origin, &request).await;
    if let Err(CareError::NotFound) = opened {
        refused(
            db.begin(who.scope()).await?,
            who,
            origin,
            "emergency.open",
            Some(("patient", request.patient.as_uuid())),
            json!({ "why": "no patient with this ID and date of birth" }),
        )
        .await?;
    }
    opened
}

async fn try_open(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    request: &EmergencyRequest,
) -> Result<EmergencyGrant, CareError> {
    let patient = request.patient;
    let mut tx = db.begin(who.scope()).await?;
    let relations = care_team::own_relations(&mut tx, patient).await?;
    if relations.iter().any(|r| r == "sharing") {
        return Err(CareError::Conflict(
            "この対象者の連絡帳はすでに閲覧できます / your facility already sees this patient's notebook".into(),
        ));
    }
    let id = Uuid::now_v7();
    let grant = emergency::open(&mut tx, id, patient, who.staff, request.duration).await?;
    // The grant makes the patient visible to this transaction: confirm the date of birth before
    // anything else is read. A mismatch rolls the grant back.
    let stored = patients::get(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let profile: PatientProfile = text(
        &keys
            .decrypt(
                &mut tx,
                &binding(patient, "profile_enc", stored.revision),
                &stored.profile_enc,
            )
            .await?,
        "profile",
    )?;
    if profile.birth_date != request.birth_date {
        return Err(CareError::NotFound);
    }
    let reason_enc = keys.encrypt(
        &reason_binding(patient, id),
        request.reason.as_str().as_bytes(),
    )?;
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
        opened_at: grant.opened_at,
        expires_at: grant.expires_at,
        ended_at: None,
        reviewed_at: None,
        open: true,
        ours: true,
    })
}

/// The grants the actor's facility opened and those on patients it shares, newest first.
/// A reason (clinical context about the patient) is decrypted only where the key is (the care
/// team; the opening facility while its grant is open) and `may_read_reason(patient, ours)`
/// says this person may read it. Audited (the list names patients).
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
        let reason = match &g.reason_enc {
            Some(sealed) if (!ours || g.is_open(now)) && may_read_reason(g.patient, ours).await => {
                keyring
                    .decrypt(&mut tx, &reason_binding(g.patient, g.id), sealed)
                    .await
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
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
