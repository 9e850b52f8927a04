//! The contact notebook: entries (table `entries`, current state), their history
//! (`entry_versions`), read receipts (`entry_reads`). Bodies and vitals arrive and leave
//! encrypted: this module never sees them in the clear.

use renrakucho_core::{FacilityId, PatientId, StaffId};
use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// An entry as stored.
#[derive(Debug, Clone, FromRow)]
pub struct StoredEntry {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub author_id: Uuid,
    pub author_name: String,
    pub author_profession: String,
    pub category: String,
    pub priority: String,
    pub reply_to: Option<Uuid>,
    pub mentions: Vec<Uuid>,
    pub body_enc: Vec<u8>,
    pub vitals_enc: Option<Vec<u8>>,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawn_by: Option<Uuid>,
    pub withdrawal_reason_enc: Option<Vec<u8>>,
}

const COLUMNS: &str = "id, patient_id, facility_id, author_id, author_name, author_profession, \
                       category, priority, reply_to, mentions, body_enc, vitals_enc, version, \
                       created_at, updated_at, withdrawn_at, withdrawn_by, withdrawal_reason_enc";

/// A new entry, written by the transaction's facility.
#[derive(Debug)]
pub struct NewEntry<'a> {
    pub id: Uuid,
    /// The first version's own ID (its values are encrypted bound to it).
    pub version_id: Uuid,
    pub patient: PatientId,
    pub author: StaffId,
    pub author_name: &'a str,
    pub author_profession: &'a str,
    pub category: &'a str,
    pub priority: &'a str,
    pub reply_to: Option<Uuid>,
    pub mentions: &'a [Uuid],
    pub body_enc: &'a [u8],
    pub vitals_enc: Option<&'a [u8]>,
    /// The same values, encrypted for the version row.
    pub version_body_enc: &'a [u8],
    pub version_vitals_enc: Option<&'a [u8]>,
}

/// Inserts the entry and its first version. Returns when it was written.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewEntry<'_>) -> Result<OffsetDateTime, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let created: OffsetDateTime = sqlx::query_scalar!(
        "WITH e AS (
            INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                 author_profession, category, priority, reply_to, mentions,
                                 body_enc, vitals_enc)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            RETURNING created_at)
         INSERT INTO entry_versions (id, entry_id, version, patient_id, facility_id, edited_by,
                                     edited_by_name, edited_at, category, priority, body_enc,
                                     vitals_enc)
         SELECT $13, $1, 1, $2, $3, $4, $5, e.created_at, $7, $8, $14, $15 FROM e
         RETURNING edited_at",
        new.id,
        new.patient.as_uuid(),
        facility.as_uuid(),
        new.author.as_uuid(),
        new.author_name,
        new.author_profession,
        new.category,
        new.priority,
        new.reply_to,
        new.mentions,
        new.body_enc,
        new.vitals_enc,
        new.version_id,
        new.version_body_enc,
        new.version_vitals_enc
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(created)
}

