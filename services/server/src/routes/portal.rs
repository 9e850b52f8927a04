//! The web portal's pages (server-rendered, Japanese first). For now: sign in, see who you
//! are, sign out.

use crate::csrf::CsrfToken;
use crate::input::Form;
use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use renrakucho_core::Password;
use renrakucho_identity::SignInRequest;
use serde::Deserialize;
use tower_sessions::Session;

use super::RequestOrigin;
use crate::error::ApiError;
use crate::session::{self, WhoAmI};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    token: String,
    error: Option<String>,
    facility_code: String,
    login_id: String,
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

/// Turns an API error into the page a person sees.
fn page_for(error: ApiError) -> Response {
    error_page(error.status, &error.message)
}

#[tracing::instrument(skip_all)]
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
}

#[tracing::instrument(skip_all)]
pub async fn live_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/live.js"),
    )
}

#[tracing::instrument(skip_all)]
pub async fn home(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
) -> Response {
    let signed_in = match session::current(&state, &session).await {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return page_for(e),
    };
    // What needs the facility's attention: invitations to answer, emergency access to its
    // patients not yet reviewed (第12条, the guideline's break-glass review).
    let (invitations, unreviewed_emergencies) = match crate::access::staff(&signed_in) {
        Ok(who) => {
            let invitations = renrakucho_care::pending_invitations(&state.db, who)
                .await
                .map(|i| i.len())
                .unwrap_or(0);
            let unreviewed = renrakucho_care::emergency_grants(
                &state.db,
                &state.keyring,
                who,
                &origin,
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
    let page = render(
        StatusCode::OK,
        &HomePage {
            admin: signed_in.who.role == Some(renrakucho_core::StaffRole::FacilityAdmin),
            who: signed_in.who,
            idle_minutes: state.sessions.idle_timeout.as_secs().div_ceil(60),
            token: token.authenticity_token().unwrap_or_default(),
            invitations,
            unreviewed_emergencies,
        },
    );
    (token, page).into_response()
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
                    facility_code: String::new(),
                    login_id: String::new(),
                },
            );
            (token, page).into_response()
        }
        Err(e) => page_for(e),
    }
}

/// The page for a form whose CSRF token does not verify.
fn expired_form() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "フォームの有効期限が切れたか、不正な送信です。ページを開き直してもう一度お試しください / the form has expired or was not sent from this site; reload the page and try again",
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    authenticity_token: String,
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
    if token.verify(&form.authenticity_token).is_err() {
        return expired_form();
    }
    let again = |error: ApiError, form: &LoginForm| {
        let mut response = render(
            error.status,
            &LoginPage {
                token: token.authenticity_token().unwrap_or_default(),
                error: Some(error.message.clone()),
                facility_code: form.facility_code.clone(),
                login_id: form.login_id.clone(),
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
        origin,
    };
    match state.auth.sign_in(request).await {
        Ok(principal) => match session::start(&session, principal).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => page_for(e),
        },
        Err(e) => again(e.into(), &form),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    authenticity_token: String,
}

#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Form(form): Form<LogoutForm>,
) -> Response {
    if token.verify(&form.authenticity_token).is_err() {
        return expired_form();
    }
    if let Ok(Some(signed_in)) = session::current(&state, &session).await {
        if let Err(e) = state.auth.sign_out(signed_in.principal, &origin).await {
            return page_for(e.into());
        }
    }
    match session::end(&state, &session).await {
        Ok(()) => Redirect::to("/login").into_response(),
        Err(e) => page_for(e.into()),
    }
}
