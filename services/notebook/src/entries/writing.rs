//! Writing in the notebook: posting an entry or a reply, editing it (each edit a new version),
//! withdrawing it with a reason. Bodies, vitals and reasons are sealed with the patient's key.

use renrakucho_core::{
    Category, EntryBody, FacilityId, InvalidValue, PatientId, Priority, Reason, Vitals,
};
use renrakucho_keyring::{KeyOwner, Keyring, OwnerKeys};
use renrakucho_registry::audit::{record, refused};
use renrakucho_registry::{may, CareError};
use renrakucho_store::audit::Origin;
use renrakucho_store::notebook::{self, Edit, EditOutcome, NewEntry, StoredEntry};
use renrakucho_store::{attachments, care_team, Database, ScopedTx};
use serde_json::json;
use uuid::Uuid;

use super::author::Author;
use super::bindings::{body_binding, reason_binding, vitals_binding};
use super::decrypt::view_one;
use super::views::EntryView;
use crate::directory;

/// What an entry says.
#[derive(Clone)]
pub struct EntryContent {
    pub category: Category,
    pub priority: Priority,
    pub body: EntryBody,
    pub vitals: Option<Vitals>,
    /// Care-team facilities called to attention.
    pub mentions: Vec<FacilityId>,
}

renrakucho_core::redacted_debug!(EntryContent { mentions });

/// A new entry: its content, what it answers, the files uploaded for it.
#[derive(Clone)]
pub struct NewEntryInput {
    pub content: EntryContent,
    pub reply_to: Option<Uuid>,
    pub attachments: Vec<Uuid>,
}

renrakucho_core::redacted_debug!(NewEntryInput {
    content,
    reply_to,
    attachments
});

/// What an edit did.
#[derive(Debug, Clone)]
pub enum EditResult {
    Saved(Box<EntryView>),
    /// Someone else saved a version first: nothing was changed; this is the current entry.
    Stale(Box<EntryView>),
}

/// Mentions must name facilities of the care team that share the patient.
async fn check_mentions(
    tx: &mut ScopedTx,
    patient: PatientId,
    mentions: &[FacilityId],
) -> Result<Vec<Uuid>, CareError> {
    if mentions.is_empty() {
        return Ok(Vec::new());
    }
    let team = care_team::of_patient(tx, patient).await?;
    let mut out = Vec::with_capacity(mentions.len());
    for m in mentions {
        let member = team
            .iter()
            .any(|t| t.facility == *m && t.status == care_team::MemberStatus::Active);
        if !member {
            return Err(InvalidValue::new(
                "mentions",
                "ケアチームに参加している施設だけを指定できます / only facilities of the care team can be mentioned",
            )
            .into());
        }
        if !out.contains(&m.as_uuid()) {
            out.push(m.as_uuid());
        }
    }
    Ok(out)
}

fn vitals_for(content: &EntryContent) -> Result<Option<Vec<u8>>, CareError> {
    if content.category == Category::Vitals && content.vitals.is_none() {
        return Err(InvalidValue::new(
            "vitals",
            "「バイタル」の記録にはバイタル値を1つ以上入力してください / a vitals entry needs at least one vital sign",
        )
        .into());
    }
    Ok(content
        .vitals
        .as_ref()
        .map(|v| serde_json::to_vec(v).expect("vitals serialise")))
}

/// An entry's body and vitals sealed for the version they become, once for the entry's row and
/// once for its history's (each under its own row's associated data).
struct Sealed {
    body_enc: Vec<u8>,
    version_body_enc: Vec<u8>,
    vitals_enc: Option<Vec<u8>>,
    version_vitals_enc: Option<Vec<u8>>,
}

