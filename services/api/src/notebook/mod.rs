//! The contact notebook as JSON under `/api/v1`: timeline, entries and their history, replies,
//! edits with optimistic concurrency, withdrawal, read receipts, search, attachments, export,
//! unread counts; and support requests between facilities. Every handler asks the authorizer
//! first; row-level security applies underneath.

pub mod entries;
pub mod files;
pub mod search;
pub mod support;
pub mod unread;

pub use entries::{
    ContentBody, EditBody, EntryBodyIn, EntryListItem, Marked, ReadBody, TimelineQuery,
    WithdrawBody,
};
pub use files::{attachment_disposition, FileBytes};
pub use search::SearchQuery;
pub use support::{support_actor, AnswerBody, CreatedId, SupportBody, SupportSide};
pub use unread::{MuteBody, PreferencesBody};

use renrakucho_http::error::ApiError;
use uuid::Uuid;

fn id_of(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}
