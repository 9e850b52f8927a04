//! The portal's routes, every one declared in [`routes`], and the pages to sign in, see who
//! you are and sign out.

use crate::csrf::CsrfToken;
use crate::input::Form;
use askama::Template;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use renrakucho_core::Password;
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{self, WhoAmI};
use renrakucho_http::state::AppState;
use renrakucho_identity::{SignInOutcome, SignInRequest};
use serde::Deserialize;
use tower_sessions::Session;

use crate::context::{failed, PageRequest};
use crate::{notebook_pages, pages};

/// How a portal form is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `multipart/form-data` (with files), the token its first part.
    Multipart,
}

/// A portal route that changes something, as declared.
#[derive(Clone, Debug)]
pub struct Write {
    pub method: Method,
    /// The route's path, with its parameters (`/patients/{id}/edit`).
    pub path: &'static str,
    pub form: FormKind,
}

/// The portal's routes as they are declared: pages (GET) and forms (POST). The only way to
/// add a portal route; [`Portal::into_router`] puts every route behind the CSRF check
/// ([`crate::csrf::require_token`]), and [`Portal::writes`] lists the forms for the test that
/// posts to each without a valid token.
pub struct Portal {
    router: Router<AppState>,
    writes: Vec<Write>,
}

impl Portal {
    fn new() -> Self {
        Self {
            router: Router::new(),
            writes: Vec::new(),
        }
    }

    /// A page, read with GET (and HEAD).
    fn page<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self
    }

    /// A url-encoded form, posted.
    fn form<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, post(handler));
        self.writes.push(Write {
            method: Method::POST,
            path,
            form: FormKind::UrlEncoded,
        });
        self
    }

    /// A multipart form with files, posted, its body up to `limit` bytes.
    fn upload<H, T>(mut self, path: &'static str, handler: H, limit: usize) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self
            .router
            .route(path, post(handler).layer(DefaultBodyLimit::max(limit)));
        self.writes.push(Write {
            method: Method::POST,
            path,
            form: FormKind::Multipart,
        });
        self
    }

    /// Every route that changes something (every route but the pages).
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// The portal's router, every route behind the CSRF check.
    pub fn into_router(self, state: &AppState) -> Router<AppState> {
        self.router
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::csrf::require_token,
            ))
    }
}

