//! The one way the care layer (the registry and the notebook) writes its audit records.

use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::ScopedTx;

use crate::{CareError, StaffActor};

/// Records a successful act of `who` on a patient (or on nothing in particular) in the
/// transaction that does it. `details` never holds personal data: IDs, counts, kinds.
pub async fn record(
    tx: &mut ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    target: Option<(&'static str, uuid::Uuid)>,
    details: serde_json::Value,
) -> Result<(), CareError> {
    write(tx, who, origin, action, Outcome::Success, target, details).await
}

/// Records an attempt on patient data that was refused (nothing was changed), then commits
/// the transaction so the record stays while the caller returns the refusal.
pub async fn refused(
    mut tx: ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    target: Option<(&'static str, uuid::Uuid)>,
    details: serde_json::Value,
) -> Result<(), CareError> {
    write(
        &mut tx,
        who,
        origin,
        action,
        Outcome::Denied,
        target,
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn write(
    tx: &mut ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    outcome: Outcome,
    target: Option<(&'static str, uuid::Uuid)>,
    details: serde_json::Value,
) -> Result<(), CareError> {
    audit::record(
        tx,
        AuditEvent {
            actor: Actor::Staff(who.staff),
            action,
            outcome,
            target,
            origin,
            details,
        },
    )
    .await?;
    Ok(())
}
