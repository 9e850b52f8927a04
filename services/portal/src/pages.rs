//! The portal's pages for patients, consent, care teams, invitations, emergency access and the
//! audit log. Server-rendered, Japanese first. Each form carries a CSRF token, checked before
//! any handler runs (`csrf::require_token`); each handler asks the authorizer exactly as the
//! JSON API does (`access::authorize`) and calls the same domain functions; errors are shown
//! on the page in words a person understands.

use crate::input::{Form, Query};
use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_api::emergency::EmergencyBody;
use renrakucho_api::patients::{consent_form, download, patient_id, PatientBody, PatientView};
use renrakucho_authz::{Action, Authorized, Role};
use renrakucho_core::{CareLevel, InvalidValue, Sex};
use renrakucho_http::access::{authorize, permit, roles, staff};
use renrakucho_http::error::ApiError;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::{ConsentScope, Listed, NewScan, Signer, TeamMember};
use renrakucho_store::facilities::DirectoryEntry;
use serde::Deserialize;

use crate::context::{
    failed, is_admin, is_refusal, local, today, DoneQuery, PageRequest, PageUser,
};
use crate::routes::render;

mod audit;
mod emergency;
mod invitations;
mod patient;
mod patient_forms;

pub use audit::audit;
pub use emergency::{close_or_review_emergency, emergency, open_emergency, EmergencyForm};
pub use invitations::{answer_invitation, invitations};
pub use patient::show_patient;
pub use patient_forms::{
    consent_scan, invite, leave, record_consent, reissue_card, remove_member, request_deletion,
    withdraw_consent, ConfirmForm, InviteForm,
};

// ---------------------------------------------------------------------------------------------
// Patients: list, register, correct.

#[derive(Template)]
#[template(path = "patients.html")]
struct PatientsPage {
    admin: bool,
    query: String,
    patients: Vec<PatientListLine>,
    may_register: bool,
    /// How far back unread counts go ([`renrakucho_notebook::UNREAD_WINDOW`]); none for a
    /// role that gets no counts.
    unread_days: Option<i64>,
}

/// A patient in the list, with the person's unread entries (urgent ones apart).
struct PatientListLine {
    id: String,
    /// The name fails its integrity check: shown as unreadable, with the ID.
    unreadable: bool,
    name: String,
    kana: String,
    unread: i64,
    urgent: i64,
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[tracing::instrument(skip_all)]
pub async fn patients(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Query(query): Query<SearchQuery>,
) -> Response {
    let who = match permit::<may::PatientRead>(&state, &user).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let found = match renrakucho_registry::find_patients(
        &state.db,
        &state.keyring,
        &who,
        &user.origin,
        &query.q,
        100,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let may_register = state
        .authz
        .roles_may(&roles(&user), Action::PatientRegister)
        .await;
    // Unread counts tell what the notebook holds: only for a role that reads it.
    let (unread, unread_days) = match permit::<may::NotebookRead>(&state, &user).await {
        Ok(reader) => (
            // The list still serves its purpose without them; the failure is logged.
            renrakucho_notebook::unread(&state.db, &reader)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "unread counts for the patient list failed");
                    Vec::new()
                }),
            Some(renrakucho_notebook::UNREAD_WINDOW.whole_days()),
        ),
        Err(_) => (Vec::new(), None),
    };
    let unread =
        renrakucho_http::access::notebook_items(&state, &user, unread, |l| Some(l.patient)).await;
    let mut patients: Vec<PatientListLine> = found
        .into_iter()
        .map(|listed| {
            let (id, names) = match listed {
                Listed::Readable(p) => (
                    p.id.as_uuid(),
                    Some((p.name.as_str().to_string(), p.kana.as_str().to_string())),
                ),
                Listed::Unreadable(u) => (u.id, None),
            };
            let u = unread.iter().find(|u| u.patient.as_uuid() == id);
            let (name, kana) = names.clone().unwrap_or_default();
            PatientListLine {
                id: id.to_string(),
                unreadable: names.is_none(),
                name,
                kana,
                unread: u.map(|u| u.total).unwrap_or(0),
                urgent: u.map(|u| u.urgent).unwrap_or(0),
            }
        })
        .collect();
    // Urgent unread first, then any unread, then the rest as found.
    patients.sort_by_key(|p| {
        (
            std::cmp::Reverse(p.urgent),
            std::cmp::Reverse(p.unread.min(1)),
        )
    });
    render(
        StatusCode::OK,
        &PatientsPage {
            admin: is_admin(&user),
            query: query.q,
            patients,
            may_register,
            unread_days,
        },
    )
}

/// The registration form's fields as entered (kept when the form comes back with an error).
#[derive(Deserialize, Default, Clone)]
pub struct PatientFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kana: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex: String,
    #[serde(default)]
    care_level: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    primary_doctor: String,
}