fn seal(
    keys: &OwnerKeys,
    patient: PatientId,
    entry: Uuid,
    version: i32,
    body: &[u8],
    vitals: Option<&[u8]>,
) -> Result<Sealed, CareError> {
    let body_enc = keys.encrypt(&body_binding(patient, "entries", entry, version), body)?;
    let version_body_enc = keys.encrypt(
        &body_binding(patient, "entry_versions", entry, version),
        body,
    )?;
    let vitals_enc = match vitals {
        Some(v) => Some(keys.encrypt(&vitals_binding(patient, "entries", entry, version), v)?),
        None => None,
    };
    let version_vitals_enc = match vitals {
        Some(v) => Some(keys.encrypt(
            &vitals_binding(patient, "entry_versions", entry, version),
            v,
        )?),
        None => None,
    };
    Ok(Sealed {
        body_enc,
        version_body_enc,
        vitals_enc,
        version_vitals_enc,
    })
}

/// A reply answers an entry of the same patient (the foreign key says so too) that is not
/// withdrawn.
async fn check_reply_to(
    tx: &mut ScopedTx,
    patient: PatientId,
    reply_to: Option<Uuid>,
) -> Result<(), CareError> {
    let Some(parent) = reply_to else {
        return Ok(());
    };
    let parent = notebook::get(tx, patient, parent).await.map_err(|e| match e {
        renrakucho_store::StoreError::NotFound => CareError::from(InvalidValue::new(
            "reply_to",
            "返信先の記録がこの対象者の連絡帳にありません / the entry replied to is not in this patient's notebook",
        )),
        e => e.into(),
    })?;
    if parent.withdrawn_at.is_some() {
        return Err(CareError::Conflict(
            "取り下げられた記録には返信できません / the entry replied to was withdrawn".into(),
        ));
    }
    Ok(())
}

/// Attaches the files uploaded for a new entry: each must be the patient's and not attached yet.
async fn attach_files(
    tx: &mut ScopedTx,
    patient: PatientId,
    entry: Uuid,
    files: &[Uuid],
) -> Result<(), CareError> {
    if files.is_empty() {
        return Ok(());
    }
    let attached = attachments::attach(tx, patient, entry, files).await?;
    if attached != files.len() as u64 {
        return Err(InvalidValue::new(
            "attachments",
            "添付ファイルが見つからないか、すでに別の記録に添付されています / an attachment was not found or is already attached",
        )
        .into());
    }
    Ok(())
}

/// An entry's body sealed as [`post_entry`] seals version 1 (for the entry's row, then for its
/// history's), for the city-scale generator, which writes entries with `COPY`
/// (`renrakucho_store::bulk`) instead of one transaction each.
pub fn seal_first_version(
    keys: &OwnerKeys,
    patient: PatientId,
    entry: Uuid,
    body: &EntryBody,
) -> Result<(Vec<u8>, Vec<u8>), CareError> {
    let sealed = seal(keys, patient, entry, 1, body.as_str().as_bytes(), None)?;
    Ok((sealed.body_enc, sealed.version_body_enc))
}

