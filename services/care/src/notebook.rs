//! The contact notebook (連絡帳): entries on a patient's timeline, replies, mentions, edits that
//! keep every version, withdrawal with a reason, read receipts, a search within one patient's
//! notebook. Bodies, vitals and reasons are encrypted with the patient's key; every read and
//! change is audited in its transaction.

use crate::{may, Authorized, Permitted};
use std::collections::HashMap;

use renrakucho_core::{
    Category, EntryBody, FacilityId, InvalidValue, PatientId, Priority, Profession, Reason,
    StaffId, Vitals,
};
use renrakucho_keyring::{Binding, KeyOwner, Keyring, OwnerKeys};
use renrakucho_store::audit::Origin;
use renrakucho_store::notebook::{
    self, Cursor, Edit, EditOutcome, NewEntry, StoredEntry, TimelineFilter,
};
use renrakucho_store::{attachments, care_team, patients, Database, ScopedTx};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{record, refused};
use crate::unreadable::{self, Listed};
use crate::{CareError, StaffActor};

/// Who writes: the staff member, as the care team will see them, with the capability for
/// what they do (`P`) on one patient.
#[derive(Clone)]
pub struct Author<P: renrakucho_authz::Permission> {
    allowed: Authorized<P>,
    pub(crate) actor: StaffActor,
    pub(crate) name: String,
    pub(crate) profession: Profession,
    /// The facility's administrator may edit and withdraw its staff's entries.
    pub(crate) facility_admin: bool,
}

impl<P: renrakucho_authz::Permission> Author<P> {
    /// The person as an author, allowed `P` on the capability's patient.
    pub fn new(
        allowed: Authorized<P>,
        name: String,
        profession: Profession,
        facility_admin: bool,
    ) -> Self {
        Self {
            actor: StaffActor::from(&allowed),
            allowed,
            name,
            profession,
            facility_admin,
        }
    }

    /// The patient the author may act on.
    pub fn patient(&self) -> PatientId {
        self.allowed.patient()
    }

    /// The capability the author holds.
    pub fn allowed(&self) -> &Authorized<P> {
        &self.allowed
    }
}

// The author's name is shown to the care team, never printed in logs.
impl<P: renrakucho_authz::Permission> std::fmt::Debug for Author<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Author")
            .field("allowed", &self.allowed)
            .field("profession", &self.profession)
            .field("facility_admin", &self.facility_admin)
            .finish_non_exhaustive()
    }
}

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

/// A file of an entry, as listed.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct AttachmentLine {
    pub id: Uuid,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub has_thumbnail: bool,
}

renrakucho_core::redacted_debug!(AttachmentLine {
    id,
    media_type,
    size,
    has_thumbnail
});

/// An entry as the care team reads it.
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Entry)]
pub struct EntryView {
    pub id: Uuid,
    pub patient: PatientId,
    pub facility: FacilityId,
    pub facility_name: Option<String>,
    pub author: StaffId,
    pub author_name: String,
    pub author_profession: String,
    pub category: Category,
    pub priority: Priority,
    pub body: String,
    #[schema(value_type = Option<Object>)]
    pub vitals: Option<Vitals>,
    pub reply_to: Option<Uuid>,
    pub mentions: Vec<FacilityId>,
    pub version: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub attachments: Vec<AttachmentLine>,
    /// Whether the reading person has read it (their own entries count as read).
    pub read: bool,
    /// Withdrawn entries appear only in an entry's history.
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawal_reason: Option<String>,
}

renrakucho_core::redacted_debug!(EntryView {
    id,
    patient,
    facility,
    author,
    version
});

/// One page of a timeline, and where the next one starts.
#[derive(Clone, Serialize)]
pub struct TimelinePage {
    /// An entry that fails its integrity check is `{"id": …, "unreadable": true}`.
    pub entries: Vec<Listed<EntryView>>,
    /// Pass back to get the next (older) page; `None` at the end.
    pub next: Option<String>,
}

renrakucho_core::redacted_debug!(TimelinePage { entries, next });

