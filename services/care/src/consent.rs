//! Consent (同意書, 第12条): recorded with who signed, when, the scope and a scan of the signed
//! form; withdrawn, never deleted. Recording a consent is what opens the notebook to the care
//! team's other facilities; a facility joining later reuses it (第12条 ただし書き).

use renrakucho_core::{InvalidValue, PatientId, StaffId};
use renrakucho_files::{sniff, FileStore, MediaKind};
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_store::audit::Origin;
use renrakucho_store::consents::{self, NewConsent, ScanRef, StoredConsent};
use renrakucho_store::{patients, Database};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Date, OffsetDateTime};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::audit::record;
use crate::{CareError, StaffActor};

/// Who signed the consent form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    /// The patient.
    Patient,
    /// A family member, when the patient is a minor or cannot consent (第12条).
    Family { name: String, relation: String },
}

impl Signer {
    /// A family signer, validated: name 1–100 characters, relation 1–30.
    pub fn family(name: &str, relation: &str) -> Result<Self, InvalidValue> {
        Ok(Signer::Family {
            name: short_text(name, "signer_name", 100, "署名者の氏名")?,
            relation: short_text(relation, "signer_relation", 30, "続柄")?,
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Signer::Patient => "patient",
            Signer::Family { .. } => "family",
        }
    }
}

fn short_text(
    raw: &str,
    field: &'static str,
    max: usize,
    what: &str,
) -> Result<String, InvalidValue> {
    let text: String = raw.nfkc().collect::<String>().trim().to_string();
    let n = text.chars().count();
    if n == 0 || n > max || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(InvalidValue::new(
            field,
            format!(
                "{what}は1〜{max}文字で入力してください / {field} must be 1 to {max} characters"
            ),
        ));
    }
    Ok(text)
}

/// What the patient agreed to share, in the form's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsentScope(String);