/// Every route of the portal. Uploads take files of up to `upload_limit_bytes` each (a
/// consent's scan; up to four attachments of an entry).
pub fn routes(upload_limit_bytes: usize) -> Portal {
    let slack = 1024 * 1024;
    Portal::new()
        .page("/", home)
        .page("/login", login_page)
        .form("/login", login_submit)
        .page(
            crate::second_factor::CODE_PAGE,
            crate::second_factor::code_form,
        )
        .form(
            crate::second_factor::CODE_PAGE,
            crate::second_factor::code_submit,
        )
        .form("/logout", logout)
        .form("/login/passkey", crate::passkey::begin_sign_in)
        .form("/login/passkey/finish", crate::passkey::finish_sign_in)
        .form("/login/code/passkey", crate::passkey::finish_second_step)
        .form(
            "/account/passkeys/begin",
            crate::passkey::begin_registration,
        )
        .form(
            "/account/passkeys/finish",
            crate::passkey::finish_registration,
        )
        .form("/account/passkeys/{id}/remove", crate::passkey::remove)
        .form("/login/provider", crate::provider::begin)
        .form("/account/confirm/provider", crate::provider::reauthenticate)
        .page(
            renrakucho_http::state::PROVIDER_CALLBACK_PATH,
            crate::provider::callback,
        )
        .page(
            crate::staff_pages::STAFF_PAGE,
            crate::staff_pages::staff_page,
        )
        .form(
            "/admin/staff/{id}/second-factor/reset",
            crate::staff_pages::reset_second_factor,
        )
        .page(crate::provider::ADMIN_PAGE, crate::provider::admin_page)
        .form(crate::provider::ADMIN_PAGE, crate::provider::save)
        .form("/admin/identity-provider/test", crate::provider::test)
        .form("/admin/identity-provider/enabled", crate::provider::enable)
        .form("/admin/identity-provider/link", crate::provider::link)
        .form("/admin/identity-provider/approve", crate::provider::approve)
        .page(crate::context::PASSWORD_PAGE, crate::account::password_page)
        .form(
            crate::context::PASSWORD_PAGE,
            crate::account::change_password,
        )
        .page(
            crate::second_factor::SECOND_FACTOR_PAGE,
            crate::second_factor::second_factor_page,
        )
        .form("/account/second-factor/begin", crate::second_factor::begin)
        .form(
            "/account/second-factor/confirm",
            crate::second_factor::confirm,
        )
        .form(
            "/account/second-factor/recovery-codes",
            crate::second_factor::new_recovery_codes,
        )
        .form(
            "/account/second-factor/remove",
            crate::second_factor::remove,
        )
        .page(crate::account::CONFIRM_PAGE, crate::account::confirm_form)
        .form(crate::account::CONFIRM_PAGE, crate::account::confirm)
        .page("/patients", pages::patients)
        .page("/patients/new", pages::new_patient)
        .form("/patients/new", pages::create_patient)
        .page("/patients/{id}", pages::show_patient)
        .page("/patients/{id}/edit", pages::edit_patient)
        .form("/patients/{id}/edit", pages::update_patient)
        .upload(
            "/patients/{id}/consents",
            pages::record_consent,
            upload_limit_bytes + slack,
        )
        .form("/patients/{id}/consents/withdraw", pages::withdraw_consent)
        .form("/patients/{id}/card/reissue", pages::reissue_card)
        .page(
            "/patients/{id}/consents/{consent}/scan",
            pages::consent_scan,
        )
        .form("/patients/{id}/care-team/invite", pages::invite)
        .form("/patients/{id}/care-team/leave", pages::leave)
        .form(
            "/patients/{id}/care-team/{facility}/remove",
            pages::remove_member,
        )
        .form("/patients/{id}/deletion", pages::request_deletion)
        .page("/invitations", pages::invitations)
        .form("/invitations/{id}/{answer}", pages::answer_invitation)
        .page("/emergency", pages::emergency)
        .form("/emergency", pages::open_emergency)
        .form("/emergency/{id}/{what}", pages::close_or_review_emergency)
        .page("/audit", pages::audit)
        .page("/patients/{id}/notebook", notebook_pages::notebook)
        .upload(
            "/patients/{id}/notebook",
            notebook_pages::post,
            4 * upload_limit_bytes + slack,
        )
        .page("/patients/{id}/notebook/search", notebook_pages::search)
        .page("/patients/{id}/entries/{entry}", notebook_pages::entry)
        .form("/patients/{id}/entries/{entry}/edit", notebook_pages::edit)
        .form(
            "/patients/{id}/entries/{entry}/withdraw",
            notebook_pages::withdraw,
        )
        .form(
            "/patients/{id}/entries/{entry}/support",
            notebook_pages::request_support,
        )
        .page("/notifications", notebook_pages::notifications)
        .form("/notifications", notebook_pages::save_notifications)
        .page("/support", notebook_pages::support_list)
        .page("/support/{id}", notebook_pages::support_request)
        .form("/support/{id}/{step}", notebook_pages::support_step)
        .page("/static/live.js", live_script)
        .page("/static/passkey.js", passkey_script)
        .page("/static/style.css", stylesheet)
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub(crate) token: String,
    pub(crate) error: Option<String>,
    /// Not an error: e.g. "this facility signs in with passwords".
    pub(crate) notice: Option<String>,
    pub(crate) facility_code: String,
    pub(crate) login_id: String,
    /// The passkey form is offered (this server has a relying party).
    pub(crate) passkeys: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    who: WhoAmI,
    idle_minutes: u64,
    admin: bool,
    token: String,
    invitations: usize,
    unreviewed_emergencies: usize,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// Renders a template, or a plain 500 if the template itself fails.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    render(status, &ErrorPage { message })
}

/// The page for a request stopped at its deadline (503, the API's words).
pub fn timed_out() -> Response {
    let e = ApiError::timed_out();
    error_page(e.status, &e.message)
}

/// A 404 for anything else, as a page.
#[tracing::instrument(skip_all)]
pub async fn page_not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "ページが見つかりません / Page not found",
    )
    .into_response()
}

/// Turns an API error into the page a person sees.
#[tracing::instrument(skip_all)]
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
}

#[tracing::instrument(skip_all)]
pub async fn live_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/live.js"),
    )
}

