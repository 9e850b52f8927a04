//! A patient's care team: members, invitations and their answers, leaving, removal; and the
//! facility directory to invite from.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::FacilityId;
use renrakucho_http::access::{authorize, staff};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::TeamMember;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::patient_id;

/// A member of a care team as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub facility: Uuid,
    pub code: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub registering: bool,
    /// invited, active, declined, left, removed
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub joined_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl From<TeamMember> for MemberView {
    fn from(m: TeamMember) -> Self {
        Self {
            facility: m.facility.as_uuid(),
            code: m.code,
            name: m.name,
            kind: m.kind.map(|k| k.as_str().to_string()),
            registering: m.registering,
            status: m.status.to_string(),
            invited_at: m.invited_at,
            joined_at: m.joined_at,
            ended_at: m.ended_at,
        }
    }
}

/// The patient's care team.
#[utoipa::path(get, path = "/api/v1/patients/{id}/care-team", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = [MemberView]), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn care_team(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamRead>(&state, &signed_in, id).await?;
    let team = renrakucho_registry::care_team_of(&state.db, &who, &origin).await?;
    Ok(Json(team.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteBody {
    /// The invited facility's code (from the directory).
    pub facility_code: String,
}

/// Invites a facility into the care team. Consent on file is reused: no new form.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team", tag = "care team",
    request_body = InviteBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 201, body = MemberView), (status = 404, body = ErrorBody),
              (status = 409, description = "No participating facility has that code, or it is already invited or in the team", body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamInvite>(&state, &signed_in, id).await?;
    let member =
        renrakucho_registry::invite(&state.db, &who, &origin, body.facility_code.trim()).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok((StatusCode::CREATED, Json(member.into())))
}

/// Accepts the invitation for the signed-in person's facility (its administrator, or staff it
/// allows).
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team/accept", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamAccept>(&state, &signed_in, id).await?;
    renrakucho_registry::accept_invitation(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines the invitation.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team/decline", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn decline(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamAccept>(&state, &signed_in, id).await?;
    renrakucho_registry::decline_invitation(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes the signed-in person's facility out of the care team.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team/leave", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamLeave>(&state, &signed_in, id).await?;
    renrakucho_registry::leave(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a facility from the care team, or cancels its invitation (registering facility).
#[utoipa::path(delete, path = "/api/v1/patients/{id}/care-team/{facility}", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient"),
           ("facility" = Uuid, Path, description = "The member facility")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn remove(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, facility)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let facility = Uuid::parse_str(&facility)
        .map(FacilityId::from_uuid)
        .map_err(|_| ApiError::not_found())?;
    let who = authorize::<may::CareTeamRemove>(&state, &signed_in, id).await?;
    renrakucho_registry::remove_member(&state.db, &who, &origin, facility).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub patient: Uuid,
    pub registering_facility: Uuid,
    pub registering_facility_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
}

/// Invitations waiting for the signed-in person's facility.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "care team",
    responses((status = 200, body = [InvitationView]), (status = 401, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invitations(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<InvitationView>>, ApiError> {
    let who = staff(&signed_in)?;
    let pending = renrakucho_registry::pending_invitations(&state.db, who).await?;
    Ok(Json(
        pending
            .into_iter()
            .map(|i| InvitationView {
                patient: i.patient.as_uuid(),
                registering_facility: i.registering_facility.as_uuid(),
                registering_facility_name: i.registering_facility_name,
                invited_at: i.invited_at,
            })
            .collect(),
    ))
}

/// A facility in the public directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub kind_ja: String,
}

/// The directory of participating facilities (第16条), to choose whom to invite.
#[utoipa::path(get, path = "/api/v1/facilities", tag = "directory",
    responses((status = 200, body = [DirectoryView]), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn directory(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<DirectoryView>>, ApiError> {
    let who = staff(&signed_in)?;
    let entries = renrakucho_registry::directory(&state.db, who.facility).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| DirectoryView {
                id: e.id.as_uuid(),
                code: e.code,
                name: e.name,
                kind: e.kind.as_str().to_string(),
                kind_ja: e.kind.label_ja().to_string(),
            })
            .collect(),
    ))
}