/// Posts an entry (or a reply) on the patient's notebook, with the files uploaded for it.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %who.patient()))]
pub async fn post_entry(
    db: &Database,
    keyring: &Keyring,
    who: &Author<may::NotebookWrite>,
    origin: &Origin,
    input: NewEntryInput,
) -> Result<EntryView, CareError> {
    let patient = who.patient();
    let mut tx = db.begin(who.actor.scope()).await?;
    // The patient's visibility is checked by the key lookup below and by the insert's policy
    // (a facility that does not share the patient can neither read the key nor write).
    check_reply_to(&mut tx, patient, input.reply_to).await?;
    let mentions = check_mentions(&mut tx, patient, &input.content.mentions).await?;
    let vitals = vitals_for(&input.content)?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let id = Uuid::now_v7();
    let version_id = Uuid::now_v7();
    let body = input.content.body.as_str().as_bytes();
    // Version 1: the entry's first, in both the entry and its history.
    let sealed = seal(&keys, patient, id, 1, body, vitals.as_deref())?;
    let created_at = notebook::insert(
        &mut tx,
        &NewEntry {
            id,
            version_id,
            patient,
            author: who.actor.staff,
            author_name: &who.name,
            author_profession: who.profession.as_str(),
            category: input.content.category.as_str(),
            priority: input.content.priority.as_str(),
            reply_to: input.reply_to,
            mentions: &mentions,
            body_enc: &sealed.body_enc,
            vitals_enc: sealed.vitals_enc.as_deref(),
            version_body_enc: &sealed.version_body_enc,
            version_vitals_enc: sealed.version_vitals_enc.as_deref(),
        },
    )
    .await?;
    attach_files(&mut tx, patient, id, &input.attachments).await?;
    record(
        &mut tx,
        who.actor,
        origin,
        "entry.post",
        Some(("patient", patient.as_uuid())),
        json!({
            "entry": id,
            "category": input.content.category.as_str(),
            "priority": input.content.priority.as_str(),
            "reply_to": input.reply_to,
            "attachments": input.attachments.len(),
        }),
    )
    .await?;
    let view = posted_view(&mut tx, &keys, who, id, input, mentions, created_at).await?;
    tx.commit().await?;
    Ok(view)
}

/// The entry just posted, as its author sees it: everything it shows is known here, so only
/// its files' lines are read back (when it has any).
async fn posted_view(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    who: &Author<may::NotebookWrite>,
    id: Uuid,
    input: NewEntryInput,
    mentions: Vec<Uuid>,
    created_at: time::OffsetDateTime,
) -> Result<EntryView, CareError> {
    let patient = who.patient();
    let attachments = if input.attachments.is_empty() {
        Vec::new()
    } else {
        let stored = notebook::get(tx, patient, id).await?;
        view_one(tx, keys, who.actor.staff, stored)
            .await?
            .attachments
    };
    let facility_name = directory::names(tx, &[who.actor.facility])
        .await?
        .remove(&who.actor.facility);
    Ok(EntryView {
        id,
        patient,
        facility: who.actor.facility,
        facility_name,
        author: who.actor.staff,
        author_name: who.name.clone(),
        author_profession: who.profession.as_str().to_string(),
        category: input.content.category,
        priority: input.content.priority,
        body: input.content.body.as_str().to_string(),
        vitals: input.content.vitals,
        reply_to: input.reply_to,
        mentions: mentions.into_iter().map(FacilityId::from_uuid).collect(),
        version: 1,
        created_at,
        updated_at: created_at,
        attachments,
        read: true,
        withdrawn_at: None,
        withdrawal_reason: None,
    })
}

/// Whether this person may change the entry: its author, or the author's facility admin.
fn may_change(who: &Author<may::NotebookWrite>, entry: &StoredEntry) -> bool {
    entry.author_id == who.actor.staff.as_uuid()
        || (who.facility_admin && entry.facility_id == who.actor.facility.as_uuid())
}

/// Refuses a change to an entry by someone who is neither its author nor the author's facility
/// admin: the attempt is audited (and committed), and the refusal says who may.
async fn refuse_change(
    tx: ScopedTx,
    who: &Author<may::NotebookWrite>,
    origin: &Origin,
    action: &'static str,
    id: Uuid,
    message: &str,
) -> CareError {
    let audited = refused(
        tx,
        who.actor,
        origin,
        action,
        Some(("patient", who.patient().as_uuid())),
        json!({ "entry": id, "why": "not_author" }),
    )
    .await;
    match audited {
        Ok(()) => CareError::Forbidden(message.into()),
        Err(e) => e,
    }
}

