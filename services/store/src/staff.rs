//! Staff accounts: SQL for the `staff_accounts` table. Always in one facility's scope.

use renrakucho_core::{
    DisplayName, FacilityId, LoginId, Profession, StaffId, StaffRole, StaffStatus,
};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::facilities::decode;
use crate::{ScopedTx, StoreError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct StaffAccount {
    pub id: StaffId,
    pub facility_id: FacilityId,
    pub login_id: String,
    pub display_name: String,
    pub role: StaffRole,
    pub profession: Profession,
    pub status: StaffStatus,
    /// The facility admin lets this person accept care-team invitations for the facility.
    pub may_accept_invitations: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub password_changed_at: OffsetDateTime,
    /// Someone else chose the password (or reset it): the person changes it before anything
    /// else.
    pub password_must_change: bool,
    /// How many times the password changed: sessions signed in under an older one end.
    pub password_version: i32,
    /// An authenticator app is confirmed or a passkey registered: sign-in asks for one.
    pub second_factor_enabled: bool,
}

/// An account with its password hashes, for the sign-in and password-change checks only.
#[derive(Debug, Clone)]
pub struct StaffCredentials {
    pub account: StaffAccount,
    pub password_hash: String,
    /// The hashes of the account's earlier passwords, newest first (at most five): a new
    /// password may not be one of them.
    pub previous_password_hashes: Vec<String>,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    facility_id: Uuid,
    login_id: String,
    display_name: String,
    role: String,
    profession: String,
    status: String,
    may_accept_invitations: bool,
    password_changed_at: OffsetDateTime,
    password_must_change: bool,
    password_version: i32,
    password_hash: String,
    previous_password_hashes: Vec<String>,
    /// An expression: sqlx cannot tell it is never NULL.
    second_factor_enabled: Option<bool>,
}

impl Row {
    fn into_credentials(self) -> Result<StaffCredentials, StoreError> {
        Ok(StaffCredentials {
            account: StaffAccount {
                id: StaffId::from_uuid(self.id),
                facility_id: FacilityId::from_uuid(self.facility_id),
                login_id: self.login_id,
                display_name: self.display_name,
                role: decode("role", &self.role)?,
                profession: decode("profession", &self.profession)?,
                status: decode("status", &self.status)?,
                may_accept_invitations: self.may_accept_invitations,
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

/// A staff account to create in the transaction's facility.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub login_id: LoginId,
    pub display_name: DisplayName,
    pub role: StaffRole,
    pub profession: Profession,
    pub password_hash: String,
    /// The password was chosen by someone else: changed at the first sign-in.
    pub password_must_change: bool,
}

fn facility_of(tx: &ScopedTx) -> Result<FacilityId, StoreError> {
    tx.scope().facility().ok_or(StoreError::Forbidden)
}

/// Creates the account in the transaction's facility. A login ID already used in this
/// facility gives [`StoreError::Conflict`]; other facilities' IDs never collide.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewStaff) -> Result<StaffAccount, StoreError> {
    let facility = facility_of(tx)?;
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO staff_accounts
             (id, facility_id, login_id, display_name, role, profession, password_hash,
              password_must_change)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, facility_id, login_id, display_name, role, profession, status,
                   may_accept_invitations, password_changed_at, password_must_change,
                   password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled",
        StaffId::new().as_uuid(),
        facility.as_uuid(),
        new.login_id.as_str(),
        new.display_name.as_str(),
        new.role.as_str(),
        new.profession.as_str(),
        &new.password_hash,
        new.password_must_change,
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into_credentials()?.account)
}

/// Creates a just-in-time account (status `pending`: it may not sign in until the facility
/// admin approves it) in the transaction's facility; `None` when its login ID is taken (the
/// transaction goes on, so another ID can be tried).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_pending(
    tx: &mut ScopedTx,
    new: &NewStaff,
) -> Result<Option<StaffAccount>, StoreError> {
    let facility = facility_of(tx)?;
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO staff_accounts
             (id, facility_id, login_id, display_name, role, profession, password_hash,
              password_must_change, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')
         ON CONFLICT (facility_id, login_id) DO NOTHING
         RETURNING id, facility_id, login_id, display_name, role, profession, status,
                   may_accept_invitations, password_changed_at, password_must_change,
                   password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled",
        StaffId::new().as_uuid(),
        facility.as_uuid(),
        new.login_id.as_str(),
        new.display_name.as_str(),
        new.role.as_str(),
        new.profession.as_str(),
        &new.password_hash,
        new.password_must_change,
    )
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| r.into_credentials().map(|c| c.account))
        .transpose()
}

/// Approves a `pending` account: active from now, with the profession the admin gives.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn approve(
    tx: &mut ScopedTx,
    id: StaffId,
    profession: Profession,
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE staff_accounts SET status = 'active', profession = $2, updated_at = now()
          WHERE id = $1 AND status = 'pending'",
        id.as_uuid(),
        profession.as_str()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_credentials(
    tx: &mut ScopedTx,
    login_id: &LoginId,
) -> Result<Option<StaffCredentials>, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, facility_id, login_id, display_name, role, profession,
            status, may_accept_invitations, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            staff_accounts WHERE login_id = $1",
        login_id.as_str()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(Row::into_credentials)
    .transpose()
}

