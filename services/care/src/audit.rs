//! The one way the care domain writes its audit records.

use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::ScopedTx;

use crate::{CareError, StaffActor};

/// Records a successful act of `who` on a patient (or on nothing in particular) in the
/// transaction that does it. `details` never holds personal data: IDs, counts, kinds.
pub(crate) async fn record(
    tx: &mut ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    target: Option<(&'static str, uuid::Uuid)>,
    details: serde_json::Value,
) -> Result<(), CareError> {
    audit::record(
        tx,
        AuditEvent {
            actor: Actor::Staff(who.staff),
            action,
            outcome: Outcome::Success,
            target,
            origin,
            details,
        },
    )
    .await?;
    Ok(())
}