/// A version of an entry, for its history.
#[derive(Clone, Serialize)]
pub struct VersionView {
    pub version: i32,
    pub editor_name: String,
    pub editor_facility: FacilityId,
    #[serde(with = "time::serde::rfc3339")]
    pub edited_at: OffsetDateTime,
    pub category: String,
    pub priority: String,
    pub body: String,
    pub vitals: Option<Vitals>,
}

renrakucho_core::redacted_debug!(VersionView {
    version,
    editor_facility
});

/// Someone who read an entry.
#[derive(Clone, Serialize)]
pub struct ReaderView {
    pub name: String,
    pub profession: String,
    pub facility: FacilityId,
    pub facility_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
}

renrakucho_core::redacted_debug!(ReaderView { facility });

/// An entry with its history, replies and readers.
#[derive(Clone, Serialize)]
pub struct EntryDetail {
    pub entry: EntryView,
    /// A version that fails its integrity check is `{"id": <version row>, "unreadable": true}`.
    pub versions: Vec<Listed<VersionView>>,
    pub replies: Vec<Listed<EntryView>>,
    pub read_by: Vec<ReaderView>,
}

renrakucho_core::redacted_debug!(EntryDetail {
    entry,
    versions,
    replies,
    read_by
});

/// The cursor of a page: opaque to clients.
fn encode_cursor(c: Cursor) -> String {
    format!(
        "{}_{}",
        c.created_at.unix_timestamp_nanos() / 1000,
        c.id.simple()
    )
}

/// Reads a cursor passed back by a client; anything else is a clear 422.
pub fn decode_cursor(raw: &str) -> Result<Cursor, InvalidValue> {
    let bad = || {
        InvalidValue::new(
            "cursor",
            "ページの指定が正しくありません / invalid page cursor",
        )
    };
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let nanos = micros.checked_mul(1000).ok_or_else(bad)?;
    let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    // A cursor names an entry's time: never before the network existed, never in the future.
    let now = OffsetDateTime::now_utc();
    if created_at.year() < 2000 || created_at > now + time::Duration::days(1) {
        return Err(bad());
    }
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Cursor { created_at, id })
}

/// Where an entry's body is stored, and which version it is the body of: in `entries`, the
/// entry's ID and current version; in `entry_versions`, the entry's ID and that version (the
/// pair is the history row's key). A body put back from another version does not decrypt.
pub(crate) fn body_binding(
    patient: PatientId,
    table: &'static str,
    entry: Uuid,
    version: i32,
) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table,
        column: "body_enc",
        row: entry,
        version: crate::bound_version(version.into()),
    }
}

/// The same for an entry's vitals.
pub(crate) fn vitals_binding(
    patient: PatientId,
    table: &'static str,
    entry: Uuid,
    version: i32,
) -> Binding<'static> {
    Binding {
        column: "vitals_enc",
        ..body_binding(patient, table, entry, version)
    }
}

/// Where a value of an entry's history is stored: (entry, version). A value written before
/// versions were bound (format 1, read only until `keys bind-versions` has completed) names the
/// history row's own ID instead.
pub(crate) fn history_binding(
    patient: PatientId,
    column: &'static str,
    version: &notebook::StoredVersion,
    value: &[u8],
) -> Binding<'static> {
    let mut binding = Binding {
        column,
        ..body_binding(patient, "entry_versions", version.entry_id, version.version)
    };
    if !renrakucho_keyring::envelope::names_version(value) {
        binding.row = version.id;
    }
    binding
}

/// A withdrawal's reason is given once (a withdrawn entry never changes again).
fn reason_binding(patient: PatientId, row: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "entries",
        column: "withdrawal_reason_enc",
        row,
        version: Binding::WRITTEN_ONCE,
    }
}

/// A file's name is given once, at upload.
pub(crate) fn file_name_binding(patient: PatientId, row: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "attachments",
        column: "file_name_enc",
        row,
        version: Binding::WRITTEN_ONCE,
    }
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, CareError> {
    String::from_utf8(bytes).map_err(|e| CareError::corrupt(what, e))
}

