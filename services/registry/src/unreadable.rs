//! One bad value does not take a page down (ADR 0017). A listing decrypts each item on its own;
//! an item whose value fails the keyring's integrity check (altered, moved, truncated, naming a
//! key version that does not exist, or whose key was destroyed) becomes an [`Unreadable`] marker
//! with the item's ID, and the rest of the page is shown. The failure is logged once per
//! (table, column, row) and process, and raised as a platform alert in the listing's own
//! transaction (stored once per row). Anything else — the key provider or the database being
//! unavailable, a provider refusing to unwrap — still fails the whole request: nothing is ever
//! shown as unreadable because a service is down.
//!
//! Shared by the registry's listings and the notebook's.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use renrakucho_keyring::KeyringError;
use renrakucho_store::audit::Origin;
use renrakucho_store::{platform_alerts, ScopedTx};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::{CareError, StaffActor};

/// The alert kind raised for a value that fails its integrity check.
pub const ALERT_KIND: &str = "unreadable_value";

/// An item of a listing that could not be decrypted: its ID and the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The listed item's ID (patient, entry, entry version or consent).
    pub id: Uuid,
    /// Always `true`: the marker a client tests for.
    pub unreadable: bool,
}

impl Unreadable {
    pub fn new(id: Uuid) -> Self {
        Self {
            id,
            unreadable: true,
        }
    }
}

/// An item of a listing: decrypted, or marked unreadable. In JSON either the item itself or
/// `{"id": …, "unreadable": true}`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Listed<T> {
    Readable(T),
    Unreadable(Unreadable),
}

impl<T> Listed<T> {
    /// The decrypted item, if it could be read.
    pub fn readable(&self) -> Option<&T> {
        match self {
            Listed::Readable(v) => Some(v),
            Listed::Unreadable(_) => None,
        }
    }

    pub fn into_readable(self) -> Option<T> {
        match self {
            Listed::Readable(v) => Some(v),
            Listed::Unreadable(_) => None,
        }
    }

    /// The ID of an item that could not be read.
    pub fn unreadable_id(&self) -> Option<Uuid> {
        match self {
            Listed::Readable(_) => None,
            Listed::Unreadable(u) => Some(u.id),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Listed<U> {
        match self {
            Listed::Readable(v) => Listed::Readable(f(v)),
            Listed::Unreadable(u) => Listed::Unreadable(u),
        }
    }
}

/// The IDs of the unreadable items of a listing (for its audit record).
pub fn ids<T>(items: &[Listed<T>]) -> Vec<Uuid> {
    items.iter().filter_map(Listed::unreadable_id).collect()
}

/// Where a value failed its integrity check, when that is what `e` is.
fn integrity_failure(e: &CareError) -> Option<(&str, &str, Uuid, String)> {
    match e {
        CareError::Keyring(KeyringError::Undecryptable {
            table,
            column,
            row,
            problem,
        }) => Some((table, column, *row, problem.to_string())),
        _ => None,
    }
}

/// At most this many (table, column, row) remembered as logged; past it, the set starts over
/// (a warning may then repeat, the alert still does not).
const LOGGED_CAPACITY: usize = 10_000;

/// True the first time this process sees the value fail.
fn first_time(table: &str, column: &str, row: Uuid) -> bool {
    static LOGGED: OnceLock<Mutex<HashSet<(String, String, Uuid)>>> = OnceLock::new();
    let mut logged = LOGGED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if logged.len() >= LOGGED_CAPACITY {
        logged.clear();
    }
    logged.insert((table.to_string(), column.to_string(), row))
}

/// Reports an integrity failure: a warning (once) naming table, column and row — never the
/// value — and a platform alert in `tx`. Returns false (and does nothing) for any other error.
pub(crate) async fn report(tx: &mut ScopedTx, e: &CareError) -> Result<bool, CareError> {
    let Some((table, column, row, problem)) = integrity_failure(e) else {
        return Ok(false);
    };
    if first_time(table, column, row) {
        tracing::warn!(
            table,
            column,
            %row,
            %problem,
            "a stored value failed its integrity check; shown as unreadable"
        );
    }
    platform_alerts::raise(
        tx,
        ALERT_KIND,
        &format!("{table}.{column}/{row}"),
        json!({ "table": table, "column": column, "row": row, "problem": problem }),
    )
    .await?;
    Ok(true)
}

/// One item of a listing: its decryption's result, or the marker for an integrity failure
/// (reported). Any other error fails the listing.
pub async fn item<T>(
    tx: &mut ScopedTx,
    id: Uuid,
    result: Result<T, CareError>,
) -> Result<Listed<T>, CareError> {
    match result {
        Ok(v) => Ok(Listed::Readable(v)),
        Err(e) => {
            if report(tx, &e).await? {
                Ok(Listed::Unreadable(Unreadable::new(id)))
            } else {
                Err(e)
            }
        }
    }
}

/// A single item read directly failed. For an integrity failure the alert and a refused
/// audit record are committed before the error is returned (the server answers 409 naming
/// the row); any other error is returned as it is (the transaction rolls back).
pub async fn refuse(
    mut tx: ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    target: Option<(&'static str, Uuid)>,
    e: CareError,
) -> CareError {
    let row = integrity_failure(&e).map(|(_, _, row, _)| row);
    let Some(row) = row else { return e };
    let reported = async {
        report(&mut tx, &e).await?;
        crate::audit::refused(
            tx,
            who,
            origin,
            action,
            target,
            json!({ "unreadable": row }),
        )
        .await
    }
    .await;
    match reported {
        Ok(()) => e,
        Err(other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use renrakucho_keyring::Problem;

    fn undecryptable(problem: Problem) -> CareError {
        CareError::Keyring(KeyringError::Undecryptable {
            table: "entries".into(),
            column: "body_enc".into(),
            row: Uuid::now_v7(),
            problem,
        })
    }

    #[test]
    fn only_integrity_failures_degrade() {
        for problem in [
            Problem::Tampered,
            Problem::WrongOwner,
            Problem::Truncated,
            Problem::UnknownKeyVersion(9),
            Problem::UnsupportedFormat(7),
            Problem::KeyDestroyed,
        ] {
            assert!(
                integrity_failure(&undecryptable(problem)).is_some(),
                "{problem}"
            );
        }
        for other in [
            CareError::Keyring(KeyringError::ProviderUnavailable("timeout".into())),
            CareError::Keyring(KeyringError::ProviderRefused("denied".into())),
            CareError::Keyring(KeyringError::UnknownMasterKey("m1".into())),
            CareError::Corrupt("body does not decode".into()),
            CareError::NotFound,
        ] {
            assert!(integrity_failure(&other).is_none(), "{other}");
        }
    }

    #[test]
    fn a_value_is_logged_once_per_process() {
        let row = Uuid::now_v7();
        assert!(first_time("entries", "body_enc", row));
        assert!(!first_time("entries", "body_enc", row));
        assert!(first_time("entries", "vitals_enc", row), "another column");
    }

    #[test]
    fn a_marker_is_its_id_and_the_flag() {
        let id = Uuid::now_v7();
        let listed: Vec<Listed<u8>> =
            vec![Listed::Readable(1), Listed::Unreadable(Unreadable::new(id))];
        assert_eq!(
            serde_json::to_value(&listed).unwrap(),
            json!([1, { "id": id, "unreadable": true }])
        );
        assert_eq!(ids(&listed), [id]);
    }
}
