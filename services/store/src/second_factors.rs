//! Second factors: SQL for the authenticator and recovery-code columns of `staff_accounts`
//! (in the facility's scope) and `platform_operators` (in the platform's scope). The two tables
//! hold the same columns (migration 22); each function asks the holder's table.

use renrakucho_core::{OperatorId, StaffId};
use time::OffsetDateTime;

use crate::{ScopedTx, StoreError};

/// Whose second factor: a staff member's or an operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Staff(StaffId),
    Operator(OperatorId),
}

/// What sign-in needs of an account's second factor.
#[derive(Debug, Clone)]
pub struct SecondFactor {
    /// The authenticator's secret, encrypted (the facility's key for staff, the platform's for
    /// operators); none: never enrolled, or removed.
    pub totp_secret_enc: Option<Vec<u8>>,
    /// When the enrolment began (one not confirmed within [`ENROLMENT_WINDOW`] is void).
    pub totp_started_at: Option<OffsetDateTime>,
    /// When the person confirmed the authenticator with a code; until then it does not count.
    pub totp_confirmed_at: Option<OffsetDateTime>,
    /// The newest 30-second step whose code was accepted.
    pub totp_last_step: i64,
    /// SHA-256 hashes (hex) of the unused recovery codes.
    pub recovery_code_hashes: Vec<String>,
    /// How many passkeys the account has.
    pub passkey_count: i16,
}

/// How long an enrolment waits for its confirmation.
pub const ENROLMENT_WINDOW: time::Duration = time::Duration::minutes(10);

impl SecondFactor {
    /// An authenticator app is enrolled and confirmed.
    pub fn enabled(&self) -> bool {
        self.totp_confirmed_at.is_some() && self.totp_secret_enc.is_some()
    }

    /// Sign-in asks for a second factor: an authenticator app, or a passkey.
    pub fn any(&self) -> bool {
        self.enabled() || self.passkey_count > 0
    }

    /// The secret of an enrolment begun within the window and not confirmed yet, at `now`.
    pub fn pending(&self, now: OffsetDateTime) -> Option<&[u8]> {
        let fresh = self
            .totp_started_at
            .is_some_and(|started| now - started < ENROLMENT_WINDOW);
        match &self.totp_secret_enc {
            Some(secret) if self.totp_confirmed_at.is_none() && fresh => Some(secret),
            _ => None,
        }
    }
}

/// The holder's second factor, locked until the transaction ends: two sign-ins with the same
/// code, or the same recovery code, are decided one after the other.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(tx: &mut ScopedTx, holder: Holder) -> Result<SecondFactor, StoreError> {
    let found = match holder {
        Holder::Staff(id) => {
            sqlx::query_as!(
                SecondFactor,
                "SELECT totp_secret_enc, totp_started_at, totp_confirmed_at, totp_last_step,
                        recovery_code_hashes, passkey_count
                   FROM staff_accounts WHERE id = $1 FOR UPDATE",
                id.as_uuid()
            )
            .fetch_optional(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query_as!(
                SecondFactor,
                "SELECT totp_secret_enc, totp_started_at, totp_confirmed_at, totp_last_step,
                        recovery_code_hashes, passkey_count
                   FROM platform_operators WHERE id = $1 FOR UPDATE",
                id.as_uuid()
            )
            .fetch_optional(tx.conn())
            .await?
        }
    };
    found.ok_or(StoreError::NotFound)
}

