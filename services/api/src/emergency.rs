//! Emergency (break-glass) access and its review, as JSON under `/api/v1`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{BirthDate, CardNumber, InvalidValue, PatientId, StaffRole};
use renrakucho_http::access::{authorize, permit, staff};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::{EmergencyGrant, EmergencyReason, EmergencyRequest};
use renrakucho_registry::{IdentificationStatus, PatientCard};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A request to open a notebook in an emergency.
#[derive(Deserialize, ToSchema)]
pub struct EmergencyBody {
    /// The number on the patient's card (16 characters, e.g. `7K3M-Q9TX-2HCE-WR4P`).
    pub card_number: String,
    /// The patient's date of birth, YYYY-MM-DD: confirms the number.
    #[schema(format = Date)]
    pub birth_date: String,
    /// Why (10–500 characters).
    pub reason: String,
}

renrakucho_core::redacted_debug!(EmergencyBody);

impl EmergencyBody {
    pub fn parse(&self, duration: std::time::Duration) -> Result<EmergencyRequest, InvalidValue> {
        let today = OffsetDateTime::now_utc()
            .to_offset(time::macros::offset!(+9))
            .date();
        Ok(EmergencyRequest {
            card: CardNumber::parse(&self.card_number)?,
            birth_date: BirthDate::parse(&self.birth_date, today)?,
            reason: EmergencyReason::parse(&self.reason)?,
            duration: time::Duration::try_from(duration).unwrap_or(time::Duration::DAY),
        })
    }
}

/// Opens a patient's notebook read-only for a limited time (a doctor or nurse outside the care
/// team). The care team sees the grant at once; it ends by itself.
#[utoipa::path(post, path = "/api/v1/emergency-access", tag = "emergency",
    request_body = EmergencyBody,
    responses((status = 201, body = EmergencyGrant),
              (status = 404, description = "No patient with this card number and date of birth (also: the card is locked)", body = ErrorBody),
              (status = 429, description = "The facility failed too many identifications within the hour", body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator), or the password was last given more than 10 minutes ago (`reauthentication_required`: `POST /api/v1/me/reauthenticate`)", body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 409, description = "The patient's own facility or care team needs no emergency access", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn open(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<EmergencyBody>,
) -> Result<(StatusCode, Json<EmergencyGrant>), ApiError> {
    let who = permit::<may::EmergencyOpen>(&state, &signed_in).await?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let request = body.parse(state.care.emergency_access)?;
    let grant =
        renrakucho_registry::open_emergency(&state.db, &state.keyring, &who, &origin, request)
            .await?;
    // This process's authorizer follows at once; the others on the announcement.
    if let Err(e) = renrakucho_http::access::refresh(&state.db, &state.authz, grant.patient).await {
        tracing::warn!(error = %e, "refreshing access after an emergency grant failed");
    }
    Ok((StatusCode::CREATED, Json(grant)))
}

/// Emergency grants opened by the facility, and those on its patients (to review).
#[utoipa::path(get, path = "/api/v1/emergency-access", tag = "emergency",
    responses((status = 200, body = [EmergencyGrant]), (status = 401, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
) -> Result<Json<Vec<EmergencyGrant>>, ApiError> {
    let who = staff(&signed_in)?;
    let reader = renrakucho_http::access::EmergencyReasonReader::new(&state, &signed_in);
    let grants = renrakucho_registry::emergency_grants(
        &state.db,
        &state.keyring,
        who,
        &origin,
        200,
        |patient, ours| reader.may_read(patient, ours),
    )
    .await?;
    Ok(Json(grants))
}

fn grant_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

/// Ends the facility's own grant early.
#[utoipa::path(post, path = "/api/v1/emergency-access/{id}/end", tag = "emergency",
    params(("id" = Uuid, Path, description = "The grant")),
    responses((status = 204, description = "Ended"), (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn end(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = renrakucho_http::access::authorize_emergency_end(&state, &signed_in).await?;
    let grant = grant_id(&id)?;
    renrakucho_registry::end_emergency(&state.db, who, &origin, grant).await?;
    // The patient is not named here: every process follows the database's announcement.
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a grant on one of the facility's patients as reviewed (facility administrators).
#[utoipa::path(post, path = "/api/v1/emergency-access/{id}/review", tag = "emergency",
    params(("id" = Uuid, Path, description = "The grant")),
    responses((status = 204, description = "Reviewed"),
              (status = 403, description = "Facility administrators review emergency access", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Opened by this facility itself (the care team reviews it), or reviewed already", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn review(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = staff(&signed_in)?;
    if signed_in.who.role != Some(StaffRole::FacilityAdmin) {
        return Err(ApiError::forbidden(
            "緊急閲覧の確認は施設管理者が行います / facility administrators review emergency access",
        ));
    }
    renrakucho_registry::review_emergency(&state.db, who, &origin, grant_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The facility's failed emergency identifications within the hour, and its lockout.
#[utoipa::path(get, path = "/api/v1/emergency-access/status", tag = "emergency",
    responses((status = 200, body = IdentificationStatus), (status = 401, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn status(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
) -> Result<Json<IdentificationStatus>, ApiError> {
    let who = staff(&signed_in)?;
    let status = renrakucho_registry::identification_status(&state.db, who, &origin).await?;
    Ok(Json(status))
}

fn patient_id(raw: &str) -> Result<PatientId, ApiError> {
    Uuid::parse_str(raw)
        .map(PatientId::from_uuid)
        .map_err(|_| ApiError::not_found())
}

/// The patient's card number and its failed identifications (the registering facility).
#[utoipa::path(get, path = "/api/v1/patients/{id}/card", tag = "emergency",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = PatientCard), (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The card number is unreadable (code `unreadable`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn card(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<PatientCard>, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::PatientRead>(&state, &signed_in, patient).await?;
    let card = renrakucho_registry::patient_card(&state.db, &state.keyring, &who, &origin).await?;
    Ok(Json(card))
}

/// Re-issues the card: a new number; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/patients/{id}/card/reissue", tag = "emergency",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = PatientCard), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reissue_card(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<PatientCard>, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::PatientCardReissue>(&state, &signed_in, patient).await?;
    let card = renrakucho_registry::reissue_card(&state.db, &state.keyring, &who, &origin).await?;
    Ok(Json(card))
}
