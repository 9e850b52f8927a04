//! Passkeys: SQL for `staff_passkeys` (migration 24, in the staff member's facility's scope)
//! and `operator_passkeys` (migration 25, in the platform's scope). The two tables hold the
//! same columns; each function asks the holder's table, as [`crate::second_factors`] does.
//! Adding or removing one keeps the account's `passkey_count` and moves its
//! `password_version` on (its other sessions end), in the same transaction.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::second_factors::Holder;
use crate::{ScopedTx, StoreError};

/// How many passkeys one account may have.
pub const MAX_PER_ACCOUNT: usize = 10;

/// A registered passkey.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: Uuid,
    /// Whose it is.
    pub holder: Holder,
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
    owner: Uuid,
    credential_id: Vec<u8>,
    name: String,
    passkey: serde_json::Value,
    created_at: OffsetDateTime,
    last_used_at: Option<OffsetDateTime>,
}

impl Row {
    fn of(self, holder: fn(Uuid) -> Holder) -> StoredPasskey {
        StoredPasskey {
            id: self.id,
            holder: holder(self.owner),
            credential_id: self.credential_id,
            name: self.name,
            passkey: self.passkey,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        }
    }
}

fn staff(id: Uuid) -> Holder {
    Holder::Staff(renrakucho_core::StaffId::from_uuid(id))
}

fn operator(id: Uuid) -> Holder {
    Holder::Operator(renrakucho_core::OperatorId::from_uuid(id))
}

/// `holder`'s passkeys, oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx, holder: Holder) -> Result<Vec<StoredPasskey>, StoreError> {
    Ok(match holder {
        Holder::Staff(id) => sqlx::query_as!(
            Row,
            "SELECT id, staff_id AS owner, credential_id, name, passkey, created_at, last_used_at
               FROM staff_passkeys WHERE staff_id = $1 ORDER BY created_at, id",
            id.as_uuid()
        )
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|r| r.of(staff))
        .collect(),
        Holder::Operator(id) => sqlx::query_as!(
            Row,
            "SELECT id, operator_id AS owner, credential_id, name, passkey, created_at,
                    last_used_at
               FROM operator_passkeys WHERE operator_id = $1 ORDER BY created_at, id",
            id.as_uuid()
        )
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|r| r.of(operator))
        .collect(),
    })
}

/// The passkey with this credential ID in the transaction's scope (a facility's staff, or the
/// operators in the platform's), locked until the transaction ends (two sign-ins with it move
/// its counter one after the other).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_by_credential(
    tx: &mut ScopedTx,
    credential_id: &[u8],
) -> Result<Option<StoredPasskey>, StoreError> {
    if tx.scope().facility().is_some() {
        let row = sqlx::query_as!(
            Row,
            "SELECT id, staff_id AS owner, credential_id, name, passkey, created_at, last_used_at
               FROM staff_passkeys WHERE credential_id = $1 FOR UPDATE",
            credential_id
        )
        .fetch_optional(tx.conn())
        .await?;
        Ok(row.map(|r| r.of(staff)))
    } else {
        let row = sqlx::query_as!(
            Row,
            "SELECT id, operator_id AS owner, credential_id, name, passkey, created_at,
                    last_used_at
               FROM operator_passkeys WHERE credential_id = $1 FOR UPDATE",
            credential_id
        )
        .fetch_optional(tx.conn())
        .await?;
        Ok(row.map(|r| r.of(operator)))
    }
}

