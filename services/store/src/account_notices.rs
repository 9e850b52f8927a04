//! Account notices: SQL for the `account_notices` table. A notice is written in the facility's
//! scope in the transaction of the change it tells of; the notice job lists the due ones as
//! the digest role and claims and records each in the facility's scope.

use renrakucho_core::{FacilityId, StaffId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Database, Scope, ScopedTx, StoreError};

/// What changed on a person's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeEvent {
    SecondFactorAdded,
    SecondFactorRemoved,
    SecondFactorReset,
    RecoveryCodesReplaced,
    PasskeyAdded,
    PasskeyRemoved,
}

impl NoticeEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactorAdded => "second_factor_added",
            Self::SecondFactorRemoved => "second_factor_removed",
            Self::SecondFactorReset => "second_factor_reset",
            Self::RecoveryCodesReplaced => "recovery_codes_replaced",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "second_factor_added" => Self::SecondFactorAdded,
            "second_factor_removed" => Self::SecondFactorRemoved,
            "second_factor_reset" => Self::SecondFactorReset,
            "recovery_codes_replaced" => Self::RecoveryCodesReplaced,
            "passkey_added" => Self::PasskeyAdded,
            "passkey_removed" => Self::PasskeyRemoved,
            other => {
                return Err(StoreError::Misconfigured(format!(
                    "unknown account notice {other:?}"
                )))
            }
        })
    }
}

/// Records a notice for `staff` of the transaction's facility.
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn record(
    tx: &mut ScopedTx,
    staff: StaffId,
    event: NoticeEvent,
) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO account_notices (id, facility_id, staff_id, event) VALUES ($1, $2, $3, $4)",
        Uuid::now_v7(),
        facility.as_uuid(),
        staff.as_uuid(),
        event.as_str()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A notice to send, with where to.
#[derive(Debug, Clone)]
pub struct DueNotice {
    pub id: Uuid,
    pub facility: FacilityId,
    pub staff: StaffId,
    pub event: NoticeEvent,
    pub created_at: OffsetDateTime,
    pub email: String,
}

/// The unsent notices of the last week whose person has an address and that no process holds
/// at `now` (the digest role's scope: notices and addresses only).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn due(db: &Database, now: OffsetDateTime) -> Result<Vec<DueNotice>, StoreError> {
    let mut tx = db.begin(Scope::Digest).await?;
    let rows = sqlx::query!(
        r#"SELECT n.id, n.facility_id, n.staff_id, n.event, n.created_at,
                  s.email AS "email!"
             FROM account_notices n
             JOIN notification_settings s
               ON s.staff_id = n.staff_id AND s.facility_id = n.facility_id
            WHERE n.sent_at IS NULL AND s.email IS NOT NULL
              AND n.created_at > $1::timestamptz - interval '7 days'
              AND (n.claimed_until IS NULL OR n.claimed_until <= $1)
            ORDER BY n.created_at
            LIMIT 100"#,
        now
    )
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    rows.into_iter()
        .map(|r| {
            Ok(DueNotice {
                id: r.id,
                facility: FacilityId::from_uuid(r.facility_id),
                staff: StaffId::from_uuid(r.staff_id),
                event: NoticeEvent::parse(&r.event)?,
                created_at: r.created_at,
                email: r.email,
            })
        })
        .collect()
}

/// Claims the notice for this process until `until` if it is still unsent and unclaimed at
/// `now`: true when this process should send it.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn claim(
    tx: &mut ScopedTx,
    id: Uuid,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let claimed = sqlx::query!(
        "UPDATE account_notices SET claimed_until = $3
          WHERE id = $1 AND sent_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $2)",
        id,
        now,
        until
    )
    .execute(tx.conn())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Records that the notice went out (`Ok(at)`), or keeps it off until `Err(retry_at)` after a
/// failed send (so notices that keep failing do not hold back the others).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn finish(
    tx: &mut ScopedTx,
    id: Uuid,
    outcome: Result<OffsetDateTime, OffsetDateTime>,
) -> Result<(), StoreError> {
    let (sent, retry_at) = match outcome {
        Ok(at) => (Some(at), None),
        Err(retry_at) => (None, Some(retry_at)),
    };
    sqlx::query!(
        "UPDATE account_notices SET sent_at = $2, claimed_until = $3 WHERE id = $1",
        id,
        sent,
        retry_at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
