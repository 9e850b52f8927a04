//! The audit log: one call, [`record`], inside the same transaction as the change it records.
//!
//! Records are chained per facility (and one chain for the platform) by the database itself
//! (trigger `audit_log_link`), and the runtime role may only INSERT and SELECT them.
//! [`verify`] recomputes every chain and names every broken link.

use std::net::IpAddr;

use renrakucho_core::{FacilityId, OperatorId, StaffId};
use serde_json::Value;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Database, Scope, ScopedTx, StoreError};

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Staff(StaffId),
    Operator(OperatorId),
    /// The server itself, or the command line (`renrakucho admin`, `demo`).
    System,
    /// Nobody signed in (e.g. a failed sign-in).
    Anonymous,
}

impl Actor {
    fn parts(self) -> (&'static str, Option<Uuid>) {
        match self {
            Actor::Staff(id) => ("staff", Some(id.as_uuid())),
            Actor::Operator(id) => ("operator", Some(id.as_uuid())),
            Actor::System => ("system", None),
            Actor::Anonymous => ("anonymous", None),
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused: wrong password, throttled, not permitted.
    Denied,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// Where a request came from, carried into every audit record it writes.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub client_addr: Option<IpAddr>,
    pub request_id: Option<String>,
}

/// One audit record to write. `details` must never hold patient data, passwords or tokens.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub actor: Actor,
    /// Dotted verb, e.g. `auth.sign_in`, `staff.create`.
    pub action: &'static str,
    pub outcome: Outcome,
    pub target: Option<(&'static str, Uuid)>,
    pub origin: &'a Origin,
    pub details: Value,
}

/// Writes `event` into the audit chain of the transaction's scope (the facility's, or the
/// platform's), inside that transaction: if the change rolls back, so does its record.
///
/// The record is sent with the transaction's `COMMIT`, in the same round trip (ADR 0026), or
/// earlier if the transaction reads the audit log ([`recent`]): a request saves a round trip,
/// and the chain's lock (taken by the insert's trigger) is held only for the commit itself. An
/// insert that fails (a record in another staff member's name) fails the commit.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn record(tx: &mut ScopedTx, event: AuditEvent<'_>) -> Result<(), StoreError> {
    let (actor_kind, actor_id) = event.actor.parts();
    let facility = tx.scope().facility().map(|f| f.as_uuid());
    let request_id = event
        .origin
        .request_id
        .as_deref()
        .map(|r| r.chars().take(100).collect::<String>());
    let statement = format!(
        "INSERT INTO public.audit_log (facility_id, seq, actor_kind, actor_id, action, outcome, \
                                      target_kind, target_id, client_addr, request_id, details, \
                                      prev_hash, hash) \
         VALUES ({}, 0, {}, {}, {}, {}, {}, {}, {}, {}, {}::pg_catalog.jsonb, '', '')",
        literal::uuid(facility),
        literal::text(Some(actor_kind)),
        literal::uuid(actor_id),
        literal::text(Some(event.action)),
        literal::text(Some(event.outcome.as_str())),
        literal::text(event.target.map(|t| t.0)),
        literal::uuid(event.target.map(|t| t.1)),
        literal::inet(event.origin.client_addr),
        literal::text(request_id.as_deref()),
        literal::text(Some(&event.details.to_string())),
    );
    tx.defer(statement);
    Ok(())
}

/// Values written into SQL text, for statements sent in one simple-protocol message (which has
/// no parameters). Nothing here depends on the session's settings: text travels as hex digits
/// decoded by schema-qualified functions (whatever `standard_conforming_strings`,
/// `client_encoding` or `search_path` a statement earlier in the transaction set), UUIDs and
/// addresses as Rust formatted them, each cast to a schema-qualified type.
mod literal {
    use std::fmt::Write;
    use std::net::IpAddr;

    use uuid::Uuid;

    pub(super) fn text(value: Option<&str>) -> String {
        let Some(value) = value else {
            return "NULL".into();
        };
        let mut hex = String::with_capacity(value.len() * 2);
        for byte in value.as_bytes() {
            let _ = write!(hex, "{byte:02x}");
        }
        format!("pg_catalog.convert_from(pg_catalog.decode('{hex}', 'hex'), 'UTF8')")
    }

    pub(super) fn uuid(value: Option<Uuid>) -> String {
        value.map_or("NULL".into(), |u| {
            format!("'{}'::pg_catalog.uuid", u.hyphenated())
        })
    }

