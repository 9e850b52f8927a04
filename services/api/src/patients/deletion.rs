//! A patient's deletion request (第12条2–3), carried out at once.

use axum::extract::{Path, State};
use axum::Json;
use renrakucho_core::InvalidValue;
use renrakucho_http::access::authorize;
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::patient_id;

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeletionBody {
    /// Must be true: the deletion cannot be undone.
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    /// The deletion request's ID (kept, with counts only).
    pub request: Uuid,
    /// What was removed, by kind.
    #[schema(value_type = Object)]
    pub erased: serde_json::Value,
}

/// Records the patient's deletion request (第12条2–3) and carries it out at once: everything
/// stored about the patient is removed in every facility and the patient's key destroyed.
#[utoipa::path(post, path = "/api/v1/patients/{id}/deletion", tag = "patients",
    request_body = DeletionBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = ErasureView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator), or the password was last given more than 10 minutes ago (`reauthentication_required`: `POST /api/v1/me/reauthenticate`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn request_deletion(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeletionBody>,
) -> Result<Json<ErasureView>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::DeletionRecord>(&state, &signed_in, id).await?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    if !body.confirm {
        return Err(InvalidValue::new(
            "confirm",
            "削除は取り消せません。確認してください / deletion cannot be undone: confirm it",
        )
        .into());
    }
    let erasure = renrakucho_registry::request_deletion(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
    )
    .await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(Json(ErasureView {
        request: erasure.request,
        erased: erasure.erased,
    }))
}
