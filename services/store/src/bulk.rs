//! Bulk loading for the city-scale generator (`renrakucho demo --scale`, issue 14): notebook
//! entries, their first versions, read receipts and audit records written with `COPY`, millions
//! of rows in minutes.
//!
//! `COPY FROM` refuses a table under row-level security, so a [`BulkLoader`] is a connection of
//! a role that bypasses it (the cluster's superuser): never the server's. Entries, versions and
//! receipts go in with `session_replication_role = replica`, which skips their per-row
//! triggers (a live-event announcement per historical entry would be noise) and the foreign-key
//! checks: the generator writes only rows whose references it made. Audit records go in with
//! every trigger on, so the database links each facility's hash chain as it does for the
//! server's records, and `renrakucho audit verify` checks them like any others.
//!
//! The values arrive here already encrypted, by the keyring exactly as the server encrypts them.
//!
//! Checked at compile time like every statement (ADR 0021), except what cannot be: `COPY`
//! (the copy protocol), `SET LOCAL session_replication_role` and `ANALYZE`.

use std::fmt::Write as _;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;

/// An entry as posted (version 1), with its value sealed twice: for the entry's row and for its
/// history's.
#[derive(Debug, Clone)]
pub struct BulkEntry {
    pub id: Uuid,
    /// The first version's own ID.
    pub version_id: Uuid,
    pub patient: Uuid,
    pub facility: Uuid,
    pub author: Uuid,
    pub author_name: String,
    pub author_profession: &'static str,
    pub category: &'static str,
    pub priority: &'static str,
    pub body_enc: Vec<u8>,
    pub version_body_enc: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// A read receipt.
#[derive(Debug, Clone)]
pub struct BulkRead {
    pub entry: Uuid,
    pub patient: Uuid,
    pub staff: Uuid,
    pub facility: Uuid,
    pub reader_name: String,
    pub reader_profession: &'static str,
    pub read_at: OffsetDateTime,
}

/// A connection that may `COPY` into the tables of patient data.
pub struct BulkLoader {
    conn: PgConnection,
}

impl std::fmt::Debug for BulkLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkLoader").finish_non_exhaustive()
    }
}

impl BulkLoader {
    /// Connects as `superuser`; refuses a role that does not bypass row-level security, naming
    /// the fix.
    pub async fn connect(superuser: &PgConnectOptions) -> Result<Self, StoreError> {
        let mut conn = PgConnection::connect_with(superuser).await?;
        let bypasses = sqlx::query_scalar!(
            r#"SELECT (rolsuper OR rolbypassrls) AS "bypasses!"
                 FROM pg_catalog.pg_roles WHERE rolname = current_user"#
        )
        .fetch_one(&mut conn)
        .await?;
        if !bypasses {
            return Err(StoreError::Misconfigured(
                "the bulk load writes with COPY, which row-level security refuses: connect as a \
                 superuser (or a BYPASSRLS role) of this database for it, never as the server's \
                 roles"
                    .into(),
            ));
        }
        Ok(Self { conn })
    }

