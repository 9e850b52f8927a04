//! Searching one patient's notebook. The bodies are encrypted, so the search runs here over the
//! decrypted entries, never in the database.

use renrakucho_core::{InvalidValue, PatientId, Vitals};
use renrakucho_keyring::{KeyOwner, Keyring, OwnerKeys};
use renrakucho_registry::audit::record;
use renrakucho_registry::unreadable::{self, Listed};
use renrakucho_registry::{may, Authorized, CareError, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::notebook::{self, StoredEntry};
use renrakucho_store::{patients, Database, ScopedTx};
use serde_json::json;
use uuid::Uuid;

use super::bindings::{body_binding, vitals_binding};
use super::decrypt::{utf8, views};
use super::views::EntryView;

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
