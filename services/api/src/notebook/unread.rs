//! What is new for the signed-in person: unread entries per patient, notifications, their
//! settings and per-patient muting.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{InvalidValue, Priority};
use renrakucho_http::access::{authorize, staff};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::UnreadLine;
use renrakucho_registry::may;
use serde::Deserialize;
use utoipa::ToSchema;

/// The signed-in person's unread entries per patient, urgent first: entries of the last 30
/// days (older ones are history, not news).
#[utoipa::path(get, path = "/api/v1/unread", tag = "notebook",
    responses((status = 200, description = "`[{patient, urgent, reply_requested, total, newest}]`: entries written in the last 30 days that the person has not read",
               content_type = "application/json"), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unread(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<UnreadLine>>, ApiError> {
    // A role without `notebook.read` (a clerk) is refused, as the live stream refuses it.
    let who = renrakucho_http::access::permit::<may::NotebookRead>(&state, &signed_in).await?;
    let lines = renrakucho_notebook::unread(&state.db, &who).await?;
    Ok(Json(
        renrakucho_http::access::notebook_items(&state, &signed_in, lines, |l| Some(l.patient))
            .await,
    ))
}

/// The signed-in person's notifications over the last `days` (default 7): replies to their
/// entries, mentions of their facility, entries on shared patients at their level, invitations
/// and support requests. IDs and kinds only.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    params(("days" = Option<i64>, Query, description = "1–30, default 7")),
    responses((status = 200, description = "`[{kind, patient, entry, request, priority, from, at, read}]`",
               content_type = "application/json"),
              (status = 422, description = "`days` is not 1–30", body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn notifications(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Vec<renrakucho_notebook::Notification>>, ApiError> {
    let who = staff(&signed_in)?;
    let days = query
        .get("days")
        .map(|d| {
            d.parse::<i64>()
                .map_err(|_| InvalidValue::new("days", "日数は1〜30です / days must be 1 to 30"))
        })
        .transpose()?
        .unwrap_or(7);
    let feed = renrakucho_notebook::feed(&state.db, who, &origin, days).await?;
    Ok(Json(
        renrakucho_http::access::notebook_items(
            &state,
            &signed_in,
            feed,
            renrakucho_http::access::tells_the_notebook,
        )
        .await,
    ))
}

/// Notification preferences as sent.
#[derive(Deserialize, ToSchema)]
pub struct PreferencesBody {
    #[serde(default)]
    pub email: Option<String>,
    /// urgent, reply_requested or info: live notifications from this level up.
    #[schema(value_type = Priority)]
    pub live_level: String,
    /// Quiet hours, Japan time (0–23; equal: none). Urgent ones come through.
    #[serde(default)]
    pub quiet_start: i64,
    #[serde(default)]
    pub quiet_end: i64,
    #[serde(default)]
    pub digest_enabled: bool,
    #[serde(default = "seven")]
    pub digest_hour: i64,
}

renrakucho_core::redacted_debug!(PreferencesBody {
    live_level,
    quiet_start,
    quiet_end,
    digest_enabled,
    digest_hour
});

use crate::patients::patient_id;

fn seven() -> i64 {
    7
}

/// The signed-in person's notification preferences.
#[utoipa::path(get, path = "/api/v1/notifications/settings", tag = "notifications",
    responses((status = 200, description = "`{email, live_level, quiet_start, quiet_end, digest_enabled, digest_hour, muted}`",
               content_type = "application/json"), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn preferences(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<renrakucho_notebook::Preferences>, ApiError> {
    let who = staff(&signed_in)?;
    Ok(Json(
        renrakucho_notebook::preferences_of(&state.db, who).await?,
    ))
}

/// Saves the signed-in person's notification preferences.
#[utoipa::path(put, path = "/api/v1/notifications/settings", tag = "notifications",
    request_body = PreferencesBody,
    responses((status = 204, description = "Saved"), (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn save_preferences(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<PreferencesBody>,
) -> Result<StatusCode, ApiError> {
    let who = staff(&signed_in)?;
    let prefs = renrakucho_notebook::preferences(
        body.email.as_deref(),
        &body.live_level,
        body.quiet_start,
        body.quiet_end,
        body.digest_enabled,
        body.digest_hour,
    )?;
    renrakucho_notebook::save_preferences(&state.db, who, &origin, &prefs).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MuteBody {
    pub muted: bool,
}

/// Mutes (or unmutes) a patient's notifications for the signed-in person; urgent entries still
/// come through.
#[utoipa::path(put, path = "/api/v1/patients/{id}/mute", tag = "notifications",
    request_body = MuteBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Saved"), (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn mute(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MuteBody>,
) -> Result<StatusCode, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    renrakucho_notebook::set_muted(&state.db, &who, &origin, body.muted).await?;
    Ok(StatusCode::NO_CONTENT)
}
