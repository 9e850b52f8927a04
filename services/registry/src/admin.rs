//! A facility administrator's acts that touch the care domain: who may accept care-team
//! invitations for the facility, reading the facility's audit log and its staff list.

use renrakucho_core::StaffId;
use renrakucho_store::audit::{self, AuditRecord, Origin};
use renrakucho_store::{staff, Database};
use serde_json::json;

use crate::audit::record;
use crate::{CareError, StaffActor};

/// Lets a staff member of the admin's facility accept invitations, or stops it. Audited.
#[tracing::instrument(level = "debug", skip_all, fields(member = %member))]
pub async fn set_may_accept_invitations(
    db: &Database,
    admin: StaffActor,
    origin: &Origin,
    member: StaffId,
    allowed: bool,
) -> Result<(), CareError> {
    let mut tx = db.begin(admin.scope()).await?;
    staff::set_may_accept_invitations(&mut tx, member, allowed).await?;
    record(
        &mut tx,
        admin,
        origin,
        "staff.may_accept_invitations",
        Some(("staff", member.as_uuid())),
        json!({ "allowed": allowed }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The newest records of the facility's audit chain (the reading itself is recorded first).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn facility_audit(
    db: &Database,
    admin: StaffActor,
    origin: &Origin,
    limit: i64,
) -> Result<Vec<AuditRecord>, CareError> {
    let mut tx = db.begin(admin.scope()).await?;
    record(
        &mut tx,
        admin,
        origin,
        "audit.read",
        None,
        json!({ "limit": limit }),
    )
    .await?;
    let records = audit::recent(&mut tx, limit).await?;
    tx.commit().await?;
    Ok(records)
}

/// The facility's staff accounts, by login ID, for its administrator (the reading is
/// recorded).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn facility_staff(
    db: &Database,
    admin: StaffActor,
    origin: &Origin,
) -> Result<Vec<staff::StaffAccount>, CareError> {
    let mut tx = db.begin(admin.scope()).await?;
    record(&mut tx, admin, origin, "staff.list", None, json!({})).await?;
    let mut accounts = staff::list(&mut tx).await?;
    tx.commit().await?;
    accounts.sort_by(|a, b| a.login_id.cmp(&b.login_id));
    Ok(accounts)
}
