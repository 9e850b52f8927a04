//! Columns that hold encrypted values, for the work that walks them all: re-encryption under
//! an owner's newest data key. Each table that stores patient or facility data encrypted adds
//! its columns to [`ENCRYPTED_COLUMNS`] in the same change that creates it.

use uuid::Uuid;

use crate::data_keys::OwnerKind;
use crate::{ScopedTx, StoreError};

/// One `bytea` column of encrypted values, and how to find its rows and their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedColumn<'a> {
    pub table: &'a str,
    pub column: &'a str,
    /// The row's ID (the value's associated data names it).
    pub id_column: &'a str,
    /// Whose key encrypts the column, and the column naming that owner.
    pub owner_kind: OwnerKind,
    pub owner_column: &'a str,
}

const fn patient_column(table: &'static str, column: &'static str) -> EncryptedColumn<'static> {
    EncryptedColumn {
        table,
        column,
        id_column: "id",
        owner_kind: OwnerKind::Patient,
        owner_column: "id",
    }
}

/// Every encrypted column of the schema.
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn<'static>] = &[
    patient_column("patients", "name_enc"),
    patient_column("patients", "kana_enc"),
    patient_column("patients", "profile_enc"),
    EncryptedColumn {
        table: "emergency_grants",
        column: "reason_enc",
        id_column: "id",
        owner_kind: OwnerKind::Patient,
        owner_column: "patient_id",
    },
    EncryptedColumn {
        table: "consents",
        column: "details_enc",
        id_column: "id",
        owner_kind: OwnerKind::Patient,
        owner_column: "patient_id",
    },
];

fn identifier(name: &str) -> Result<&str, StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(StoreError::Misconfigured(format!(
            "{name:?} is not a plain identifier"
        )))
    }
}

/// The owner's values in `column` (row ID and value), as the transaction's scope sees them.
pub async fn values_of(
    tx: &mut ScopedTx,
    column: &EncryptedColumn<'_>,
    owner: Uuid,
) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
    let sql = format!(
        "SELECT {id}, {col} FROM {table} WHERE {owner} = $1 AND {col} IS NOT NULL ORDER BY {id}",
        id = identifier(column.id_column)?,
        col = identifier(column.column)?,
        table = identifier(column.table)?,
        owner = identifier(column.owner_column)?,
    );
    Ok(sqlx::query_as(&sql)
        .bind(owner)
        .fetch_all(tx.conn())
        .await?)
}

/// Replaces one value if it is still `old` (a concurrent edit wins; the caller reads again).
/// Returns whether it was replaced.
pub async fn replace_value(
    tx: &mut ScopedTx,
    column: &EncryptedColumn<'_>,
    row: Uuid,
    old: &[u8],
    new: &[u8],
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE {table} SET {col} = $3 WHERE {id} = $1 AND {col} = $2",
        id = identifier(column.id_column)?,
        col = identifier(column.column)?,
        table = identifier(column.table)?,
    );
    let done = sqlx::query(&sql)
        .bind(row)
        .bind(old)
        .bind(new)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}
