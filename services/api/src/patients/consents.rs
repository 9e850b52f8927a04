//! Consent to sharing: recording it (with the signed form's scan), listing, the scan, withdrawal.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::Engine;
use renrakucho_core::InvalidValue;
use renrakucho_http::access::authorize;
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::{ConsentForm, ConsentScope, Listed, NewScan, Signer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{download, patient_id, today, too_large, UnreadableSchema};

/// A consent of the list: the consent, or the unreadable marker.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConsentListItem {
    Consent(Box<ConsentView>),
    Unreadable(UnreadableSchema),
}

/// Who signed a consent form.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignerBody {
    Patient,
    Family { name: String, relation: String },
}

renrakucho_core::redacted_debug!(SignerBody);

/// A signed consent form.
#[derive(Deserialize, ToSchema)]
pub struct ConsentBody {
    pub signer: SignerBody,
    /// YYYY-MM-DD
    #[schema(format = Date)]
    pub signed_on: String,
    /// What the patient agreed to share; the network's standard wording when left out.
    #[serde(default)]
    pub scope: Option<String>,
    /// The scan of the signed form (PDF, JPEG or PNG), base64.
    #[serde(default)]
    pub scan_base64: Option<String>,
}

renrakucho_core::redacted_debug!(ConsentBody);

/// Parses a consent form's fields as entered (API or portal).
pub fn consent_form(
    signer: Signer,
    signed_on: &str,
    scope: Option<&str>,
) -> Result<ConsentForm, InvalidValue> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(signed_on.trim(), format).map_err(|_| {
        InvalidValue::new(
            "signed_on",
            "署名日を YYYY-MM-DD で入力してください / enter the signing date as YYYY-MM-DD",
        )
    })?;
    Ok(ConsentForm {
        signer,
        signed_on: ConsentForm::check_date(date, today())?,
        scope: match scope.map(str::trim) {
            None | Some("") => ConsentScope::standard(),
            Some(s) => ConsentScope::parse(s)?,
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
}

/// A consent just recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedConsent {
    pub id: Uuid,
    /// It renewed a withdrawn consent (the care team sees the notebook again).
    pub renewal: bool,
}

/// Records a signed consent (第12条). From then on the care team's members see the notebook.
/// While the consent is withdrawn, this is a renewal: only the registering facility records
/// it, with the scan of the newly signed form, signed no earlier than the withdrawal (ADR 0014).
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents", tag = "consent",
    request_body = ConsentBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 201, body = RecordedConsent), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 409, body = ErrorBody),
              (status = 413, description = "The scan is over the upload limit (code `too_large`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn record_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConsentBody>,
) -> Result<(StatusCode, Json<RecordedConsent>), ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::ConsentRecord>(&state, &signed_in, id).await?;
    let signer = match body.signer {
        SignerBody::Patient => Signer::Patient,
        SignerBody::Family { name, relation } => Signer::family(&name, &relation)?,
    };
    let form = consent_form(signer, &body.signed_on, body.scope.as_deref())?;
    let scan = match body.scan_base64 {
        None => None,
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| {
                    InvalidValue::new(
                        "scan_base64",
                        "同意書のファイルを読み取れません（base64） / the scan is not valid base64",
                    )
                })?;
            if bytes.len() > state.care.upload_limit_bytes {
                return Err(too_large(state.care.upload_limit_bytes));
            }
            Some(NewScan { bytes })
        }
    };
    let recorded = renrakucho_registry::record_consent(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
        form,
        scan,
    )
    .await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok((
        StatusCode::CREATED,
        Json(RecordedConsent {
            id: recorded.id,
            renewal: recorded.renewal,
        }),
    ))
}

/// A consent as shown.
#[derive(Serialize, ToSchema)]
pub struct ConsentView {
    pub id: Uuid,
    /// `patient` or `family`
    pub signer: String,
    pub signer_name: Option<String>,
    pub signer_relation: Option<String>,
    pub signed_on: String,
    pub scope: String,
    pub collected_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub scan_media_type: Option<String>,
    pub scan_size: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    /// Recorded after a withdrawal: a renewal.
    pub renewal: bool,
}

renrakucho_core::redacted_debug!(ConsentView {
    id,
    collected_by,
    renewal
});

impl From<renrakucho_registry::Consent> for ConsentView {
    fn from(c: renrakucho_registry::Consent) -> Self {
        let date = time::macros::format_description!("[year]-[month]-[day]");
        let (signer, signer_name, signer_relation) = match c.signer {
            Signer::Patient => ("patient".to_string(), None, None),
            Signer::Family { name, relation } => ("family".to_string(), Some(name), Some(relation)),
        };
        Self {
            id: c.id,
            signer,
            signer_name,
            signer_relation,
            signed_on: c.signed_on.format(&date).unwrap_or_default(),
            scope: c.scope.as_str().to_string(),
            collected_by: c.collected_by.as_uuid(),
            recorded_at: c.recorded_at,
            scan_media_type: c.scan_media_type,
            scan_size: c.scan_size,
            withdrawn_at: c.withdrawn_at,
            renewal: c.renewal,
        }
    }
}

/// The patient's consents, newest first, withdrawn ones included.
/// A consent whose details fail their integrity check is listed as `UnreadableItem`.
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents", tag = "consent",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = [ConsentListItem]), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn consents(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Vec<Listed<ConsentView>>>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::ConsentRead>(&state, &signed_in, id).await?;
    let found = renrakucho_registry::consents_of(&state.db, &state.keyring, &who, &origin).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|listed| listed.map(Into::into))
            .collect(),
    ))
}

/// The scan of a signed consent form.
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents/{consent}/scan", tag = "consent",
    params(("id" = Uuid, Path, description = "The patient"),
           ("consent" = Uuid, Path, description = "The consent")),
    responses((status = 200, description = "The file (PDF, JPEG or PNG), as an attachment",
               content_type = "application/octet-stream"),
              (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The record is unreadable (code `unreadable`, names the record)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn consent_scan(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, consent)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = patient_id(&id)?;
    let consent = Uuid::parse_str(&consent).map_err(|_| ApiError::not_found())?;
    let who = authorize::<may::ConsentRead>(&state, &signed_in, id).await?;
    let (media_type, bytes) = renrakucho_registry::consent_scan(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
        consent,
    )
    .await?;
    let extension = renrakucho_files::MediaKind::parse(&media_type)
        .map(|k| k.extension())
        .unwrap_or("bin");
    Ok(download(
        &media_type,
        &format!("consent-{consent}.{extension}"),
        bytes,
    ))
}

/// Records the withdrawal of consent: every facility but the registering one loses access at
/// once.
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents/withdraw", tag = "consent",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Withdrawn"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::ConsentWithdraw>(&state, &signed_in, id).await?;
    renrakucho_registry::withdraw_consent(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}