/// What a page already knows of an entry besides the entry: whether the reader read it, its
/// files (names still encrypted).
pub(crate) struct Extras {
    read: bool,
    files: Vec<FileRow>,
}

/// A file of an entry before decryption: ID, media type, size, thumbnail?, encrypted name.
type FileRow = (Uuid, String, i64, bool, Vec<u8>);

/// Decrypts stored entries for people who may read them, fetching their files and read marks;
/// an entry that fails its integrity check is listed as unreadable.
pub(crate) async fn views(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    stored: Vec<StoredEntry>,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    let rows = with_extras(tx, reader, stored).await?;
    build_views(tx, keys, reader, rows).await
}

/// Decrypts one entry read on its own: an integrity failure is the error (see
/// [`unreadable::refuse`]).
pub(crate) async fn view_one(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    stored: StoredEntry,
) -> Result<EntryView, CareError> {
    let (e, extras) = with_extras(tx, reader, vec![stored])
        .await?
        .pop()
        .ok_or(CareError::NotFound)?;
    let facility = FacilityId::from_uuid(e.facility_id);
    let facility_name = crate::directory::names(tx, &[facility])
        .await?
        .remove(&facility);
    build_view(tx, keys, reader, e, extras, facility_name).await
}

/// Stored entries with their files and the reader's read marks.
async fn with_extras(
    tx: &mut ScopedTx,
    reader: StaffId,
    stored: Vec<StoredEntry>,
) -> Result<Vec<(StoredEntry, Extras)>, CareError> {
    let ids: Vec<Uuid> = stored.iter().map(|e| e.id).collect();
    let files = attachments::of_entries(tx, &ids).await?;
    let read: std::collections::HashSet<Uuid> = notebook::read_by(tx, reader, &ids)
        .await?
        .into_iter()
        .collect();
    let mut by_entry: HashMap<Uuid, Vec<FileRow>> = HashMap::new();
    for f in files {
        if let Some(entry) = f.entry_id {
            by_entry.entry(entry).or_default().push((
                f.id,
                f.media_type,
                f.size,
                f.thumbnail.is_some(),
                f.file_name_enc,
            ));
        }
    }
    let rows = stored
        .into_iter()
        .map(|e| {
            let extras = Extras {
                read: read.contains(&e.id),
                files: by_entry.remove(&e.id).unwrap_or_default(),
            };
            (e, extras)
        })
        .collect();
    Ok(rows)
}

/// Decrypts a timeline page (read marks and files came with it).
async fn page_views(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    rows: Vec<notebook::PageRow>,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    use base64::Engine;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut files = Vec::with_capacity(r.files.0.len());
        for f in r.files.0 {
            let name = base64::engine::general_purpose::STANDARD
                .decode(&f.name)
                .map_err(|e| CareError::corrupt("file name", e))?;
            files.push((f.id, f.media_type, f.size, f.thumbnail, name));
        }
        out.push((
            r.entry,
            Extras {
                read: r.read,
                files,
            },
        ));
    }
    build_views(tx, keys, reader, out).await
}