/// Adds a passkey for `holder` (a staff member of the transaction's facility, or an
/// operator): the account's new password version. A credential already registered (in the
/// facility; among the operators) gives [`StoreError::Conflict`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    tx: &mut ScopedTx,
    holder: Holder,
    credential_id: &[u8],
    name: &str,
    passkey: &serde_json::Value,
) -> Result<i32, StoreError> {
    let added = match holder {
        Holder::Staff(id) => {
            let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
            sqlx::query_scalar!(
                "INSERT INTO staff_passkeys
                     (id, facility_id, staff_id, credential_id, name, passkey)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (facility_id, credential_id) DO NOTHING
                 RETURNING id",
                Uuid::now_v7(),
                facility.as_uuid(),
                id.as_uuid(),
                credential_id,
                name,
                passkey
            )
            .fetch_optional(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query_scalar!(
                "INSERT INTO operator_passkeys (id, operator_id, credential_id, name, passkey)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (credential_id) DO NOTHING
                 RETURNING id",
                Uuid::now_v7(),
                id.as_uuid(),
                credential_id,
                name,
                passkey
            )
            .fetch_optional(tx.conn())
            .await?
        }
    };
    if added.is_none() {
        return Err(StoreError::Conflict {
            constraint: "credential_id".into(),
        });
    }
    recount(tx, holder).await
}

/// Removes `holder`'s passkey `id`: the account's new password version, or `None` when it has
/// no such passkey. With its last factor gone, the account's recovery codes go too.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(
    tx: &mut ScopedTx,
    holder: Holder,
    id: Uuid,
) -> Result<Option<i32>, StoreError> {
    let done = match holder {
        Holder::Staff(staff) => {
            sqlx::query!(
                "DELETE FROM staff_passkeys WHERE id = $1 AND staff_id = $2",
                id,
                staff.as_uuid()
            )
            .execute(tx.conn())
            .await?
        }
        Holder::Operator(operator) => {
            sqlx::query!(
                "DELETE FROM operator_passkeys WHERE id = $1 AND operator_id = $2",
                id,
                operator.as_uuid()
            )
            .execute(tx.conn())
            .await?
        }
    };
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    recount(tx, holder).await.map(Some)
}

/// Notes a sign-in with `holder`'s passkey `id`, storing its moved-on counter when it changed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn record_use(
    tx: &mut ScopedTx,
    holder: Holder,
    id: Uuid,
    updated: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    match holder {
        Holder::Staff(_) => {
            sqlx::query!(
                "UPDATE staff_passkeys SET last_used_at = now(), passkey = COALESCE($2, passkey)
                  WHERE id = $1",
                id,
                updated
            )
            .execute(tx.conn())
            .await?
        }
        Holder::Operator(_) => {
            sqlx::query!(
                "UPDATE operator_passkeys SET last_used_at = now(),
                        passkey = COALESCE($2, passkey)
                  WHERE id = $1",
                id,
                updated
            )
            .execute(tx.conn())
            .await?
        }
    };
    Ok(())
}

/// Counts `holder`'s passkeys into their account and moves its password version on (ending
/// its other sessions); an account left with no factor at all loses its recovery codes.
async fn recount(tx: &mut ScopedTx, holder: Holder) -> Result<i32, StoreError> {
    match holder {
        Holder::Staff(id) => sqlx::query_scalar!(
            "UPDATE staff_accounts a
                SET passkey_count = c.n,
                    recovery_code_hashes = CASE WHEN c.n = 0 AND a.totp_confirmed_at IS NULL
                                                THEN '{}' ELSE a.recovery_code_hashes END,
                    password_version = a.password_version + 1, updated_at = now()
               FROM (SELECT count(*)::smallint AS n FROM staff_passkeys WHERE staff_id = $1) c
              WHERE a.id = $1
             RETURNING a.password_version",
            id.as_uuid()
        )
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound),
        Holder::Operator(id) => sqlx::query_scalar!(
            "UPDATE platform_operators a
                SET passkey_count = c.n,
                    recovery_code_hashes = CASE WHEN c.n = 0 AND a.totp_confirmed_at IS NULL
                                                THEN '{}' ELSE a.recovery_code_hashes END,
                    password_version = a.password_version + 1
               FROM (SELECT count(*)::smallint AS n FROM operator_passkeys
                      WHERE operator_id = $1) c
              WHERE a.id = $1
             RETURNING a.password_version",
            id.as_uuid()
        )
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound),
    }
}
