//! The portal's notebook pages: a patient's timeline with the form to write (photos and PDFs
//! included), an entry with its replies, readers and history (edit, withdraw), notifications
//! and their settings, support requests. Same authorization and domain calls as the JSON API.

use crate::csrf::CsrfToken;
use crate::input::{Form, Query};
use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_api::notebook::TimelineQuery;
use renrakucho_api::patients::patient_id;
use renrakucho_authz::{Action, Authorized};
use renrakucho_core::{
    Category, EntryBody, FacilityId, InvalidValue, PatientId, Priority, Reason, StaffRole,
    VitalsInput,
};
use renrakucho_http::access::{author, authorize, roles, staff};
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::{EntryContent, EntryView, NewEntryInput};
use renrakucho_registry::may;
use renrakucho_registry::Listed;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::pages::PageUser;
use crate::routes::{error_page, render};

mod entry;
mod notifications;
mod support;

use entry::entry_page;
pub use entry::{edit, entry, withdraw, EditForm, WithdrawForm};
pub use notifications::{notifications, save_notifications, SettingsForm};
pub use support::{
    request_support, support_list, support_request, support_step, SupportForm, SupportStepForm,
};

/// What a page says after a form was done (`?done=…`, after the redirect).
#[derive(Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

fn failed(e: impl Into<ApiError>) -> Response {
    let e = e.into();
    error_page(e.status, &e.message)
}

fn local(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(time::macros::offset!(+9))
        .format(&f)
        .unwrap_or_default()
}

fn is_admin(user: &SignedIn) -> bool {
    user.who.role == Some(StaffRole::FacilityAdmin)
}

fn size(bytes: i64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / 1024.0 / 1024.0)
    } else {
        format!("{} KB", (bytes + 1023) / 1024)
    }
}

struct AttachmentCard {
    thumbnail: bool,
    thumbnail_url: String,
    url: String,
    name: String,
    size: String,
}

/// An entry as a card on a page (or the marker of one that cannot be read).
#[derive(Default)]
struct EntryCard {
    /// The ID of an entry that fails its integrity check: shown as unreadable.
    unreadable: Option<String>,
    category: &'static str,
    priority: &'static str,
    priority_class: &'static str,
    urgent: bool,
    read: bool,
    at: String,
    author: String,
    reply_to: Option<String>,
    body: String,
    vitals: Option<String>,
    attachments: Vec<AttachmentCard>,
    link: String,
    edited: bool,
}

fn card(listed: &Listed<EntryView>) -> EntryCard {
    match listed {
        Listed::Readable(e) => entry_card(e),
        Listed::Unreadable(u) => EntryCard {
            unreadable: Some(u.id.to_string()),
            ..EntryCard::default()
        },
    }
}

fn entry_card(e: &EntryView) -> EntryCard {
    let patient = e.patient.as_uuid();
    EntryCard {
        unreadable: None,
        category: e.category.label_ja(),
        priority: e.priority.label_ja(),
        priority_class: match e.priority {
            Priority::Urgent => "urgent",
            Priority::ReplyRequested => "reply",
            Priority::Info => "",
        },
        urgent: e.priority == Priority::Urgent,
        read: e.read,
        at: local(e.created_at),
        author: format!(
            "{}（{}）{}",
            e.author_name,
            e.author_profession
                .parse::<renrakucho_core::Profession>()
                .map(|p| p.label_ja())
                .unwrap_or_default(),
            e.facility_name.clone().unwrap_or_default()
        ),
        reply_to: e
            .reply_to
            .map(|r| format!("/patients/{patient}/entries/{r}")),
        body: e.body.clone(),
        vitals: e.vitals.map(|v| v.summary()),
        attachments: e
            .attachments
            .iter()
            .map(|a| AttachmentCard {
                thumbnail: a.has_thumbnail,
                thumbnail_url: format!("/api/v1/patients/{patient}/attachments/{}/thumbnail", a.id),
                url: format!("/api/v1/patients/{patient}/attachments/{}", a.id),
                name: a.file_name.clone(),
                size: size(a.size),
            })
            .collect(),
        link: format!("/patients/{patient}/entries/{}", e.id),
        edited: e.version > 1,
    }
}

