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
use renrakucho_care::may;
use renrakucho_care::{ConsentScope, Listed, NewScan, Signer, TeamMember};
use renrakucho_core::{CareLevel, InvalidValue, Sex, StaffRole};
use renrakucho_http::access::{authorize, permit, roles, staff};
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{self, SignedIn};
use renrakucho_http::state::AppState;
use renrakucho_store::facilities::DirectoryEntry;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::routes::{error_page, render};

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
    let found = match renrakucho_care::find_patients(
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
        Ok(reader) => renrakucho_care::unread(&state.db, &reader)
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
    match renrakucho_care::register_patient(&state.db, &state.keyring, &who, &origin, new).await {
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
    let p = match renrakucho_care::patient(&state.db, &state.keyring, &who, &origin).await {
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
    match renrakucho_care::update_patient(&state.db, &state.keyring, &who, &origin, new).await {
        Ok(_) => Redirect::to(&format!("/patients/{}?done=updated", id.as_uuid())).into_response(),
        Err(e) => form_page(&user, &token, action, true, form, Some(e.into())),
    }
}

// ---------------------------------------------------------------------------------------------
// One patient: registration, consent, care team, deletion.

#[derive(Default)]
struct ConsentLine {
    /// The ID of a consent whose details fail their integrity check: shown as unreadable.
    unreadable: Option<String>,
    id: String,
    signer: String,
    signed_on: String,
    scope: String,
    has_scan: bool,
    withdrawn: bool,
    renewal: bool,
}

struct DirectoryLine {
    code: String,
    name: String,
    kind: &'static str,
}

struct ProfileLines {
    id: String,
    name: String,
    kana: String,
    birth_date: String,
    sex: &'static str,
    care_level: &'static str,
    address: Option<String>,
    phone: Option<String>,
    primary_doctor: Option<String>,
}

/// What the person may do on the page (each is the authorizer's answer).
#[derive(Default)]
struct Mays {
    update: bool,
    read_consent: bool,
    record_consent: bool,
    renew_consent: bool,
    withdraw_consent: bool,
    read_team: bool,
    invite: bool,
    remove: bool,
    leave: bool,
    delete: bool,
}

/// The patient's card, on the registering facility's page.
struct CardLine {
    number: String,
    issued_at: String,
    failures_within_hour: i64,
    locked_until: Option<String>,
    recent_failures: usize,
    may_reissue: bool,
}

#[derive(Template)]
#[template(path = "patient.html")]
struct PatientPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    emergency_until: Option<String>,
    card: Option<CardLine>,
    patient: ProfileLines,
    may: Mays,
    consents: Vec<ConsentLine>,
    consent_on_file: bool,
    /// A withdrawal on file and no consent after it: what can be recorded now is a renewal.
    consent_withdrawn: bool,
    team: Vec<TeamMember>,
    directory: Vec<DirectoryLine>,
    today: String,
    standard_scope: &'static str,
    upload_limit_mb: usize,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

fn done_message(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "registered" => "登録しました / Registered",
        "updated" => "修正しました / Saved",
        "consent" => "同意書を登録しました。ケアチームの施設が連絡帳を閲覧できます / Consent recorded: the care team now sees the notebook",
        "consent_renewed" => "再同意を登録しました。ケアチームの施設が再び連絡帳を閲覧できます / Renewed consent recorded: the care team sees the notebook again",
        "withdrawn" => "同意の撤回を記録しました。登録施設以外は閲覧できなくなりました / Withdrawal recorded: only the registering facility sees the patient now",
        "invited" => "招待しました。相手の施設の承諾を待っています / Invited: waiting for the facility to accept",
        "removed" => "ケアチームから外しました / Removed from the care team",
        "opened" => "緊急閲覧を開始しました / Emergency access opened",
        "card_reissued" => "カード番号を再発行しました。以前の番号は使えません。新しいカードを印刷してください / Card re-issued: the old number no longer works; print the new card",
        _ => return None,
    })
}

