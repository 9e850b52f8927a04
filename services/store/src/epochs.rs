//! Master key epochs (table `master_key_epochs`, key maintenance only): which local master keys
//! exist, which are being retired and which were destroyed, and how many erasures each one's
//! creation came after. The keyring crate decides when to rotate; this module stores the steps.

use crate::{ScopedTx, StoreError};

/// Where an epoch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochState {
    /// Data keys may be wrapped under it.
    Active,
    /// No new wrap under it commits; destroyed once no live data key needs it.
    Retiring,
    /// Its key material is gone.
    Destroyed,
}

impl EpochState {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "active" => EpochState::Active,
            "retiring" => EpochState::Retiring,
            "destroyed" => EpochState::Destroyed,
            other => {
                return Err(StoreError::Misconfigured(format!(
                    "unknown master key epoch state {other:?}"
                )))
            }
        })
    }
}

/// One epoch as stored.
#[derive(Debug, Clone)]
pub struct Epoch {
    pub master_key_id: String,
    pub state: EpochState,
    /// Completed deletion requests committed before this epoch's key was generated.
    pub erasures_covered: i64,
    /// How long ago it was registered, in seconds.
    pub age_seconds: f64,
}

/// Takes the rotation lock for this transaction, if no other process holds it: one rotation at
/// a time across every server process. Key maintenance only.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn try_lock_rotation(tx: &mut ScopedTx) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT
            pg_try_advisory_xact_lock(hashtextextended('renrakucho.master_key_rotation', 0))
            AS "locked!""#
    )
    .fetch_one(tx.conn())
    .await?)
}

/// How many deletion requests have been carried out (committed) so far.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn erasures_completed(tx: &mut ScopedTx) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "completed!" FROM deletion_requests WHERE completed_at IS NOT NULL"#
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Every epoch, oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx) -> Result<Vec<Epoch>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT master_key_id, state, erasures_covered,
                extract(epoch FROM clock_timestamp() - created_at)::float8 AS "age_seconds!"
           FROM master_key_epochs ORDER BY created_at, master_key_id"#,
    )
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Epoch {
                master_key_id: r.master_key_id,
                state: EpochState::parse(&r.state)?,
                erasures_covered: r.erasures_covered,
                age_seconds: r.age_seconds,
            })
        })
        .collect()
}

/// Records a master key as an active epoch, if it is not recorded yet. True when recorded now.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn register(
    tx: &mut ScopedTx,
    master_key_id: &str,
    erasures_covered: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "INSERT INTO master_key_epochs (master_key_id, erasures_covered) VALUES ($1, $2)
         ON CONFLICT (master_key_id) DO NOTHING",
        master_key_id,
        erasures_covered
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an active epoch retiring, after every transaction still wrapping a data key under it
/// has ended (the exclusive side of the lock `data_keys_epoch_open` takes shared). From the
/// commit of this transaction on, no wrap under it commits.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn begin_retiring(tx: &mut ScopedTx, master_key_id: &str) -> Result<(), StoreError> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('renrakucho.master_key_epoch.' || $1, 0))",
        master_key_id
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!(
        "UPDATE master_key_epochs SET state = 'retiring', retiring_at = now()
          WHERE master_key_id = $1 AND state = 'active'",
        master_key_id
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// How many live data keys are wrapped under a master key.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn live_keys_under(tx: &mut ScopedTx, master_key_id: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "live!"FROM data_keys WHERE wrapped IS NOT
            NULL AND master_key_id = $1"#,
        master_key_id
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Records that a retiring epoch's key material was destroyed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn mark_destroyed(tx: &mut ScopedTx, master_key_id: &str) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE master_key_epochs SET state = 'destroyed', destroyed_at = now()
          WHERE master_key_id = $1 AND state = 'retiring'",
        master_key_id
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}
