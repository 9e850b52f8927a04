//! Consent (同意書, 第12条): recorded with who signed, when, the scope and a scan of the signed
//! form; withdrawn, never deleted. Recording a consent is what opens the notebook to the care
//! team's other facilities; a facility joining later reuses it (第12条 ただし書き).
//!
//! A withdrawal sticks (docs/adr/0014-consent-renewal.md): a consent recorded while the consent
//! is withdrawn is a *renewal*, which only the registering facility records, with the scan of
//! the newly signed form; no consent is signed before the latest withdrawal or in the future.
//! The database enforces the same rules (trigger `consents_admission`).

use crate::{may, Authorized};
use renrakucho_core::{FacilityId, InvalidValue, Lines, PatientId, StaffId};
use renrakucho_files::media::{Limits, Processed};
use renrakucho_files::FileStore;
use renrakucho_keyring::{Binding, KeyOwner, Keyring, OwnerKeys};
use renrakucho_store::audit::Origin;
use renrakucho_store::consents::{self, NewConsent, ScanRef, StoredConsent};
use renrakucho_store::{patients, Database, ScopedTx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::audit::record;
use crate::{CareError, StaffActor};

/// Who signed the consent form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    /// The patient.
    Patient,
    /// A family member, when the patient is a minor or cannot consent (第12条).
    Family { name: String, relation: String },
}

renrakucho_core::redacted_debug!(Signer);

