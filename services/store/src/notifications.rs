//! Each person's notification settings (`notification_settings`) and muted patients
//! (`patient_mutes`).

use renrakucho_core::{PatientId, StaffId};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Database, Scope, ScopedTx, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Settings {
    pub staff_id: Uuid,
    pub facility_id: Uuid,
    pub email: Option<String>,
    pub live_level: String,
    pub quiet_start: i16,
    pub quiet_end: i16,
    pub digest_enabled: bool,
    pub digest_hour: i16,
    pub last_digest_at: Option<OffsetDateTime>,
}

/// The person's settings, if they ever saved any.
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn get(tx: &mut ScopedTx, staff: StaffId) -> Result<Option<Settings>, StoreError> {
    Ok(sqlx::query_as!(
        Settings,
        "SELECT staff_id, facility_id, email, live_level,
            quiet_start, quiet_end, digest_enabled, digest_hour, last_digest_at FROM
            notification_settings WHERE staff_id = $1",
        staff.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// The settings a person saves (what [`Settings`] holds but the keys and the digest's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSettings<'a> {
    pub email: Option<&'a str>,
    pub live_level: &'a str,
    pub quiet_start: i16,
    pub quiet_end: i16,
    pub digest_enabled: bool,
    pub digest_hour: i16,
}

/// Saves the person's settings (the transaction's facility is theirs).
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn save(
    tx: &mut ScopedTx,
    staff: StaffId,
    settings: &NewSettings<'_>,
) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO notification_settings (staff_id, facility_id, email, live_level,
                                            quiet_start, quiet_end, digest_enabled, digest_hour)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (staff_id) DO UPDATE
            SET email = $3, live_level = $4, quiet_start = $5, quiet_end = $6,
                digest_enabled = $7, digest_hour = $8",
        staff.as_uuid(),
        facility.as_uuid(),
        settings.email,
        settings.live_level,
        settings.quiet_start,
        settings.quiet_end,
        settings.digest_enabled,
        settings.digest_hour
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff, patient = %patient))]
pub async fn mute(tx: &mut ScopedTx, staff: StaffId, patient: PatientId) -> Result<(), StoreError> {
    let facility = tx.scope().facility().ok_or(StoreError::Forbidden)?;
    sqlx::query!(
        "INSERT INTO patient_mutes (staff_id, patient_id, facility_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        staff.as_uuid(),
        patient.as_uuid(),
        facility.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff, patient = %patient))]
pub async fn unmute(
    tx: &mut ScopedTx,
    staff: StaffId,
    patient: PatientId,
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM patient_mutes WHERE staff_id = $1 AND patient_id = $2",
        staff.as_uuid(),
        patient.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn muted(tx: &mut ScopedTx, staff: StaffId) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT patient_id FROM patient_mutes WHERE staff_id = $1",
        staff.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Everyone with a daily digest switched on (the digest job's own scope: settings only).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn digest_subscribers(db: &Database) -> Result<Vec<Settings>, StoreError> {
    let mut tx = db.begin(Scope::Digest).await?;
    let rows = sqlx::query_as!(
        Settings,
        "SELECT staff_id, facility_id, email, live_level, quiet_start, quiet_end,
                digest_enabled, digest_hour, last_digest_at
           FROM notification_settings
          WHERE digest_enabled AND email IS NOT NULL"
    )
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Records that the person's digest went out (in their facility's scope).
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn digest_sent(
    tx: &mut ScopedTx,
    staff: StaffId,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE notification_settings SET last_digest_at = $2, digest_claimed_until = NULL
          WHERE staff_id = $1",
        staff.as_uuid(),
        at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Claims the person's digest for this process until `until`, if it is still due (switched
/// on, with an address, not sent since `sent_before`) and no other process holds a claim at
/// `now`. True when this process won it and should send it. Of two processes racing for the
/// same row, the second waits for the first's row lock and then finds the row claimed.
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn claim_digest(
    tx: &mut ScopedTx,
    staff: StaffId,
    sent_before: OffsetDateTime,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let claimed = sqlx::query_scalar!(
        "UPDATE notification_settings SET digest_claimed_until = $4
          WHERE staff_id = $1 AND digest_enabled AND email IS NOT NULL
            AND (last_digest_at IS NULL OR last_digest_at < $2)
            AND (digest_claimed_until IS NULL OR digest_claimed_until <= $3)
         RETURNING staff_id",
        staff.as_uuid(),
        sent_before,
        now,
        until
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(claimed.is_some())
}

/// Gives a claimed digest back (its send failed): the next round, in any process, retries it.
#[tracing::instrument(level = "debug", skip_all, fields(staff = %staff))]
pub async fn release_digest(tx: &mut ScopedTx, staff: StaffId) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE notification_settings SET digest_claimed_until = NULL WHERE staff_id = $1",
        staff.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
