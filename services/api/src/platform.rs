//! The platform operators' endpoints under `/api/v1/platform`: alerts that facilities' requests
//! raised (IDs and counts, never patient content), and resetting a facility administrator's
//! second factor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{FacilityCode, LoginId, OperatorId};
use renrakucho_http::error::{ApiError, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_identity::{Principal, ResetBy};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The signed-in platform operator, or 403.
pub fn operator(signed_in: &SignedIn) -> Result<OperatorId, ApiError> {
    match signed_in.principal {
        Principal::Operator { id } => Ok(id),
        Principal::Staff { .. } => Err(ApiError::forbidden(
            "運用者のみが行えます / only platform operators can do this",
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AlertQuery {
    /// At most this many alerts, open ones first, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

/// An alert raised by a facility's request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    pub id: Uuid,
    /// e.g. `value.unreadable`, `emergency.identification_failures`.
    pub kind: String,
    /// The facility whose request raised it.
    pub facility_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_raised_at: OffsetDateTime,
    /// How often it was raised.
    pub occurrences: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
}

impl From<renrakucho_store::platform_alerts::Alert> for AlertView {
    fn from(a: renrakucho_store::platform_alerts::Alert) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            facility_id: a.facility_id,
            details: a.details,
            raised_at: a.raised_at,
            last_raised_at: a.last_raised_at,
            occurrences: a.occurrences,
            acknowledged_at: a.acknowledged_at,
        }
    }
}

/// Alerts for the platform operators.
#[utoipa::path(get, path = "/api/v1/platform/alerts", tag = "platform", params(AlertQuery),
    responses((status = 200, body = [AlertView]),
              (status = 403, description = "Platform operators only", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn alerts(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Query(query): Query<AlertQuery>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let operator = operator(&signed_in)?;
    let alerts = renrakucho_registry::platform_alerts(
        &state.db,
        operator,
        &origin,
        query.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(alerts.into_iter().map(Into::into).collect()))
}

/// Marks an alert as seen.
#[utoipa::path(post, path = "/api/v1/platform/alerts/{id}/acknowledge", tag = "platform",
    params(("id" = Uuid, Path, description = "The alert")),
    responses((status = 204, description = "Acknowledged"),
              (status = 403, description = "Platform operators only", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn acknowledge(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let operator = operator(&signed_in)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    renrakucho_registry::acknowledge_platform_alert(&state.db, operator, &origin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resets a facility administrator's second factor (app, passkeys, recovery codes) for one who
/// lost it, since no other administrator of theirs may: an operator, with a recent password.
/// Their sessions end, they are told by e-mail, and they set up a new one at their next
/// sign-in. Other staff are reset by their facility administrator
/// (`DELETE /api/v1/staff/{id}/second-factor`).
#[utoipa::path(delete, path = "/api/v1/platform/facilities/{code}/staff/{login_id}/second-factor",
    tag = "platform",
    params(("code" = String, Path, description = "The facility's code"),
           ("login_id" = String, Path, description = "The facility administrator's login ID")),
    responses((status = 204, description = "Reset"),
              (status = 403, description = "Platform operators only; or the password must be given again (`reauthentication_required`)", body = ErrorBody),
              (status = 404, description = "No such facility, or no administrator with this login ID there", body = ErrorBody),
              (status = 409, description = "The administrator has no second factor", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reset_administrators_second_factor(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((code, login_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let operator = operator(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let (Ok(code), Ok(login_id)) = (FacilityCode::parse(&code), LoginId::parse(&login_id)) else {
        return Err(ApiError::not_found());
    };
    let member = renrakucho_identity::reset_facility_account_second_factor(
        &state.db,
        ResetBy::Operator(operator),
        &code,
        &login_id,
        &signed_in.origin,
    )
    .await?;
    state.principals.forget_person(&member);
    Ok(StatusCode::NO_CONTENT)
}