impl PatientFields {
    fn body(&self) -> PatientBody {
        let opt = |s: &String| Some(s.clone()).filter(|s| !s.trim().is_empty());
        PatientBody {
            name: self.name.clone(),
            kana: self.kana.clone(),
            birth_date: self.birth_date.clone(),
            sex: self.sex.clone(),
            care_level: self.care_level.clone(),
            address: opt(&self.address),
            phone: opt(&self.phone),
            primary_doctor: opt(&self.primary_doctor),
        }
    }
}

#[derive(Template)]
#[template(path = "patient_form.html")]
struct PatientFormPage {
    admin: bool,
    editing: bool,
    action: String,
    token: String,
    error: Option<String>,
    form: PatientFields,
    sexes: Vec<(&'static str, &'static str)>,
    care_levels: Vec<(&'static str, &'static str)>,
}

fn form_page(
    page: &PageRequest,
    action: String,
    editing: bool,
    form: PatientFields,
    error: Option<ApiError>,
) -> Response {
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let rendered = render(
        status,
        &PatientFormPage {
            admin: page.is_admin(),
            editing,
            action,
            token: page.authenticity(),
            error: error.map(|e| e.message),
            form,
            sexes: Sex::ALL
                .iter()
                .map(|s| (s.as_str(), s.label_ja()))
                .collect(),
            care_levels: CareLevel::ALL
                .iter()
                .map(|c| (c.as_str(), c.label_ja()))
                .collect(),
        },
    );
    page.respond(rendered)
}

#[tracing::instrument(skip_all)]
pub async fn new_patient(page: PageRequest) -> Response {
    if let Err(e) = permit::<may::PatientRegister>(&page.state, &page.user).await {
        return failed(e);
    }
    let form = PatientFields {
        sex: "female".into(),
        care_level: "not_certified".into(),
        ..Default::default()
    };
    form_page(&page, "/patients/new".into(), false, form, None)
}

#[tracing::instrument(skip_all)]
pub async fn create_patient(page: PageRequest, Form(form): Form<PatientFields>) -> Response {
    let state = &page.state;
    let who = match permit::<may::PatientRegister>(state, &page.user).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let new = match form.body().parse() {
        Ok(new) => new,
        Err(e) => return form_page(&page, "/patients/new".into(), false, form, Some(e.into())),
    };
    let registered =
        renrakucho_registry::register_patient(&state.db, &state.keyring, &who, page.origin(), new)
            .await;
    match registered {
        Ok(p) => {
            renrakucho_http::access::changed(state, p.id).await;
            Redirect::to(&format!("/patients/{}?done=registered", p.id.as_uuid())).into_response()
        }
        Err(e) => form_page(&page, "/patients/new".into(), false, form, Some(e.into())),
    }
}

#[tracing::instrument(skip_all)]
pub async fn edit_patient(page: PageRequest, Path(id): Path<String>) -> Response {
    let state = &page.state;
    // The form shows the registration as it is: changing it needs reading it too.
    let who = match page.authorize::<may::PatientUpdate>(&id).await {
        Ok(_) => match page.authorize::<may::PatientRead>(&id).await {
            Ok(reader) => reader,
            Err(e) => return failed(e),
        },
        Err(e) => return failed(e),
    };
    let p = match renrakucho_registry::patient(&state.db, &state.keyring, &who, page.origin()).await
    {
        Ok(p) => PatientView::from(p),
        Err(e) => return failed(e),
    };
    let form = PatientFields {
        name: p.name,
        kana: p.kana,
        birth_date: p.birth_date,
        sex: p.sex,
        care_level: p.care_level,
        address: p.address.unwrap_or_default(),
        phone: p.phone.unwrap_or_default(),
        primary_doctor: p.primary_doctor.unwrap_or_default(),
    };
    form_page(
        &page,
        format!("/patients/{}/edit", who.patient().as_uuid()),
        true,
        form,
        None,
    )
}

#[tracing::instrument(skip_all)]
pub async fn update_patient(
    page: PageRequest,
    Path(id): Path<String>,
    Form(form): Form<PatientFields>,
) -> Response {
    let state = &page.state;
    let who = match page.authorize::<may::PatientUpdate>(&id).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let id = who.patient();
    let action = format!("/patients/{}/edit", id.as_uuid());
    let new = match form.body().parse() {
        Ok(new) => new,
        Err(e) => return form_page(&page, action, true, form, Some(e.into())),
    };
    let updated =
        renrakucho_registry::update_patient(&state.db, &state.keyring, &who, page.origin(), new)
            .await;
    match updated {
        Ok(_) => Redirect::to(&format!("/patients/{}?done=updated", id.as_uuid())).into_response(),
        Err(e) => form_page(&page, action, true, form, Some(e.into())),
    }
}
