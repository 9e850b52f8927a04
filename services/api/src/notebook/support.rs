//! Support requests between facilities: sending, listing, reading and answering them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{InvalidValue, SupportKind};
use renrakucho_http::access::{author, authorize, staff};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::{NewSupportRequest, SupportDetail, SupportLine};
use renrakucho_registry::{may, Authorized};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::id_of;
use crate::patients::patient_id;

/// A support request to send.
#[derive(Deserialize, ToSchema)]
pub struct SupportBody {
    /// The asked facility's code.
    pub to: String,
    /// remote_diagnosis, second_opinion, information
    #[schema(value_type = SupportKind)]
    pub kind: String,
    pub question: String,
    /// What the asked facility learns about the patient (you choose what to say).
    pub summary: String,
    #[serde(default)]
    pub entries: Vec<Uuid>,
    #[serde(default)]
    pub attachments: Vec<Uuid>,
}

renrakucho_core::redacted_debug!(SupportBody {
    to,
    kind,
    entries,
    attachments
});

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedId {
    pub id: Uuid,
}

/// Asks another facility for a remote diagnosis, a second opinion or information, sending the
/// chosen entries and files (第13条). Outside the care team, only with consent on file.
#[utoipa::path(post, path = "/api/v1/patients/{id}/support-requests", tag = "support",
    request_body = SupportBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 201, body = CreatedId), (status = 404, body = ErrorBody),
              (status = 409, description = "No consent on file or no right to ask, or the facility cannot be asked", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn send_support(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SupportBody>,
) -> Result<(StatusCode, Json<CreatedId>), ApiError> {
    let patient = patient_id(&id)?;
    authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    authorize::<may::SupportRequest>(&state, &signed_in, patient)
        .await
        .map(drop)
        .map_err(|e| {
            if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND {
                ApiError::conflict(
                    "同意書が登録されていないか、依頼する権限がありません（第12条・第13条） / without consent on file, or without the right, nothing can be sent to another facility",
                )
            } else {
                e
            }
        })?;
    let who = author::<may::SupportRequest>(&state, &signed_in, patient).await?;
    let kind: SupportKind = body.kind.parse().map_err(|_| {
        InvalidValue::new(
            "kind",
            "依頼の種類は遠隔診断・セカンドオピニオン・情報提供のいずれかです / unknown kind",
        )
    })?;
    let id = renrakucho_notebook::send_support_request(
        &state.db,
        &state.keyring,
        &who,
        &origin,
        NewSupportRequest {
            to_code: body.to,
            kind,
            question: body.question,
            summary: body.summary,
            entries: body.entries,
            attachments: body.attachments,
        },
    )
    .await?;
    renrakucho_http::access::changed(&state, patient).await;
    Ok((StatusCode::CREATED, Json(CreatedId { id })))
}

/// Requests the facility sent or received, newest first.
#[utoipa::path(get, path = "/api/v1/support-requests", tag = "support",
    responses((status = 200, description = "`[{id, patient, from, to, kind, status, sent, …}]`",
               content_type = "application/json"), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn support_list(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<SupportLine>>, ApiError> {
    let who = staff(&signed_in)?;
    Ok(Json(
        renrakucho_notebook::support_requests(&state.db, who).await?,
    ))
}

/// The check before acting on a support request: the asked facility's person must be allowed
/// to answer; the asking facility's must still read the patient's notebook.
pub async fn support_actor(
    state: &AppState,
    signed_in: &SignedIn,
    id: Uuid,
) -> Result<(SupportSide, SupportLine), ApiError> {
    let who = staff(signed_in)?;
    let line = renrakucho_notebook::support_line(&state.db, who, id).await?;
    // The asking side no longer needs the right to ask (consent may have gone since): it may
    // still read and close its request through its care-team reading right.
    let side = if line.sent {
        SupportSide::Asking(authorize(state, signed_in, line.patient).await?)
    } else {
        SupportSide::Asked(authorize(state, signed_in, line.patient).await?)
    };
    Ok((side, line))
}

/// The side of a support request a person acts on, with the capability that side needs.
pub enum SupportSide {
    /// The asking facility: reads and closes its request through the care team's reading.
    Asking(Authorized<may::NotebookRead>),
    /// The asked facility: accepts, declines, answers.
    Asked(Authorized<may::SupportAnswer>),
}

impl SupportSide {
    /// The request itself, decrypted and audited.
    pub async fn detail(
        &self,
        state: &AppState,
        origin: &renrakucho_store::audit::Origin,
        id: Uuid,
    ) -> Result<SupportDetail, ApiError> {
        let (db, keyring) = (&state.db, &state.keyring);
        Ok(match self {
            SupportSide::Asking(who) => {
                renrakucho_notebook::support_request(db, keyring, who, origin, id).await?
            }
            SupportSide::Asked(who) => {
                renrakucho_notebook::support_request(db, keyring, who, origin, id).await?
            }
        })
    }

    /// A step on the request: the asked side accepts, declines or answers; the asking side
    /// closes. Any other step, or a step of the other side, is not found.
    pub async fn step(
        self,
        state: &AppState,
        signed_in: &SignedIn,
        origin: &renrakucho_store::audit::Origin,
        id: Uuid,
        step: &str,
        answer: String,
    ) -> Result<(), ApiError> {
        match (step, self) {
            ("accept" | "decline", SupportSide::Asked(who)) => {
                let accept = step == "accept";
                renrakucho_notebook::respond_to_support_request(&state.db, &who, origin, id, accept)
                    .await?
            }
            ("answer", SupportSide::Asked(who)) => {
                let author = renrakucho_http::access::as_author(signed_in, who);
                renrakucho_notebook::answer_support_request(
                    &state.db,
                    &state.keyring,
                    &author,
                    origin,
                    id,
                    &answer,
                )
                .await?
            }
            ("close", SupportSide::Asking(who)) => {
                renrakucho_notebook::close_support_request(&state.db, &who, origin, id).await?
            }
            _ => return Err(ApiError::not_found()),
        }
        Ok(())
    }
}

/// One request: question, summary, answer, and the entries it shares.
#[utoipa::path(get, path = "/api/v1/support-requests/{id}", tag = "support",
    params(("id" = Uuid, Path, description = "The support request")),
    responses((status = 200, description = "`{line, question, summary, answer, entries: [EntryListItem]}`",
               content_type = "application/json"),
              (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The request is unreadable (code `unreadable`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn support_detail(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<SupportDetail>, ApiError> {
    let id = id_of(&id)?;
    let (side, _) = support_actor(&state, &signed_in, id).await?;
    Ok(Json(side.detail(&state, &origin, id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct AnswerBody {
    pub answer: String,
}

renrakucho_core::redacted_debug!(AnswerBody);

/// Accepts, declines, answers (the asked facility) or closes (the asking facility) a request.
#[utoipa::path(post, path = "/api/v1/support-requests/{id}/{step}", tag = "support",
    params(("id" = Uuid, Path, description = "The support request"),
           ("step" = String, Path, description = "accept, decline, answer (body `{answer}`) or close")),
    request_body(content = Option<AnswerBody>, content_type = "application/json",
        description = "For `answer` only: the answer"),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 409, description = "Not in a state for this step", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn support_step(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, step)): Path<(String, String)>,
    body: Option<ApiJson<AnswerBody>>,
) -> Result<StatusCode, ApiError> {
    let id = id_of(&id)?;
    let (side, line) = support_actor(&state, &signed_in, id).await?;
    let answer = body.map(|b| b.0.answer).unwrap_or_default();
    side.step(&state, &signed_in, &origin, id, &step, answer)
        .await?;
    renrakucho_http::access::changed(&state, line.patient).await;
    Ok(StatusCode::NO_CONTENT)
}
