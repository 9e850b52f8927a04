//! The contact notebook as JSON under `/api/v1`: timeline, entries and their history, replies,
//! edits with optimistic concurrency, withdrawal, read receipts, search, attachments, export,
//! unread counts; and support requests between facilities. Every handler asks the authorizer
//! first; row-level security applies underneath.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use renrakucho_core::{
    Category, EntryBody, FacilityId, InvalidValue, Priority, Reason, SupportKind, VitalsInput,
};
use renrakucho_http::access::{author, authorize, staff};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::{
    EditResult, EntryContent, EntryDetail, EntryView, NewEntryInput, NewSupportRequest,
    SupportDetail, SupportLine, TimelinePage, UnreadLine, Uploaded,
};
use renrakucho_registry::Listed;
use renrakucho_registry::{may, Authorized};
use renrakucho_store::notebook::TimelineFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::patients::{download, patient_id, too_large};

fn id_of(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

/// What an entry says, as sent.
#[derive(Deserialize, ToSchema)]
pub struct ContentBody {
    /// instruction, treatment, support, complaint, vitals, medication, notice, other
    #[schema(value_type = Category)]
    pub category: String,
    /// urgent (至急), reply_requested (要返信), info (参考)
    #[serde(default = "info")]
    #[schema(value_type = Priority, default = "info")]
    pub priority: String,
    pub body: String,
    /// Each measurement with its unit: `{"temperature": {"value": 36.8, "unit": "℃"}, …}`
    /// (temperature ℃, systolic/diastolic mmHg, pulse bpm, spo2 %, weight kg).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub vitals: Option<serde_json::Value>,
    /// Care-team facilities to call to attention.
    #[serde(default)]
    pub mentions: Vec<Uuid>,
}

renrakucho_core::redacted_debug!(ContentBody { mentions });

fn info() -> String {
    "info".into()
}

impl ContentBody {
    /// The content, checked (categories, priorities, text, vitals with units and ranges).
    pub fn parse(&self) -> Result<EntryContent, InvalidValue> {
        let category: Category = self.category.parse().map_err(|_| {
            InvalidValue::new(
                "category",
                format!(
                    "「{}」は記録の種類として使えません / unknown category",
                    self.category
                ),
            )
        })?;
        let priority: Priority = self.priority.parse().map_err(|_| {
            InvalidValue::new(
                "priority",
                "重要度は至急・要返信・参考のいずれかです / unknown priority",
            )
        })?;
        let vitals = match &self.vitals {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let input: VitalsInput<'_> = VitalsInput::deserialize(v).map_err(|_| {
                    InvalidValue::new(
                        "vitals",
                        "バイタルは値と単位の組で送ってください（例: {\"temperature\": {\"value\": 36.8, \"unit\": \"℃\"}}） / each vital sign is a value with its unit",
                    )
                })?;
                Some(input.parse()?)
            }
        };
        Ok(EntryContent {
            category,
            priority,
            body: EntryBody::parse(&self.body)?,
            vitals,
            mentions: self
                .mentions
                .iter()
                .copied()
                .map(FacilityId::from_uuid)
                .collect(),
        })
    }
}

/// A new entry or reply.
#[derive(Deserialize, ToSchema)]
pub struct EntryBodyIn {
    #[serde(flatten)]
    pub content: ContentBody,
    /// The entry this answers (same patient).
    #[serde(default)]
    pub reply_to: Option<Uuid>,
    /// Files uploaded before (`POST …/attachments`), to attach.
    #[serde(default)]
    pub attachments: Vec<Uuid>,
}

renrakucho_core::redacted_debug!(EntryBodyIn {
    content,
    reply_to,
    attachments
});

/// An edit: the version it starts from, and the new content.
#[derive(Deserialize, ToSchema)]
pub struct EditBody {
    pub expected_version: i32,
    #[serde(flatten)]
    pub content: ContentBody,
}

renrakucho_core::redacted_debug!(EditBody {
    expected_version,
    content
});

#[derive(Deserialize, ToSchema)]
pub struct WithdrawBody {
    pub reason: String,
}