impl ConsentScope {
    /// The network's standard wording, when the form says nothing else.
    pub const STANDARD: &'static str =
        "在宅医療・介護の連携のため、ケアチームの施設間で連絡帳の情報を共有すること";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        short_text(raw, "scope", 500, "同意の範囲").map(Self)
    }

    pub fn standard() -> Self {
        Self(Self::STANDARD.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed consent form to record.
#[derive(Debug, Clone)]
pub struct ConsentForm {
    pub signer: Signer,
    pub signed_on: Date,
    pub scope: ConsentScope,
}

impl ConsentForm {
    /// Checks the signing date: not in the future, not before 2000.
    pub fn check_date(signed_on: Date, today: Date) -> Result<Date, InvalidValue> {
        if signed_on > today || signed_on.year() < 2000 {
            return Err(InvalidValue::new(
                "signed_on",
                "署名日は2000年以降、今日までの日付で入力してください / the signing date must be between 2000 and today",
            ));
        }
        Ok(signed_on)
    }
}

/// A scan of the signed form as uploaded.
#[derive(Debug, Clone)]
pub struct NewScan {
    pub bytes: Vec<u8>,
}

/// A consent, decrypted for a facility that may read it.
#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    pub id: Uuid,
    pub signer: Signer,
    #[serde(with = "renrakucho_core::date_format")]
    pub signed_on: Date,
    pub scope: ConsentScope,
    /// The facility that collected the form.
    pub collected_by: renrakucho_core::FacilityId,
    pub recorded_by: StaffId,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// `application/pdf`, `image/jpeg` or `image/png`, when a scan was stored.
    pub scan_media_type: Option<String>,
    pub scan_size: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawn_by_facility: Option<renrakucho_core::FacilityId>,
}

/// The encrypted part of a consent.
#[derive(Serialize, Deserialize)]
struct Details {
    signer: Signer,
    scope: ConsentScope,
}

fn details_binding(patient: PatientId, id: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "consents",
        column: "details_enc",
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}

fn scan_binding(patient: PatientId, id: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "consents",
        column: "scan",
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}

fn scan_object(patient: PatientId, id: Uuid) -> String {
    format!("consents/{}/{}", patient.as_uuid(), id)
}

/// The largest scan accepted.
pub const MAX_SCAN_BYTES: usize = 20 * 1024 * 1024;

/// Records a signed consent, with its scan when given (a PDF, JPEG or PNG, told from its
/// content). From then on, the care team's active members see the patient.
#[allow(clippy::too_many_arguments)]
pub async fn record_consent(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    form: ConsentForm,
    scan: Option<NewScan>,
) -> Result<Uuid, CareError> {
    let scan_kind = match &scan {
        None => None,
        Some(s) if s.bytes.len() > MAX_SCAN_BYTES => {
            return Err(InvalidValue::new(
                "scan",
                "同意書のファイルが大きすぎます（20MBまで） / the scan is too large (20 MB at most)",
            )
            .into())
        }
        Some(s) => match sniff(&s.bytes) {
            Some(k @ (MediaKind::Pdf | MediaKind::Jpeg | MediaKind::Png)) => Some(k),
            _ => {
                return Err(InvalidValue::new(
                    "scan",
                    "同意書のファイルはPDF・JPEG・PNGのいずれかにしてください / the scan must be a PDF, JPEG or PNG file",
                )
                .into())
            }
        },
    };
    let mut tx = db.begin(who.scope()).await?;
    // Registering facility or active member (the insert's policy checks it too); the
    // registering facility is named in the membership, which a member without consent sees.
    let membership = renrakucho_store::care_team::own(&mut tx, patient)
        .await?
        .filter(|m| m.status == renrakucho_store::care_team::MemberStatus::Active)
        .ok_or(CareError::NotFound)?;
    let id = Uuid::now_v7();
    let details = serde_json::to_vec(&Details {
        signer: form.signer.clone(),
        scope: form.scope.clone(),
    })
    .expect("consent details serialise");
    // An active member sees the patient's key (not yet the patient) so that the form it
    // collected can be stored under it.
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let details_enc = keys.encrypt(&details_binding(patient, id), &details)?;
    let scan_ref = match (scan, scan_kind) {
        (Some(scan), Some(kind)) => {
            let sealed = keys.encrypt(&scan_binding(patient, id), &scan.bytes)?;
            let object = scan_object(patient, id);
            files.put(&object, sealed).await?;
            Some(ScanRef {
                object,
                media_type: kind.media_type().to_string(),
                size: scan.bytes.len() as i64,
            })
        }
        _ => None,
    };
    let inserted = consents::insert(
        &mut tx,
        &NewConsent {
            id,
            patient,
            registering_facility: membership.registering_facility,
            signer: form.signer.kind(),
            details_enc: &details_enc,
            signed_on: form.signed_on,
            scan: scan_ref.as_ref(),
            recorded_by: who.staff,
        },
    )
    .await;
    if let Err(e) = inserted {
        if let Some(scan) = &scan_ref {
            // Nothing refers to it: do not leave it behind.
            let _ = files.delete(&scan.object).await;
        }
        return Err(e.into());
    }
    record(
        &mut tx,
        who,
        origin,
        "consent.record",
        Some(("patient", patient.as_uuid())),
        json!({ "consent": id, "signer": form.signer.kind(), "scan": scan_ref.is_some() }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The patient's consents, decrypted; the read is audited.
pub async fn consents_of(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
) -> Result<Vec<Consent>, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let stored = consents::of_patient(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let mut found = Vec::with_capacity(stored.len());
    for c in stored {
        let plain = keys
            .decrypt(&mut tx, &details_binding(patient, c.id), &c.details_enc)
            .await?;
        found.push(decoded(c, &plain)?);
    }
    record(
        &mut tx,
        who,
        origin,
        "consent.read",
        Some(("patient", patient.as_uuid())),
        json!({ "consents": found.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(found)
}

fn decoded(c: StoredConsent, plain: &[u8]) -> Result<Consent, CareError> {
    let details: Details = serde_json::from_slice(plain)
        .map_err(|e| CareError::corrupt(format_args!("consent {}", c.id), e))?;
    Ok(Consent {
        id: c.id,
        signer: details.signer,
        signed_on: c.signed_on,
        scope: details.scope,
        collected_by: c.facility,
        recorded_by: c.recorded_by,
        recorded_at: c.recorded_at,
        scan_media_type: c.scan.as_ref().map(|s| s.media_type.clone()),
        scan_size: c.scan.as_ref().map(|s| s.size),
        withdrawn_at: c.withdrawn_at,
        withdrawn_by_facility: c.withdrawn_by_facility,
    })
}

/// The scan of one consent form, decrypted: its media type and bytes. Audited.
pub async fn consent_scan(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    consent: Uuid,
) -> Result<(String, Vec<u8>), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let stored = consents::get(&mut tx, patient, consent).await?;
    let scan = stored.scan.ok_or(CareError::NotFound)?;
    let sealed = files.get(&scan.object).await?;
    let bytes = keyring
        .decrypt(&mut tx, &scan_binding(patient, consent), &sealed)
        .await?;
    record(
        &mut tx,
        who,
        origin,
        "consent.scan.read",
        Some(("patient", patient.as_uuid())),
        json!({ "consent": consent }),
    )
    .await?;
    tx.commit().await?;
    Ok((scan.media_type, bytes))
}

/// Withdraws the consent: every facility but the registering one loses access at once.
pub async fn withdraw_consent(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let withdrawn = consents::withdraw_all(&mut tx, patient, who.staff).await?;
    if withdrawn == 0 {
        return Err(CareError::Conflict(
            "撤回できる同意がありません（同意が登録されていないか、すでに撤回されています） / there is no consent on file to withdraw".into(),
        ));
    }
    record(
        &mut tx,
        who,
        origin,
        "consent.withdraw",
        Some(("patient", patient.as_uuid())),
        json!({ "consents": withdrawn }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
