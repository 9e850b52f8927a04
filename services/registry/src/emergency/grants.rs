//! Grants after they are opened: the list the opening facility and the care team see (the
//! reason where it may be read), ending a grant early, and the care team's review.

use renrakucho_core::{FacilityId, PatientId};
use renrakucho_keyring::Keyring;
use renrakucho_store::audit::Origin;
use renrakucho_store::emergency::{self, StoredGrant};
use renrakucho_store::{facilities, Database};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{reason_binding, EmergencyGrant};
use crate::audit::record;
use crate::{CareError, StaffActor};

/// The grants the actor's facility opened and those on patients it shares, newest first.
/// A reason (clinical context about the patient) is decrypted only where the key is (the care
/// team; the opening facility while its grant is open) and `may_read_reason(patient, ours)`
/// says this person may read it. Audited (the list names patients).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn emergency_grants<Allowed>(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    limit: i64,
    may_read_reason: impl Fn(PatientId, bool) -> Allowed,
) -> Result<Vec<EmergencyGrant>, CareError>
where
    Allowed: std::future::Future<Output = bool>,
{
    let mut tx = db.begin(who.scope()).await?;
    let stored: Vec<StoredGrant> = emergency::visible(&mut tx, limit).await?;
    let ids: Vec<FacilityId> = stored.iter().map(|g| g.facility).collect();
    let directory = facilities::directory(&mut tx, Some(&ids), None).await?;
    let now = OffsetDateTime::now_utc();
    let mut grants = Vec::with_capacity(stored.len());
    for g in stored {
        // Readable where the patient's key is: to the care team, and to the opening facility
        // while the grant is open.
        let ours = g.facility == who.facility;
        let mut reason_unreadable = false;
        let reason = match &g.reason_enc {
            Some(sealed) if (!ours || g.is_open(now)) && may_read_reason(g.patient, ours).await => {
                let decrypted = keyring
                    .decrypt(&mut tx, &reason_binding(g.patient, g.id), sealed)
                    .await
                    .map_err(CareError::from)
                    .and_then(|b| {
                        String::from_utf8(b).map_err(|e| CareError::corrupt("reason", e))
                    });
                match decrypted {
                    Ok(text) => Some(text),
                    // One broken reason does not take the list down (ADR 0017): marked,
                    // logged once and alerted; an outage still fails the whole request.
                    Err(e) if crate::unreadable::report(&mut tx, &e).await? => {
                        reason_unreadable = true;
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        grants.push(EmergencyGrant {
            id: g.id,
            patient: g.patient,
            facility: g.facility,
            facility_name: directory
                .iter()
                .find(|d| d.id == g.facility)
                .map(|d| d.name.clone()),
            opened_by: g.opened_by,
            reason,
            reason_unreadable,
            opened_at: g.opened_at,
            expires_at: g.expires_at,
            ended_at: g.ended_at,
            reviewed_at: g.reviewed_at,
            open: g.is_open(now),
            ours,
        });
    }
    record(
        &mut tx,
        who,
        origin,
        "emergency.list",
        None,
        json!({ "grants": grants.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(grants)
}

/// The opening facility ends its grant before it runs out.
#[tracing::instrument(level = "debug", skip_all, fields(grant = %grant))]
pub async fn end_emergency(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    grant: Uuid,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = emergency::get(&mut tx, grant).await?;
    emergency::end(&mut tx, grant).await?;
    record(
        &mut tx,
        who,
        origin,
        "emergency.end",
        Some(("patient", stored.patient.as_uuid())),
        json!({ "grant": grant }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A facility of the care team marks a grant on its patient as reviewed.
#[tracing::instrument(level = "debug", skip_all, fields(grant = %grant))]
pub async fn review_emergency(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    grant: Uuid,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let stored = emergency::get(&mut tx, grant).await?;
    if stored.facility == who.facility {
        return Err(CareError::Conflict(
            "自施設の緊急閲覧は、ケアチームの施設が確認します / a grant is reviewed by the care team, not by the facility that opened it".into(),
        ));
    }
    if stored.reviewed_at.is_some() {
        return Err(CareError::Conflict(
            "この緊急閲覧はすでに確認済みです / this grant has already been reviewed".into(),
        ));
    }
    emergency::review(&mut tx, grant, who.staff).await?;
    record(
        &mut tx,
        who,
        origin,
        "emergency.review",
        Some(("patient", stored.patient.as_uuid())),
        json!({ "grant": grant }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