async fn patient_page(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    user: &SignedIn,
    token: &CsrfToken,
    raw_id: &str,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let id = match patient_id(raw_id) {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    let who = match authorize::<may::PatientRead>(state, user, id).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let person = roles(user);
    let consent_reader = renrakucho_http::access::check::<may::ConsentRead>(state, user, id).await;
    let team_reader = renrakucho_http::access::check::<may::CareTeamRead>(state, user, id).await;
    let may = Mays {
        read_consent: consent_reader.is_some(),
        read_team: team_reader.is_some(),
        ..Mays::asked(state, &person, who.facility(), id).await
    };
    let patient = match renrakucho_care::patient(&state.db, &state.keyring, &who, origin).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let consents = if let Some(reader) = &consent_reader {
        match renrakucho_care::consents_of(&state.db, &state.keyring, reader, origin).await {
            Ok(c) => c,
            Err(e) => return failed(e),
        }
    } else {
        Vec::new()
    };
    let team = if let Some(reader) = &team_reader {
        match renrakucho_care::care_team_of(&state.db, reader, origin).await {
            Ok(t) => t,
            Err(e) => return failed(e),
        }
    } else {
        Vec::new()
    };
    let directory = if may.invite {
        invitable(state, who.facility(), &team).await
    } else {
        Vec::new()
    };
    let emergency_until = emergency_until(state, &who, origin).await;
    // The registering facility prints the card: its number, and what tried it.
    let card = if patient.registering_facility == who.facility() {
        match card_line(state, &who, &person, origin).await {
            Ok(card) => Some(card),
            Err(e) => return failed(e),
        }
    } else {
        None
    };
    let view = PatientView::from(patient.clone());
    let page = PatientPage {
        card,
        admin: is_admin(user),
        token: authenticity(token),
        done,
        error: error.map(|e| e.message),
        emergency_until,
        patient: ProfileLines {
            id: view.id.to_string(),
            name: view.name,
            kana: view.kana,
            birth_date: view.birth_date,
            sex: patient.profile.sex.label_ja(),
            care_level: patient.profile.care_level.label_ja(),
            address: view.address,
            phone: view.phone,
            primary_doctor: view.primary_doctor,
        },
        consent_on_file: consents
            .iter()
            .filter_map(Listed::readable)
            .any(|c| c.withdrawn_at.is_none()),
        consent_withdrawn: consents
            .iter()
            .filter_map(Listed::readable)
            .any(|c| c.withdrawn_at.is_some())
            && !consents
                .iter()
                .filter_map(Listed::readable)
                .any(|c| c.withdrawn_at.is_none()),
        consents: consents.into_iter().map(ConsentLine::from).collect(),
        team,
        directory: directory
            .into_iter()
            .map(|d| DirectoryLine {
                code: d.code,
                name: d.name,
                kind: d.kind.label_ja(),
            })
            .collect(),
        may,
        today: today(),
        standard_scope: ConsentScope::STANDARD,
        upload_limit_mb: state.care.upload_limit_bytes / (1024 * 1024),
    };
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (token.clone(), render(status, &page)).into_response()
}

impl From<Listed<renrakucho_care::Consent>> for ConsentLine {
    fn from(listed: Listed<renrakucho_care::Consent>) -> Self {
        let c = match listed {
            Listed::Readable(c) => c,
            Listed::Unreadable(u) => {
                return ConsentLine {
                    unreadable: Some(u.id.to_string()),
                    ..ConsentLine::default()
                }
            }
        };
        ConsentLine {
            unreadable: None,
            id: c.id.to_string(),
            signer: match &c.signer {
                Signer::Patient => "本人 / the patient".to_string(),
                Signer::Family { name, relation } => format!("家族（{relation}）{name}"),
            },
            signed_on: c
                .signed_on
                .format(time::macros::format_description!("[year]-[month]-[day]"))
                .unwrap_or_default(),
            scope: c.scope.as_str().to_string(),
            has_scan: c.scan_media_type.is_some(),
            withdrawn: c.withdrawn_at.is_some(),
            renewal: c.renewal,
        }
    }
}

impl Mays {
    /// The authorizer's answer for each act on the page but reading consent and the team
    /// (those come with their capabilities).
    async fn asked(
        state: &AppState,
        person: &[Role],
        facility: renrakucho_core::FacilityId,
        id: renrakucho_core::PatientId,
    ) -> Self {
        let mut may = Mays::default();
        for (flag, action) in [
            (&mut may.update, Action::PatientUpdate),
            (&mut may.record_consent, Action::ConsentRecord),
            (&mut may.renew_consent, Action::ConsentRenew),
            (&mut may.withdraw_consent, Action::ConsentWithdraw),
            (&mut may.invite, Action::CareTeamInvite),
            (&mut may.remove, Action::CareTeamRemove),
            (&mut may.leave, Action::CareTeamLeave),
            (&mut may.delete, Action::DeletionRecord),
        ] {
            *flag = state
                .authz
                .allowed(person, facility, id, action)
                .await
                .unwrap_or(false);
        }
        may
    }
}

/// The facilities of the directory that could be invited: not this one, not already in the
/// team or invited.
async fn invitable(
    state: &AppState,
    facility: renrakucho_core::FacilityId,
    team: &[TeamMember],
) -> Vec<DirectoryEntry> {
    renrakucho_care::directory(&state.db, facility)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            d.id != facility
                && !team
                    .iter()
                    .any(|m| m.facility == d.id && matches!(m.status, "active" | "invited"))
        })
        .collect()
}

