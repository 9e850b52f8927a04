//! The contact notebook's entries (連絡帳): entries on a patient's timeline, replies, mentions,
//! edits that keep every version, withdrawal with a reason, read receipts, a search within one
//! patient's notebook. Bodies, vitals and reasons are encrypted with the patient's key; every
//! read and change is audited in its transaction.

mod author;
mod bindings;
mod decrypt;
mod reading;
mod receipts;
mod search;
mod views;
mod writing;

pub use author::Author;
pub use reading::{decode_cursor, entry_detail, timeline};
pub use receipts::{mark_read, unread, UnreadLine, UNREAD_WINDOW};
pub use search::search_notebook;
pub use views::{AttachmentLine, EntryDetail, EntryView, ReaderView, TimelinePage, VersionView};
pub use writing::{
    edit_entry, post_entry, seal_first_version, withdraw_entry, EditResult, EntryContent,
    NewEntryInput,
};

pub(crate) use bindings::file_name_binding;
pub(crate) use decrypt::{version_view, views};
