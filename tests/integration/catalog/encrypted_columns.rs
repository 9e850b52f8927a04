//! The encrypted columns: what the application encrypts and re-encrypts is what the database
//! knows, with the same owner and the same binding.

use renrakucho_store::data_keys::OwnerKind;
use renrakucho_store::encrypted::{EncryptedColumn, ENCRYPTED_COLUMNS, HISTORY_COLUMNS};

use super::*;

fn column_name(c: &EncryptedColumn<'_>) -> String {
    format!("public.{}.{}", c.table, c.column)
}

/// The encrypted columns: what the application walks ([`ENCRYPTED_COLUMNS`], and
/// [`HISTORY_COLUMNS`], which only `keys bind-versions` re-encrypts) is what the database's
/// `encrypted_column_owner()` knows, with the same owner column, and what its
/// `encrypted_column_binding()` says each value's associated data names (row, version); no
/// column is in both lists; and every `bytea` column named `*_enc` is in one of them.
pub(super) async fn encrypted_column_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    let known: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT format('%s.%s.%s', c.table_schema, c.table_name, c.column_name),
                encrypted_column_owner(c.table_name, c.column_name),
                (encrypted_column_binding(c.table_name, c.column_name))[1],
                (encrypted_column_binding(c.table_name, c.column_name))[2]
           FROM information_schema.columns c
          WHERE c.table_schema = 'public' AND c.data_type = 'bytea'
            AND encrypted_column_owner(c.table_name, c.column_name) IS NOT NULL
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let ours: Vec<&EncryptedColumn<'static>> = ENCRYPTED_COLUMNS
        .iter()
        .chain(HISTORY_COLUMNS)
        .filter(|c| c.owner_kind == OwnerKind::Patient)
        .collect();
    for c in &ours {
        match known.iter().find(|(name, ..)| *name == column_name(c)) {
            None => problems.push(format!(
                "{}: encrypted by the application but unknown to encrypted_column_owner()",
                column_name(c)
            )),
            Some((_, owner, row, version)) => {
                if owner != c.owner_column {
                    problems.push(format!(
                        "{}: encrypted_column_owner() names {owner}, the application {}",
                        column_name(c),
                        c.owner_column
                    ));
                }
                if row.as_deref() != Some(c.bound_row_column)
                    || version.as_deref() != c.version_column
                {
                    problems.push(format!(
                        "{}: encrypted_column_binding() binds row {row:?} version {version:?}, \
                         the application row {:?} version {:?}",
                        column_name(c),
                        c.bound_row_column,
                        c.version_column
                    ));
                }
            }
        }
    }
    for (column, ..) in &known {
        if !ours.iter().any(|c| column_name(c) == *column) {
            problems.push(format!(
                "{column}: known to encrypted_column_owner() but in neither ENCRYPTED_COLUMNS \
                 nor HISTORY_COLUMNS"
            ));
        }
    }
    for c in HISTORY_COLUMNS {
        if ENCRYPTED_COLUMNS.contains(c) {
            problems.push(format!(
                "{}: in both ENCRYPTED_COLUMNS and HISTORY_COLUMNS",
                column_name(c)
            ));
        }
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s.%s.%s', c.table_schema, c.table_name, c.column_name)
           FROM information_schema.columns c
          WHERE c.table_schema IN ('public', 'private') AND c.data_type = 'bytea'
            AND c.column_name LIKE '%\\_enc'
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for column in stored {
        if !ENCRYPTED_COLUMNS
            .iter()
            .chain(HISTORY_COLUMNS)
            .any(|c| column_name(c) == column)
        {
            problems.push(format!(
                "{column}: an encrypted column in neither ENCRYPTED_COLUMNS nor HISTORY_COLUMNS"
            ));
        }
    }
    problems
}
