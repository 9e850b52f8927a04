//! Alerts to the platform's operators, raised in the transaction that finds the problem.

use renrakucho_store::ScopedTx;

use crate::CareError;

/// Raises an operator alert (stored once per `(kind, dedupe_key)`). `details`: IDs and counts
/// only, never patient content.
pub(crate) async fn raise(
    tx: &mut ScopedTx,
    kind: &str,
    dedupe_key: &str,
    details: serde_json::Value,
) -> Result<bool, CareError> {
    // PENDING-MERGE: renrakucho_store::platform_alerts::raise once main has it.
    let _ = (tx, details);
    tracing::warn!(kind, dedupe_key, "operator alert");
    Ok(true)
}
