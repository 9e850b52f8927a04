//! Wrapped data keys (table `data_keys`). This module stores and finds bytes; wrapping,
//! unwrapping and everything cryptographic is the keyring crate's.

use renrakucho_core::FacilityId;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// Whose key it is, as stored in `owner_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    Patient,
    Facility,
    BlindIndex,
    /// The platform's own key (operators' secrets).
    Platform,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Patient => "patient",
            OwnerKind::Facility => "facility",
            OwnerKind::BlindIndex => "blind_index",
            OwnerKind::Platform => "platform",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "patient" => OwnerKind::Patient,
            "facility" => OwnerKind::Facility,
            "blind_index" => OwnerKind::BlindIndex,
            "platform" => OwnerKind::Platform,
            other => {
                return Err(StoreError::Misconfigured(format!(
                    "unknown data key owner kind {other:?}"
                )))
            }
        })
    }
}

/// One version of an owner's key as stored: wrapped, or destroyed (`wrapped` is `None`).
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub owner_kind: OwnerKind,
    pub owner_id: Uuid,
    pub version: u32,
    pub master_key_id: String,
    pub wrapped: Option<Vec<u8>>,
}

#[derive(FromRow)]
struct Row {
    owner_kind: String,
    owner_id: Uuid,
    version: i32,
    master_key_id: String,
    wrapped: Option<Vec<u8>>,
}

impl TryFrom<Row> for StoredKey {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(StoredKey {
            owner_kind: OwnerKind::parse(&r.owner_kind)?,
            owner_id: r.owner_id,
            version: u32::try_from(r.version)
                .map_err(|_| StoreError::Misconfigured("negative key version".into()))?,
            master_key_id: r.master_key_id,
            wrapped: r.wrapped,
        })
    }
}

fn version_param(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version).map_err(|_| StoreError::Misconfigured("key version too large".into()))
}

/// The newest version of an owner's key visible in this scope (destroyed or not).
#[tracing::instrument(level = "debug", skip_all, fields(owner = %owner))]
pub async fn newest(
    tx: &mut ScopedTx,
    kind: OwnerKind,
    owner: Uuid,
) -> Result<Option<StoredKey>, StoreError> {
    let row: Option<Row> = sqlx::query_as!(
        Row,
        "SELECT owner_kind, owner_id, version,
            master_key_id, wrapped FROM data_keys WHERE owner_kind = $1 AND owner_id = $2
          ORDER BY version DESC LIMIT 1",
        kind.as_str(),
        owner
    )
    .fetch_optional(tx.conn())
    .await?;
    row.map(StoredKey::try_from).transpose()
}

/// The newest version of each of these owners' keys visible in this scope, in one statement
/// (a listing's patients); owners without a key are left out.
#[tracing::instrument(level = "debug", skip_all, fields(owners = owners.len()))]
pub async fn newest_of_each(
    tx: &mut ScopedTx,
    kind: OwnerKind,
    owners: &[Uuid],
) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "SELECT DISTINCT ON (owner_id) owner_kind, owner_id, version, master_key_id, wrapped
           FROM data_keys WHERE owner_kind = $1 AND owner_id = ANY($2)
          ORDER BY owner_id, version DESC",
        kind.as_str(),
        owners
    )
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(StoredKey::try_from).collect()
}

/// One version of an owner's key, if visible in this scope.
#[tracing::instrument(level = "debug", skip_all, fields(owner = %owner))]
pub async fn get(
    tx: &mut ScopedTx,
    kind: OwnerKind,
    owner: Uuid,
    version: u32,
) -> Result<Option<StoredKey>, StoreError> {
    let row: Option<Row> = sqlx::query_as!(
        Row,
        "SELECT owner_kind, owner_id, version,
            master_key_id, wrapped FROM data_keys WHERE owner_kind = $1 AND owner_id = $2
            AND version = $3",
        kind.as_str(),
        owner,
        version_param(version)?
    )
    .fetch_optional(tx.conn())
    .await?;
    row.map(StoredKey::try_from).transpose()
}