async fn build_views(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    rows: Vec<(StoredEntry, Extras)>,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    let facility_ids: Vec<FacilityId> = rows
        .iter()
        .map(|(e, _)| FacilityId::from_uuid(e.facility_id))
        .collect();
    let names = crate::directory::names(tx, &facility_ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (e, extras) in rows {
        let id = e.id;
        let facility_name = names.get(&FacilityId::from_uuid(e.facility_id)).cloned();
        let view = build_view(tx, keys, reader, e, extras, facility_name).await;
        out.push(unreadable::item(tx, id, view).await?);
    }
    Ok(out)
}

/// Decrypts one entry; its body, vitals, withdrawal reason and file names.
async fn build_view(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    reader: StaffId,
    e: StoredEntry,
    extras: Extras,
    facility_name: Option<String>,
) -> Result<EntryView, CareError> {
    let patient = PatientId::from_uuid(e.patient_id);
    let body = keys
        .decrypt(
            tx,
            &body_binding(patient, "entries", e.id, e.version),
            &e.body_enc,
        )
        .await?;
    let vitals = match &e.vitals_enc {
        Some(v) => Some(
            serde_json::from_slice::<Vitals>(
                &keys
                    .decrypt(tx, &vitals_binding(patient, "entries", e.id, e.version), v)
                    .await?,
            )
            .map_err(|err| CareError::corrupt("vitals", err))?,
        ),
        None => None,
    };
    let withdrawal_reason = match &e.withdrawal_reason_enc {
        Some(r) => Some(utf8(
            keys.decrypt(tx, &reason_binding(patient, e.id), r).await?,
            "reason",
        )?),
        None => None,
    };
    let mut attachments = Vec::with_capacity(extras.files.len());
    for (id, media_type, size, has_thumbnail, name_enc) in extras.files {
        let name = keys
            .decrypt(tx, &file_name_binding(patient, id), &name_enc)
            .await?;
        attachments.push(AttachmentLine {
            id,
            file_name: utf8(name, "file name")?,
            media_type,
            size,
            has_thumbnail,
        });
    }
    Ok(EntryView {
        id: e.id,
        patient,
        facility: FacilityId::from_uuid(e.facility_id),
        facility_name,
        author: StaffId::from_uuid(e.author_id),
        author_name: e.author_name,
        author_profession: e.author_profession,
        category: e
            .category
            .parse()
            .map_err(|err| CareError::corrupt("category", err))?,
        priority: e
            .priority
            .parse()
            .map_err(|err| CareError::corrupt("priority", err))?,
        body: utf8(body, "body")?,
        vitals,
        reply_to: e.reply_to,
        mentions: e.mentions.into_iter().map(FacilityId::from_uuid).collect(),
        version: e.version,
        created_at: e.created_at,
        updated_at: e.updated_at,
        attachments,
        read: extras.read || e.author_id == reader.as_uuid(),
        withdrawn_at: e.withdrawn_at,
        withdrawal_reason,
    })
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
    if let Some(parent) = input.reply_to {
        // A reply answers an entry of the same patient (the foreign key says so too).
        let parent = notebook::get(&mut tx, patient, parent).await.map_err(|e| match e {
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
    }
    let mentions = check_mentions(&mut tx, patient, &input.content.mentions).await?;
    let vitals = vitals_for(&input.content)?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let id = Uuid::now_v7();
    let version_id = Uuid::now_v7();
    let body = input.content.body.as_str().as_bytes();
    // Version 1: the entry's first, in both the entry and its history.
    let body_enc = keys.encrypt(&body_binding(patient, "entries", id, 1), body)?;
    let version_body_enc = keys.encrypt(&body_binding(patient, "entry_versions", id, 1), body)?;
    let vitals_enc = match &vitals {
        Some(v) => Some(keys.encrypt(&vitals_binding(patient, "entries", id, 1), v)?),
        None => None,
    };
    let version_vitals_enc = match &vitals {
        Some(v) => Some(keys.encrypt(&vitals_binding(patient, "entry_versions", id, 1), v)?),
        None => None,
    };
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
            body_enc: &body_enc,
            vitals_enc: vitals_enc.as_deref(),
            version_body_enc: &version_body_enc,
            version_vitals_enc: version_vitals_enc.as_deref(),
        },
    )
    .await?;
    if !input.attachments.is_empty() {
        let attached = attachments::attach(&mut tx, patient, id, &input.attachments).await?;
        if attached != input.attachments.len() as u64 {
            return Err(InvalidValue::new(
                "attachments",
                "添付ファイルが見つからないか、すでに別の記録に添付されています / an attachment was not found or is already attached",
            )
            .into());
        }
    }
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
    // Everything the view shows is known here: no second read.
    let attachments = if input.attachments.is_empty() {
        Vec::new()
    } else {
        let stored = notebook::get(&mut tx, patient, id).await?;
        view_one(&mut tx, &keys, who.actor.staff, stored)
            .await?
            .attachments
    };
    let facility_name = crate::directory::names(&mut tx, &[who.actor.facility])
        .await?
        .remove(&who.actor.facility);
    let view = EntryView {
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
    };
    tx.commit().await?;
    Ok(view)
}

/// A page of the patient's timeline (newest first, withdrawn entries left out); the read is
/// audited.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn timeline(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::NotebookRead>,
    origin: &Origin,
    filter: &TimelineFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<TimelinePage, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let limit = limit.clamp(1, 100);
    let mut tx = db.begin(who.scope()).await?;
    let stored = notebook::timeline(&mut tx, patient, who.staff, filter, after, limit + 1).await?;
    if stored.is_empty() {
        // No entries, or no such patient here: tell them apart without saying why.
        patients::get(&mut tx, patient).await?;
    }
    let more = stored.len() as i64 > limit;
    let page: Vec<notebook::PageRow> = stored.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|r| {
            encode_cursor(Cursor {
                created_at: r.entry.created_at,
                id: r.entry.id,
            })
        })
    } else {
        None
    };
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let entries = page_views(&mut tx, &keys, who.staff, page).await?;
    record(
        &mut tx,
        who,
        origin,
        "notebook.read",
        Some(("patient", patient.as_uuid())),
        json!({ "entries": entries.len(), "unreadable": unreadable::ids(&entries) }),
    )
    .await?;
    tx.commit().await?;
    Ok(TimelinePage { entries, next })
}