#[tracing::instrument(skip_all)]
pub async fn passkey_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/passkey.js"),
    )
}

#[tracing::instrument(skip_all)]
pub async fn home(page: PageRequest) -> Response {
    let (state, signed_in) = (&page.state, &page.user);
    // What needs the facility's attention: invitations to answer, emergency access to its
    // patients not yet reviewed (第12条, the guideline's break-glass review).
    let (invitations, unreviewed_emergencies) = match renrakucho_http::access::staff(signed_in) {
        Ok(who) => {
            let invitations = renrakucho_registry::pending_invitations(&state.db, who)
                .await
                .map(|i| i.len())
                .unwrap_or(0);
            let unreviewed = renrakucho_registry::emergency_grants(
                &state.db,
                &state.keyring,
                who,
                page.origin(),
                200,
                |_, _| std::future::ready(false),
            )
            .await
            .map(|g| {
                g.iter()
                    .filter(|g| !g.ours && g.reviewed_at.is_none())
                    .count()
            })
            .unwrap_or(0);
            (invitations, unreviewed)
        }
        Err(_) => (0, 0),
    };
    let view = render(
        StatusCode::OK,
        &HomePage {
            admin: page.is_admin(),
            who: signed_in.who.clone(),
            idle_minutes: state.sessions.idle_timeout.as_secs().div_ceil(60),
            token: page.authenticity(),
            invitations,
            unreviewed_emergencies,
        },
    );
    page.respond(view)
}

#[tracing::instrument(skip_all)]
pub async fn login_page(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
) -> Response {
    match session::current(&state, &session).await {
        Ok(Some(_)) => Redirect::to("/").into_response(),
        Ok(None) => {
            let page = render(
                StatusCode::OK,
                &LoginPage {
                    token: token.authenticity_token().unwrap_or_default(),
                    error: None,
                    notice: None,
                    facility_code: String::new(),
                    login_id: String::new(),
                    passkeys: state.auth.passkeys_available(),
                },
            );
            (token, page).into_response()
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    facility_code: String,
    #[serde(default)]
    login_id: String,
    #[serde(default)]
    password: String,
}

#[tracing::instrument(skip_all)]
pub async fn login_submit(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Form(form): Form<LoginForm>,
) -> Response {
    let again = |error: ApiError, form: &LoginForm| {
        let mut response = render(
            error.status,
            &LoginPage {
                token: token.authenticity_token().unwrap_or_default(),
                error: Some(error.message.clone()),
                notice: None,
                facility_code: form.facility_code.clone(),
                login_id: form.login_id.clone(),
                passkeys: state.auth.passkeys_available(),
            },
        );
        if let Some(secs) = error.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    };
    let password = match Password::for_sign_in(form.password.clone()) {
        Ok(p) => p,
        Err(e) => return again(e.into(), &form),
    };
    let request = SignInRequest {
        facility_code: Some(form.facility_code.clone()).filter(|c| !c.trim().is_empty()),
        login_id: form.login_id.clone(),
        password,
        one_time_code: None,
        origin,
    };
    match state.auth.sign_in(request).await {
        Ok(SignInOutcome::SignedIn(authenticated)) => {
            match session::start(&session, authenticated).await {
                Ok(()) => Redirect::to("/").into_response(),
                Err(e) => failed(e),
            }
        }
        Ok(SignInOutcome::SecondFactorNeeded(pending)) => {
            match session::await_second_factor(&session, pending).await {
                Ok(()) => Redirect::to(crate::second_factor::CODE_PAGE).into_response(),
                Err(e) => failed(e),
            }
        }
        Err(e) => again(e.into(), &form),
    }
}

#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
) -> Response {
    if let Ok(Some(signed_in)) = session::current(&state, &session).await {
        if let Err(e) = state.auth.sign_out(signed_in.principal, &origin).await {
            return failed(e);
        }
    }
    // Signed in through the facility's provider: signed out there too (RP-initiated logout).
    let provider_logout = session
        .get::<String>(session::PROVIDER_LOGOUT_KEY)
        .await
        .ok()
        .flatten();
    match session::end(&state, &session).await {
        Ok(()) => match provider_logout.and_then(|u| url::Url::parse(&u).ok()) {
            Some(url) => crate::provider::to_provider(&url),
            None => Redirect::to("/login").into_response(),
        },
        Err(e) => failed(e),
    }
}
