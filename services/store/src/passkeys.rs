//! Passkeys: SQL for the `staff_passkeys` table (migration 24), always in one facility's scope.
//! Adding or removing one keeps the account's `passkey_count` and moves its `password_version`
//! on (its other sessions end), in the same transaction.

use renrakucho_core::StaffId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// How many passkeys one account may have.
pub const MAX_PER_ACCOUNT: usize = 10;

/// A registered passkey.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub staff_id: StaffId,
    /// The credential's ID (also inside `passkey`).
    pub credential_id: Vec<u8>,
    /// The person's name for it.
    pub name: String,
    /// The credential as webauthn-rs keeps it (public key, counter): nothing secret.
    pub passkey: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

struct Row {
    id: Uuid,
    staff_id: Uuid,
    credential_id: Vec<u8>,
    name: String,
    passkey: serde_json::Value,
    created_at: OffsetDateTime,
    last_used_at: Option<OffsetDateTime>,
}

impl From<Row> for StoredPasskey {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            staff_id: StaffId::from_uuid(r.staff_id),
            credential_id: r.credential_id,
            name: r.name,
            passkey: r.passkey,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// `staff`'s passkeys, oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn list(tx: &mut ScopedTx, staff: StaffId) -> Result<Vec<StoredPasskey>, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, staff_id, credential_id, name, passkey, created_at, last_used_at
           FROM staff_passkeys WHERE staff_id = $1 ORDER BY created_at, id",
        staff.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(StoredPasskey::from).collect())
}

/// The passkey with this credential ID in the transaction's facility, locked until the
/// transaction ends (two sign-ins with it move its counter one after the other).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_by_credential(
    tx: &mut ScopedTx,
    credential_id: &[u8],
) -> Result<Option<StoredPasskey>, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "SELECT id, staff_id, credential_id, name, passkey, created_at, last_used_at
           FROM staff_passkeys WHERE credential_id = $1 FOR UPDATE",
        credential_id
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(StoredPasskey::from))
}

/// Adds a passkey for `staff` of the transaction's facility: the account's new password
/// version. A credential already registered here gives [`StoreError::Conflict`].
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn insert(
    tx: &mut ScopedTx,
    staff: StaffId,
    credential_id: &[u8],
    name: &str,
    passkey: &serde_json::Value,
) -> Result<i32, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let added = sqlx::query_scalar!(
        "INSERT INTO staff_passkeys (id, facility_id, staff_id, credential_id, name, passkey)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (facility_id, credential_id) DO NOTHING
         RETURNING id",
        Uuid::now_v7(),
        facility.as_uuid(),
        staff.as_uuid(),
        credential_id,
        name,
        passkey
    )
    .fetch_optional(tx.conn())
    .await?;
    if added.is_none() {
        return Err(StoreError::Conflict {
            constraint: "staff_passkeys_facility_id_credential_id_key".into(),
        });
    }
    recount(tx, staff).await
}

/// Removes `staff`'s passkey `id`: the account's new password version, or `None` when it has
/// no such passkey. With its last factor gone, the account's recovery codes go too.
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn delete(
    tx: &mut ScopedTx,
    staff: StaffId,
    id: Uuid,
) -> Result<Option<i32>, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM staff_passkeys WHERE id = $1 AND staff_id = $2",
        id,
        staff.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    recount(tx, staff).await.map(Some)
}

/// Notes a sign-in with passkey `id`, storing its moved-on counter when it changed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn record_use(
    tx: &mut ScopedTx,
    id: Uuid,
    updated: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE staff_passkeys SET last_used_at = now(), passkey = COALESCE($2, passkey)
          WHERE id = $1",
        id,
        updated
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Counts `staff`'s passkeys into their account and moves its password version on (ending
/// its other sessions); an account left with no factor at all loses its recovery codes.
async fn recount(tx: &mut ScopedTx, staff: StaffId) -> Result<i32, StoreError> {
    sqlx::query_scalar!(
        "UPDATE staff_accounts a
            SET passkey_count = c.n,
                recovery_code_hashes = CASE WHEN c.n = 0 AND a.totp_confirmed_at IS NULL
                                            THEN '{}' ELSE a.recovery_code_hashes END,
                password_version = a.password_version + 1, updated_at = now()
           FROM (SELECT count(*)::smallint AS n FROM staff_passkeys WHERE staff_id = $1) c
          WHERE a.id = $1
         RETURNING a.password_version",
        staff.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)
}
