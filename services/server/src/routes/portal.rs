//! The web portal's pages (server-rendered, Japanese first). For now: sign in, see who you
//! are, sign out.

use askama::Template;
use axum::extract::{Form, State};
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
    error: Option<String>,
    facility_code: String,
    login_id: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    who: WhoAmI,
    idle_minutes: u64,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// Renders a template, or a plain 500 if the template itself fails.
fn render(status: StatusCode, page: &impl Template) -> Response {
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

pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
}

pub async fn home(State(state): State<AppState>, session: Session) -> Response {
    match session::current(&state, &session).await {
        Ok(Some(signed_in)) => render(
            StatusCode::OK,
            &HomePage {
                who: signed_in.who,
                idle_minutes: state.sessions.idle_timeout.as_secs().div_ceil(60),
            },
        ),
        Ok(None) => Redirect::to("/login").into_response(),
        Err(e) => page_for(e),
    }
}

pub async fn login_page(State(state): State<AppState>, session: Session) -> Response {
    match session::current(&state, &session).await {
        Ok(Some(_)) => Redirect::to("/").into_response(),
        Ok(None) => render(
            StatusCode::OK,
            &LoginPage {
                error: None,
                facility_code: String::new(),
                login_id: String::new(),
            },
        ),
        Err(e) => page_for(e),
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

pub async fn login_submit(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Response {
    let again = |error: ApiError, form: &LoginForm| {
        let mut response = render(
            error.status,
            &LoginPage {
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

pub async fn logout(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
) -> Response {
    if let Ok(Some(signed_in)) = session::current(&state, &session).await {
        if let Err(e) = state.auth.sign_out(signed_in.principal, &origin).await {
            return page_for(e.into());
        }
    }
    match session.flush().await {
        Ok(()) => Redirect::to("/login").into_response(),
        Err(e) => page_for(e.into()),
    }
}