renrakucho_core::redacted_debug!(WithdrawBody);

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadBody {
    pub entries: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Marked {
    pub marked: u64,
}

/// An entry of a listing (timeline, search, replies, a support request's entries): the entry,
/// or `UnreadableItem` when a value of it fails its integrity check (ADR 0017).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EntryListItem {
    Entry(Box<EntryView>),
    Unreadable(crate::patients::UnreadableSchema),
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TimelineQuery {
    /// Comma-separated categories.
    #[serde(default)]
    pub category: Option<String>,
    /// Only entries of this facility.
    #[serde(default)]
    pub facility: Option<Uuid>,
    /// Only urgent entries.
    #[serde(default)]
    pub urgent: Option<bool>,
    /// From this date (YYYY-MM-DD, Japan time), inclusive.
    #[serde(default)]
    pub from: Option<String>,
    /// Until this date (YYYY-MM-DD, Japan time), inclusive.
    #[serde(default)]
    pub until: Option<String>,
    /// The `next` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// 1–100, default 50.
    #[serde(default)]
    pub limit: Option<i64>,
}

fn day(raw: &str, field: &'static str) -> Result<time::Date, InvalidValue> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw.trim(), format).map_err(|_| {
        InvalidValue::new(
            field,
            "日付は YYYY-MM-DD で指定してください / dates are YYYY-MM-DD",
        )
    })
}

impl TimelineQuery {
    /// The filter and the cursor, checked.
    pub fn parse(
        &self,
    ) -> Result<(TimelineFilter, Option<renrakucho_store::notebook::Cursor>), InvalidValue> {
        let jst = time::macros::offset!(+9);
        let mut categories = Vec::new();
        for c in self
            .category
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let parsed: Category = c.parse().map_err(|_| {
                InvalidValue::new(
                    "category",
                    format!("「{c}」は記録の種類として使えません / unknown category"),
                )
            })?;
            categories.push(parsed.as_str().to_string());
        }
        let from = match self.from.as_deref().filter(|s| !s.is_empty()) {
            Some(d) => Some(day(d, "from")?.midnight().assume_offset(jst)),
            None => None,
        };
        let until = match self.until.as_deref().filter(|s| !s.is_empty()) {
            Some(d) => Some(
                (day(d, "until")? + time::Duration::days(1))
                    .midnight()
                    .assume_offset(jst),
            ),
            None => None,
        };
        if let (Some(f), Some(u)) = (from, until) {
            if f >= u {
                return Err(InvalidValue::new(
                    "until",
                    "終了日は開始日以降にしてください / the end date is before the start",
                ));
            }
        }
        let cursor = match self.cursor.as_deref().filter(|s| !s.is_empty()) {
            Some(c) => Some(renrakucho_notebook::decode_cursor(c)?),
            None => None,
        };
        Ok((
            TimelineFilter {
                categories,
                facility: self.facility.map(FacilityId::from_uuid),
                urgent_only: self.urgent.unwrap_or(false),
                from,
                until,
            },
            cursor,
        ))
    }
}

