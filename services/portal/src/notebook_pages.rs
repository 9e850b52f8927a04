//! The portal's notebook pages: a patient's timeline with the form to write (photos and PDFs
//! included), an entry with its replies, readers and history (edit, withdraw), notifications
//! and their settings, support requests. Same authorization and domain calls as the JSON API.

use crate::input::{Form, Query};
use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_api::notebook::TimelineQuery;
use renrakucho_api::patients::patient_id;
use renrakucho_authz::{Action, Authorized};
use renrakucho_core::{
    Category, EntryBody, FacilityId, InvalidValue, PatientId, Priority, Reason, VitalsInput,
};
use renrakucho_http::access::{author, authorize, roles, staff};
use renrakucho_http::error::ApiError;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_notebook::{EntryContent, EntryView, NewEntryInput};
use renrakucho_registry::may;
use renrakucho_registry::Listed;
use serde::Deserialize;
use uuid::Uuid;

use crate::context::{failed, is_admin, is_refusal, local, DoneQuery, PageRequest, PageUser};
use crate::routes::render;

mod cards;
mod entry;
mod notifications;
mod support;
mod write;

use cards::{card, entry_card, EntryCard};
use entry::entry_page;
pub use entry::{edit, entry, withdraw, EditForm, WithdrawForm};
pub use notifications::{notifications, save_notifications, SettingsForm};
pub use support::{
    request_support, support_list, support_request, support_step, SupportForm, SupportStepForm,
};
pub use write::post;

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

/// The patient and the entry named in a path; an ID that does not parse is the same 404 as an
/// unknown one.
fn entry_ids(raw_patient: &str, raw_entry: &str) -> Result<(PatientId, Uuid), ApiError> {
    let patient = patient_id(raw_patient)?;
    let entry = Uuid::parse_str(raw_entry).map_err(|_| ApiError::not_found())?;
    Ok((patient, entry))
}

/// Whether the notebook page shows the timeline (filtered, a page at a time) or what a
/// search found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Timeline,
    Search,
}

async fn notebook_page(
    page: &PageRequest,
    raw_id: &str,
    query: NotebookQuery,
    shown: Shown,
    form: WriteForm,
    error: Option<ApiError>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let who = match page.authorize::<may::NotebookRead>(raw_id).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let patient = who.patient();
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
    let shown = if shown == Shown::Search {
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
    let view = NotebookPage {
        admin: page.is_admin(),
        token: page.authenticity(),
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
    page.respond(render(status, &view))
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
    page: PageRequest,
    Path(id): Path<String>,
    Query(query): Query<NotebookQuery>,
) -> Response {
    notebook_page(
        &page,
        &id,
        query,
        Shown::Timeline,
        WriteForm::default(),
        None,
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn search(
    page: PageRequest,
    Path(id): Path<String>,
    Query(query): Query<NotebookQuery>,
) -> Response {
    notebook_page(&page, &id, query, Shown::Search, WriteForm::default(), None).await
}