/// A new key version to store.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub owner_kind: OwnerKind,
    pub owner_id: Uuid,
    pub version: u32,
    pub facility: Option<FacilityId>,
    pub master_key_id: &'a str,
    pub wrapped: &'a [u8],
}

/// Stores a new key version. `false` when that version already exists (another request
/// created it first): the caller reads the stored one instead.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewKey<'_>) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id, wrapped)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (owner_kind, owner_id, version) DO NOTHING",
        new.owner_kind.as_str(),
        new.owner_id,
        version_param(new.version)?,
        new.facility.map(|f| f.as_uuid()),
        new.master_key_id,
        new.wrapped
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Destroys every version of an owner's key (crypto-shredding). Returns how many versions
/// were destroyed now; already destroyed ones stay as they are.
#[tracing::instrument(level = "debug", skip_all, fields(owner = %owner))]
pub async fn destroy_all(
    tx: &mut ScopedTx,
    kind: OwnerKind,
    owner: Uuid,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "UPDATE data_keys SET wrapped = NULL, destroyed_at = now()
          WHERE owner_kind = $1 AND owner_id = $2 AND wrapped IS NOT NULL",
        kind.as_str(),
        owner
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// Up to `limit` live keys wrapped under a master key other than `current`, locked for this
/// transaction; rows another re-wrapper holds are skipped, so several can run at once.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lock_not_wrapped_by(
    tx: &mut ScopedTx,
    current: &str,
    limit: i64,
) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "SELECT owner_kind, owner_id, version, master_key_id, wrapped FROM data_keys
          WHERE wrapped IS NOT NULL AND master_key_id <> $1
          ORDER BY owner_kind, owner_id, version
          LIMIT $2 FOR UPDATE SKIP LOCKED",
        current,
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(StoredKey::try_from).collect()
}

/// Replaces a live key's wrapping (same key, new master key).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_wrapping(
    tx: &mut ScopedTx,
    key: &StoredKey,
    master_key_id: &str,
    wrapped: &[u8],
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE data_keys SET master_key_id = $4, wrapped = $5, rewrapped_at = now()
          WHERE owner_kind = $1 AND owner_id = $2 AND version = $3 AND wrapped IS NOT NULL",
        key.owner_kind.as_str(),
        key.owner_id,
        version_param(key.version)?,
        master_key_id,
        wrapped
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// How many live keys each master key wraps (to know when an old one can be retired).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn count_by_master_key(tx: &mut ScopedTx) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT master_key_id, count(*) AS "keys!" FROM data_keys WHERE wrapped IS NOT NULL
          GROUP BY master_key_id ORDER BY master_key_id"#,
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.master_key_id, r.keys))
        .collect())
}

/// Parses a key-change announcement (made by the database, `data_keys_announce`, when a key
/// gets a new version or is destroyed): the owner whose cached keys are stale.
pub fn parse_change(payload: &serde_json::Value) -> Option<(OwnerKind, Uuid)> {
    let kind = OwnerKind::parse(payload.get("kind")?.as_str()?).ok()?;
    let owner = payload.get("owner")?.as_str()?.parse().ok()?;
    Some((kind, owner))
}

/// The facility whose scope holds an owner's keys (read in key-maintenance scope).
#[tracing::instrument(level = "debug", skip_all, fields(owner = %owner))]
pub async fn facility_of(
    tx: &mut ScopedTx,
    kind: OwnerKind,
    owner: Uuid,
) -> Result<Option<FacilityId>, StoreError> {
    let facility: Option<Option<Uuid>> = sqlx::query_scalar!(
        "SELECT facility_id FROM data_keys WHERE owner_kind = $1 AND owner_id = $2
          ORDER BY version DESC LIMIT 1",
        kind.as_str(),
        owner
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(facility.flatten().map(FacilityId::from_uuid))
}
