//! Reading the notebook: a patient's timeline page by page, and one entry with its history,
//! replies and readers. Every read is audited.

use renrakucho_core::{FacilityId, InvalidValue};
use renrakucho_keyring::{KeyOwner, Keyring};
use renrakucho_registry::audit::record;
use renrakucho_registry::unreadable;
use renrakucho_registry::{may, Authorized, CareError, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::notebook::{self, Cursor, TimelineFilter};
use renrakucho_store::{patients, Database};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::decrypt::{page_views, version_view, view_one, views};
use super::views::{EntryDetail, ReaderView, TimelinePage};
use crate::directory;

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

/// A page of the patient's timeline (newest first, withdrawn entries left out); the read is
/// audited.
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
    let names = directory::names(&mut tx, &reader_facilities).await?;
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