/// One entry with every version, its replies and who read it; audited.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient(), id = %id))]
pub async fn entry_detail(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::NotebookRead>,
    origin: &Origin,
    id: Uuid,
) -> Result<EntryDetail, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = notebook::get(&mut tx, patient, id).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    let entry = match view_one(&mut tx, &keys, who.staff, stored).await {
        Ok(entry) => entry,
        Err(e) => {
            let target = Some(("patient", patient.as_uuid()));
            return Err(unreadable::refuse(tx, who, origin, "entry.read", target, e).await);
        }
    };
    let mut versions = Vec::new();
    for v in notebook::versions(&mut tx, patient, id).await? {
        let row = v.id;
        let view = version_view(&mut tx, &keys, patient, v).await;
        versions.push(unreadable::item(&mut tx, row, view).await?);
    }
    let replies = notebook::replies(&mut tx, patient, id).await?;
    let replies = views(&mut tx, &keys, who.staff, replies).await?;
    let readers = notebook::readers(&mut tx, &[id]).await?;
    let reader_facilities: Vec<FacilityId> = readers
        .iter()
        .map(|r| FacilityId::from_uuid(r.facility_id))
        .collect();
    let names = crate::directory::names(&mut tx, &reader_facilities).await?;
    let read_by = readers
        .into_iter()
        .map(|r| ReaderView {
            facility_name: names.get(&FacilityId::from_uuid(r.facility_id)).cloned(),
            name: r.reader_name,
            profession: r.reader_profession,
            facility: FacilityId::from_uuid(r.facility_id),
            read_at: r.read_at,
        })
        .collect();
    let unreadable_ids = [unreadable::ids(&versions), unreadable::ids(&replies)].concat();
    record(
        &mut tx,
        who,
        origin,
        "entry.read",
        Some(("patient", patient.as_uuid())),
        json!({
            "entry": id,
            "versions": versions.len(),
            "unreadable": unreadable_ids,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(EntryDetail {
        entry,
        versions,
        replies,
        read_by,
    })
}

/// Decrypts one stored version of an entry.
pub(crate) async fn version_view(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    patient: PatientId,
    v: notebook::StoredVersion,
) -> Result<VersionView, CareError> {
    let body = keys
        .decrypt(
            tx,
            &history_binding(patient, "body_enc", &v, &v.body_enc),
            &v.body_enc,
        )
        .await?;
    let vitals = match &v.vitals_enc {
        Some(enc) => Some(
            serde_json::from_slice::<Vitals>(
                &keys
                    .decrypt(tx, &history_binding(patient, "vitals_enc", &v, enc), enc)
                    .await?,
            )
            .map_err(|e| CareError::corrupt("vitals", e))?,
        ),
        None => None,
    };
    Ok(VersionView {
        version: v.version,
        editor_name: v.edited_by_name,
        editor_facility: FacilityId::from_uuid(v.facility_id),
        edited_at: v.edited_at,
        category: v.category,
        priority: v.priority,
        body: utf8(body, "body")?,
        vitals,
    })
}

/// Whether this person may change the entry: its author, or the author's facility admin.
fn may_change(who: &Author<may::NotebookWrite>, entry: &StoredEntry) -> bool {
    entry.author_id == who.actor.staff.as_uuid()
        || (who.facility_admin && entry.facility_id == who.actor.facility.as_uuid())
}

/// What an edit did.
#[derive(Debug, Clone)]
pub enum EditResult {
    Saved(Box<EntryView>),
    /// Someone else saved a version first: nothing was changed; this is the current entry.
    Stale(Box<EntryView>),
}

/// Saves an edit as the next version, if `expected_version` is still the current one.
#[allow(clippy::too_many_arguments)]
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
        refused(
            tx,
            who.actor,
            origin,
            "entry.edit",
            Some(("patient", patient.as_uuid())),
            json!({ "entry": id, "why": "not_author" }),
        )
        .await?;
        return Err(CareError::Forbidden(
            "記録を修正できるのは記録者本人か、その施設の管理者です / only the author or their facility administrator can edit an entry".into(),
        ));
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
    let body_enc = keys.encrypt(&body_binding(patient, "entries", id, next), body)?;
    let version_body_enc =
        keys.encrypt(&body_binding(patient, "entry_versions", id, next), body)?;
    let vitals_enc = match &vitals {
        Some(v) => Some(keys.encrypt(&vitals_binding(patient, "entries", id, next), v)?),
        None => None,
    };
    let version_vitals_enc = match &vitals {
        Some(v) => Some(keys.encrypt(&vitals_binding(patient, "entry_versions", id, next), v)?),
        None => None,
    };
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
            body_enc: &body_enc,
            vitals_enc: vitals_enc.as_deref(),
            version_body_enc: &version_body_enc,
            version_vitals_enc: version_vitals_enc.as_deref(),
        },
    )
    .await?;
    let current = notebook::get(&mut tx, patient, id).await?;
    let view = view_one(&mut tx, &keys, who.actor.staff, current).await?;
    match outcome {
        EditOutcome::Saved { version } => {
            record(
                &mut tx,
                who.actor,
                origin,
                "entry.edit",
                Some(("patient", patient.as_uuid())),
                json!({ "entry": id, "version": version }),
            )
            .await?;
            tx.commit().await?;
            Ok(EditResult::Saved(Box::new(view)))
        }
        EditOutcome::Stale { current } => {
            // Nothing changed; the read of the current version is audited.
            record(
                &mut tx,
                who.actor,
                origin,
                "entry.edit_refused",
                Some(("patient", patient.as_uuid())),
                json!({ "entry": id, "expected": expected_version, "current": current }),
            )
            .await?;
            tx.commit().await?;
            Ok(EditResult::Stale(Box::new(view)))
        }
    }
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
        refused(
            tx,
            who.actor,
            origin,
            "entry.withdraw",
            Some(("patient", patient.as_uuid())),
            json!({ "entry": id, "why": "not_author" }),
        )
        .await?;
        return Err(CareError::Forbidden(
            "記録を取り下げられるのは記録者本人か、その施設の管理者です / only the author or their facility administrator can withdraw an entry".into(),
        ));
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