impl Signer {
    /// A family signer, validated: name 1–100 characters, relation 1–30.
    pub fn family(name: &str, relation: &str) -> Result<Self, InvalidValue> {
        Ok(Signer::Family {
            name: short_text(name, "signer_name", 100, "署名者の氏名", Lines::One)?,
            relation: short_text(relation, "signer_relation", 30, "続柄", Lines::One)?,
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Signer::Patient => "patient",
            Signer::Family { .. } => "family",
        }
    }
}

/// A signer's name or relation (one line, something visible) or the scope (lines).
fn short_text(
    raw: &str,
    field: &'static str,
    max: usize,
    what: &str,
    lines: Lines,
) -> Result<String, InvalidValue> {
    let text = match lines {
        Lines::One => renrakucho_core::text::one_line(field, raw)?,
        Lines::Many => renrakucho_core::text::multi_line(field, raw)?,
    };
    let n = text.chars().count();
    if n == 0 || n > max {
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsentScope(String);

renrakucho_core::redacted_debug!(ConsentScope);

impl ConsentScope {
    /// The network's standard wording, when the form says nothing else.
    pub const STANDARD: &'static str =
        "在宅医療・介護の連携のため、ケアチームの施設間で連絡帳の情報を共有すること";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        short_text(raw, "scope", 500, "同意の範囲", Lines::Many).map(Self)
    }

    pub fn standard() -> Self {
        Self(Self::STANDARD.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed consent form to record.
#[derive(Clone)]
pub struct ConsentForm {
    pub signer: Signer,
    pub signed_on: Date,
    pub scope: ConsentScope,
}

renrakucho_core::redacted_debug!(ConsentForm);

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
#[derive(Clone)]
pub struct NewScan {
    pub bytes: Vec<u8>,
}

renrakucho_core::redacted_debug!(NewScan);

/// A consent, decrypted for a facility that may read it.
#[derive(Clone, Serialize)]
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
    /// Recorded after a withdrawal, reopening the notebook to the care team.
    pub renewal: bool,
}

renrakucho_core::redacted_debug!(Consent {
    id,
    collected_by,
    recorded_by,
    renewal
});

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

/// What recording a consent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub id: Uuid,
    /// It renewed a withdrawn consent.
    pub renewal: bool,
}

/// Why a renewal without the signed form's scan is refused (the application's check and the
/// database's, in the same words).
const RENEWAL_NEEDS_SCAN: &str = "同意の撤回後の再同意には、新たに署名された同意書のスキャンが必要です / a renewed consent needs the scan of the newly signed form";

fn japan_date(at: OffsetDateTime) -> Date {
    at.to_offset(time::macros::offset!(+9)).date()
}

/// Checks and cleans a consent's scan before anything is opened: a photo of the form keeps
/// none of the phone's metadata (the GPS position of the patient's home), and a file that only
/// starts like a picture is refused.
async fn clean_scan(who: StaffActor, scan: NewScan) -> Result<Processed, CareError> {
    if scan.bytes.len() > MAX_SCAN_BYTES {
        return Err(InvalidValue::new(
            "scan",
            "同意書のファイルが大きすぎます（20MBまで） / the scan is too large (20 MB at most)",
        )
        .into());
    }
    let limits = Limits {
        max_bytes: MAX_SCAN_BYTES,
        ..Limits::default()
    };
    crate::uploads::clean(who.staff, "scan", scan.bytes, limits).await
}

/// Whether `who`'s facility may record a consent for the patient now, and the patient's
/// registering facility: the registering facility or an active member (the insert's policy
/// checks it too; the registering facility is named in the membership, which a member without
/// consent sees). While the consent is withdrawn, only the registering facility, with a scan.
async fn may_record(
    tx: &mut ScopedTx,
    who: StaffActor,
    patient: PatientId,
    with_scan: bool,
) -> Result<FacilityId, CareError> {
    let membership = renrakucho_store::care_team::own(tx, patient)
        .await?
        .filter(|m| m.status == renrakucho_store::care_team::MemberStatus::Active)
        .ok_or(CareError::NotFound)?;
    let relations = renrakucho_store::care_team::own_relations(tx, patient).await?;
    let renewal = relations.iter().any(|r| r == "withdrawn");
    if renewal {
        if membership.registering_facility != who.facility {
            return Err(CareError::Forbidden(
                "同意の撤回後の再同意は、対象者を登録した施設だけが記録できます / only the registering facility can record a renewed consent after a withdrawal".into(),
            ));
        }
        if !with_scan {
            return Err(InvalidValue::new("scan", RENEWAL_NEEDS_SCAN).into());
        }
    }
    Ok(membership.registering_facility)
}

/// No consent is signed before the latest withdrawal (the registering facility and a sharing
/// member see every consent; anyone else is refused before or by the database).
async fn signed_after_withdrawal(
    tx: &mut ScopedTx,
    patient: PatientId,
    form: &ConsentForm,
) -> Result<(), CareError> {
    let latest_withdrawal = consents::of_patient(tx, patient)
        .await?
        .into_iter()
        .filter_map(|c| c.withdrawn_at)
        .max();
    if let Some(withdrawn) = latest_withdrawal.map(japan_date) {
        if form.signed_on < withdrawn {
            return Err(InvalidValue::new(
                "signed_on",
                format!(
                    "署名日が同意の撤回日（{withdrawn}）より前です。撤回後に署名された同意書の日付を入力してください / the signing date precedes the withdrawal of consent on {withdrawn}"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// Seals the cleaned scan with the patient's key and stores it (its thumbnail is not kept:
/// nothing shows one).
async fn store_scan(
    keys: &OwnerKeys,
    files: &FileStore,
    patient: PatientId,
    id: Uuid,
    scan: Processed,
) -> Result<ScanRef, CareError> {
    let sealed = keys.encrypt(&scan_binding(patient, id), &scan.bytes)?;
    let object = scan_object(patient, id);
    files.put(&object, sealed).await?;
    Ok(ScanRef {
        object,
        media_type: scan.kind.media_type().to_string(),
        size: scan.bytes.len() as i64,
    })
}

/// Records a signed consent, with its scan when given (a PDF, JPEG or PNG, told from its
/// content, and cleaned exactly like a notebook photo: decoded, turned upright and encoded
/// again without EXIF/GPS; a PDF checked as a PDF; what does not decode is refused with a 422
/// on `scan`). From then on, the care team's active members see the patient. While the consent
/// is withdrawn this is a renewal: the registering facility only, with the scan.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn record_consent(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    allowed: &Authorized<may::ConsentRecord>,
    origin: &Origin,
    form: ConsentForm,
    scan: Option<NewScan>,
) -> Result<Recorded, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    // Cleaned before anything is opened.
    let scan = match scan {
        Some(s) => Some(clean_scan(who, s).await?),
        None => None,
    };
    let mut tx = db.begin(who.scope()).await?;
    let registering_facility = may_record(&mut tx, who, patient, scan.is_some()).await?;
    signed_after_withdrawal(&mut tx, patient, &form).await?;
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
    let scan_ref = match scan {
        Some(scan) => Some(store_scan(&keys, files, patient, id, scan).await?),
        None => None,
    };
    let inserted = consents::insert(
        &mut tx,
        &NewConsent {
            id,
            patient,
            registering_facility,
            signer: form.signer.kind(),
            details_enc: &details_enc,
            signed_on: form.signed_on,
            scan: scan_ref.as_ref(),
            recorded_by: who.staff,
        },
    )
    .await;
    let stored_renewal = match inserted {
        Ok(renewal) => renewal,
        Err(e) => {
            if let Some(scan) = &scan_ref {
                // Nothing refers to it: do not leave it behind.
                let _ = files.delete(&scan.object).await;
            }
            return Err(refusal(e));
        }
    };
    record(
        &mut tx,
        who,
        origin,
        if stored_renewal {
            "consent.renew"
        } else {
            "consent.record"
        },
        Some(("patient", patient.as_uuid())),
        json!({ "consent": id, "signer": form.signer.kind(), "scan": scan_ref.is_some() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Recorded {
        id,
        renewal: stored_renewal,
    })
}

/// The database's own refusal of a consent, for the field it concerns (the checks above come
/// first; this covers a change that raced them).
fn refusal(e: renrakucho_store::StoreError) -> CareError {
    match &e {
        renrakucho_store::StoreError::Rule { constraint } if constraint == "consents_signed_on" => {
            InvalidValue::new(
                "signed_on",
                "署名日は最新の同意撤回日以降、今日までの日付にしてください / the signing date must lie between the latest withdrawal and today",
            )
            .into()
        }
        renrakucho_store::StoreError::Rule { constraint }
            if constraint == "consents_renewal_scan" =>
        {
            InvalidValue::new(
                "scan",
                RENEWAL_NEEDS_SCAN,
            )
            .into()
        }
        renrakucho_store::StoreError::Forbidden => CareError::Forbidden(
            "この同意を記録する権限がありません / you may not record this consent".into(),
        ),
        _ => e.into(),
    }
}

/// The patient's consents, decrypted (one whose details fail their integrity check is listed
/// as unreadable); the read is audited.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn consents_of(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::ConsentRead>,
    origin: &Origin,
) -> Result<Vec<crate::Listed<Consent>>, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let stored = consents::of_patient(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let mut found = Vec::with_capacity(stored.len());
    for c in stored {
        let id = c.id;
        let plain = keys
            .decrypt(&mut tx, &details_binding(patient, c.id), &c.details_enc)
            .await;
        let consent = match plain {
            Ok(plain) => Ok(decoded(c, &plain)?),
            Err(e) => Err(e.into()),
        };
        found.push(crate::unreadable::item(&mut tx, id, consent).await?);
    }
    record(
        &mut tx,
        who,
        origin,
        "consent.read",
        Some(("patient", patient.as_uuid())),
        json!({ "consents": found.len(), "unreadable": crate::unreadable::ids(&found) }),
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
        renewal: c.renewal,
    })
}

/// The scan of one consent form, decrypted: its media type and bytes. Audited.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient(), consent = %consent))]
pub async fn consent_scan(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    allowed: &Authorized<may::ConsentRead>,
    origin: &Origin,
    consent: Uuid,
) -> Result<(String, Vec<u8>), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
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
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn withdraw_consent(
    db: &Database,
    allowed: &Authorized<may::ConsentWithdraw>,
    origin: &Origin,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
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