    /// Writes entries and their first versions.
    pub async fn entries(&mut self, rows: &[BulkEntry]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut entries = String::new();
        let mut versions = String::new();
        for e in rows {
            let at = timestamp(e.created_at);
            let name = quoted(&e.author_name);
            let _ = writeln!(
                entries,
                "{},{},{},{},{name},{},{},{},{},{at},{at}",
                e.id,
                e.patient,
                e.facility,
                e.author,
                e.author_profession,
                e.category,
                e.priority,
                hex(&e.body_enc),
            );
            let _ = writeln!(
                versions,
                "{},{},1,{},{},{},{name},{at},{},{},{}",
                e.version_id,
                e.id,
                e.patient,
                e.facility,
                e.author,
                e.category,
                e.priority,
                hex(&e.version_body_enc),
            );
        }
        self.copy_without_triggers(&[
            (
                "COPY entries (id, patient_id, facility_id, author_id, author_name,
                               author_profession, category, priority, body_enc, created_at,
                               updated_at)
                 FROM STDIN (FORMAT csv)",
                entries,
            ),
            (
                "COPY entry_versions (id, entry_id, version, patient_id, facility_id, edited_by,
                                      edited_by_name, edited_at, category, priority, body_enc)
                 FROM STDIN (FORMAT csv)",
                versions,
            ),
        ])
        .await
    }

    /// Writes read receipts.
    pub async fn reads(&mut self, rows: &[BulkRead]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut data = String::new();
        for r in rows {
            let _ = writeln!(
                data,
                "{},{},{},{},{},{},{}",
                r.entry,
                r.patient,
                r.staff,
                r.facility,
                quoted(&r.reader_name),
                r.reader_profession,
                timestamp(r.read_at),
            );
        }
        self.copy_without_triggers(&[(
            "COPY entry_reads (entry_id, patient_id, staff_id, facility_id, reader_name,
                               reader_profession, read_at)
             FROM STDIN (FORMAT csv)",
            data,
        )])
        .await
    }

    /// Runs each `COPY` with its CSV data in one transaction, with the tables' per-row triggers
    /// and foreign-key checks off (`session_replication_role = replica`, for this transaction
    /// only).
    async fn copy_without_triggers(&mut self, copies: &[(&str, String)]) -> Result<(), StoreError> {
        let mut tx = self.conn.begin().await?;
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await?;
        for (statement, data) in copies {
            copy(&mut tx, statement, data.as_bytes()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The audit records of the notebooks of `patients`, as the server writes them: one for
    /// each entry posted (`entry.post`) and one for each reader's receipts on a notebook
    /// (`entry.mark_read`). The database links each into its facility's chain, as it links
    /// the server's. Returns how many were written.
    pub async fn audit_notebooks(&mut self, patients: &[Uuid]) -> Result<u64, StoreError> {
        let mut tx = self.conn.begin().await?;
        let posted = sqlx::query!(
            "INSERT INTO audit_log (facility_id, seq, actor_kind, actor_id, action, outcome,
                                    target_kind, target_id, details, prev_hash, hash)
             SELECT e.facility_id, 0, 'staff', e.author_id, 'entry.post', 'success', 'patient',
                    e.patient_id,
                    jsonb_build_object('entry', e.id, 'category', e.category,
                                       'priority', e.priority, 'reply_to', NULL,
                                       'attachments', 0),
                    ''::bytea, ''::bytea
               FROM entries e
              WHERE e.patient_id = ANY($1)
              ORDER BY e.created_at, e.id",
            patients
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let read = sqlx::query!(
            "INSERT INTO audit_log (facility_id, seq, actor_kind, actor_id, action, outcome,
                                    target_kind, target_id, details, prev_hash, hash)
             SELECT r.facility_id, 0, 'staff', r.staff_id, 'entry.mark_read', 'success',
                    'patient', r.patient_id, jsonb_build_object('entries', count(*)),
                    ''::bytea, ''::bytea
               FROM entry_reads r
              WHERE r.patient_id = ANY($1)
              GROUP BY r.facility_id, r.staff_id, r.patient_id
              ORDER BY max(r.read_at)",
            patients
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(posted + read)
    }

    /// Fresh planner statistics for every table, as autovacuum keeps them in service.
    pub async fn analyze(&mut self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE").execute(&mut self.conn).await?;
        Ok(())
    }

    /// The database's size on disk, in bytes.
    pub async fn database_size(&mut self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT pg_catalog.pg_database_size(current_database()) AS "bytes!""#
        )
        .fetch_one(&mut self.conn)
        .await?)
    }

    pub async fn close(self) -> Result<(), StoreError> {
        self.conn.close().await?;
        Ok(())
    }
}

async fn copy(conn: &mut PgConnection, statement: &str, data: &[u8]) -> Result<(), StoreError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data).await {
        let _ = copy.abort("the bulk load failed").await;
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

/// A CSV field: quoted, quotes doubled.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `bytea` in its hex input form (no quoting needed in CSV).
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("a timestamp formats")
}