/// Starts an enrolment: a new secret, not yet confirmed, replacing an unconfirmed one. False
/// when an authenticator is already confirmed (it is removed first).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn begin_totp(
    tx: &mut ScopedTx,
    holder: Holder,
    secret_enc: &[u8],
) -> Result<bool, StoreError> {
    let done = match holder {
        Holder::Staff(id) => {
            sqlx::query!(
                "UPDATE staff_accounts SET totp_secret_enc = $2, totp_started_at = now(),
                        totp_last_step = 0, updated_at = now()
                  WHERE id = $1 AND totp_confirmed_at IS NULL",
                id.as_uuid(),
                secret_enc
            )
            .execute(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query!(
                "UPDATE platform_operators SET totp_secret_enc = $2, totp_started_at = now(),
                        totp_last_step = 0
                  WHERE id = $1 AND totp_confirmed_at IS NULL",
                id.as_uuid(),
                secret_enc
            )
            .execute(tx.conn())
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Confirms the enrolled authenticator with the step of the code the person typed, and gives
/// the account new recovery codes (their hashes). The account's `password_version` moves on,
/// ending its other sessions; the new version, or `None` when no enrolment was waiting (or it
/// began longer than [`ENROLMENT_WINDOW`] ago).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn confirm_totp(
    tx: &mut ScopedTx,
    holder: Holder,
    step: i64,
    recovery_code_hashes: &[String],
) -> Result<Option<i32>, StoreError> {
    let window = ENROLMENT_WINDOW.whole_seconds() as f64;
    Ok(match holder {
        Holder::Staff(id) => {
            sqlx::query_scalar!(
                "UPDATE staff_accounts
                    SET totp_confirmed_at = now(), totp_last_step = $2, recovery_code_hashes = $3,
                        password_version = password_version + 1, updated_at = now()
                  WHERE id = $1 AND totp_secret_enc IS NOT NULL AND totp_confirmed_at IS NULL
                    AND totp_started_at > now() - make_interval(secs => $4)
                 RETURNING password_version",
                id.as_uuid(),
                step,
                recovery_code_hashes,
                window
            )
            .fetch_optional(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query_scalar!(
                "UPDATE platform_operators
                    SET totp_confirmed_at = now(), totp_last_step = $2, recovery_code_hashes = $3,
                        password_version = password_version + 1
                  WHERE id = $1 AND totp_secret_enc IS NOT NULL AND totp_confirmed_at IS NULL
                    AND totp_started_at > now() - make_interval(secs => $4)
                 RETURNING password_version",
                id.as_uuid(),
                step,
                recovery_code_hashes,
                window
            )
            .fetch_optional(tx.conn())
            .await?
        }
    })
}

/// Records that the code of `step` was used; false when that step or a later one already was
/// (the code is refused as a replay).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn use_totp_step(
    tx: &mut ScopedTx,
    holder: Holder,
    step: i64,
) -> Result<bool, StoreError> {
    let done = match holder {
        Holder::Staff(id) => {
            sqlx::query!(
                "UPDATE staff_accounts SET totp_last_step = $2
                  WHERE id = $1 AND totp_last_step < $2",
                id.as_uuid(),
                step
            )
            .execute(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query!(
                "UPDATE platform_operators SET totp_last_step = $2
                  WHERE id = $1 AND totp_last_step < $2",
                id.as_uuid(),
                step
            )
            .execute(tx.conn())
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Uses up the recovery code hashed to `hash`; false when the holder has no such unused code.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn use_recovery_code(
    tx: &mut ScopedTx,
    holder: Holder,
    hash: &str,
) -> Result<bool, StoreError> {
    let done = match holder {
        Holder::Staff(id) => {
            sqlx::query!(
                "UPDATE staff_accounts
                    SET recovery_code_hashes = array_remove(recovery_code_hashes, $2),
                        updated_at = now()
                  WHERE id = $1 AND $2 = ANY (recovery_code_hashes)",
                id.as_uuid(),
                hash
            )
            .execute(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query!(
                "UPDATE platform_operators
                    SET recovery_code_hashes = array_remove(recovery_code_hashes, $2)
                  WHERE id = $1 AND $2 = ANY (recovery_code_hashes)",
                id.as_uuid(),
                hash
            )
            .execute(tx.conn())
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Replaces the unused recovery codes with new ones (their hashes); only with a confirmed
/// authenticator app or a passkey (false without either).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn replace_recovery_codes(
    tx: &mut ScopedTx,
    holder: Holder,
    hashes: &[String],
) -> Result<bool, StoreError> {
    let done = match holder {
        Holder::Staff(id) => {
            sqlx::query!(
                "UPDATE staff_accounts SET recovery_code_hashes = $2, updated_at = now()
                  WHERE id = $1 AND (totp_confirmed_at IS NOT NULL OR passkey_count > 0)",
                id.as_uuid(),
                hashes
            )
            .execute(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query!(
                "UPDATE platform_operators SET recovery_code_hashes = $2
                  WHERE id = $1 AND (totp_confirmed_at IS NOT NULL OR passkey_count > 0)",
                id.as_uuid(),
                hashes
            )
            .execute(tx.conn())
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Removes the authenticator app (and an enrolment under way; the recovery codes too unless
/// passkeys remain). The account's `password_version` moves on, ending its sessions; the new
/// version, or `None` when no authenticator was confirmed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn remove(tx: &mut ScopedTx, holder: Holder) -> Result<Option<i32>, StoreError> {
    Ok(match holder {
        Holder::Staff(id) => {
            sqlx::query_scalar!(
                "UPDATE staff_accounts
                    SET totp_secret_enc = NULL, totp_started_at = NULL, totp_confirmed_at = NULL,
                        totp_last_step = 0,
                        recovery_code_hashes = CASE WHEN passkey_count > 0
                                                    THEN recovery_code_hashes ELSE '{}' END,
                        password_version = password_version + 1, updated_at = now()
                  WHERE id = $1 AND totp_confirmed_at IS NOT NULL
                 RETURNING password_version",
                id.as_uuid()
            )
            .fetch_optional(tx.conn())
            .await?
        }
        Holder::Operator(id) => {
            sqlx::query_scalar!(
                "UPDATE platform_operators
                    SET totp_secret_enc = NULL, totp_started_at = NULL, totp_confirmed_at = NULL,
                        totp_last_step = 0,
                        recovery_code_hashes = CASE WHEN passkey_count > 0
                                                    THEN recovery_code_hashes ELSE '{}' END,
                        password_version = password_version + 1
                  WHERE id = $1 AND totp_confirmed_at IS NOT NULL
                 RETURNING password_version",
                id.as_uuid()
            )
            .fetch_optional(tx.conn())
            .await?
        }
    })
}

/// Resets the whole second factor (for someone who lost it, by their admin or on the
/// server): the authenticator app, every passkey, the recovery codes. The account's
/// `password_version` moves on, ending its sessions; the new version, or `None` when it had
/// no second factor.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn reset(tx: &mut ScopedTx, holder: Holder) -> Result<Option<i32>, StoreError> {
    match holder {
        Holder::Staff(id) => {
            let version = sqlx::query_scalar!(
                "UPDATE staff_accounts
                    SET totp_secret_enc = NULL, totp_started_at = NULL, totp_confirmed_at = NULL,
                        totp_last_step = 0, recovery_code_hashes = '{}', passkey_count = 0,
                        password_version = password_version + 1, updated_at = now()
                  WHERE id = $1 AND (totp_confirmed_at IS NOT NULL OR passkey_count > 0)
                 RETURNING password_version",
                id.as_uuid()
            )
            .fetch_optional(tx.conn())
            .await?;
            if version.is_some() {
                sqlx::query!(
                    "DELETE FROM staff_passkeys WHERE staff_id = $1",
                    id.as_uuid()
                )
                .execute(tx.conn())
                .await?;
            }
            Ok(version)
        }
        Holder::Operator(id) => {
            let version = sqlx::query_scalar!(
                "UPDATE platform_operators
                    SET totp_secret_enc = NULL, totp_started_at = NULL, totp_confirmed_at = NULL,
                        totp_last_step = 0, recovery_code_hashes = '{}', passkey_count = 0,
                        password_version = password_version + 1
                  WHERE id = $1 AND (totp_confirmed_at IS NOT NULL OR passkey_count > 0)
                 RETURNING password_version",
                id.as_uuid()
            )
            .fetch_optional(tx.conn())
            .await?;
            if version.is_some() {
                sqlx::query!(
                    "DELETE FROM operator_passkeys WHERE operator_id = $1",
                    id.as_uuid()
                )
                .execute(tx.conn())
                .await?;
            }
            Ok(version)
        }
    }
}
