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

/// Every encrypted column re-encryption moves to an owner's newest key. The database's
/// `encrypted_column_owner()` lists the patient columns too, and the catalog test checks that
/// the two agree.
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn<'static>] = &[
    patient_column("patients", "name_enc"),
    patient_column("patients", "kana_enc"),
    patient_column("patients", "profile_enc"),
    of_patient("consents", "details_enc"),
    of_patient("emergency_grants", "reason_enc"),
    of_patient("entries", "body_enc"),
    of_patient("entries", "vitals_enc"),
    of_patient("entries", "withdrawal_reason_enc"),
    of_patient("attachments", "file_name_enc"),
    of_patient("support_requests", "question_enc"),
    of_patient("support_requests", "summary_enc"),
    of_patient("support_requests", "answer_enc"),
    of_patient("patient_cards", "number_enc"),
];

/// Encrypted columns of history, which never changes (第31条): each value keeps the key version
/// it was written with (versions of a key are never removed but by erasure).
pub const HISTORY_COLUMNS: &[EncryptedColumn<'static>] = &[
    of_patient("entry_versions", "body_enc"),
    of_patient("entry_versions", "vitals_enc"),
];

const fn of_patient(table: &'static str, column: &'static str) -> EncryptedColumn<'static> {
    EncryptedColumn {
        table,
        column,
        id_column: "id",
        owner_kind: OwnerKind::Patient,
        owner_column: "patient_id",
    }
}

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

/// The owner's values in `column` (row ID and value), in key-maintenance scope. Patient values
/// are read through the database's `encrypted_values()`, which only key maintenance may call,
/// for every row of the patient whichever facility wrote it.
pub async fn values_of(
    tx: &mut ScopedTx,
    column: &EncryptedColumn<'_>,
    owner: Uuid,
) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
    if column.owner_kind == OwnerKind::Patient {
        return Ok(
            sqlx::query_as("SELECT row_id, value FROM encrypted_values($1, $2, $3)")
                .bind(identifier(column.table)?)
                .bind(identifier(column.column)?)
                .bind(owner)
                .fetch_all(tx.conn())
                .await?,
        );
    }
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
    owner: Uuid,
    row: Uuid,
    old: &[u8],
    new: &[u8],
) -> Result<bool, StoreError> {
    if column.owner_kind == OwnerKind::Patient {
        return Ok(
            sqlx::query_scalar("SELECT reencrypt_value($1, $2, $3, $4, $5, $6)")
                .bind(identifier(column.table)?)
                .bind(identifier(column.column)?)
                .bind(owner)
                .bind(row)
                .bind(old)
                .bind(new)
                .fetch_one(tx.conn())
                .await?,
        );
    }
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
