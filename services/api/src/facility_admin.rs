//! A facility administrator's endpoints under `/api/v1`: the facility's audit log, its staff
//! list, and which staff may accept care-team invitations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{StaffId, StaffRole};
use renrakucho_http::access::staff;
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::StaffActor;
use renrakucho_store::audit::AuditRecord;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The signed-in facility administrator, or 403.
pub fn facility_admin(signed_in: &SignedIn) -> Result<StaffActor, ApiError> {
    let who = staff(signed_in)?;
    if signed_in.who.role == Some(StaffRole::FacilityAdmin) {
        Ok(who)
    } else {
        Err(ApiError::forbidden(
            "施設管理者のみが行えます / only the facility administrator can do this",
        ))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// At most this many records, newest first (1–1000, default 100).
    pub limit: Option<i64>,
}

/// An audit record of the facility's chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub outcome: String,
    pub target_kind: Option<String>,
    pub target_id: Option<Uuid>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            occurred_at: r.occurred_at,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            action: r.action,
            outcome: r.outcome,
            target_kind: r.target_kind,
            target_id: r.target_id,
            request_id: r.request_id,
            details: r.details,
        }
    }
}

/// The facility's audit log: who did what, when, from where (facility administrators).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = [AuditView]),
              (status = 403, description = "Facility administrators only", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn audit_log(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let admin = facility_admin(&signed_in)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let records = renrakucho_registry::facility_audit(&state.db, admin, &origin, limit).await?;
    Ok(Json(records.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptPermissionBody {
    pub allowed: bool,
}

/// Lets a staff member accept care-team invitations for the facility, or stops it.
#[utoipa::path(put, path = "/api/v1/staff/{id}/may-accept-invitations", tag = "admin",
    request_body = AcceptPermissionBody,
    params(("id" = Uuid, Path, description = "The staff member")),
    responses((status = 204, description = "Saved"),
              (status = 403, description = "Facility administrators only", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_may_accept_invitations(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AcceptPermissionBody>,
) -> Result<StatusCode, ApiError> {
    let admin = facility_admin(&signed_in)?;
    let member = Uuid::parse_str(&id)
        .map(StaffId::from_uuid)
        .map_err(|_| ApiError::not_found())?;
    renrakucho_registry::set_may_accept_invitations(
        &state.db,
        admin,
        &origin,
        member,
        body.allowed,
    )
    .await?;
    // This process's next request for the member sees it at once; the others, when the
    // database's announcement reaches them (ADR 0025).
    state
        .principals
        .forget_person(&renrakucho_identity::Principal::Staff {
            id: member,
            facility: admin.facility,
        });
    Ok(StatusCode::NO_CONTENT)
}

/// A staff account of the facility, as its administrator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    pub id: Uuid,
    pub login_id: String,
    pub display_name: String,
    /// `facility_admin` or `staff`.
    pub role: String,
    pub profession: String,
    /// `active`, `suspended`, `disabled` or `pending` (a just-in-time account to approve).
    pub status: String,
    pub may_accept_invitations: bool,
    /// An authenticator app or a passkey is set up.
    pub second_factor_enabled: bool,
    /// The person must change their password at their next sign-in.
    pub password_must_change: bool,
}

impl From<renrakucho_store::staff::StaffAccount> for StaffView {
    fn from(a: renrakucho_store::staff::StaffAccount) -> Self {
        Self {
            id: a.id.as_uuid(),
            login_id: a.login_id,
            display_name: a.display_name,
            role: a.role.as_str().into(),
            profession: a.profession.as_str().into(),
            status: a.status.as_str().into(),
            may_accept_invitations: a.may_accept_invitations,
            second_factor_enabled: a.second_factor_enabled,
            password_must_change: a.password_must_change,
        }
    }
}

/// The facility's staff accounts, by login ID (facility administrators; the reading is
/// audited).
#[utoipa::path(get, path = "/api/v1/staff", tag = "admin",
    responses((status = 200, body = [StaffView]),
              (status = 403, description = "Facility administrators only", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_staff(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
) -> Result<Json<Vec<StaffView>>, ApiError> {
    let admin = facility_admin(&signed_in)?;
    let accounts = renrakucho_registry::facility_staff(&state.db, admin, &origin).await?;
    Ok(Json(accounts.into_iter().map(StaffView::from).collect()))
}