/// A page of the patient's timeline, newest first, withdrawn entries left out.
#[utoipa::path(get, path = "/api/v1/patients/{id}/entries", tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient"), TimelineQuery),
    responses((status = 200, description = "`{entries: [EntryListItem], next: cursor?}`; an entry that fails its integrity check is `{id, unreadable: true}` (UnreadableItem)",
               content_type = "application/json"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn timeline(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<TimelineQuery>,
) -> Result<Json<TimelinePage>, ApiError> {
    let patient = patient_id(&id)?;
    let who = authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    let (filter, cursor) = query.parse()?;
    let page = renrakucho_notebook::timeline(
        &state.db,
        &state.keyring,
        &who,
        &origin,
        &filter,
        cursor,
        query.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(page))
}

/// Posts an entry or a reply.
#[utoipa::path(post, path = "/api/v1/patients/{id}/entries", tag = "notebook",
    request_body = EntryBodyIn,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 201, body = EntryView), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 409, description = "The entry replied to is withdrawn, or a file is attached already", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn post(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EntryBodyIn>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let patient = patient_id(&id)?;
    let who = author::<may::NotebookWrite>(&state, &signed_in, patient).await?;
    let input = NewEntryInput {
        content: body.content.parse()?,
        reply_to: body.reply_to,
        attachments: body.attachments,
    };
    let entry =
        renrakucho_notebook::post_entry(&state.db, &state.keyring, &who, &origin, input).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// One entry with every version, its replies and who read it.
#[utoipa::path(get, path = "/api/v1/patients/{id}/entries/{entry}", tag = "notebook",
    params(("id" = Uuid, Path, description = "The patient"), ("entry" = Uuid, Path, description = "The entry")),
    responses((status = 200, description = "`{entry, versions, replies, read_by}`; a version or reply that fails its integrity check is `{id, unreadable: true}` (UnreadableItem)",
               content_type = "application/json"),
              (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The entry itself is unreadable (code `unreadable`, names the record)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, entry)): Path<(String, String)>,
) -> Result<Json<EntryDetail>, ApiError> {
    let patient = patient_id(&id)?;
    let entry = id_of(&entry)?;
    let who = authorize::<may::NotebookRead>(&state, &signed_in, patient).await?;
    Ok(Json(
        renrakucho_notebook::entry_detail(&state.db, &state.keyring, &who, &origin, entry).await?,
    ))
}

/// The answer to a stale edit: nothing was changed, here is the current entry.
#[derive(Debug, Serialize)]
struct StaleEdit {
    error: renrakucho_http::error::ErrorDetail,
    current: EntryView,
}

/// Saves an edit as the next version. If someone saved another version since
/// `expected_version`, nothing is changed and the answer is 409 with the current entry.
#[utoipa::path(put, path = "/api/v1/patients/{id}/entries/{entry}", tag = "notebook",
    request_body = EditBody,
    params(("id" = Uuid, Path, description = "The patient"), ("entry" = Uuid, Path, description = "The entry")),
    responses((status = 200, body = EntryView),
              (status = 409, description = "A newer version exists (code `stale_version`): the body also carries `current`, the entry as it is now; or the entry is withdrawn", body = ErrorBody),
              (status = 403, description = "Someone else's entry, or a role without the right", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn edit(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path((id, entry)): Path<(String, String)>,
    ApiJson(body): ApiJson<EditBody>,
) -> Result<Response, ApiError> {
    let patient = patient_id(&id)?;
    let entry = id_of(&entry)?;
    let who = author::<may::NotebookWrite>(&state, &signed_in, patient).await?;
    let content = body.content.parse()?;
    match renrakucho_notebook::edit_entry(
        &state.db,
        &state.keyring,
        &who,
        &origin,
        entry,
        body.expected_version,
        content,
    )
    .await?
    {
        EditResult::Saved(view) => Ok(Json(*view).into_response()),
        EditResult::Stale(current) => {
            let request_id = headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = StaleEdit {
                error: renrakucho_http::error::ErrorDetail {
                    code: "stale_version".into(),
                    message: format!(
                        "この記録は他の人が先に修正しました（現在の版: {}）。内容を確認してからもう一度修正してください / someone saved version {} first: check it and edit again",
                        current.version, current.version
                    ),
                    request_id,
                    field: Some("expected_version".into()),
                },
                current: *current,
            };
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
    }
}

/// Withdraws an entry with a reason: hidden from the timeline, kept in its history.
#[utoipa::path(post, path = "/api/v1/patients/{id}/entries/{entry}/withdraw", tag = "notebook",
    request_body = WithdrawBody,
    params(("id" = Uuid, Path, description = "The patient"), ("entry" = Uuid, Path, description = "The entry")),
    responses((status = 204, description = "Withdrawn"),
              (status = 403, description = "Someone else's entry, or a role without the right", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Withdrawn already", body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn withdraw(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, entry)): Path<(String, String)>,
    ApiJson(body): ApiJson<WithdrawBody>,
) -> Result<StatusCode, ApiError> {
    let patient = patient_id(&id)?;
    let entry = id_of(&entry)?;
    let who = author::<may::NotebookWrite>(&state, &signed_in, patient).await?;
    let reason = Reason::parse(&body.reason)?;
    renrakucho_notebook::withdraw_entry(&state.db, &state.keyring, &who, &origin, entry, reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks entries as read by the signed-in person.
#[utoipa::path(post, path = "/api/v1/patients/{id}/entries/read", tag = "notebook",
    request_body = ReadBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = Marked), (status = 404, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 422, description = "More than 500 at a time, or an entry named is not in this patient's notebook", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn mark_read(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReadBody>,
) -> Result<Json<Marked>, ApiError> {
    let patient = patient_id(&id)?;
    let who = author::<may::NotebookRead>(&state, &signed_in, patient).await?;
    if body.entries.len() > 500 {
        return Err(
            InvalidValue::new("entries", "一度に500件までです / at most 500 at a time").into(),
        );
    }
    // The patient was found above: "not found" now means an entry named is not one of this
    // notebook's (unknown, or another patient's), a fault of the body rather than the path.
    let marked = renrakucho_notebook::mark_read(&state.db, &who, &signed_in.origin, &body.entries)
        .await
        .map_err(|e| match e {
            renrakucho_registry::CareError::NotFound => ApiError::from(InvalidValue::new(
                "entries",
                "この患者の記録帳にない記録が含まれています / an entry named is not in this patient's notebook",
            )),
            e => e.into(),
        })?;
    Ok(Json(Marked { marked }))
}

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
        &name,
        body.to_vec(),
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

/// The signed-in person's unread entries per patient, urgent first.
#[utoipa::path(get, path = "/api/v1/unread", tag = "notebook",
    responses((status = 200, description = "`[{patient, urgent, reply_requested, total, newest}]`",
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
