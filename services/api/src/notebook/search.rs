//! Searching a patient's notebook for words.

use axum::extract::{Path, State};
use axum::Json;
use renrakucho_http::access::authorize;
use renrakucho_http::error::{ApiError, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::EntryView;
use renrakucho_registry::may;
use renrakucho_registry::Listed;
use serde::Deserialize;
use utoipa::IntoParams;

use super::EntryListItem;
use crate::patients::patient_id;

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    pub q: String,
}

renrakucho_core::redacted_debug!(SearchQuery);

/// Entries of this patient's notebook containing the words (newest first, at most 100).
#[utoipa::path(get, path = "/api/v1/patients/{id}/entries/search", tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient"), SearchQuery),
    responses((status = 200, body = [EntryListItem]), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<Listed<EntryView>>>, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    Ok(Json(
        renrakucho_notebook::search_notebook(
            &state.db,
            &state.keyring,
            &who,
            &origin,
            &query.q,
            100,
        )
        .await?,
    ))
}
