//! A facility's OpenID Connect provider and the links from its subjects to staff accounts: SQL
//! for `identity_providers` and `external_identities` (migration 23). Always in one facility's
//! scope; row-level security keeps every other facility's rows out of reach.

use renrakucho_core::{FacilityId, StaffId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ScopedTx, StoreError};

/// A facility's provider as stored. The client secret stays encrypted here.
#[derive(Debug, Clone)]
pub struct StoredProvider {
    pub id: Uuid,
    pub facility_id: FacilityId,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_enc: Vec<u8>,
    pub scopes: Vec<String>,
    pub login_claim: String,
    pub allowed_domains: Vec<String>,
    pub account_policy: String,
    pub enabled: bool,
    /// Moves on with every change: a test sign-in counts for the revision it ran under.
    pub revision: i32,
    pub tested_revision: Option<i32>,
    pub tested_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
}

/// The settings of a provider as the admin saves them (the secret encrypted by the caller).
#[derive(Debug, Clone)]
pub struct ProviderSettings<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub login_claim: &'a str,
    pub allowed_domains: &'a [String],
    pub account_policy: &'a str,
}

/// The facility's provider, if it has one.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(tx: &mut ScopedTx) -> Result<Option<StoredProvider>, StoreError> {
    let facility = facility_of(tx)?;
    let row = sqlx::query!(
        "SELECT id, facility_id, issuer, client_id, client_secret_enc, scopes, login_claim,
                allowed_domains, account_policy, enabled, revision, tested_revision, tested_at,
                updated_at
           FROM identity_providers WHERE facility_id = $1",
        facility.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|r| StoredProvider {
        id: r.id,
        facility_id: FacilityId::from_uuid(r.facility_id),
        issuer: r.issuer,
        client_id: r.client_id,
        client_secret_enc: r.client_secret_enc,
        scopes: r.scopes,
        login_claim: r.login_claim,
        allowed_domains: r.allowed_domains,
        account_policy: r.account_policy,
        enabled: r.enabled,
        revision: r.revision,
        tested_revision: r.tested_revision,
        tested_at: r.tested_at,
        updated_at: r.updated_at,
    }))
}

/// Creates the facility's provider with row ID `id` (the secret's associated data names it),
/// disabled until a test sign-in passes.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    tx: &mut ScopedTx,
    id: Uuid,
    settings: &ProviderSettings<'_>,
    client_secret_enc: &[u8],
) -> Result<(), StoreError> {
    let facility = facility_of(tx)?;
    sqlx::query!(
        "INSERT INTO identity_providers
             (id, facility_id, issuer, client_id, client_secret_enc, scopes, login_claim,
              allowed_domains, account_policy)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        facility.as_uuid(),
        settings.issuer,
        settings.client_id,
        client_secret_enc,
        settings.scopes,
        settings.login_claim,
        settings.allowed_domains,
        settings.account_policy,
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Replaces the provider's settings (and its secret, when given). A changed provider is
/// disabled and must pass a test sign-in again. `revision` is the one the admin edited: a
/// change made meanwhile gives [`StoreError::Conflict`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn update(
    tx: &mut ScopedTx,
    revision: i32,
    settings: &ProviderSettings<'_>,
    client_secret_enc: Option<&[u8]>,
) -> Result<(), StoreError> {
    let facility = facility_of(tx)?;
    let done = sqlx::query!(
        "UPDATE identity_providers
            SET issuer = $3, client_id = $4,
                client_secret_enc = coalesce($5, client_secret_enc), scopes = $6,
                login_claim = $7, allowed_domains = $8, account_policy = $9,
                enabled = false, revision = revision + 1, updated_at = now()
          WHERE facility_id = $1 AND revision = $2",
        facility.as_uuid(),
        revision,
        settings.issuer,
        settings.client_id,
        client_secret_enc,
        settings.scopes,
        settings.login_claim,
        settings.allowed_domains,
        settings.account_policy,
    )
    .execute(tx.conn())
    .await?;
    changed(done.rows_affected(), "identity_providers_revision")
}

/// Records a test sign-in that passed under `revision`; false when the provider has changed
/// since the test began (the test then proves nothing).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn mark_tested(tx: &mut ScopedTx, revision: i32) -> Result<bool, StoreError> {
    let facility = facility_of(tx)?;
    let done = sqlx::query!(
        "UPDATE identity_providers SET tested_revision = revision, tested_at = now()
          WHERE facility_id = $1 AND revision = $2",
        facility.as_uuid(),
        revision
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns sign-in through the provider on or off. Turning it on needs a passed test of the
/// current settings ([`StoreError::Rule`] `identity_providers_check` otherwise).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_enabled(tx: &mut ScopedTx, enabled: bool) -> Result<(), StoreError> {
    let facility = facility_of(tx)?;
    let done = sqlx::query!(
        "UPDATE identity_providers SET enabled = $2, updated_at = now() WHERE facility_id = $1",
        facility.as_uuid(),
        enabled
    )
    .execute(tx.conn())
    .await?;
    changed(done.rows_affected(), "")
}

/// Removes the facility's provider (its links stay, for a provider configured again).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(tx: &mut ScopedTx) -> Result<(), StoreError> {
    let facility = facility_of(tx)?;
    let done = sqlx::query!(
        "DELETE FROM identity_providers WHERE facility_id = $1",
        facility.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    changed(done.rows_affected(), "")
}

/// A provider's subject linked to a staff account of the facility.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExternalIdentity {
    pub id: Uuid,
    pub staff_id: StaffId,
    pub issuer: String,
    pub subject: String,
    /// `admin` or `just_in_time`.
    pub linked_by: String,
    /// The address the provider gave at a just-in-time sign-in, and whether it verified it.
    pub email: Option<String>,
    pub email_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What the provider said of a person whose account was made at their first sign-in.
#[derive(Debug, Clone, Copy)]
pub struct ClaimedEmail<'a> {
    pub email: Option<&'a str>,
    pub verified: bool,
}

