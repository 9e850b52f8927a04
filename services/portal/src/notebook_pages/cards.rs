//! Entries as cards on the notebook's pages: the timeline, an entry with its replies, a
//! support request (or the marker of an entry that cannot be read).

use super::*;

fn size(bytes: i64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / 1024.0 / 1024.0)
    } else {
        format!("{} KB", (bytes + 1023) / 1024)
    }
}

pub(super) struct AttachmentCard {
    pub(super) thumbnail: bool,
    pub(super) thumbnail_url: String,
    pub(super) url: String,
    pub(super) name: String,
    pub(super) size: String,
}

/// An entry as a card on a page (or the marker of one that cannot be read).
#[derive(Default)]
pub(super) struct EntryCard {
    /// The ID of an entry that fails its integrity check: shown as unreadable.
    pub(super) unreadable: Option<String>,
    pub(super) category: &'static str,
    pub(super) priority: &'static str,
    pub(super) priority_class: &'static str,
    pub(super) urgent: bool,
    pub(super) read: bool,
    pub(super) at: String,
    pub(super) author: String,
    pub(super) reply_to: Option<String>,
    pub(super) body: String,
    pub(super) vitals: Option<String>,
    pub(super) attachments: Vec<AttachmentCard>,
    pub(super) link: String,
    pub(super) edited: bool,
}

pub(super) fn card(listed: &Listed<EntryView>) -> EntryCard {
    match listed {
        Listed::Readable(e) => entry_card(e),
        Listed::Unreadable(u) => EntryCard {
            unreadable: Some(u.id.to_string()),
            ..EntryCard::default()
        },
    }
}

pub(super) fn entry_card(e: &EntryView) -> EntryCard {
    let patient = e.patient.as_uuid();
    EntryCard {
        unreadable: None,
        category: e.category.label_ja(),
        priority: e.priority.label_ja(),
        priority_class: match e.priority {
            Priority::Urgent => "urgent",
            Priority::ReplyRequested => "reply",
            Priority::Info => "",
        },
        urgent: e.priority == Priority::Urgent,
        read: e.read,
        at: local(e.created_at),
        author: format!(
            "{}（{}）{}",
            e.author_name,
            e.author_profession
                .parse::<renrakucho_core::Profession>()
                .map(|p| p.label_ja())
                .unwrap_or_default(),
            e.facility_name.clone().unwrap_or_default()
        ),
        reply_to: e
            .reply_to
            .map(|r| format!("/patients/{patient}/entries/{r}")),
        body: e.body.clone(),
        vitals: e.vitals.map(|v| v.summary()),
        attachments: e
            .attachments
            .iter()
            .map(|a| AttachmentCard {
                thumbnail: a.has_thumbnail,
                thumbnail_url: format!("/api/v1/patients/{patient}/attachments/{}/thumbnail", a.id),
                url: format!("/api/v1/patients/{patient}/attachments/{}", a.id),
                name: a.file_name.clone(),
                size: size(a.size),
            })
            .collect(),
        link: format!("/patients/{patient}/entries/{}", e.id),
        edited: e.version > 1,
    }
}