/// What the write form held (kept when it comes back with an error).
#[derive(Default, Clone)]
struct WriteForm {
    category: String,
    priority: String,
    body: String,
    temperature: String,
    systolic: String,
    diastolic: String,
    pulse: String,
    spo2: String,
    weight: String,
}

#[derive(Template)]
#[template(path = "notebook.html")]
struct NotebookPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    patient_id: String,
    patient_name: String,
    may_write: bool,
    form: WriteForm,
    categories: Vec<(&'static str, &'static str)>,
    priorities: Vec<(&'static str, &'static str)>,
    team: Vec<(String, String)>,
    upload_limit_mb: usize,
    filter_category: String,
    filter_urgent: bool,
    filter_from: String,
    filter_until: String,
    query: String,
    entries: Vec<EntryCard>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NotebookQuery {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    urgent: Option<bool>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

fn done_message(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "posted" => "記録しました / Posted",
        "edited" => "修正しました（新しい版として保存） / Saved as a new version",
        "withdrawn" => "取り下げました / Withdrawn",
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
async fn notebook_page(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    user: &SignedIn,
    token: &CsrfToken,
    raw_id: &str,
    query: NotebookQuery,
    search: bool,
    form: WriteForm,
    error: Option<ApiError>,
) -> Response {
    let patient = match patient_id(raw_id) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let who = match authorize::<may::NotebookRead>(state, user, patient).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let person = roles(user);
    let may_write = state
        .authz
        .allowed(&person, who.facility(), patient, Action::NotebookWrite)
        .await
        .unwrap_or(false);
    let name = match patient_name(state, user, origin, patient).await {
        Ok(name) => name,
        Err(e) => return failed(e),
    };
    let shown = if search {
        let q = query.q.clone().unwrap_or_default();
        renrakucho_notebook::search_notebook(&state.db, &state.keyring, &who, origin, &q, 100)
            .await
            .map(|found| (found, None))
            .map_err(ApiError::from)
    } else {
        timeline_page(state, &who, origin, &query).await
    };
    let (entries, next) = match shown {
        Ok(shown) => shown,
        Err(e) => return failed(e),
    };
    mark_shown_read(state, user, &who, &entries).await;
    let team = if may_write {
        mentionable(state, user, &who, origin).await
    } else {
        Vec::new()
    };
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let form = form.with_defaults();
    let page = NotebookPage {
        admin: is_admin(user),
        token: token.authenticity_token().unwrap_or_default(),
        done: done_message(query.done.as_deref()),
        error: error.map(|e| e.message),
        patient_id: patient.as_uuid().to_string(),
        patient_name: name,
        may_write,
        form,
        categories: Category::ALL
            .iter()
            .map(|c| (c.as_str(), c.label_ja()))
            .collect(),
        priorities: Priority::ALL
            .iter()
            .map(|p| (p.as_str(), p.label_ja()))
            .collect(),
        team,
        upload_limit_mb: state.care.upload_limit_bytes / (1024 * 1024),
        filter_category: query.category.clone().unwrap_or_default(),
        filter_urgent: query.urgent.unwrap_or(false),
        filter_from: query.from.clone().unwrap_or_default(),
        filter_until: query.until.clone().unwrap_or_default(),
        query: query.q.clone().unwrap_or_default(),
        entries: entries.iter().map(card).collect(),
        next,
    };
    (token.clone(), render(status, &page)).into_response()
}

/// The patient's name for the heading; a name that fails its integrity check does not hide
/// the notebook (ADR 0017).
async fn patient_name(
    state: &AppState,
    user: &SignedIn,
    origin: &renrakucho_store::audit::Origin,
    patient: PatientId,
) -> Result<String, ApiError> {
    let read = async {
        let reader = authorize::<may::PatientRead>(state, user, patient).await?;
        Ok::<_, ApiError>(
            renrakucho_registry::patient(&state.db, &state.keyring, &reader, origin).await?,
        )
    };
    match read.await {
        Ok(p) => Ok(p.name.as_str().to_string()),
        Err(e) if e.code == "unreadable" => Ok("判読できない氏名 / unreadable name".to_string()),
        Err(e) => Err(e),
    }
}

/// A page of the timeline as filtered, and the link to the next (older) one.
async fn timeline_page(
    state: &AppState,
    who: &Authorized<may::NotebookRead>,
    origin: &renrakucho_store::audit::Origin,
    query: &NotebookQuery,
) -> Result<(Vec<Listed<EntryView>>, Option<String>), ApiError> {
    let api_query = TimelineQuery {
        category: query.category.clone(),
        facility: None,
        urgent: query.urgent,
        from: query.from.clone(),
        until: query.until.clone(),
        cursor: query.cursor.clone(),
        limit: Some(50),
    };
    let (filter, cursor) = api_query.parse()?;
    let page =
        renrakucho_notebook::timeline(&state.db, &state.keyring, who, origin, &filter, cursor, 50)
            .await?;
    let next = page.next.map(|c| {
        let mut link = format!("/patients/{}/notebook?cursor={c}", who.patient().as_uuid());
        if let Some(cat) = &query.category {
            link.push_str(&format!("&category={cat}"));
        }
        if query.urgent == Some(true) {
            link.push_str("&urgent=true");
        }
        for (k, v) in [("from", &query.from), ("until", &query.until)] {
            if let Some(v) = v {
                link.push_str(&format!("&{k}={v}"));
            }
        }
        link
    });
    Ok((page.entries, next))
}

/// Shown is read: the person's read receipts for the entries on the page.
async fn mark_shown_read(
    state: &AppState,
    user: &SignedIn,
    who: &Authorized<may::NotebookRead>,
    entries: &[Listed<EntryView>],
) {
    let me = renrakucho_http::access::as_author(user, who.clone());
    let unread: Vec<Uuid> = entries
        .iter()
        .filter_map(Listed::readable)
        .filter(|e| !e.read)
        .map(|e| e.id)
        .collect();
    if let Err(e) = renrakucho_notebook::mark_read(&state.db, &me, &user.origin, &unread).await {
        tracing::warn!(error = %e, "could not record read receipts");
    }
}

/// The other active facilities of the care team, to mention in a new entry (ID, name).
async fn mentionable(
    state: &AppState,
    user: &SignedIn,
    who: &Authorized<may::NotebookRead>,
    origin: &renrakucho_store::audit::Origin,
) -> Vec<(String, String)> {
    let Some(reader) =
        renrakucho_http::access::check::<may::CareTeamRead>(state, user, who.patient()).await
    else {
        return Vec::new();
    };
    renrakucho_registry::care_team_of(&state.db, &reader, origin)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.status == "active" && m.facility != who.facility())
        .map(|m| (m.facility.as_uuid().to_string(), m.name.unwrap_or_default()))
        .collect()
}

impl WriteForm {
    /// The form as first shown: a treatment note for information.
    fn with_defaults(self) -> Self {
        WriteForm {
            category: if self.category.is_empty() {
                "treatment".into()
            } else {
                self.category
            },
            priority: if self.priority.is_empty() {
                "info".into()
            } else {
                self.priority
            },
            ..self
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn notebook(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<NotebookQuery>,
) -> Response {
    notebook_page(
        &state,
        &origin,
        &user,
        &token,
        &id,
        query,
        false,
        WriteForm::default(),
        None,
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<NotebookQuery>,
) -> Response {
    notebook_page(
        &state,
        &origin,
        &user,
        &token,
        &id,
        query,
        true,
        WriteForm::default(),
        None,
    )
    .await
}

fn measured<'a>(
    raw: &'a str,
    unit: &'a str,
    field: &'static str,
) -> Result<Option<renrakucho_core::notebook::Measured<'a>>, InvalidValue> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let value: f64 = raw
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' => '.',
            c => c,
        })
        .collect::<String>()
        .parse()
        .map_err(|_| InvalidValue::new(field, "数値で入力してください / enter a number"))?;
    Ok(Some(renrakucho_core::notebook::Measured { value, unit }))
}

fn vitals_from(form: &WriteForm) -> Result<Option<renrakucho_core::Vitals>, InvalidValue> {
    let input = VitalsInput {
        temperature: measured(&form.temperature, "℃", "temperature")?,
        systolic: measured(&form.systolic, "mmHg", "systolic")?,
        diastolic: measured(&form.diastolic, "mmHg", "diastolic")?,
        pulse: measured(&form.pulse, "bpm", "pulse")?,
        spo2: measured(&form.spo2, "%", "spo2")?,
        weight: measured(&form.weight, "kg", "weight")?,
    };
    let any = input.temperature.is_some()
        || input.systolic.is_some()
        || input.diastolic.is_some()
        || input.pulse.is_some()
        || input.spo2.is_some()
        || input.weight.is_some();
    if any {
        input.parse().map(Some)
    } else {
        Ok(None)
    }
}

/// Posts an entry (or a reply) from the multipart form, with its files.
#[tracing::instrument(skip_all)]
pub async fn post(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let limit = state.care.upload_limit_bytes;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return failed(renrakucho_api::patients::too_large(limit)),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "files" {
            let file_name = field.file_name().unwrap_or_default().to_string();
            match field.bytes().await {
                Ok(b) if b.len() > limit => {
                    return failed(renrakucho_api::patients::too_large(limit))
                }
                Ok(b) if !b.is_empty() => files.push((file_name, b.to_vec())),
                Ok(_) => {}
                Err(_) => return failed(renrakucho_api::patients::too_large(limit)),
            }
        } else if let Ok(text) = field.text().await {
            fields.push((name, text));
        }
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if let Err(e) = renrakucho_http::input::multipart_fields(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        return failed(e);
    }
    let form = WriteForm {
        category: get("category"),
        priority: get("priority"),
        body: get("body"),
        temperature: get("temperature"),
        systolic: get("systolic"),
        diastolic: get("diastolic"),
        pulse: get("pulse"),
        spo2: get("spo2"),
        weight: get("weight"),
    };
    let reply_to = get("reply_to");
    let result = async {
        let patient = patient_id(&id)?;
        let me = author::<may::NotebookWrite>(&state, &user, patient).await?;
        let who = me.allowed();
        let content = EntryContent {
            category: form.category.parse().map_err(|_| {
                InvalidValue::new("category", "記録の種類を選んでください / choose a category")
            })?,
            priority: form.priority.parse().map_err(|_| {
                InvalidValue::new("priority", "重要度を選んでください / choose a priority")
            })?,
            body: EntryBody::parse(&form.body)?,
            vitals: vitals_from(&form)?,
            mentions: fields
                .iter()
                .filter(|(n, _)| n == "mentions")
                .filter_map(|(_, v)| Uuid::parse_str(v).ok())
                .map(FacilityId::from_uuid)
                .collect(),
        };
        let reply_to = if reply_to.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(&reply_to).map_err(|_| ApiError::not_found())?)
        };
        let mut attachments = Vec::new();
        for (name, bytes) in files {
            let uploaded = renrakucho_notebook::upload_attachment(
                &state.db,
                &state.keyring,
                &state.files,
                who,
                &origin,
                &name,
                bytes,
                limit,
            )
            .await?;
            attachments.push(uploaded.id);
        }
        renrakucho_notebook::post_entry(
            &state.db,
            &state.keyring,
            &me,
            &origin,
            NewEntryInput {
                content,
                reply_to,
                attachments,
            },
        )
        .await?;
        Ok::<_, ApiError>((patient, reply_to))
    }
    .await;
    match result {
        Ok((patient, Some(parent))) => Redirect::to(&format!(
            "/patients/{}/entries/{parent}?done=replied",
            patient.as_uuid()
        ))
        .into_response(),
        Ok((patient, None)) => Redirect::to(&format!(
            "/patients/{}/notebook?done=posted",
            patient.as_uuid()
        ))
        .into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::FORBIDDEN => {
            failed(e)
        }
        Err(e) => {
            let status = e.status;
            let mut page = notebook_page(
                &state,
                &origin,
                &user,
                &token,
                &id,
                NotebookQuery::default(),
                false,
                form,
                Some(e),
            )
            .await;
            if page.status().is_success() {
                *page.status_mut() = status;
            }
            page
        }
    }
}
