//! Session records (tower-sessions) in `private.sessions`, reached through functions keyed by the
//! cookie value: the table holds the SHA-256 of each session ID, never the ID. Each record is
//! sealed with the server's session key (a MAC over the ID and the record), so a record written
//! by anyone but this server — SQL run as the web role can call `session_save` — is refused
//! when loaded, and a record cannot be moved under another ID.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{Database, StoreError};

const MAC_LEN: usize = 32;

fn seal_parts<'a>(id: &'a str, record: &'a [u8]) -> [&'a [u8]; 3] {
    [b"session-v1", id.as_bytes(), record]
}

/// A stored record, if `id` names one that has not expired and this server sealed it.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn load(db: &Database, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let mut conn = db.connection().await?;
    let row = sqlx::query!(
        r#"SELECT data AS "data!", expiry_date AS "expiry_date!" FROM session_load($1)"#,
        id,
    )
    .fetch_optional(conn.conn())
    .await?
    .map(|r| (r.data, r.expiry_date));
    conn.done();
    let Some((sealed, _)) = row else {
        return Ok(None);
    };
    if sealed.len() < MAC_LEN {
        tracing::warn!("a session record too short to be sealed; ignoring it");
        return Ok(None);
    }
    let (record, tag) = sealed.split_at(sealed.len() - MAC_LEN);
    if !db.keys().session.verify(&seal_parts(id, record), tag) {
        tracing::warn!("a session record not sealed by this server; ignoring it");
        return Ok(None);
    }
    Ok(Some(record.to_vec()))
}

fn sealed(db: &Database, id: &str, record: &[u8]) -> Vec<u8> {
    let tag = db.keys().session.mac(&seal_parts(id, record));
    let mut out = Vec::with_capacity(record.len() + MAC_LEN);
    out.extend_from_slice(record);
    out.extend_from_slice(&tag);
    out
}

/// Stores a new record; false when the ID is already taken.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    db: &Database,
    id: &str,
    record: &[u8],
    expiry: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut conn = db.connection().await?;
    let created: bool = sqlx::query_scalar!(
        r#"SELECT session_create($1, $2, $3) AS "created!""#,
        id,
        sealed(db, id, record),
        expiry
    )
    .fetch_one(conn.conn())
    .await?;
    conn.done();
    Ok(created)
}

/// Stores a record, replacing the one under the same ID.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn save(
    db: &Database,
    id: &str,
    record: &[u8],
    expiry: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut conn = db.connection().await?;
    sqlx::query!(
        "SELECT session_save($1, $2, $3)",
        id,
        sealed(db, id, record),
        expiry
    )
    .execute(conn.conn())
    .await?;
    conn.done();
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(db: &Database, id: &str) -> Result<(), StoreError> {
    let mut conn = db.connection().await?;
    sqlx::query!("SELECT session_delete($1)", id)
        .execute(conn.conn())
        .await?;
    conn.done();
    Ok(())
}

/// Removes expired records; how many.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_expired(db: &Database) -> Result<i64, StoreError> {
    let mut conn = db.connection().await?;
    let n: i64 = sqlx::query_scalar!(r#"SELECT session_delete_expired() AS "deleted!""#)
        .fetch_one(conn.conn())
        .await?;
    conn.done();
    Ok(n)
}

/// How the database stores a session ID: its SHA-256 (for tests that look at the table).
pub fn stored_id(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}