fn normalized(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            // Katakana to hiragana, so either spelling finds the other.
            'ァ'..='ヶ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            c => c,
        })
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Entries of one patient whose text (or vitals summary) contains `query`, newest first. The
/// bodies are encrypted, so the search runs here over the decrypted notebook; audited with the
/// number found, never the query.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn search_notebook(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::NotebookRead>,
    origin: &Origin,
    query: &str,
    limit: usize,
) -> Result<Vec<Listed<EntryView>>, CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let needle = normalized(query);
    if needle.chars().count() < 1 {
        return Err(InvalidValue::new(
            "q",
            "検索する言葉を入力してください / enter something to search for",
        )
        .into());
    }
    let mut tx = db.begin(who.scope()).await?;
    patients::get(&mut tx, patient).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await?;
    // Matches, and entries that could not be searched because a value fails its integrity
    // check (listed as unreadable, in their place).
    let mut found: Vec<Result<StoredEntry, Uuid>> = Vec::new();
    for e in notebook::all(&mut tx, patient).await?.into_iter().rev() {
        if e.withdrawn_at.is_some() {
            continue;
        }
        let text = searchable(&mut tx, &keys, &e).await;
        let hit = match unreadable::item(&mut tx, e.id, text).await? {
            Listed::Readable((body, vitals)) => {
                normalized(&body).contains(&needle) || normalized(&vitals).contains(&needle)
            }
            Listed::Unreadable(_) => {
                found.push(Err(e.id));
                false
            }
        };
        if hit {
            found.push(Ok(e));
        }
        if found.len() >= limit {
            break;
        }
    }
    let matches = found
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let mut views = views(&mut tx, &keys, who.staff, matches).await?.into_iter();
    let entries: Vec<Listed<EntryView>> = found
        .into_iter()
        .filter_map(|f| match f {
            Ok(_) => views.next(),
            Err(id) => Some(Listed::Unreadable(unreadable::Unreadable::new(id))),
        })
        .collect();
    record(
        &mut tx,
        who,
        origin,
        "notebook.search",
        Some(("patient", patient.as_uuid())),
        json!({ "found": entries.len(), "unreadable": unreadable::ids(&entries) }),
    )
    .await?;
    tx.commit().await?;
    Ok(entries)
}