/// Sharing facilities read the notebook; a facility that sees the patient only through an
/// emergency grant is told so, with the end of its grant (`None` otherwise).
async fn emergency_until(
    state: &AppState,
    who: &Authorized<may::PatientRead>,
    origin: &renrakucho_store::audit::Origin,
) -> Option<String> {
    let id = who.patient();
    if state
        .authz
        .allowed(&Role::all(), who.facility(), id, Action::NotebookWrite)
        .await
        .unwrap_or(false)
    {
        return None;
    }
    let actor = renrakucho_care::StaffActor::from(who);
    renrakucho_care::emergency_grants(&state.db, &state.keyring, actor, origin, 50, |_, _| {
        std::future::ready(false)
    })
    .await
    .ok()
    .and_then(|grants| {
        grants
            .into_iter()
            .filter(|g| g.ours && g.open && g.patient == id)
            .map(|g| g.expires_at)
            .max()
    })
    .map(local)
}

/// The patient's card as the registering facility prints it: its number, and what tried it.
async fn card_line(
    state: &AppState,
    who: &Authorized<may::PatientRead>,
    person: &[Role],
    origin: &renrakucho_store::audit::Origin,
) -> Result<CardLine, ApiError> {
    let c = renrakucho_care::patient_card(&state.db, &state.keyring, who, origin).await?;
    Ok(CardLine {
        number: c.number,
        issued_at: local(c.issued_at),
        failures_within_hour: c.failures_within_hour,
        locked_until: c.locked_until.map(local),
        recent_failures: c.recent_failures.len(),
        may_reissue: state
            .authz
            .allowed(
                person,
                who.facility(),
                who.patient(),
                Action::PatientCardReissue,
            )
            .await
            .unwrap_or(false),
    })
}

#[tracing::instrument(skip_all)]
pub async fn show_patient(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    patient_page(
        &state,
        &origin,
        &user,
        &token,
        &id,
        done_message(query.done.as_deref()),
        None,
    )
    .await
}

/// After an action on the patient page: back to the page with a message, or the page again
/// with the error.
async fn after(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    user: &SignedIn,
    token: &CsrfToken,
    id: &str,
    result: Result<&'static str, ApiError>,
) -> Response {
    match result {
        Ok(done) => {
            if let Ok(patient) = patient_id(id) {
                renrakucho_http::access::changed(state, patient).await;
            }
            Redirect::to(&format!("/patients/{id}?done={done}")).into_response()
        }
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::FORBIDDEN => {
            failed(e)
        }
        Err(e) => {
            let status = e.status;
            let mut page = patient_page(state, origin, user, token, id, None, Some(e)).await;
            if page.status().is_success() || page.status() == StatusCode::UNPROCESSABLE_ENTITY {
                *page.status_mut() = status;
            }
            page
        }
    }
}

