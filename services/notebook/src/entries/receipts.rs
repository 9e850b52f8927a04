//! Read receipts: marking entries read, and what each person has not read yet.

use renrakucho_core::PatientId;
use renrakucho_registry::audit::record;
use renrakucho_registry::{may, CareError, Permitted, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::{notebook, Database};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::author::Author;

/// Marks entries as read by the person (read receipts).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %who.patient()))]
pub async fn mark_read(
    db: &Database,
    who: &Author<may::NotebookRead>,
    origin: &Origin,
    entries: &[Uuid],
) -> Result<u64, CareError> {
    let patient = who.patient();
    if entries.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin(who.actor.scope()).await?;
    let n = notebook::mark_read(
        &mut tx,
        patient,
        entries,
        who.actor.staff,
        &who.name,
        who.profession.as_str(),
    )
    .await?;
    // A read receipt is a change others see ("read by"): recorded when one was added.
    if n > 0 {
        record(
            &mut tx,
            who.actor,
            origin,
            "entry.mark_read",
            Some(("patient", patient.as_uuid())),
            json!({ "entries": n }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// How far back an entry counts as unread (the home page, the patient list, the digest): an
/// entry older than this that the person never opened is history to read, not news. Bounding
/// it keeps the count's cost to the window's entries; counting every entry ever written to a
/// facility's notebooks read ~20,000 rows per request at city scale (docs/performance.md,
/// ADR 0029).
pub const UNREAD_WINDOW: time::Duration = time::Duration::days(30);

/// Unread entries per patient for one person, urgent first (written in the last
/// [`UNREAD_WINDOW`]).
#[derive(Debug, Clone, Serialize)]
pub struct UnreadLine {
    pub patient: PatientId,
    pub urgent: i64,
    pub reply_requested: i64,
    pub total: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub newest: OffsetDateTime,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn unread(
    db: &Database,
    allowed: &Permitted<may::NotebookRead>,
) -> Result<Vec<UnreadLine>, CareError> {
    let who = StaffActor::from(allowed);
    let mut tx = db.begin(who.scope()).await?;
    let rows = notebook::unread(
        &mut tx,
        who.staff,
        OffsetDateTime::now_utc() - UNREAD_WINDOW,
    )
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| UnreadLine {
            patient: PatientId::from_uuid(r.patient_id),
            urgent: r.urgent,
            reply_requested: r.reply_requested,
            total: r.total,
            newest: r.newest,
        })
        .collect())
}
