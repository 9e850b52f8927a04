//! Entries of the notebook: the timeline, posting, one entry with its history, edits with
//! optimistic concurrency, withdrawal and read receipts.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use renrakucho_core::{
    Category, EntryBody, FacilityId, InvalidValue, Priority, Reason, VitalsInput,
};
use renrakucho_http::access::{author, authorize};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::{
    EditResult, EntryContent, EntryDetail, EntryView, NewEntryInput, TimelinePage,
};
use renrakucho_registry::may;
use renrakucho_store::notebook::TimelineFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::id_of;
use crate::patients::patient_id;

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