/// Records a consent from the multipart form (with the scan, if one was chosen).
#[tracing::instrument(skip_all)]
pub async fn record_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let mut fields = std::collections::HashMap::<String, String>::new();
    let mut scan: Option<Vec<u8>> = None;
    let limit = state.care.upload_limit_bytes;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                return failed(renrakucho_api::patients::too_large(limit));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "scan" {
            let bytes = match field.bytes().await {
                Ok(b) => b,
                Err(_) => return failed(renrakucho_api::patients::too_large(limit)),
            };
            if bytes.len() > limit {
                return failed(renrakucho_api::patients::too_large(limit));
            }
            if !bytes.is_empty() {
                scan = Some(bytes.to_vec());
            }
        } else if let Ok(text) = field.text().await {
            fields.insert(name, text);
        }
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    if let Err(e) = renrakucho_http::input::multipart_fields(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        return failed(e);
    }
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::ConsentRecord>(&state, &user, pid).await?;
        let signer = match get("signer") {
            "family" => Signer::family(get("signer_name"), get("signer_relation"))?,
            "patient" => Signer::Patient,
            _ => {
                return Err(InvalidValue::new(
                    "signer",
                    "署名者（本人か家族か）を選んでください / choose who signed",
                )
                .into())
            }
        };
        let form = consent_form(signer, get("signed_on"), Some(get("scope")))?;
        let recorded = renrakucho_care::record_consent(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            &origin,
            form,
            scan.map(|bytes| NewScan { bytes }),
        )
        .await?;
        Ok::<_, ApiError>(if recorded.renewal {
            "consent_renewed"
        } else {
            "consent"
        })
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn consent_scan(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    Path((id, consent)): Path<(String, String)>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let consent = uuid::Uuid::parse_str(&consent).map_err(|_| ApiError::not_found())?;
        let who = authorize::<may::ConsentRead>(&state, &user, pid).await?;
        let (media_type, bytes) = renrakucho_care::consent_scan(
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
        Ok::<_, ApiError>(download(
            &media_type,
            &format!("consent-{consent}.{extension}"),
            bytes,
        ))
    }
    .await;
    result.unwrap_or_else(failed)
}

#[tracing::instrument(skip_all)]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::ConsentWithdraw>(&state, &user, pid).await?;
        renrakucho_care::withdraw_consent(&state.db, &who, &origin).await?;
        Ok("withdrawn")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

/// Re-issues the patient's card (the registering facility): the old number stops working.
#[tracing::instrument(skip_all)]
pub async fn reissue_card(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::PatientCardReissue>(&state, &user, pid).await?;
        renrakucho_care::reissue_card(&state.db, &state.keyring, &who, &origin).await?;
        Ok("card_reissued")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    facility_code: String,
}

#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<InviteForm>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::CareTeamInvite>(&state, &user, pid).await?;
        if form.facility_code.trim().is_empty() {
            return Err(InvalidValue::new(
                "facility_code",
                "招待する施設を選んでください / choose a facility to invite",
            )
            .into());
        }
        renrakucho_care::invite(&state.db, &who, &origin, form.facility_code.trim()).await?;
        Ok("invited")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn remove_member(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path((id, facility)): Path<(String, String)>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let facility = uuid::Uuid::parse_str(&facility)
            .map(renrakucho_core::FacilityId::from_uuid)
            .map_err(|_| ApiError::not_found())?;
        let who = authorize::<may::CareTeamRemove>(&state, &user, pid).await?;
        renrakucho_care::remove_member(&state.db, &who, &origin, facility).await?;
        Ok("removed")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::CareTeamLeave>(&state, &user, pid).await?;
        renrakucho_care::leave(&state.db, &who, &origin).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(&state, patient).await;
            }
            Redirect::to("/patients").into_response()
        }
        Err(e) => after(&state, &origin, &user, &token, &id, Err(e)).await,
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

#[tracing::instrument(skip_all)]
pub async fn request_deletion(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::DeletionRecord>(&state, &user, pid).await?;
        if form.confirm != "yes" {
            return Err(ApiError::from(InvalidValue::new(
                "confirm",
                "削除は取り消せません。確認欄にチェックしてください / deletion cannot be undone: tick the confirmation",
            )));
        }
        renrakucho_care::request_deletion(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            &origin,)
        .await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(&state, patient).await;
            }
            Redirect::to("/patients").into_response()
        }
        Err(e) => after(&state, &origin, &user, &token, &id, Err(e)).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Invitations.

