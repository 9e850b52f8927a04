//! Columns that hold encrypted values, for the work that walks them all: re-encryption under
//! an owner's newest data key, and binding values written in format 1 to their version
//! (`renrakucho keys bind-versions`). Each table that stores patient or facility data encrypted
//! adds its columns to [`ENCRYPTED_COLUMNS`] in the same change that creates it, saying which
//! row and version a value's associated data names (docs/adr/0016).

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
    /// The column whose UUID the associated data names as the row: the row's ID, or for an
    /// entry's history the entry's (with the version, the pair is the row's key).
    pub bound_row_column: &'a str,
    /// The column holding what makes a value current (an entry's version, a row's revision),
    /// which the associated data names; `None` for values written once (version 0).
    pub version_column: Option<&'a str>,
}

const fn patient_column(table: &'static str, column: &'static str) -> EncryptedColumn<'static> {
    EncryptedColumn {
        table,
        column,
        id_column: "id",
        owner_kind: OwnerKind::Patient,
        owner_column: "id",
        bound_row_column: "id",
        // Counted by the database at every change of the row's encrypted fields.
        version_column: Some("revision"),
    }
}

/// One stored value and where its associated data says it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The row's ID: where the value is replaced.
    pub row: Uuid,
    /// The row the associated data names (see [`EncryptedColumn::bound_row_column`]).
    pub bound_row: Uuid,
    /// The version the associated data names (0 for values written once).
    pub version: i64,
    pub value: Vec<u8>,
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
    versioned(of_patient("entries", "body_enc"), "id"),
    versioned(of_patient("entries", "vitals_enc"), "id"),
    of_patient("entries", "withdrawal_reason_enc"),
    of_patient("attachments", "file_name_enc"),
    of_patient("support_requests", "question_enc"),
    of_patient("support_requests", "summary_enc"),
    of_patient("support_requests", "answer_enc"),
    // Replaced at every re-issue: bound to the card's revision (migration 15).
    EncryptedColumn {
        version_column: Some("revision"),
        ..of_patient("patient_cards", "number_enc")
    },
    // A staff member's authenticator secret, under the facility's key (migration 22).
    EncryptedColumn {
        table: "staff_accounts",
        column: "totp_secret_enc",
        id_column: "id",
        owner_kind: OwnerKind::Facility,
        owner_column: "facility_id",
        bound_row_column: "id",
        version_column: None,
    },
    // A facility's OpenID Connect client secret, under the facility's key (migration 23).
    EncryptedColumn {
        table: "identity_providers",
        column: "client_secret_enc",
        id_column: "id",
        owner_kind: OwnerKind::Facility,
        owner_column: "facility_id",
        bound_row_column: "id",
        version_column: None,
    },
    // An operator's authenticator secret, under the platform's key (migration 22); the platform
    // owns every row, so the owner column is the row's own.
    EncryptedColumn {
        table: "platform_operators",
        column: "totp_secret_enc",
        id_column: "id",
        owner_kind: OwnerKind::Platform,
        owner_column: "id",
        bound_row_column: "id",
        version_column: None,
    },
];

/// Encrypted columns of history, which never changes (第31条): each value keeps the key version
/// it was written with (versions of a key are never removed but by erasure). Data-key rotation
/// leaves them alone; only `keys bind-versions` re-encrypts them, once, from format 1 to 2.
pub const HISTORY_COLUMNS: &[EncryptedColumn<'static>] = &[
    versioned(of_patient("entry_versions", "body_enc"), "entry_id"),
    versioned(of_patient("entry_versions", "vitals_enc"), "entry_id"),
];

/// A patient's value written once and never replaced.
const fn of_patient(table: &'static str, column: &'static str) -> EncryptedColumn<'static> {
    EncryptedColumn {
        table,
        column,
        id_column: "id",
        owner_kind: OwnerKind::Patient,
        owner_column: "patient_id",
        bound_row_column: "id",
        version_column: None,
    }
}

