//! The notebook (連絡帳): what the care team writes about a patient and how it reaches them —
//! entries with their versions, replies, read receipts and search ([`entries`]), the files
//! attached to them, support requests between facilities, notifications and digests, and the
//! export of a patient's notebook as a reference copy. Bodies, files and names are encrypted with
//! the patient's key; every read and change is audited in its transaction. No HTTP and no
//! authorization policy here: the functions take the authorizer's capabilities.
//!
//! It builds on the registry (`renrakucho-registry`): the patients it writes about, and the care
//! layer's shared error ([`CareError`](renrakucho_registry::CareError)), actor
//! ([`StaffActor`](renrakucho_registry::StaffActor)), audit records and unreadable
//! values (docs/adr/0023-registry-and-notebook-crates.md). The registry never depends on it.

mod attachments;
mod directory;
pub mod entries;
mod export;
mod notifications;
mod support;

pub use attachments::{attachment_content, upload_attachment, Download, FileUpload, Uploaded};
pub use entries::{
    decode_cursor, edit_entry, entry_detail, mark_read, post_entry, seal_first_version,
    search_notebook, timeline, unread, withdraw_entry, AttachmentLine, Author, EditResult,
    EntryContent, EntryDetail, EntryView, NewEntryInput, ReaderView, TimelinePage, UnreadLine,
    VersionView, UNREAD_WINDOW,
};
pub use export::{export_notebook, ExportedEntry, ExportedPatient, NotebookCopy};
pub use notifications::{
    claim_digest, digest_counts, digest_sent, digests_due, feed, in_quiet_hours, preferences,
    preferences_of, reaches, release_digest, save_preferences, set_muted, DigestCounts, DigestDue,
    Notification, Preferences, DIGEST_LEASE,
};
pub use support::{
    answer_support_request, close_support_request, respond_to_support_request,
    send_support_request, support_line, support_request, support_requests, NewSupportRequest,
    SupportDetail, SupportLine, SupportParty,
};