struct InvitationLine {
    patient: String,
    registering_facility_name: Option<String>,
    invited_at: String,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    invitations: Vec<InvitationLine>,
    may_accept: bool,
}

async fn invitations_page(
    state: &AppState,
    user: &SignedIn,
    token: &CsrfToken,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let who = match staff(user) {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let pending = match renrakucho_care::pending_invitations(&state.db, who).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let may_accept = state
        .authz
        .roles_may(&roles(user), Action::CareTeamAccept)
        .await;
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let page = InvitationsPage {
        admin: is_admin(user),
        token: authenticity(token),
        done,
        error: error.map(|e| e.message),
        invitations: pending
            .into_iter()
            .map(|i| InvitationLine {
                patient: i.patient.as_uuid().to_string(),
                registering_facility_name: i.registering_facility_name,
                invited_at: local(i.invited_at),
            })
            .collect(),
        may_accept,
    };
    (token.clone(), render(status, &page)).into_response()
}

#[tracing::instrument(skip_all)]
pub async fn invitations(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    token: CsrfToken,
    Query(query): Query<DoneQuery>,
) -> Response {
    let done = match query.done.as_deref() {
        Some("accepted") => Some("承諾しました / Accepted"),
        Some("declined") => Some("辞退しました / Declined"),
        _ => None,
    };
    invitations_page(&state, &user, &token, done, None).await
}

#[tracing::instrument(skip_all)]
pub async fn answer_invitation(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path((id, answer)): Path<(String, String)>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::CareTeamAccept>(&state, &user, pid).await?;
        match answer.as_str() {
            "accept" => {
                renrakucho_care::accept_invitation(&state.db, &who, &origin).await?;
                Ok("accepted")
            }
            "decline" => {
                renrakucho_care::decline_invitation(&state.db, &who, &origin).await?;
                Ok("declined")
            }
            _ => Err(ApiError::not_found()),
        }
    }
    .await;
    match result {
        Ok(done) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(&state, patient).await;
            }
            Redirect::to(&format!("/invitations?done={done}")).into_response()
        }
        Err(e) => invitations_page(&state, &user, &token, None, Some(e)).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Emergency access.

struct GrantLine {
    id: String,
    patient: String,
    facility_name: Option<String>,
    reason: Option<String>,
    reason_unreadable: bool,
    opened_at: String,
    expires_at: String,
    open: bool,
    ours: bool,
    reviewed: bool,
}

#[derive(Deserialize, Default)]
pub struct EmergencyForm {
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    reason: String,
}

#[derive(Template)]
#[template(path = "emergency.html")]
struct EmergencyPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    may_open: bool,
    hours: u64,
    limit: i32,
    locked_until: Option<String>,
    form: EmergencyForm,
    grants: Vec<GrantLine>,
}

