//! What the platform operators see of the care domain: alerts raised by facilities' requests
//! (a value that no longer decrypts, repeated failed emergency identifications) — IDs and
//! counts, never patient content. Reading and acknowledging them is recorded in the platform's
//! audit chain.

use renrakucho_core::OperatorId;
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::platform_alerts::{self, Alert};
use renrakucho_store::{Database, Scope};
use serde_json::json;
use uuid::Uuid;

use crate::CareError;

/// The newest platform alerts, open ones first (at most `limit`, 1–500).
#[tracing::instrument(level = "debug", skip_all, fields(operator = %operator))]
pub async fn platform_alerts(
    db: &Database,
    operator: OperatorId,
    origin: &Origin,
    limit: i64,
) -> Result<Vec<Alert>, CareError> {
    let limit = limit.clamp(1, 500);
    let mut tx = db.begin(Scope::Platform).await?;
    let alerts = platform_alerts::list(&mut tx, limit).await?;
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::Operator(operator),
            action: "platform.alerts.read",
            outcome: Outcome::Success,
            target: None,
            origin,
            details: json!({ "alerts": alerts.len() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(alerts)
}

/// Marks an open alert as seen. [`CareError::NotFound`] when there is no such open alert.
#[tracing::instrument(level = "debug", skip_all, fields(operator = %operator, alert = %alert))]
pub async fn acknowledge_platform_alert(
    db: &Database,
    operator: OperatorId,
    origin: &Origin,
    alert: Uuid,
) -> Result<(), CareError> {
    let mut tx = db.begin(Scope::Platform).await?;
    if !platform_alerts::acknowledge(&mut tx, alert, operator).await? {
        return Err(CareError::NotFound);
    }
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::Operator(operator),
            action: "platform.alert.acknowledge",
            outcome: Outcome::Success,
            target: Some(("platform_alert", alert)),
            origin,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
