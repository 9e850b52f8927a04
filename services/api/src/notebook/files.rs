//! Attachments (upload, download, thumbnails) and the notebook's export as JSON or PDF.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use renrakucho_http::access::authorize;
use renrakucho_http::error::{ApiError, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::Uploaded;
use renrakucho_registry::may;
use utoipa::ToSchema;
use uuid::Uuid;

use super::id_of;
use crate::patients::{download, patient_id, too_large};

/// Uploads a file for an entry (the body is the file itself; its name in `X-File-Name`,
/// percent-encoded). Photos are checked, cleaned of their metadata (location included) and
/// turned upright; PDFs are checked. The file is attached when an entry naming it is posted.
#[utoipa::path(post, path = "/api/v1/patients/{id}/attachments", tag = "notebook",
    request_body(content = FileBytes, content_type = "application/octet-stream",
        description = "The file itself (PDF, JPEG, PNG or HEIC), with its own `Content-Type` or `application/octet-stream`"),
    params(("id" = Uuid, Path, description = "The patient"),
           ("x-file-name" = Option<String>, Header, description = "The file's name, percent-encoded")),
    responses((status = 201, description = "`{id, file_name, media_type, size, has_thumbnail}`",
               content_type = "application/json"),
              (status = 404, body = ErrorBody),
              (status = 413, description = "Over the upload limit (code `too_large`)", body = ErrorBody),
              (status = 415, description = "A form or text body (code `unsupported_media_type`)", body = ErrorBody),
              (status = 422, description = "Not a file of a kind accepted, or one that does not decode", body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::NotebookWrite>(&state, &signed_in, patient).await?;
    // A form or text body is what another site could make a browser send: refused, so that
    // uploads need a type that only this site's scripts or API clients send.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if renrakucho_files::refused_upload_type(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "ファイルは本文にそのまま、Content-Type を付けて送ってください / send the file itself as the body, with its Content-Type",
        ));
    }
    if body.len() > state.care.upload_limit_bytes {
        return Err(too_large(state.care.upload_limit_bytes));
    }
    let name = headers
        .get("x-file-name")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .to_string()
        })
        .unwrap_or_default();
    let uploaded = renrakucho_notebook::upload_attachment(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
        renrakucho_notebook::FileUpload {
            name: &name,
            bytes: body.to_vec(),
        },
        state.care.upload_limit_bytes,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// A file's bytes, as the body of an upload.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

/// `attachment; filename="attachment-<id>.<ext>"; filename*=UTF-8''<name>`
pub fn attachment_disposition(id: Uuid, media_type: &str, name: &str) -> HeaderValue {
    let extension = renrakucho_files::MediaKind::parse(media_type)
        .map(|k| k.extension())
        .unwrap_or("bin");
    let encoded =
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"attachment-{id}.{extension}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

async fn send_file(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    signed_in: &SignedIn,
    id: &str,
    attachment: &str,
    thumbnail: bool,
) -> Result<Response, ApiError> {
    let patient = patient_id(id)?;
    let attachment = id_of(attachment)?;
    // The care team reads the notebook's files; a facility asked for support reads the files
    // its request names (row-level security decides which).
    let who = authorize::<may::AttachmentRead>(state, signed_in, patient).await?;
    let file = renrakucho_notebook::attachment_content(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        origin,
        attachment,
        thumbnail,
    )
    .await?;
    let mut response = download(&file.media_type, "file", file.bytes);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        if thumbnail {
            HeaderValue::from_static("inline")
        } else {
            attachment_disposition(attachment, &file.media_type, &file.file_name)
        },
    );
    Ok(response)
}

/// A file of the notebook, as an attachment (never shown inline, never sniffed).
#[utoipa::path(get, path = "/api/v1/patients/{id}/attachments/{attachment}", tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient"), ("attachment" = Uuid, Path, description = "The file")),
    responses((status = 200, description = "The file, as an attachment",
               content(("application/pdf"), ("image/jpeg"), ("image/png"), ("image/heic"))),
              (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The file is unreadable (code `unreadable`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn attachment(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, attachment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    send_file(&state, &origin, &signed_in, &id, &attachment, false).await
}

/// A photo's thumbnail (JPEG, longest side 320 px).
#[utoipa::path(get, path = "/api/v1/patients/{id}/attachments/{attachment}/thumbnail",
    tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient"), ("attachment" = Uuid, Path, description = "The file")),
    responses((status = 200, description = "The thumbnail", content_type = "image/jpeg"),
              (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The file is unreadable (code `unreadable`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn thumbnail(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, attachment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    send_file(&state, &origin, &signed_in, &id, &attachment, true).await
}

/// The whole notebook as JSON, every version included: a reference copy for the facility's
/// own records (第15条).
#[utoipa::path(get, path = "/api/v1/patients/{id}/export.json", tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, description = "The notebook as JSON, as an attachment",
               content_type = "application/json"),
              (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "A value is unreadable: no copy is made; the message names every unreadable item", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_json(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    let copy =
        renrakucho_notebook::export_notebook(&state.db, &state.keyring, &who, &origin, "json")
            .await?;
    let bytes = serde_json::to_vec_pretty(&copy).map_err(|_| ApiError::internal())?;
    Ok(download(
        "application/json",
        &format!("notebook-{}.json", patient.as_uuid()),
        bytes,
    ))
}

/// The notebook as a PDF (Japanese font from the machine, `RENRAKUCHO_PDF_FONT` to choose).
#[utoipa::path(get, path = "/api/v1/patients/{id}/export.pdf", tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, description = "The notebook as a PDF, as an attachment",
               content_type = "application/pdf"),
              (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "A value is unreadable: no copy is made; the message names every unreadable item", body = ErrorBody),
              (status = 503, description = "No Japanese font installed, or the database is unavailable", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_pdf(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    let font = crate::notebook_pdf::font().map_err(|message| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_pdf_font", message)
    })?;
    let copy =
        renrakucho_notebook::export_notebook(&state.db, &state.keyring, &who, &origin, "pdf")
            .await?;
    let by = format!(
        "{} {}",
        signed_in
            .who
            .facility
            .as_ref()
            .map(|f| f.name.as_str())
            .unwrap_or_default(),
        signed_in.who.display_name
    );
    let bytes = crate::notebook_pdf::pdf(copy, by, font).await?;
    Ok(download(
        "application/pdf",
        &format!("notebook-{}.pdf", patient.as_uuid()),
        bytes,
    ))
}
