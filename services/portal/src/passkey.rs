//! Passkeys in the portal (ADR 0033): signing in with a passkey alone (after the facility
//! code) or as the second step after the password, and registering and removing one's own on
//! the second-factor page. Each ceremony's state waits in the server-side session and is taken
//! out when the browser answers (`/static/passkey.js` asks the authenticator).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session;
use renrakucho_http::state::AppState;
use renrakucho_identity::passkey::{
    PendingRegistration, PendingSecondStep, PendingSignIn, REGISTRATION_KEY, SECOND_STEP_KEY,
    SIGN_IN_KEY,
};
use renrakucho_identity::PasskeyError;
use serde::Deserialize;
use tower_sessions::Session;

use crate::context::{failed, PasswordPageRequest};
use crate::csrf::CsrfToken;
use crate::input::Form;
use crate::routes::render;
use crate::second_factor::{before_a_change, refused, with_codes, Shown, SECOND_FACTOR_PAGE};

/// The page that asks the authenticator for a passwordless sign-in.
#[derive(Template)]
#[template(path = "login_passkey.html")]
struct SignInPage {
    token: String,
    options: String,
    facility_code: String,
}

#[derive(Deserialize)]
pub struct BeginForm {
    #[serde(default)]
    facility_code: String,
}

/// The sign-in page's passkey form: a challenge for the facility named, kept in the session,
/// and the page whose button asks the authenticator.
#[tracing::instrument(skip_all)]
pub async fn begin_sign_in(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    Form(form): Form<BeginForm>,
) -> Response {
    if !state.auth.passkeys_available() {
        let e = ApiError::from(PasskeyError::NotAvailable);
        return crate::provider::login_again(&state, &token, &form.facility_code, Some(e), None);
    }
    let (options, pending) = match state.auth.begin_passkey_sign_in(&form.facility_code).await {
        Ok(started) => started,
        Err(e) => {
            return crate::provider::login_again(
                &state,
                &token,
                &form.facility_code,
                Some(e.into()),
                None,
            )
        }
    };
    if let Err(e) = session.insert(SIGN_IN_KEY, &pending).await {
        return failed(ApiError::from(e));
    }
    let page = render(
        StatusCode::OK,
        &SignInPage {
            token: token.authenticity_token().unwrap_or_default(),
            options: options.to_string(),
            facility_code: form.facility_code.trim().to_owned(),
        },
    );
    (token, page).into_response()
}

#[derive(Deserialize)]
pub struct AnswerForm {
    #[serde(default)]
    credential: String,
}

/// The authenticator's answer to a passwordless sign-in: signed in, or the sign-in page with
/// what went wrong (the challenge is used up either way).
#[tracing::instrument(skip_all)]
pub async fn finish_sign_in(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Form(form): Form<AnswerForm>,
) -> Response {
    let pending = match session.remove::<PendingSignIn>(SIGN_IN_KEY).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return failed(ApiError::from(e)),
    };
    match state
        .auth
        .finish_passkey_sign_in(pending, &form.credential, &origin)
        .await
    {
        Ok(who) => match session::start(&session, who).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => failed(e),
        },
        Err(e) => crate::provider::login_again(&state, &token, "", Some(e.into()), None),
    }
}

/// The options of the passkey form on the code page, for a sign-in waiting for its second
/// step whose account has passkeys: the challenge kept in the session (replacing an older
/// one). None: the code form only.
pub(crate) async fn second_step_options(
    state: &AppState,
    session: &Session,
    pending: renrakucho_identity::PendingSecondFactor,
) -> Result<Option<String>, ApiError> {
    let Some((options, step)) = state.auth.begin_passkey_second_step(pending).await? else {
        return Ok(None);
    };
    session.insert(SECOND_STEP_KEY, &step).await?;
    Ok(Some(options.to_string()))
}

/// The authenticator's answer on the code page: the sign-in completed with the passkey.
#[tracing::instrument(skip_all)]
pub async fn finish_second_step(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Form(form): Form<AnswerForm>,
) -> Response {
    let pending = match session::pending_second_factor(&session).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return failed(e),
    };
    let step = match session.remove::<PendingSecondStep>(SECOND_STEP_KEY).await {
        Ok(step) => step,
        Err(e) => return failed(ApiError::from(e)),
    };
    match state
        .auth
        .complete_passkey_second_step(pending, step, &form.credential, &origin)
        .await
    {
        Ok(who) => {
            let _ = session
                .remove::<renrakucho_identity::PendingSecondFactor>(
                    renrakucho_identity::PENDING_KEY,
                )
                .await;
            match session::start(&session, who).await {
                Ok(()) => Redirect::to("/").into_response(),
                Err(e) => failed(e),
            }
        }
        Err(e) => {
            crate::second_factor::code_page_again(&state, &session, &token, ApiError::from(e)).await
        }
    }
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

/// Starts registering a passkey (a recent password first): the page with the button that
/// asks the authenticator to make one.
#[tracing::instrument(skip_all)]
pub async fn begin_registration(
    request: PasswordPageRequest,
    session: Session,
    Form(form): Form<NameForm>,
) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let user = &request.user;
    let (options, pending) = match request
        .state
        .auth
        .begin_passkey_registration(user.principal, &form.name)
        .await
    {
        Ok(started) => started,
        Err(e) => return refused(&request, e).await,
    };
    if let Err(e) = session.insert(REGISTRATION_KEY, &pending).await {
        return failed(ApiError::from(e));
    }
    let shown = Shown {
        registration: Some(options.to_string()),
        ..Shown::default()
    };
    crate::second_factor::page(&request, shown).await
}

/// The authenticator's new passkey: stored (the person's other sessions end), with recovery
/// codes when it is their first second factor.
#[tracing::instrument(skip_all)]
pub async fn finish_registration(
    request: PasswordPageRequest,
    session: Session,
    Form(form): Form<AnswerForm>,
) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let pending = match session
        .remove::<PendingRegistration>(REGISTRATION_KEY)
        .await
    {
        Ok(Some(pending)) => pending,
        Ok(None) => return refused(&request, PasskeyError::NotStarted).await,
        Err(e) => return failed(ApiError::from(e)),
    };
    let (state, user) = (&request.state, &request.user);
    match state
        .auth
        .finish_passkey_registration(user.principal, pending, &form.credential, &user.origin)
        .await
    {
        Ok(registered) => {
            state.principals.forget_person(&user.principal);
            if let Err(e) = session::password_changed(&session, registered.password_version).await {
                return failed(e);
            }
            match registered.recovery_codes {
                Some(codes) => {
                    let mut request = request;
                    request.user.who.second_factor_enabled = true;
                    request.user.who.second_factor_enrolment_required = false;
                    with_codes(&request, codes).await
                }
                None => Redirect::to(SECOND_FACTOR_PAGE).into_response(),
            }
        }
        Err(e) => refused(&request, e).await,
    }
}

/// Removes one of the person's passkeys (a recent password first).
#[tracing::instrument(skip_all)]
pub async fn remove(
    request: PasswordPageRequest,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return refused(&request, PasskeyError::NotFound).await;
    };
    let (state, user) = (&request.state, &request.user);
    match state
        .auth
        .remove_passkey(user.principal, id, &user.origin)
        .await
    {
        Ok(version) => {
            state.principals.forget_person(&user.principal);
            match session::password_changed(&session, version).await {
                Ok(()) => Redirect::to(SECOND_FACTOR_PAGE).into_response(),
                Err(e) => failed(e),
            }
        }
        Err(e) => refused(&request, e).await,
    }
}
