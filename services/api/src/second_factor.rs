//! The second factor under `/api/v1`: a person sets up an authenticator app, confirms it, gets
//! recovery codes, removes it; a facility admin resets a staff member's (第9条). Setting up,
//! replacing and removing ask for the password given within the last 10 minutes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::StaffId;
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::session::{self, SignedIn, SignedInToSecureAccount};
use renrakucho_http::state::AppState;
use renrakucho_identity::Principal;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::facility_admin::facility_admin;

/// An authenticator app being set up: scan the QR code (or type the secret), then confirm
/// with a code from the app.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// The shared secret in base32, for typing into the app.
    pub secret: String,
    /// The `otpauth://` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
}

/// The recovery codes, shown this once: each signs in once in place of the app's code.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesView {
    pub recovery_codes: Vec<String>,
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpConfirmBody {
    pub one_time_code: String,
}

/// The label an app shows for the account: facility code (`operator` for operators) and
/// login ID.
pub fn account_label(signed_in: &SignedIn) -> String {
    let place = signed_in
        .who
        .facility
        .as_ref()
        .map(|f| f.code.as_str())
        .unwrap_or("operator");
    format!("{place}/{}", signed_in.who.login_id)
}

/// Starts setting up an authenticator app (replacing a set-up not confirmed yet). Allowed while
/// a second factor must be set up; asks for a recent password.
#[utoipa::path(post, path = "/api/v1/me/second-factor/totp", tag = "auth",
    responses(
        (status = 201, description = "The secret to put into the app", body = TotpEnrolmentView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The password must be changed first, or given again (`reauthentication_required`)", body = ErrorBody),
        (status = 409, description = "An authenticator is already set up", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn begin_totp(
    State(state): State<AppState>,
    SignedInToSecureAccount(signed_in): SignedInToSecureAccount,
) -> Result<(StatusCode, Json<TotpEnrolmentView>), ApiError> {
    if signed_in.who.password_change_required {
        return Err(ApiError::password_change_required());
    }
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let enrolment = state
        .auth
        .begin_totp(signed_in.principal, &signed_in.origin)
        .await?;
    let label = account_label(&signed_in);
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolmentView {
            secret: enrolment.secret.base32(),
            otpauth_uri: enrolment.secret.uri(&label),
            qr_svg: enrolment.secret.qr_svg(&label),
        }),
    ))
}

/// Confirms the authenticator app with a code from it, within 10 minutes of starting: from now
/// on sign-in asks for its code. Every other session of the person ends (they were signed in
/// without it); this one goes on under a new ID. Answers the ten recovery codes, shown this
/// once. Asks for a recent password.
#[utoipa::path(post, path = "/api/v1/me/second-factor/totp/confirm", tag = "auth",
    request_body = TotpConfirmBody,
    responses(
        (status = 200, description = "Set up", body = RecoveryCodesView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The password must be changed first, or given again (`reauthentication_required`)", body = ErrorBody),
        (status = 409, description = "Not started (or started over 10 minutes ago), or already set up", body = ErrorBody),
        (status = 422, description = "Wrong code (`wrong_one_time_code`)", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    SignedInToSecureAccount(signed_in): SignedInToSecureAccount,
    session: Session,
    ApiJson(body): ApiJson<TotpConfirmBody>,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    if signed_in.who.password_change_required {
        return Err(ApiError::password_change_required());
    }
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let confirmed = state
        .auth
        .confirm_totp(signed_in.principal, &body.one_time_code, &signed_in.origin)
        .await?;
    state.principals.forget_person(&signed_in.principal);
    session::password_changed(&session, confirmed.password_version).await?;
    Ok(Json(RecoveryCodesView {
        recovery_codes: confirmed.recovery_codes,
    }))
}

/// New recovery codes (the unused ones stop working). Asks for a recent password.
#[utoipa::path(post, path = "/api/v1/me/second-factor/recovery-codes", tag = "auth",
    responses(
        (status = 200, description = "The new codes, shown this once", body = RecoveryCodesView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The password must be given again (`reauthentication_required`)", body = ErrorBody),
        (status = 409, description = "No authenticator is set up", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn new_recovery_codes(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let recovery_codes = state
        .auth
        .new_recovery_codes(signed_in.principal, &signed_in.origin)
        .await?;
    Ok(Json(RecoveryCodesView { recovery_codes }))
}

/// Removes the person's own authenticator app and recovery codes; their other sessions end.
/// Where a second factor is required, every request then waits until a new one is set up. Asks
/// for a recent password.
#[utoipa::path(delete, path = "/api/v1/me/second-factor", tag = "auth",
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The password must be given again (`reauthentication_required`)", body = ErrorBody),
        (status = 409, description = "No authenticator is set up", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn remove_own(
    State(state): State<AppState>,
    signed_in: SignedIn,
    session: Session,
) -> Result<StatusCode, ApiError> {
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let version = state
        .auth
        .remove_second_factor(signed_in.principal, signed_in.principal, &signed_in.origin)
        .await?;
    state.principals.forget_person(&signed_in.principal);
    session::password_changed(&session, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resets a staff member's second factor (they lost their phone): the facility administrator,
/// with a recent password; never another administrator's (that is the server's
/// `renrakucho admin reset-second-factor`). The member's sessions end; they set up a new one at
/// their next sign-in.
#[utoipa::path(delete, path = "/api/v1/staff/{id}/second-factor", tag = "admin",
    params(("id" = Uuid, Path, description = "The staff member")),
    responses(
        (status = 204, description = "Reset"),
        (status = 403, description = "Facility administrators only, not for another administrator; or the password must be given again (`reauthentication_required`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The member has no authenticator set up", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reset(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let admin = facility_admin(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let member = Uuid::parse_str(&id)
        .map(StaffId::from_uuid)
        .map_err(|_| ApiError::not_found())?;
    let member = Principal::Staff {
        id: member,
        facility: admin.facility,
    };
    state
        .auth
        .remove_second_factor(signed_in.principal, member, &signed_in.origin)
        .await?;
    state.principals.forget_person(&member);
    Ok(StatusCode::NO_CONTENT)
}
