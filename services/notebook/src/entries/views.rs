//! The notebook as its readers see it: entries, their files, versions and readers, decrypted.

use renrakucho_core::{Category, FacilityId, PatientId, Priority, StaffId, Vitals};
use renrakucho_registry::Listed;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

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