/// One entry of a patient, if visible (withdrawn ones included).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, id = %id))]
pub async fn get(
    tx: &mut ScopedTx,
    patient: PatientId,
    id: Uuid,
) -> Result<StoredEntry, StoreError> {
    Ok(sqlx::query_as!(
        StoredEntry,
        "SELECT id, patient_id, facility_id, author_id,
            author_name, author_profession, category, priority, reply_to, mentions,
            body_enc, vitals_enc, version, created_at, updated_at, withdrawn_at,
            withdrawn_by, withdrawal_reason_enc FROM entries WHERE patient_id = $1 AND id =
            $2",
        patient.as_uuid(),
        id
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Which entries a timeline page shows.
#[derive(Debug, Clone, Default)]
pub struct TimelineFilter {
    pub categories: Vec<String>,
    pub facility: Option<FacilityId>,
    pub urgent_only: bool,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Where the previous page ended: newest first, so the next page is older than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

/// A file of an entry, as a page lists it (its name still encrypted).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PageFile {
    pub id: Uuid,
    pub media_type: String,
    pub size: i64,
    pub thumbnail: bool,
    /// The encrypted name, base64.
    pub name: String,
}

/// An entry of a timeline page, with the reader's read mark and the entry's files, in one row:
/// a page is one round trip.
#[derive(Debug, Clone, FromRow)]
pub struct PageRow {
    #[sqlx(flatten)]
    pub entry: StoredEntry,
    pub read: bool,
    pub files: sqlx::types::Json<Vec<PageFile>>,
}

/// A page of the timeline: not withdrawn, newest first, older than `after`, keyset-paginated
/// on (created_at, id) so that every page costs the same; each entry with whether `reader`
/// read it and its files.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, reader = %reader))]
pub async fn timeline(
    tx: &mut ScopedTx,
    patient: PatientId,
    reader: StaffId,
    filter: &TimelineFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<PageRow>, StoreError> {
    // Dynamic: the filters decide which conditions the statement has (binds only, no input in SQL).
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS},
                EXISTS (SELECT FROM entry_reads r
                         WHERE r.entry_id = entries.id AND r.staff_id = "
    ));
    q.push_bind(reader.as_uuid());
    q.push(
        ") AS read,
                (SELECT coalesce(json_agg(json_build_object(
                            'id', a.id, 'media_type', a.media_type, 'size', a.size,
                            'thumbnail', a.thumbnail IS NOT NULL,
                            'name', translate(encode(a.file_name_enc, 'base64'), E'\\n', ''))
                            ORDER BY a.created_at),
                         '[]'::json)
                   FROM attachments a WHERE a.entry_id = entries.id) AS files
           FROM entries WHERE withdrawn_at IS NULL AND patient_id = ",
    );
    q.push_bind(patient.as_uuid());
    if let Some(c) = after {
        q.push(" AND (created_at, id) < (")
            .push_bind(c.created_at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    if !filter.categories.is_empty() {
        q.push(" AND category = ANY(")
            .push_bind(filter.categories.clone())
            .push(")");
    }
    if let Some(f) = filter.facility {
        q.push(" AND facility_id = ").push_bind(f.as_uuid());
    }
    if filter.urgent_only {
        q.push(" AND priority = 'urgent'");
    }
    if let Some(from) = filter.from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        q.push(" AND created_at < ").push_bind(until);
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(tx.conn()).await?)
}

/// Every entry of the patient visible here, withdrawn ones included, oldest first (export,
/// search within the notebook).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn all(tx: &mut ScopedTx, patient: PatientId) -> Result<Vec<StoredEntry>, StoreError> {
    Ok(sqlx::query_as!(
        StoredEntry,
        "SELECT id, patient_id, facility_id, author_id,
            author_name, author_profession, category, priority, reply_to, mentions,
            body_enc, vitals_enc, version, created_at, updated_at, withdrawn_at,
            withdrawn_by, withdrawal_reason_enc FROM entries WHERE patient_id = $1 ORDER BY
            created_at, id",
        patient.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// An edit to store as the next version.
#[derive(Debug)]
pub struct Edit<'a> {
    pub id: Uuid,
    pub version_id: Uuid,
    pub patient: PatientId,
    /// The version the editor saw; the edit is refused if another came first.
    pub expected_version: i32,
    pub editor: StaffId,
    pub editor_name: &'a str,
    pub category: &'a str,
    pub priority: &'a str,
    pub mentions: &'a [Uuid],
    pub body_enc: &'a [u8],
    pub vitals_enc: Option<&'a [u8]>,
    pub version_body_enc: &'a [u8],
    pub version_vitals_enc: Option<&'a [u8]>,
}

/// What an edit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    Saved {
        version: i32,
    },
    /// Someone saved another version first: this is the current one. Nothing was changed.
    Stale {
        current: i32,
    },
}

/// Stores an edit as the next version (current state and history, one statement).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn edit(tx: &mut ScopedTx, e: &Edit<'_>) -> Result<EditOutcome, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    let saved: Option<i32> = sqlx::query_scalar!(
        "WITH e AS (
            UPDATE entries
               SET category = $4, priority = $5, mentions = $6, body_enc = $7, vitals_enc = $8,
                   version = version + 1, updated_at = now()
             WHERE patient_id = $1 AND id = $2 AND version = $3 AND withdrawn_at IS NULL
            RETURNING version, updated_at)
         INSERT INTO entry_versions (id, entry_id, version, patient_id, facility_id, edited_by,
                                     edited_by_name, edited_at, category, priority, body_enc,
                                     vitals_enc)
         SELECT $12, $2, e.version, $1, $9, $10, $11, e.updated_at, $4, $5, $13, $14 FROM e
         RETURNING version",
        e.patient.as_uuid(),
        e.id,
        e.expected_version,
        e.category,
        e.priority,
        e.mentions,
        e.body_enc,
        e.vitals_enc,
        facility.as_uuid(),
        e.editor.as_uuid(),
        e.editor_name,
        e.version_id,
        e.version_body_enc,
        e.version_vitals_enc
    )
    .fetch_optional(tx.conn())
    .await?;
    match saved {
        Some(version) => Ok(EditOutcome::Saved { version }),
        None => {
            let current = get(tx, e.patient, e.id).await?;
            Ok(EditOutcome::Stale {
                current: current.version,
            })
        }
    }
}