/// The text of an entry a search looks in: its body and its vitals' summary.
async fn searchable(
    tx: &mut ScopedTx,
    keys: &OwnerKeys,
    e: &StoredEntry,
) -> Result<(String, String), CareError> {
    let pid = PatientId::from_uuid(e.patient_id);
    let body = keys
        .decrypt(
            tx,
            &body_binding(pid, "entries", e.id, e.version),
            &e.body_enc,
        )
        .await?;
    let body = utf8(body, "body")?;
    let vitals = match &e.vitals_enc {
        Some(v) => serde_json::from_slice::<Vitals>(
            &keys
                .decrypt(tx, &vitals_binding(pid, "entries", e.id, e.version), v)
                .await?,
        )
        .map(|v| v.summary())
        .unwrap_or_default(),
        None => String::new(),
    };
    Ok((body, vitals))
}

/// Marks entries as read by the person (read receipts).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %who.patient()))]
pub async fn mark_read(
    db: &Database,
    who: &Author<may::NotebookRead>,
    origin: &Origin,
    entries: &[Uuid],
) -> Result<u64, CareError> {
    let patient = who.patient();
    if entries.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin(who.actor.scope()).await?;
    let n = notebook::mark_read(
        &mut tx,
        patient,
        entries,
        who.actor.staff,
        &who.name,
        who.profession.as_str(),
    )
    .await?;
    // A read receipt is a change others see ("read by"): recorded when one was added.
    if n > 0 {
        record(
            &mut tx,
            who.actor,
            origin,
            "entry.mark_read",
            Some(("patient", patient.as_uuid())),
            json!({ "entries": n }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Unread entries per patient for one person, urgent first.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadLine {
    pub patient: PatientId,
    pub urgent: i64,
    pub reply_requested: i64,
    pub total: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub newest: OffsetDateTime,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn unread(
    db: &Database,
    allowed: &Permitted<may::NotebookRead>,
) -> Result<Vec<UnreadLine>, CareError> {
    let who = StaffActor::from(allowed);
    let mut tx = db.begin(who.scope()).await?;
    let rows = notebook::unread(&mut tx, who.staff).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| UnreadLine {
            patient: PatientId::from_uuid(r.patient_id),
            urgent: r.urgent,
            reply_requested: r.reply_requested,
            total: r.total,
            newest: r.newest,
        })
        .collect())
}