/// The account `(issuer, subject)` signs in as in this facility, if linked.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn linked_account(
    tx: &mut ScopedTx,
    issuer: &str,
    subject: &str,
) -> Result<Option<StaffId>, StoreError> {
    let facility = facility_of(tx)?;
    let found = sqlx::query_scalar!(
        "SELECT staff_id FROM external_identities
          WHERE facility_id = $1 AND issuer = $2 AND subject = $3",
        facility.as_uuid(),
        issuer,
        subject
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(found.map(StaffId::from_uuid))
}

/// Whether `holder` is linked to a subject of an identity provider (their facility's, or the
/// operators' own): such a person signs in through the provider, so that the provider's
/// removal of them takes effect here.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn is_linked(
    tx: &mut ScopedTx,
    holder: crate::second_factors::Holder,
) -> Result<bool, StoreError> {
    let linked = match holder {
        crate::second_factors::Holder::Staff(id) => {
            sqlx::query_scalar!(
            "SELECT EXISTS (SELECT 1 FROM external_identities WHERE staff_id = $1) AS \"linked!\"",
            id.as_uuid()
        )
            .fetch_one(tx.conn())
            .await?
        }
        crate::second_factors::Holder::Operator(id) => {
            sqlx::query_scalar!(
                "SELECT EXISTS (SELECT 1 FROM operator_identities WHERE operator_id = $1)
                 AS \"linked!\"",
                id.as_uuid()
            )
            .fetch_one(tx.conn())
            .await?
        }
    };
    Ok(linked)
}