/// Withdraws an entry: hidden from the timeline, kept in the history with the reason.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, id = %id, by = %by))]
pub async fn withdraw(
    tx: &mut ScopedTx,
    patient: PatientId,
    id: Uuid,
    by: StaffId,
    reason_enc: &[u8],
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE entries SET withdrawn_at = now(), withdrawn_by = $3, withdrawal_reason_enc = $4
          WHERE patient_id = $1 AND id = $2 AND withdrawn_at IS NULL",
        patient.as_uuid(),
        id,
        by.as_uuid(),
        reason_enc
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// A version of an entry, as stored.
#[derive(Debug, Clone, FromRow)]
pub struct StoredVersion {
    pub id: Uuid,
    pub entry_id: Uuid,
    pub version: i32,
    pub facility_id: Uuid,
    pub edited_by: Uuid,
    pub edited_by_name: String,
    pub edited_at: OffsetDateTime,
    pub category: String,
    pub priority: String,
    pub body_enc: Vec<u8>,
    pub vitals_enc: Option<Vec<u8>>,
}

/// Every version of an entry, oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, entry = %entry))]
pub async fn versions(
    tx: &mut ScopedTx,
    patient: PatientId,
    entry: Uuid,
) -> Result<Vec<StoredVersion>, StoreError> {
    Ok(sqlx::query_as!(
        StoredVersion,
        "SELECT id, entry_id, version, facility_id, edited_by, edited_by_name, edited_at, category,
                priority, body_enc, vitals_enc
           FROM entry_versions WHERE patient_id = $1 AND entry_id = $2 ORDER BY version",
        patient.as_uuid(),
        entry
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Replies to an entry, oldest first (withdrawn ones left out).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, entry = %entry))]
pub async fn replies(
    tx: &mut ScopedTx,
    patient: PatientId,
    entry: Uuid,
) -> Result<Vec<StoredEntry>, StoreError> {
    Ok(sqlx::query_as!(
        StoredEntry,
        "SELECT id, patient_id, facility_id, author_id,
            author_name, author_profession, category, priority, reply_to, mentions,
            body_enc, vitals_enc, version, created_at, updated_at, withdrawn_at,
            withdrawn_by, withdrawal_reason_enc FROM entries
          WHERE patient_id = $1 AND reply_to = $2 AND withdrawn_at IS NULL
          ORDER BY created_at, id",
        patient.as_uuid(),
        entry
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Records that a person read these entries (again reading changes nothing). `NotFound` when
/// one of them is not an entry of this patient.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient, reader = %reader))]
pub async fn mark_read(
    tx: &mut ScopedTx,
    patient: PatientId,
    entries: &[Uuid],
    reader: StaffId,
    name: &str,
    profession: &str,
) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    // One statement: the receipts for the named entries of this patient, and how many names
    // were not among them (unknown, or another patient's: not told apart).
    let counts = sqlx::query!(
        r#"WITH named AS (SELECT DISTINCT unnest($1::uuid[]) AS id),
              found AS (SELECT e.id FROM entries e JOIN named USING (id) WHERE e.patient_id = $2),
              marked AS (
                INSERT INTO entry_reads (entry_id, patient_id, staff_id, facility_id, reader_name,
                                         reader_profession)
                SELECT id, $2, $3, $4, $5, $6 FROM found
                ON CONFLICT (entry_id, staff_id) DO NOTHING
                RETURNING 1)
         SELECT (SELECT count(*) FROM named) - (SELECT count(*) FROM found) AS "missing!",
                (SELECT count(*) FROM marked) AS "marked!""#,
        entries,
        patient.as_uuid(),
        reader.as_uuid(),
        facility.as_uuid(),
        name,
        profession,
    )
    .fetch_one(tx.conn())
    .await?;
    let (missing, marked) = (counts.missing, counts.marked);
    // The caller's transaction is not committed on an error: nothing is marked.
    if missing > 0 {
        return Err(StoreError::NotFound);
    }
    Ok(marked as u64)
}

/// Someone who read an entry.
#[derive(Debug, Clone, FromRow)]
pub struct Reader {
    pub entry_id: Uuid,
    pub staff_id: Uuid,
    pub facility_id: Uuid,
    pub reader_name: String,
    pub reader_profession: String,
    pub read_at: OffsetDateTime,
}

/// Who read these entries, in reading order.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn readers(tx: &mut ScopedTx, entries: &[Uuid]) -> Result<Vec<Reader>, StoreError> {
    Ok(sqlx::query_as!(
        Reader,
        "SELECT entry_id, staff_id, facility_id, reader_name, reader_profession, read_at
           FROM entry_reads WHERE entry_id = ANY($1) ORDER BY read_at",
        entries
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Unread entries (not withdrawn, not written by the person) per patient, for one person.
#[derive(Debug, Clone, FromRow)]
pub struct Unread {
    pub patient_id: Uuid,
    pub urgent: i64,
    pub reply_requested: i64,
    pub total: i64,
    pub newest: OffsetDateTime,
}

/// The person's unread entries written since `since`, per patient the facility shares, urgent
/// ones first. Each patient's entries are read from the timeline index from `since` on, so the
/// cost follows the entries of that window, not the notebooks' whole history.
#[tracing::instrument(level = "debug", skip_all, fields(reader = %reader))]
pub async fn unread(
    tx: &mut ScopedTx,
    reader: StaffId,
    since: OffsetDateTime,
) -> Result<Vec<Unread>, StoreError> {
    Ok(sqlx::query_as!(
        Unread,
        r#"SELECT e.patient_id,
                count(*) FILTER (WHERE e.priority = 'urgent') AS "urgent!",
                count(*) FILTER (WHERE e.priority = 'reply_requested') AS "reply_requested!",
                count(*) AS "total!",
                max(e.created_at) AS "newest!"
           FROM entries e
          WHERE e.withdrawn_at IS NULL AND e.author_id <> $1 AND e.created_at >= $2
            AND e.patient_id IN (SELECT a.patient_id FROM patient_access a
                                  WHERE a.facility_id = (SELECT current_facility_id())
                                    AND a.relation = 'sharing')
            AND NOT EXISTS (SELECT FROM entry_reads r WHERE r.entry_id = e.id AND r.staff_id = $1)
          GROUP BY e.patient_id
          ORDER BY count(*) FILTER (WHERE e.priority = 'urgent') DESC, max(e.created_at) DESC"#,
        reader.as_uuid(),
        since
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Which of these entries the person has read.
#[tracing::instrument(level = "debug", skip_all, fields(reader = %reader))]
pub async fn read_by(
    tx: &mut ScopedTx,
    reader: StaffId,
    entries: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT entry_id FROM entry_reads WHERE staff_id = $1 AND entry_id = ANY($2)",
        reader.as_uuid(),
        entries
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Entries that concern a person, newest first: replies to their entries, entries mentioning
/// their facility, and urgent or reply-requested entries on patients the facility shares.
#[derive(Debug, Clone, FromRow)]
pub struct Concerning {
    pub entry_id: Uuid,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub priority: String,
    pub category: String,
    pub created_at: OffsetDateTime,
    pub is_reply_to_me: bool,
    pub mentions_us: bool,
    pub read: bool,
}

#[tracing::instrument(level = "debug", skip_all, fields(person = %person))]
pub async fn concerning(
    tx: &mut ScopedTx,
    person: StaffId,
    since: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Concerning>, StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    Ok(sqlx::query_as!(Concerning, r#"SELECT e.id AS entry_id, e.patient_id, e.facility_id,
            e.priority, e.category, e.created_at,
                coalesce(p.author_id = $1, false) AS "is_reply_to_me!",
                ($2 = ANY(e.mentions)) AS "mentions_us!",
                EXISTS (SELECT FROM entry_reads r WHERE r.entry_id = e.id AND r.staff_id = $1) AS "read!"
           FROM entries e
           LEFT JOIN entries p ON p.id = e.reply_to
          WHERE e.withdrawn_at IS NULL AND e.author_id <> $1 AND e.created_at >= $3
            AND e.patient_id IN (SELECT a.patient_id FROM patient_access a
                                  WHERE a.facility_id = $2 AND a.relation = 'sharing')
          ORDER BY e.created_at DESC, e.id DESC
          LIMIT $4"#, person.as_uuid(), facility.as_uuid(), since, limit)
    .fetch_all(tx.conn())
    .await?)
}
