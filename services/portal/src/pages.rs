//! The portal's pages for patients, consent, care teams, invitations, emergency access and the
//! audit log. Server-rendered, Japanese first. Each form carries a CSRF token, checked before
//! any handler runs (`csrf::require_token`); each handler asks the authorizer exactly as the
//! JSON API does (`access::authorize`) and calls the same domain functions; errors are shown
//! on the page in words a person understands.

use crate::csrf::CsrfToken;
use crate::input::{Form, Query};
use askama::Template;
use axum::extract::{FromRequestParts, Multipart, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_api::emergency::EmergencyBody;
use renrakucho_api::patients::{consent_form, download, patient_id, PatientBody, PatientView};
use renrakucho_authz::{Action, Authorized, Role};
use renrakucho_core::{CareLevel, InvalidValue, Sex, StaffRole};
use renrakucho_http::access::{authorize, permit, roles, staff};
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{self, SignedIn};
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::{ConsentScope, Listed, NewScan, Signer, TeamMember};
use renrakucho_store::facilities::DirectoryEntry;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::routes::{error_page, render};

mod audit;
mod emergency;
mod invitations;
mod patient;

pub use audit::audit;
pub use emergency::{close_or_review_emergency, emergency, open_emergency, EmergencyForm};
pub use invitations::{answer_invitation, invitations};
pub use patient::{
    consent_scan, invite, leave, record_consent, reissue_card, remove_member, request_deletion,
    show_patient, withdraw_consent, ConfirmForm, InviteForm,
};

/// A signed-in person on a page; anyone else is sent to the sign-in page.
pub struct PageUser(pub SignedIn);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = tower_sessions::Session::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &ApiError::internal().message,
                )
            })?;
        let renrakucho_http::origin::RequestOrigin(origin) =
            renrakucho_http::origin::RequestOrigin::from_request_parts(parts, state).await?;
        match session::current(state, &session).await {
            Ok(Some(mut signed_in)) => {
                signed_in.origin = origin;
                Ok(PageUser(signed_in))
            }
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(error_page(e.status, &e.message)),
        }
    }
}

fn is_admin(user: &SignedIn) -> bool {
    user.who.role == Some(StaffRole::FacilityAdmin)
}

/// A page for an error: the same words as the API's.
fn failed(e: impl Into<ApiError>) -> Response {
    let e = e.into();
    error_page(e.status, &e.message)
}

fn authenticity(token: &CsrfToken) -> String {
    token.authenticity_token().unwrap_or_default()
}

fn local(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(time::macros::offset!(+9))
        .format(&f)
        .unwrap_or_default()
}

fn today() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date()
        .format(&f)
        .unwrap_or_default()
}

/// What a page says after a form was done (`?done=…`, after the redirect).
#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Patients: list, register, correct.

#[derive(Template)]
#[template(path = "patients.html")]
struct PatientsPage {
    admin: bool,
    query: String,
    patients: Vec<PatientListLine>,
    may_register: bool,
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
    RequestOrigin(origin): RequestOrigin,
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
        &origin,
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
    let unread = match permit::<may::NotebookRead>(&state, &user).await {
        Ok(reader) => renrakucho_notebook::unread(&state.db, &reader)
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
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
    user: &SignedIn,
    token: &CsrfToken,
    action: String,
    editing: bool,
    form: PatientFields,
    error: Option<ApiError>,
) -> Response {
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let page = render(
        status,
        &PatientFormPage {
            admin: is_admin(user),
            editing,
            action,
            token: authenticity(token),
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
    (token.clone(), page).into_response()
}

#[tracing::instrument(skip_all)]
pub async fn new_patient(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    token: CsrfToken,
) -> Response {
    if let Err(e) = permit::<may::PatientRegister>(&state, &user).await {
        return failed(e);
    }
    let form = PatientFields {
        sex: "female".into(),
        care_level: "not_certified".into(),
        ..Default::default()
    };
    form_page(&user, &token, "/patients/new".into(), false, form, None)
}

#[tracing::instrument(skip_all)]
pub async fn create_patient(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Form(form): Form<PatientFields>,
) -> Response {
    let who = match permit::<may::PatientRegister>(&state, &user).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let new = match form.body().parse() {
        Ok(new) => new,
        Err(e) => {
            return form_page(
                &user,
                &token,
                "/patients/new".into(),
                false,
                form,
                Some(e.into()),
            )
        }
    };
    match renrakucho_registry::register_patient(&state.db, &state.keyring, &who, &origin, new).await
    {
        Ok(p) => {
            renrakucho_http::access::changed(&state, p.id).await;
            Redirect::to(&format!("/patients/{}?done=registered", p.id.as_uuid())).into_response()
        }
        Err(e) => form_page(
            &user,
            &token,
            "/patients/new".into(),
            false,
            form,
            Some(e.into()),
        ),
    }
}

#[tracing::instrument(skip_all)]
pub async fn edit_patient(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let id = match patient_id(&id) {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    // The form shows the registration as it is: changing it needs reading it too.
    let who = match authorize::<may::PatientUpdate>(&state, &user, id).await {
        Ok(_) => match authorize::<may::PatientRead>(&state, &user, id).await {
            Ok(reader) => reader,
            Err(e) => return failed(e),
        },
        Err(e) => return failed(e),
    };
    let p = match renrakucho_registry::patient(&state.db, &state.keyring, &who, &origin).await {
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
        &user,
        &token,
        format!("/patients/{}/edit", id.as_uuid()),
        true,
        form,
        None,
    )
}

#[tracing::instrument(skip_all)]
pub async fn update_patient(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<PatientFields>,
) -> Response {
    let id = match patient_id(&id) {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    let action = format!("/patients/{}/edit", id.as_uuid());
    let who = match authorize::<may::PatientUpdate>(&state, &user, id).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let new = match form.body().parse() {
        Ok(new) => new,
        Err(e) => return form_page(&user, &token, action, true, form, Some(e.into())),
    };
    match renrakucho_registry::update_patient(&state.db, &state.keyring, &who, &origin, new).await {
        Ok(_) => Redirect::to(&format!("/patients/{}?done=updated", id.as_uuid())).into_response(),
        Err(e) => form_page(&user, &token, action, true, form, Some(e.into())),
    }
}