/// The account `id` with its password hashes (a password change checks them).
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn credentials(tx: &mut ScopedTx, id: StaffId) -> Result<StaffCredentials, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, facility_id, login_id, display_name, role, profession,
            status, may_accept_invitations, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            staff_accounts WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?
    .into_credentials()
}

/// A new password for `id`: the one it replaces joins the five kept against reuse (the oldest
/// leaves), the time of the change is now, the version moves on (ending the sessions signed in
/// under the old one), and `must_change` says whether the person has to change it again at
/// their next sign-in (someone else chose it). Written only over the hash `replacing` (the one
/// the caller checked): the new version, or `None` when the password changed meanwhile.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn set_password(
    tx: &mut ScopedTx,
    id: StaffId,
    replacing: &str,
    new_hash: &str,
    must_change: bool,
) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar!(
        "UPDATE staff_accounts
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

/// The same password hashed again with the server's current argon2id parameters (at
/// sign-in, when the settings changed), only over the hash just `verified` (a change that
/// committed meanwhile stays): nothing else about the account changes.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn rehash_password(
    tx: &mut ScopedTx,
    id: StaffId,
    verified: &str,
    new_hash: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE staff_accounts SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
        id.as_uuid(),
        new_hash,
        verified
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: StaffId) -> Result<StaffAccount, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, facility_id, login_id, display_name, role, profession,
            status, may_accept_invitations, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            staff_accounts WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?
    .into_credentials()
    .map(|c| c.account)
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx) -> Result<Vec<StaffAccount>, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, facility_id, login_id, display_name, role, profession,
            status, may_accept_invitations, password_changed_at, password_must_change,
            password_version, password_hash, previous_password_hashes,
            (totp_confirmed_at IS NOT NULL OR passkey_count > 0) AS second_factor_enabled FROM
            staff_accounts ORDER BY login_id"
    )
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|r| r.into_credentials().map(|c| c.account))
    .collect()
}

#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn set_status(
    tx: &mut ScopedTx,
    id: StaffId,
    status: StaffStatus,
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE staff_accounts SET status = $2, updated_at = now() WHERE id = $1",
        id.as_uuid(),
        status.as_str()
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn count(tx: &mut ScopedTx) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM staff_accounts"#)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Lets a staff member accept care-team invitations for the facility, or stops it.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn set_may_accept_invitations(
    tx: &mut ScopedTx,
    id: StaffId,
    allowed: bool,
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE staff_accounts SET may_accept_invitations = $2, updated_at = now() WHERE id = $1",
        id.as_uuid(),
        allowed
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}