/// Saves an edit as the next version, if `expected_version` is still the current one.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %who.patient(), id = %id))]
pub async fn edit_entry(
    db: &Database,
    keyring: &Keyring,
    who: &Author<may::NotebookWrite>,
    origin: &Origin,
    id: Uuid,
    expected_version: i32,
    content: EntryContent,
) -> Result<EditResult, CareError> {
    let patient = who.patient();
    let mut tx = db.begin(who.actor.scope()).await?;
    let stored = notebook::get(&mut tx, patient, id).await?;
    if !may_change(who, &stored) {
        return Err(refuse_change(
            tx,
            who,
            origin,
            "entry.edit",
            id,
            "記録を修正できるのは記録者本人か、その施設の管理者です / only the author or their facility administrator can edit an entry",
        )
        .await);
    }
    if stored.withdrawn_at.is_some() {
        return Err(CareError::Conflict(
            "取り下げられた記録は修正できません / a withdrawn entry cannot be edited".into(),
        ));
    }
    let mentions = check_mentions(&mut tx, patient, &content.mentions).await?;
    let vitals = vitals_for(&content)?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let version_id = Uuid::now_v7();
    let body = content.body.as_str().as_bytes();
    // Bound to the version this edit becomes; if another was saved first, nothing is stored.
    let next = expected_version.checked_add(1).ok_or_else(|| {
        InvalidValue::new(
            "version",
            "版の番号が正しくありません / invalid version number",
        )
    })?;
    let sealed = seal(&keys, patient, id, next, body, vitals.as_deref())?;
    let outcome = notebook::edit(
        &mut tx,
        &Edit {
            id,
            version_id,
            patient,
            expected_version,
            editor: who.actor.staff,
            editor_name: &who.name,
            category: content.category.as_str(),
            priority: content.priority.as_str(),
            mentions: &mentions,
            body_enc: &sealed.body_enc,
            vitals_enc: sealed.vitals_enc.as_deref(),
            version_body_enc: &sealed.version_body_enc,
            version_vitals_enc: sealed.version_vitals_enc.as_deref(),
        },
    )
    .await?;
    let current = notebook::get(&mut tx, patient, id).await?;
    let view = Box::new(view_one(&mut tx, &keys, who.actor.staff, current).await?);
    let (action, details, result) = match outcome {
        EditOutcome::Saved { version } => (
            "entry.edit",
            json!({ "entry": id, "version": version }),
            EditResult::Saved(view),
        ),
        // Nothing changed; the read of the current version is audited.
        EditOutcome::Stale { current } => (
            "entry.edit_refused",
            json!({ "entry": id, "expected": expected_version, "current": current }),
            EditResult::Stale(view),
        ),
    };
    record(
        &mut tx,
        who.actor,
        origin,
        action,
        Some(("patient", patient.as_uuid())),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(result)
}

/// Withdraws an entry with a reason: hidden from the timeline, kept in its history.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %who.patient(), id = %id))]
pub async fn withdraw_entry(
    db: &Database,
    keyring: &Keyring,
    who: &Author<may::NotebookWrite>,
    origin: &Origin,
    id: Uuid,
    reason: Reason,
) -> Result<(), CareError> {
    let patient = who.patient();
    let mut tx = db.begin(who.actor.scope()).await?;
    let stored = notebook::get(&mut tx, patient, id).await?;
    if !may_change(who, &stored) {
        return Err(refuse_change(
            tx,
            who,
            origin,
            "entry.withdraw",
            id,
            "記録を取り下げられるのは記録者本人か、その施設の管理者です / only the author or their facility administrator can withdraw an entry",
        )
        .await);
    }
    if stored.withdrawn_at.is_some() {
        return Err(CareError::Conflict(
            "この記録はすでに取り下げられています / the entry was already withdrawn".into(),
        ));
    }
    let reason_enc = keyring
        .encrypt(
            &mut tx,
            &reason_binding(patient, id),
            reason.as_str().as_bytes(),
        )
        .await?;
    notebook::withdraw(&mut tx, patient, id, who.actor.staff, &reason_enc).await?;
    record(
        &mut tx,
        who.actor,
        origin,
        "entry.withdraw",
        Some(("patient", patient.as_uuid())),
        json!({ "entry": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
