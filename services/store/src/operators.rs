//! Platform operator accounts: SQL for `platform_operators`. Platform scope only.

use renrakucho_core::{DisplayName, LoginId, OperatorId, StaffStatus};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::facilities::decode;
use crate::{ScopedTx, StoreError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Operator {
    pub id: OperatorId,
    pub login_id: String,
    pub display_name: String,
    pub status: StaffStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub password_changed_at: OffsetDateTime,
    /// Someone else chose the password: the operator changes it before anything else.
    pub password_must_change: bool,
    /// How many times the password changed: sessions signed in under an older one end.
    pub password_version: i32,
    /// An authenticator app is confirmed or a passkey registered: sign-in asks for one.
    pub second_factor_enabled: bool,
}

#[derive(Debug, Clone)]
pub struct OperatorCredentials {
    pub operator: Operator,
    pub password_hash: String,
    /// The hashes of the earlier passwords, newest first (at most five).
    pub previous_password_hashes: Vec<String>,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    login_id: String,
    display_name: String,
    status: String,
    password_changed_at: OffsetDateTime,
    password_must_change: bool,
    password_version: i32,
    password_hash: String,
    previous_password_hashes: Vec<String>,
    /// An expression: sqlx cannot tell it is never NULL.
    second_factor_enabled: Option<bool>,
}

impl Row {
    fn into_credentials(self) -> Result<OperatorCredentials, StoreError> {
        Ok(OperatorCredentials {
            operator: Operator {
                id: OperatorId::from_uuid(self.id),
                login_id: self.login_id,
                display_name: self.display_name,
                status: decode("status", &self.status)?,
                password_changed_at: self.password_changed_at,
                password_must_change: self.password_must_change,
                password_version: self.password_version,
                second_factor_enabled: self.second_factor_enabled.unwrap_or(false),
            },
            password_hash: self.password_hash,
            previous_password_hashes: self.previous_password_hashes,
        })
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    tx: &mut ScopedTx,
    login_id: &LoginId,
    display_name: &DisplayName,
    password_hash: &str,
    password_must_change: bool,
) -> Result<Operator, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO platform_operators
             (id, login_id, display_name, password_hash, password_must_change)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, login_id, display_name, status, password_changed_at,
                   password_must_change, password_version, password_hash,
                   previous_password_hashes,
                   (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled",
        OperatorId::new().as_uuid(),
        login_id.as_str(),
        display_name.as_str(),
        password_hash,
        password_must_change
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into_credentials()?.operator)
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_credentials(
    tx: &mut ScopedTx,
    login_id: &LoginId,
) -> Result<Option<OperatorCredentials>, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, login_id, display_name, status, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            platform_operators WHERE login_id = $1",
        login_id.as_str()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(Row::into_credentials)
    .transpose()
}

/// The operator `id` with the password hashes (a password change checks them).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn credentials(
    tx: &mut ScopedTx,
    id: OperatorId,
) -> Result<OperatorCredentials, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, login_id, display_name, status, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            platform_operators WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?
    .into_credentials()
}

/// A new password for the operator `id`, as [`crate::staff::set_password`] does for staff.
/// The new version, or `None` when the password changed meanwhile.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn set_password(
    tx: &mut ScopedTx,
    id: OperatorId,
    replacing: &str,
    new_hash: &str,
    must_change: bool,
) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar!(
        "UPDATE platform_operators
            SET previous_password_hashes = (ARRAY[password_hash] || previous_password_hashes)[1:5],
                password_hash = $2, password_changed_at = now(), password_must_change = $3,
                password_version = password_version + 1, updated_at = now()
          WHERE id = $1 AND password_hash = $4
          RETURNING password_version",
        id.as_uuid(),
        new_hash,
        must_change,
        replacing
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// The same password hashed with the current argon2id parameters (at sign-in), only over the
/// hash just `verified`.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn rehash_password(
    tx: &mut ScopedTx,
    id: OperatorId,
    verified: &str,
    new_hash: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE platform_operators SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
        id.as_uuid(),
        new_hash,
        verified
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: OperatorId) -> Result<Operator, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, login_id, display_name, status, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            platform_operators WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?
    .into_credentials()
    .map(|c| c.operator)
}