/// Links `(issuer, subject)` to `staff` (`claimed`: what the provider said, for a just-in-time
/// account). A subject already linked here, or an account already linked to another subject of
/// the issuer, gives [`StoreError::Conflict`] (the transaction is then aborted).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn link(
    tx: &mut ScopedTx,
    staff: StaffId,
    issuer: &str,
    subject: &str,
    linked_by: &str,
    claimed: Option<ClaimedEmail<'_>>,
) -> Result<ExternalIdentity, StoreError> {
    let facility = facility_of(tx)?;
    let row = sqlx::query!(
        "INSERT INTO external_identities
             (id, facility_id, staff_id, issuer, subject, linked_by, email, email_verified)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, staff_id, issuer, subject, linked_by, email, email_verified, created_at",
        Uuid::now_v7(),
        facility.as_uuid(),
        staff.as_uuid(),
        issuer,
        subject,
        linked_by,
        claimed.and_then(|c| c.email),
        claimed.is_some_and(|c| c.verified),
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(ExternalIdentity {
        id: row.id,
        staff_id: StaffId::from_uuid(row.staff_id),
        issuer: row.issuer,
        subject: row.subject,
        linked_by: row.linked_by,
        email: row.email,
        email_verified: row.email_verified,
        created_at: row.created_at,
    })
}

/// How many accounts of the facility wait for approval, the facility's provider locked until
/// the transaction ends: first sign-ins alongside count one after the other, so the cap holds.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn pending_count(tx: &mut ScopedTx) -> Result<i64, StoreError> {
    let facility = facility_of(tx)?;
    sqlx::query_scalar!(
        "SELECT id FROM identity_providers WHERE facility_id = $1 FOR UPDATE",
        facility.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM staff_accounts
            WHERE facility_id = $1 AND status = 'pending'"#,
        facility.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Ends every session of the accounts linked to the facility's provider (their password
/// version moves on) but `acting`'s, whose session is the one disabling or removing it.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn end_linked_sessions(
    tx: &mut ScopedTx,
    acting: StaffId,
) -> Result<Vec<StaffId>, StoreError> {
    let facility = facility_of(tx)?;
    let ended = sqlx::query_scalar!(
        "UPDATE staff_accounts SET password_version = password_version + 1, updated_at = now()
          WHERE facility_id = $1 AND id <> $2
            AND id IN (SELECT staff_id FROM external_identities WHERE facility_id = $1)
         RETURNING id",
        facility.as_uuid(),
        acting.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(ended.into_iter().map(StaffId::from_uuid).collect())
}

/// Every link of the facility, oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn links(tx: &mut ScopedTx) -> Result<Vec<ExternalIdentity>, StoreError> {
    let facility = facility_of(tx)?;
    let rows = sqlx::query!(
        "SELECT id, staff_id, issuer, subject, linked_by, email, email_verified, created_at
           FROM external_identities WHERE facility_id = $1 ORDER BY created_at, id",
        facility.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ExternalIdentity {
            id: row.id,
            staff_id: StaffId::from_uuid(row.staff_id),
            issuer: row.issuer,
            subject: row.subject,
            linked_by: row.linked_by,
            email: row.email,
            email_verified: row.email_verified,
            created_at: row.created_at,
        })
        .collect())
}

/// Removes link `id` of `staff` and ends the member's sessions (their password version moves
/// on): whoever signed in through it is out. [`StoreError::NotFound`] when there is none.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn unlink(tx: &mut ScopedTx, staff: StaffId, id: Uuid) -> Result<(), StoreError> {
    let facility = facility_of(tx)?;
    let done = sqlx::query!(
        "WITH gone AS (
             DELETE FROM external_identities
              WHERE facility_id = $1 AND staff_id = $2 AND id = $3
          RETURNING staff_id)
         UPDATE staff_accounts SET password_version = password_version + 1, updated_at = now()
          WHERE facility_id = $1 AND id IN (SELECT staff_id FROM gone)",
        facility.as_uuid(),
        staff.as_uuid(),
        id
    )
    .execute(tx.conn())
    .await?;
    changed(done.rows_affected(), "")
}

fn facility_of(tx: &ScopedTx) -> Result<FacilityId, StoreError> {
    tx.scope().facility().ok_or(StoreError::Forbidden)
}

/// One row changed, or: none visible ([`StoreError::NotFound`], or a conflict named
/// `constraint` when the row exists but moved on).
fn changed(rows: u64, constraint: &str) -> Result<(), StoreError> {
    match rows {
        1 => Ok(()),
        _ if constraint.is_empty() => Err(StoreError::NotFound),
        _ => Err(StoreError::Conflict {
            constraint: constraint.into(),
        }),
    }
}

/// The operator `(issuer, subject)` of the operators' own provider signs in as, if linked (in
/// the platform's scope).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn linked_operator(
    tx: &mut ScopedTx,
    issuer: &str,
    subject: &str,
) -> Result<Option<renrakucho_core::OperatorId>, StoreError> {
    if tx.scope() != crate::Scope::Platform {
        return Err(StoreError::Forbidden);
    }
    let found = sqlx::query_scalar!(
        "SELECT operator_id FROM operator_identities WHERE issuer = $1 AND subject = $2",
        issuer,
        subject
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(found.map(renrakucho_core::OperatorId::from_uuid))
}

/// Links `(issuer, subject)` to `operator` (in the platform's scope); a subject or an operator
/// already linked for the issuer gives [`StoreError::Conflict`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn link_operator(
    tx: &mut ScopedTx,
    operator: renrakucho_core::OperatorId,
    issuer: &str,
    subject: &str,
) -> Result<Uuid, StoreError> {
    if tx.scope() != crate::Scope::Platform {
        return Err(StoreError::Forbidden);
    }
    Ok(sqlx::query_scalar!(
        "INSERT INTO operator_identities (id, operator_id, issuer, subject)
         VALUES ($1, $2, $3, $4) RETURNING id",
        Uuid::now_v7(),
        operator.as_uuid(),
        issuer,
        subject
    )
    .fetch_one(tx.conn())
    .await?)
}