    pub(super) fn inet(value: Option<IpAddr>) -> String {
        value.map_or("NULL".into(), |a| format!("'{a}'::pg_catalog.inet"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn text_is_hex_digits_whatever_it_holds() {
            let nasty = "O'Brien\\'); DROP TABLE audit_log; --\u{0}";
            let sql = text(Some(nasty));
            let inner = sql
                .strip_prefix("pg_catalog.convert_from(pg_catalog.decode('")
                .and_then(|s| s.strip_suffix("', 'hex'), 'UTF8')"))
                .expect("the shape");
            assert!(inner.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(inner.len(), nasty.len() * 2);
            assert_eq!(text(None), "NULL");
        }

        #[test]
        fn addresses_and_ids_are_their_formatted_selves() {
            let v6: IpAddr = "2001:db8::1".parse().unwrap();
            assert_eq!(inet(Some(v6)), "'2001:db8::1'::pg_catalog.inet");
            let id = Uuid::nil();
            assert_eq!(
                uuid(Some(id)),
                "'00000000-0000-0000-0000-000000000000'::pg_catalog.uuid"
            );
        }
    }
}

/// A record as a facility admin (their facility's) or an operator (the platform's) reads it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub outcome: String,
    pub target_kind: Option<String>,
    pub target_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub details: Value,
}

/// The newest records of the scope's chain, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn recent(tx: &mut ScopedTx, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
    // The records this transaction wrote are part of what it reads.
    tx.write_deferred().await?;
    let rows = sqlx::query_as!(
        AuditRecord,
        "SELECT seq, occurred_at, actor_kind, actor_id, action, outcome, target_kind, target_id,
                request_id, details
           FROM audit_log ORDER BY seq DESC LIMIT $1",
        limit.clamp(1, 1000),
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows)
}

/// A broken link found in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The chain: a facility, or the platform (`None`).
    pub facility: Option<FacilityId>,
    /// The record whose link does not hold (its row id and its position in the chain).
    pub id: i64,
    pub seq: i64,
    pub problem: BreakKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The record's content no longer matches its hash: it was edited.
    Altered,
    /// The record does not follow the one before it: records in between were removed
    /// (or the previous record was edited in its hash).
    PreviousMissing { expected_seq: i64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain = match self.facility {
            Some(id) => format!("facility {id}"),
            None => "platform".to_string(),
        };
        match self.problem {
            BreakKind::Altered => write!(
                f,
                "{chain} chain: record #{} (id {}) was altered: its content does not match its hash",
                self.seq, self.id
            ),
            BreakKind::PreviousMissing { expected_seq } => write!(
                f,
                "{chain} chain: record #{} (id {}) does not follow the record before it: \
                 record #{expected_seq} was removed or altered",
                self.seq, self.id
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub chains: usize,
    pub records: i64,
    /// Every broken link, chain by chain (at most [`BREAKS_SHOWN`] of each chain).
    pub breaks: Vec<ChainBreak>,
    /// How many broken links there are in all, including those not listed.
    pub broken_links: i64,
    /// How many chains have at least one.
    pub broken_chains: usize,
}

impl VerifyReport {
    fn add(&mut self, records: i64, broken: i64, breaks: Vec<ChainBreak>) {
        self.chains += 1;
        self.records += records;
        self.broken_links += broken;
        self.broken_chains += usize::from(broken > 0);
        self.breaks.extend(breaks);
    }
}

#[derive(FromRow)]
struct BreakRow {
    id: i64,
    seq: i64,
    altered: bool,
    prev_seq: Option<i64>,
    total: i64,
}

/// At most this many broken links are reported per chain (the count says how many there are).
pub const BREAKS_SHOWN: i64 = 1000;

async fn verify_scope(
    tx: &mut ScopedTx,
    facility: Option<FacilityId>,
) -> Result<(i64, i64, Vec<ChainBreak>), StoreError> {
    // RLS shows exactly the scope's chain. Compare each record with its recomputed hash and
    // with the record before it; return the count, the number of breaks and the first ones.
    let count = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM audit_log"#)
        .fetch_one(tx.conn())
        .await?;
    let rows = sqlx::query_as!(
        BreakRow,
        r#"SELECT id AS "id!", seq AS "seq!", altered AS "altered!", prev_seq,
                count(*) OVER () AS "total!" FROM (
             SELECT a.id, a.seq,
                    a.hash <> audit_record_hash(a) AS altered,
                    lag(a.seq) OVER w AS prev_seq,
                    a.prev_hash IS DISTINCT FROM coalesce(lag(a.hash) OVER w,
                        '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
                        AS unlinked
               FROM audit_log a
             WINDOW w AS (ORDER BY a.seq)
         ) c
         WHERE altered OR unlinked OR seq <> coalesce(prev_seq, 0) + 1
         ORDER BY seq
         LIMIT $1"#,
        BREAKS_SHOWN,
    )
    .fetch_all(tx.conn())
    .await?;
    let total = rows.first().map_or(0, |r| r.total);
    let breaks = rows.into_iter().map(|row| ChainBreak {
        facility,
        id: row.id,
        seq: row.seq,
        problem: if row.altered {
            BreakKind::Altered
        } else {
            BreakKind::PreviousMissing {
                expected_seq: row.prev_seq.unwrap_or(0) + 1,
            }
        },
    });
    Ok((count, total, breaks.collect()))
}

/// Recomputes every chain (the platform's and each facility's) and reports every broken link
/// of each. Runs as the runtime role, one scope at a time, like any other reader.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify(db: &Database) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut tx = db.begin(Scope::Platform).await?;
    let facilities: Vec<Uuid> = sqlx::query_scalar!("SELECT id FROM facilities ORDER BY id")
        .fetch_all(tx.conn())
        .await?;
    let (count, total, breaks) = verify_scope(&mut tx, None).await?;
    tx.commit().await?;
    report.add(count, total, breaks);
    for id in facilities {
        let facility = FacilityId::from_uuid(id);
        let mut tx = db.begin(Scope::Facility(facility)).await?;
        let (count, total, breaks) = verify_scope(&mut tx, Some(facility)).await?;
        tx.commit().await?;
        report.add(count, total, breaks);
    }
    Ok(report)
}