/// A value bound to the `version` column of its row, naming `row` as its row.
const fn versioned(c: EncryptedColumn<'static>, row: &'static str) -> EncryptedColumn<'static> {
    EncryptedColumn {
        bound_row_column: row,
        version_column: Some("version"),
        ..c
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

/// The owner's values in `column` (where each is stored, the row and version its associated
/// data names, the value), in key-maintenance scope. Patient values are read through the
/// database's `encrypted_values()`, which only key maintenance may call, for every row of the
/// patient whichever facility wrote it.
#[tracing::instrument(level = "debug", skip_all, fields(owner = %owner))]
pub async fn values_of(
    tx: &mut ScopedTx,
    column: &EncryptedColumn<'_>,
    owner: Uuid,
) -> Result<Vec<StoredValue>, StoreError> {
    let rows: Vec<(Uuid, Uuid, i64, Vec<u8>)> = if column.owner_kind == OwnerKind::Patient {
        sqlx::query!(
            r#"SELECT row_id AS "row_id!", bound_row AS "bound_row!", version AS "version!",
                      value AS "value!"
                 FROM encrypted_values($1, $2, $3)"#,
            identifier(column.table)?,
            identifier(column.column)?,
            owner,
        )
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|r| (r.row_id, r.bound_row, r.version, r.value))
        .collect()
    } else {
        // Dynamic: the table and columns come from the static list above (one statement per
        // encrypted column), so the statement is built here and not checked at compile time.
        let version = match column.version_column {
            Some(v) => format!("{}::bigint", identifier(v)?),
            None => "0::bigint".to_string(),
        };
        // The platform owns every row of its tables (there is one platform).
        let of_owner = if column.owner_kind == OwnerKind::Platform {
            "$1::uuid IS NOT NULL".to_string()
        } else {
            format!("{} = $1", identifier(column.owner_column)?)
        };
        let sql = format!(
            "SELECT {id}, {bound}, {version}, {col} FROM {table}
              WHERE {of_owner} AND {col} IS NOT NULL ORDER BY {id}",
            id = identifier(column.id_column)?,
            bound = identifier(column.bound_row_column)?,
            col = identifier(column.column)?,
            table = identifier(column.table)?,
        );
        sqlx::query_as(&sql)
            .bind(owner)
            .fetch_all(tx.conn())
            .await?
    };
    Ok(rows
        .into_iter()
        .map(|(row, bound_row, version, value)| StoredValue {
            row,
            bound_row,
            version,
            value,
        })
        .collect())
}

/// Whether values of format 1 (no version bound) may still be read: until `keys
/// bind-versions` has re-encrypted them all. Once false, false for good.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn legacy_values_readable(tx: &mut ScopedTx) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar!(r#"SELECT legacy_values_readable() AS "readable!""#)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Where `keys bind-versions` stands (key maintenance; the state stays locked until the
/// transaction ends, so runs do not overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingState {
    /// Values of format 1 are still read (the migration has not completed).
    pub legacy_readable: bool,
    /// Every patient up to this ID was done.
    pub done_through: Uuid,
}

/// Locks and reads the state of `keys bind-versions`; `restart` starts from the first patient.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn binding_state(tx: &mut ScopedTx, restart: bool) -> Result<BindingState, StoreError> {
    Ok(sqlx::query_as!(
        BindingState,
        r#"SELECT legacy_readable AS "legacy_readable!", done_through AS "done_through!"
             FROM value_binding_state($1)"#,
        restart,
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Records that every patient up to `through` was done.
#[tracing::instrument(level = "debug", skip_all, fields(through = %through))]
pub async fn binding_advance(tx: &mut ScopedTx, through: Uuid) -> Result<(), StoreError> {
    sqlx::query!("SELECT value_binding_advance($1)", through)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Completes the migration if no value of format 1 is left anywhere (the database counts);
/// returns how many are left.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn binding_complete(tx: &mut ScopedTx) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar!(r#"SELECT value_binding_complete() AS "left!""#)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Patients with a data key, by ID, after `after`: the order `keys bind-versions` goes in.
#[tracing::instrument(level = "debug", skip_all, fields(after = %after))]
pub async fn patients_after(
    tx: &mut ScopedTx,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT DISTINCT owner_id FROM data_keys
          WHERE owner_kind = 'patient' AND owner_id > $1 ORDER BY owner_id LIMIT $2",
        after,
        limit
    )
    .fetch_all(tx.conn())
    .await?)
}

/// How many patients have a data key, and how many of them come up to `through`.
#[tracing::instrument(level = "debug", skip_all, fields(through = %through))]
pub async fn patients_count(tx: &mut ScopedTx, through: Uuid) -> Result<(i64, i64), StoreError> {
    let counts = sqlx::query!(
        r#"SELECT count(DISTINCT owner_id) AS "patients!",
                count(DISTINCT owner_id) FILTER (WHERE owner_id <= $1) AS "through!"
           FROM data_keys WHERE owner_kind = 'patient'"#,
        through,
    )
    .fetch_one(tx.conn())
    .await?;
    Ok((counts.patients, counts.through))
}

/// Replaces one value if it is still `old` (a concurrent edit wins; the caller reads again).
/// Returns whether it was replaced.
#[tracing::instrument(level = "debug", skip_all, fields(owner = %owner, row = %row))]
pub async fn replace_value(
    tx: &mut ScopedTx,
    column: &EncryptedColumn<'_>,
    owner: Uuid,
    row: Uuid,
    old: &[u8],
    new: &[u8],
) -> Result<bool, StoreError> {
    if column.owner_kind == OwnerKind::Patient {
        return Ok(sqlx::query_scalar!(
            r#"SELECT reencrypt_value($1, $2, $3, $4, $5, $6) AS "replaced!""#,
            identifier(column.table)?,
            identifier(column.column)?,
            owner,
            row,
            old,
            new
        )
        .fetch_one(tx.conn())
        .await?);
    }
    // Dynamic: the table and column come from the static list above, not checked at compile time.
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
