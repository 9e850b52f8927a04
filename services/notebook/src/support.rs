//! Support requests (支援依頼, 第13–14条): a staff member asks another facility, in the care team
//! or outside it, for a remote diagnosis, a second opinion or information, sending the entries
//! and files they choose and a summary of the patient they write themselves. Outside the care
//! team this needs the patient's consent on file. The asked facility accepts or declines and
//! answers; the answer is kept with the request; the asking facility decides what to do with it
//! (第14条) and closes the request.

use renrakucho_core::{
    FacilityId, InvalidValue, PatientId, SupportKind, SupportSide, SupportStatus,
};
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_registry::audit::record;
use renrakucho_registry::unreadable::{self, Listed};
use renrakucho_registry::{may, Authorized, CareError, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::support::{self, NewRequest, StoredRequest};
use renrakucho_store::{attachments, consents, facilities, notebook, patients, Database, ScopedTx};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entries::{views, Author, EntryView};

fn text(raw: &str, field: &'static str, max: usize, what: &str) -> Result<String, InvalidValue> {
    let t = renrakucho_core::text::multi_line(field, raw)?;
    let n = t.chars().count();
    if n == 0 || n > max {
        return Err(InvalidValue::new(
            field,
            format!(
                "{what}を1〜{max}文字で入力してください / {field} must be 1 to {max} characters"
            ),
        ));
    }
    Ok(t)
}

/// A support request to send.
#[derive(Clone)]
pub struct NewSupportRequest {
    /// The asked facility's code (from the directory).
    pub to_code: String,
    pub kind: SupportKind,
    pub question: String,
    /// What the asked facility learns about the patient (written by the asker: age, sex,
    /// history… the name only if they choose to).
    pub summary: String,
    pub entries: Vec<Uuid>,
    pub attachments: Vec<Uuid>,
}

renrakucho_core::redacted_debug!(NewSupportRequest {
    to_code,
    kind,
    entries,
    attachments
});

fn binding(patient: PatientId, column: &'static str, id: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "support_requests",
        column,
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}

/// Sends a support request.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %who.patient()))]
pub async fn send_support_request(
    db: &Database,
    keyring: &Keyring,
    who: &Author<may::SupportRequest>,
    origin: &Origin,
    new: NewSupportRequest,
) -> Result<Uuid, CareError> {
    let patient = who.patient();
    let (question, summary) = checked_texts(&new)?;
    let mut tx = db.begin(who.actor.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let to = asked_facility(&mut tx, who.actor, patient, &new.to_code).await?;
    check_shared_items(&mut tx, patient, &new.entries, &new.attachments).await?;
    let id = Uuid::now_v7();
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let question_enc = keys.encrypt(&binding(patient, "question_enc", id), question.as_bytes())?;
    let summary_enc = keys.encrypt(&binding(patient, "summary_enc", id), summary.as_bytes())?;
    support::insert(
        &mut tx,
        &NewRequest {
            id,
            patient,
            to,
            kind: new.kind.as_str(),
            requested_by: who.actor.staff,
            question_enc: &question_enc,
            summary_enc: &summary_enc,
            entries: &new.entries,
            attachments: &new.attachments,
        },
    )
    .await?;
    record(
        &mut tx,
        who.actor,
        origin,
        "support.request",
        Some(("patient", patient.as_uuid())),
        json!({ "request": id, "to": to.as_uuid(), "kind": new.kind.as_str(),
                "entries": new.entries.len(), "attachments": new.attachments.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The question and the summary, checked, and the number of entries and files to share.
fn checked_texts(new: &NewSupportRequest) -> Result<(String, String), CareError> {
    let question = text(&new.question, "question", 2000, "依頼内容")?;
    let summary = text(&new.summary, "summary", 2000, "対象者の概要")?;
    if new.entries.len() + new.attachments.len() > 50 {
        return Err(InvalidValue::new(
            "entries",
            "共有する記録とファイルは合わせて50件までです / at most 50 entries and files",
        )
        .into());
    }
    Ok((question, summary))
}

/// The asked facility, by its code in the directory: another participating facility, and
/// only with the patient's consent on file (第12条).
async fn asked_facility(
    tx: &mut ScopedTx,
    asker: StaffActor,
    patient: PatientId,
    to_code: &str,
) -> Result<FacilityId, CareError> {
    let to = facilities::directory(tx, None, Some(to_code.trim()))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            CareError::Conflict(
                "その施設コードの参加施設はありません / no participating facility has that code"
                    .into(),
            )
        })?;
    if to.id == asker.facility {
        return Err(CareError::Conflict(
            "自施設には依頼できません / a facility cannot ask itself".into(),
        ));
    }
    if !consents::is_on_file(tx, patient).await? {
        return Err(CareError::Conflict(
            "同意書が登録されていないため、他施設に情報を送れません（第12条） / without the patient's consent on file nothing can be sent to another facility".into(),
        ));
    }
    Ok(to.id)
}

/// The entries and files to share: in this patient's notebook, entries not withdrawn, files
/// attached to an entry.
async fn check_shared_items(
    tx: &mut ScopedTx,
    patient: PatientId,
    entries: &[Uuid],
    files: &[Uuid],
) -> Result<(), CareError> {
    for e in entries {
        let entry = notebook::get(tx, patient, *e).await.map_err(|_| {
            CareError::from(InvalidValue::new(
                "entries",
                "共有する記録がこの対象者の連絡帳にありません / an entry to share is not in this patient's notebook",
            ))
        })?;
        if entry.withdrawn_at.is_some() {
            return Err(InvalidValue::new(
                "entries",
                "取り下げられた記録は共有できません / a withdrawn entry cannot be shared",
            )
            .into());
        }
    }
    for a in files {
        let file = attachments::get(tx, patient, *a).await.map_err(|_| {
            CareError::from(InvalidValue::new(
                "attachments",
                "共有するファイルがこの対象者の連絡帳にありません / a file to share is not in this patient's notebook",
            ))
        })?;
        if file.entry_id.is_none() {
            return Err(InvalidValue::new(
                "attachments",
                "記録に添付されたファイルだけを共有できます / only files attached to an entry can be shared",
            )
            .into());
        }
    }
    Ok(())
}

fn status_of(stored: &StoredRequest) -> Result<SupportStatus, CareError> {
    stored
        .status
        .parse()
        .map_err(|e| CareError::corrupt("support request status", e))
}

/// A request in a list.
#[derive(Debug, Clone, Serialize)]
pub struct SupportLine {
    pub id: Uuid,
    pub patient: PatientId,
    pub from: FacilityId,
    pub from_name: Option<String>,
    pub to: FacilityId,
    pub to_name: Option<String>,
    pub kind: SupportKind,
    pub status: String,
    /// Sent by the asking person's facility (otherwise: received).
    pub sent: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A request with what it says and what it shares.
#[derive(Clone, Serialize)]
pub struct SupportDetail {
    pub line: SupportLine,
    pub question: String,
    pub summary: String,
    pub answer: Option<String>,
    pub answered_by_name: Option<String>,
    /// A shared entry that fails its integrity check is `{"id": …, "unreadable": true}`.
    pub entries: Vec<Listed<EntryView>>,
}

renrakucho_core::redacted_debug!(SupportDetail { line, entries });

async fn lines(
    tx: &mut renrakucho_store::ScopedTx,
    me: FacilityId,
    stored: &[StoredRequest],
) -> Result<Vec<SupportLine>, CareError> {
    let mut ids: Vec<FacilityId> = stored
        .iter()
        .flat_map(|r| [r.facility_id, r.to_facility_id])
        .map(FacilityId::from_uuid)
        .collect();
    ids.dedup();
    let directory = facilities::directory(tx, Some(&ids), None).await?;
    let name = |id: Uuid| {
        directory
            .iter()
            .find(|d| d.id.as_uuid() == id)
            .map(|d| d.name.clone())
    };
    stored
        .iter()
        .map(|r| {
            Ok(SupportLine {
                id: r.id,
                patient: PatientId::from_uuid(r.patient_id),
                from: FacilityId::from_uuid(r.facility_id),
                from_name: name(r.facility_id),
                to: FacilityId::from_uuid(r.to_facility_id),
                to_name: name(r.to_facility_id),
                kind: r
                    .kind
                    .parse()
                    .map_err(|e| CareError::corrupt("support kind", e))?,
                status: r.status.clone(),
                sent: r.facility_id == me.as_uuid(),
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .collect()
}

/// Requests the facility sent or received, newest first (no patient data: kinds, states,
/// facilities).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn support_requests(
    db: &Database,
    who: StaffActor,
) -> Result<Vec<SupportLine>, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = support::visible(&mut tx, 200).await?;
    let out = lines(&mut tx, who.facility, &stored).await?;
    tx.commit().await?;
    Ok(out)
}

/// One request's line (no patient data), looked up by its ID however old it is: what acting
/// on a request starts from. `NotFound` when the facility neither sent nor received it.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn support_line(
    db: &Database,
    who: StaffActor,
    id: Uuid,
) -> Result<SupportLine, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = support::get(&mut tx, id).await?;
    let line = lines(&mut tx, who.facility, std::slice::from_ref(&stored))
        .await?
        .pop()
        .ok_or(CareError::NotFound)?;
    tx.commit().await?;
    Ok(line)
}

/// Who may see a support request about a patient: the asking side through its care-team
/// reading (`notebook.read`), the asked side through `support.answer`.
pub trait SupportParty: renrakucho_authz::Permission {}
impl SupportParty for may::NotebookRead {}
impl SupportParty for may::SupportAnswer {}

/// The request `id`, when it is about the capability's patient (otherwise `NotFound`: a
/// capability for one patient opens no other patient's request).
async fn request_about(
    tx: &mut renrakucho_store::ScopedTx,
    patient: PatientId,
    id: Uuid,
) -> Result<support::StoredRequest, CareError> {
    let stored = support::get(tx, id).await?;
    if stored.patient_id != patient.as_uuid() {
        return Err(CareError::NotFound);
    }
    Ok(stored)
}

/// One request, decrypted, with the entries it shares; audited.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn support_request<P: SupportParty>(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<P>,
    origin: &Origin,
    id: Uuid,
) -> Result<SupportDetail, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = request_about(&mut tx, patient, id).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let texts = async {
        let question = String::from_utf8(
            keys.decrypt(
                &mut tx,
                &binding(patient, "question_enc", id),
                &stored.question_enc,
            )
            .await?,
        )
        .map_err(|e| CareError::corrupt("question", e))?;
        let summary = String::from_utf8(
            keys.decrypt(
                &mut tx,
                &binding(patient, "summary_enc", id),
                &stored.summary_enc,
            )
            .await?,
        )
        .map_err(|e| CareError::corrupt("summary", e))?;
        let answer = match &stored.answer_enc {
            Some(a) => Some(
                String::from_utf8(
                    keys.decrypt(&mut tx, &binding(patient, "answer_enc", id), a)
                        .await?,
                )
                .map_err(|e| CareError::corrupt("answer", e))?,
            ),
            None => None,
        };
        Ok::<_, CareError>((question, summary, answer))
    }
    .await;
    let (question, summary, answer) = match texts {
        Ok(texts) => texts,
        Err(e) => {
            let target = Some(("patient", patient.as_uuid()));
            return Err(unreadable::refuse(tx, who, origin, "support.read", target, e).await);
        }
    };
    let (entry_ids, _) = support::items(&mut tx, id).await?;
    let mut shared = Vec::new();
    for e in entry_ids {
        if let Ok(entry) = notebook::get(&mut tx, patient, e).await {
            shared.push(entry);
        }
    }
    let entries = views(&mut tx, &keys, who.staff, shared).await?;
    let line = lines(&mut tx, who.facility, std::slice::from_ref(&stored))
        .await?
        .pop()
        .ok_or(CareError::NotFound)?;
    record(
        &mut tx,
        who,
        origin,
        "support.read",
        Some(("patient", patient.as_uuid())),
        json!({ "request": id, "unreadable": unreadable::ids(&entries) }),
    )
    .await?;
    tx.commit().await?;
    Ok(SupportDetail {
        line,
        question,
        summary,
        answer,
        answered_by_name: stored.answered_by_name,
        entries,
    })
}

/// The asked facility accepts (`true`) or declines the request.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn respond_to_support_request(
    db: &Database,
    allowed: &Authorized<may::SupportAnswer>,
    origin: &Origin,
    id: Uuid,
    accept: bool,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let mut tx = db.begin(who.scope()).await?;
    let stored = request_about(&mut tx, allowed.patient(), id).await?;
    if stored.to_facility_id != who.facility.as_uuid() {
        return Err(CareError::NotFound);
    }
    let status = status_of(&stored)?;
    let to = if accept {
        SupportStatus::Accepted
    } else {
        SupportStatus::Declined
    };
    if !status.may_become_by(to, SupportSide::Asked) {
        return Err(CareError::Conflict(
            "この依頼にはすでに回答済みです / this request was already answered".into(),
        ));
    }
    support::set_status(&mut tx, id, status, to).await?;
    record(
        &mut tx,
        who,
        origin,
        if accept {
            "support.accept"
        } else {
            "support.decline"
        },
        Some(("patient", stored.patient_id)),
        json!({ "request": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The asked facility answers an accepted request.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn answer_support_request(
    db: &Database,
    keyring: &Keyring,
    who: &Author<may::SupportAnswer>,
    origin: &Origin,
    id: Uuid,
    answer: &str,
) -> Result<(), CareError> {
    let answer = text(answer, "answer", 5000, "回答")?;
    let mut tx = db.begin(who.actor.scope()).await?;
    let stored = request_about(&mut tx, who.patient(), id).await?;
    if stored.to_facility_id != who.actor.facility.as_uuid() {
        return Err(CareError::NotFound);
    }
    if !status_of(&stored)?.may_become_by(SupportStatus::Answered, SupportSide::Asked) {
        return Err(CareError::Conflict(
            "回答できるのは受諾した依頼だけです / only an accepted request can be answered".into(),
        ));
    }
    let patient = PatientId::from_uuid(stored.patient_id);
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let answer_enc = keys.encrypt(&binding(patient, "answer_enc", id), answer.as_bytes())?;
    support::answer(&mut tx, id, who.actor.staff, &who.name, &answer_enc).await?;
    record(
        &mut tx,
        who.actor,
        origin,
        "support.answer",
        Some(("patient", patient.as_uuid())),
        json!({ "request": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The asking facility closes its request (whatever state it is in, short of closed).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn close_support_request(
    db: &Database,
    allowed: &Authorized<may::NotebookRead>,
    origin: &Origin,
    id: Uuid,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let mut tx = db.begin(who.scope()).await?;
    let stored = request_about(&mut tx, allowed.patient(), id).await?;
    if stored.facility_id != who.facility.as_uuid() {
        return Err(CareError::NotFound);
    }
    let status = status_of(&stored)?;
    if !status.may_become_by(SupportStatus::Closed, SupportSide::Asking) {
        return Err(CareError::Conflict(
            "この依頼はすでに終了しています / this request has already ended".into(),
        ));
    }
    support::set_status(&mut tx, id, status, SupportStatus::Closed).await?;
    record(
        &mut tx,
        who,
        origin,
        "support.close",
        Some(("patient", stored.patient_id)),
        json!({ "request": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