async fn emergency_page(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    user: &SignedIn,
    token: &CsrfToken,
    done: Option<&'static str>,
    error: Option<ApiError>,
    form: EmergencyForm,
) -> Response {
    let who = match staff(user) {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let reader = renrakucho_http::access::EmergencyReasonReader::new(state, user);
    let grants = match renrakucho_care::emergency_grants(
        &state.db,
        &state.keyring,
        who,
        origin,
        100,
        |patient, ours| reader.may_read(patient, ours),
    )
    .await
    {
        Ok(g) => g,
        Err(e) => return failed(e),
    };
    let may_open = state
        .authz
        .roles_may(&roles(user), Action::EmergencyOpen)
        .await;
    let locked_until = match renrakucho_care::identification_status(&state.db, who, origin).await {
        Ok(s) => s.locked_until.map(local),
        Err(e) => return failed(e),
    };
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let page = EmergencyPage {
        admin: is_admin(user),
        token: authenticity(token),
        done,
        error: error.map(|e| e.message),
        may_open,
        hours: state.care.emergency_access.as_secs() / 3600,
        limit: renrakucho_care::IDENTIFICATION_LIMIT,
        locked_until,
        form,
        grants: grants
            .into_iter()
            .map(|g| GrantLine {
                id: g.id.to_string(),
                patient: g.patient.as_uuid().to_string(),
                facility_name: g.facility_name,
                reason: g.reason,
                reason_unreadable: g.reason_unreadable,
                opened_at: local(g.opened_at),
                expires_at: local(g.ended_at.unwrap_or(g.expires_at).min(g.expires_at)),
                open: g.open,
                ours: g.ours,
                reviewed: g.reviewed_at.is_some(),
            })
            .collect(),
    };
    (token.clone(), render(status, &page)).into_response()
}

#[tracing::instrument(skip_all)]
pub async fn emergency(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Query(query): Query<DoneQuery>,
) -> Response {
    let done = match query.done.as_deref() {
        Some("ended") => Some("緊急閲覧を終了しました / Emergency access ended"),
        Some("reviewed") => Some("確認済みにしました / Marked reviewed"),
        _ => None,
    };
    emergency_page(
        &state,
        &origin,
        &user,
        &token,
        done,
        None,
        EmergencyForm::default(),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn open_emergency(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Form(form): Form<EmergencyForm>,
) -> Response {
    let result = async {
        let who = permit::<may::EmergencyOpen>(&state, &user).await?;
        let body = EmergencyBody {
            card_number: form.card_number.clone(),
            birth_date: form.birth_date.clone(),
            reason: form.reason.clone(),
        };
        let request = body.parse(state.care.emergency_access)?;
        let grant =
            renrakucho_care::open_emergency(&state.db, &state.keyring, &who, &origin, request)
                .await?;
        if let Err(e) =
            renrakucho_http::access::refresh(&state.db, &state.authz, grant.patient).await
        {
            tracing::warn!(error = %e, "refreshing access after an emergency grant failed");
        }
        Ok::<_, ApiError>(grant.patient)
    }
    .await;
    match result {
        Ok(patient) => {
            Redirect::to(&format!("/patients/{}?done=opened", patient.as_uuid())).into_response()
        }
        Err(e) => emergency_page(&state, &origin, &user, &token, None, Some(e), form).await,
    }
}

#[tracing::instrument(skip_all)]
pub async fn close_or_review_emergency(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path((id, what)): Path<(String, String)>,
) -> Response {
    let result = async {
        let who = staff(&user)?;
        let grant = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
        match what.as_str() {
            "end" => {
                let who = renrakucho_http::access::authorize_emergency_end(&state, &user).await?;
                renrakucho_care::end_emergency(&state.db, who, &origin, grant).await?;
                Ok("ended")
            }
            "review" if is_admin(&user) => {
                renrakucho_care::review_emergency(&state.db, who, &origin, grant).await?;
                Ok("reviewed")
            }
            "review" => Err(ApiError::forbidden(
                "緊急閲覧の確認は施設管理者が行います / facility administrators review emergency access",
            )),
            _ => Err(ApiError::not_found()),
        }
    }
    .await;
    match result {
        Ok(done) => Redirect::to(&format!("/emergency?done={done}")).into_response(),
        Err(e) => {
            emergency_page(
                &state,
                &origin,
                &user,
                &token,
                None,
                Some(e),
                EmergencyForm::default(),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The facility's audit log.

struct AuditLine {
    seq: i64,
    occurred_at: String,
    action: String,
    outcome: String,
    target: String,
    request_id: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    admin: bool,
    records: Vec<AuditLine>,
}

#[tracing::instrument(skip_all)]
pub async fn audit(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
) -> Response {
    let admin = match renrakucho_api::facility_admin::facility_admin(&user) {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    match renrakucho_care::facility_audit(&state.db, admin, &origin, 200).await {
        Ok(records) => render(
            StatusCode::OK,
            &AuditPage {
                admin: true,
                records: records
                    .into_iter()
                    .map(|r| AuditLine {
                        seq: r.seq,
                        occurred_at: local(r.occurred_at),
                        action: r.action,
                        outcome: r.outcome,
                        target: match (r.target_kind, r.target_id) {
                            (Some(k), Some(id)) => format!("{k} {id}"),
                            _ => String::new(),
                        },
                        request_id: r.request_id.unwrap_or_default(),
                    })
                    .collect(),
            },
        ),
        Err(e) => failed(e),
    }
}
