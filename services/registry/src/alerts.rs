//! Alerts to the platform's operators, raised in the transaction that finds the problem.

use renrakucho_store::{platform_alerts, ScopedTx};

use crate::CareError;

/// Raises an operator alert (stored once per `(kind, dedupe_key)`, for the transaction's
/// facility). `details`: IDs and counts only, never patient content.
pub(crate) async fn raise(
    tx: &mut ScopedTx,
    kind: &str,
    dedupe_key: &str,
    details: serde_json::Value,
) -> Result<bool, CareError> {
    let new = platform_alerts::raise(tx, kind, dedupe_key, details).await?;
    if new {
        tracing::warn!(kind, "operator alert raised");
    }
    Ok(new)
}
