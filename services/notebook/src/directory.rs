//! Facility names for display, from the public directory (第16条), kept in this process for a
//! minute: a page of the notebook names the writers' facilities without a query each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use renrakucho_core::FacilityId;
use renrakucho_registry::CareError;
use renrakucho_store::{facilities, ScopedTx};

const FRESH: Duration = Duration::from_secs(60);

static NAMES: Mutex<Option<HashMap<FacilityId, (String, Instant)>>> = Mutex::new(None);

/// The names of these facilities (those no longer active are left out).
pub(crate) async fn names(
    tx: &mut ScopedTx,
    ids: &[FacilityId],
) -> Result<HashMap<FacilityId, String>, CareError> {
    let now = Instant::now();
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    {
        let cache = NAMES.lock().expect("directory cache lock");
        for id in ids {
            match cache.as_ref().and_then(|c| c.get(id)) {
                Some((name, at)) if now.duration_since(*at) < FRESH => {
                    found.insert(*id, name.clone());
                }
                _ if !missing.contains(id) => missing.push(*id),
                _ => {}
            }
        }
    }
    if !missing.is_empty() {
        let fetched = facilities::directory(tx, Some(&missing), None).await?;
        let mut cache = NAMES.lock().expect("directory cache lock");
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() > 50_000 {
            cache.clear();
        }
        for entry in fetched {
            cache.insert(entry.id, (entry.name.clone(), now));
            found.insert(entry.id, entry.name);
        }
    }
    Ok(found)
}
