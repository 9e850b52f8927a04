//! Alerts for the platform operators (`private.platform_alerts`): something a facility's request
//! noticed that the operators must hear of (a stored value that no longer decrypts, repeated
//! failed emergency identifications). IDs, names of tables and columns, counts — never patient
//! content. A facility raises them through `raise_platform_alert()` and cannot read them; the
//! platform scope reads and acknowledges them.

use renrakucho_core::{FacilityId, OperatorId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// Raises an alert for the transaction's facility, or counts it again when the same
/// `(kind, dedupe_key)` is already on file for it. Returns whether it is new, so that the
/// caller logs it once. `details` must hold no patient content.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn raise(
    tx: &mut ScopedTx,
    kind: &str,
    dedupe_key: &str,
    details: serde_json::Value,
) -> Result<bool, StoreError> {
    if tx.scope().facility().is_none() {
        return Err(StoreError::Forbidden);
    }
    Ok(sqlx::query_scalar!(
        r#"SELECT raise_platform_alert($1, $2, $3) AS "raised!""#,
        kind,
        dedupe_key,
        details
    )
    .fetch_one(tx.conn())
    .await?)
}

/// An alert as the operators see it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Alert {
    pub id: Uuid,
    pub kind: String,
    /// The facility whose request raised it.
    pub facility_id: Option<Uuid>,
    pub dedupe_key: String,
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_raised_at: OffsetDateTime,
    pub occurrences: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
}

/// The newest alerts, open ones first (platform scope).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx, limit: i64) -> Result<Vec<Alert>, StoreError> {
    Ok(sqlx::query_as!(
        Alert,
        "SELECT id, kind, raised_by_facility AS facility_id,
            dedupe_key, details, raised_at, last_raised_at,
                occurrences, acknowledged_at
           FROM private.platform_alerts
          ORDER BY acknowledged_at IS NOT NULL, last_raised_at DESC
          LIMIT $1",
        limit
    )
    .fetch_all(tx.conn())
    .await?)
}

/// The open alerts of one facility, newest first (platform scope): what a test or an operator
/// looks for after something went wrong there.
#[tracing::instrument(level = "debug", skip_all, fields(facility = %facility))]
pub async fn open_of_facility(
    tx: &mut ScopedTx,
    facility: FacilityId,
) -> Result<Vec<Alert>, StoreError> {
    Ok(sqlx::query_as!(
        Alert,
        "SELECT id, kind, raised_by_facility AS facility_id,
            dedupe_key, details, raised_at, last_raised_at,
                occurrences, acknowledged_at
           FROM private.platform_alerts
          WHERE raised_by_facility = $1 AND acknowledged_at IS NULL
          ORDER BY last_raised_at DESC",
        facility.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Marks an alert as seen by an operator (platform scope). False when there is no such open
/// alert.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id, by = %by))]
pub async fn acknowledge(tx: &mut ScopedTx, id: Uuid, by: OperatorId) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE private.platform_alerts SET acknowledged_at = now(), acknowledged_by = $2
          WHERE id = $1 AND acknowledged_at IS NULL",
        id,
        by.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}
