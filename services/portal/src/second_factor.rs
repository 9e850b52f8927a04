//! The second factor in the portal: the sign-in's code page, and the person's own set-up of an
//! authenticator app (QR code drawn by the server), recovery codes and removal. While a second
//! factor must be set up, the set-up page is the only one a person may see.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{self, SignedIn};
use renrakucho_http::state::AppState;
use renrakucho_identity::totp::TotpSecret;
use serde::Deserialize;
use tower_sessions::Session;

use crate::account::confirm_then;
use crate::context::{failed, PasswordPageRequest, PASSWORD_PAGE};
use crate::csrf::CsrfToken;
use crate::input::Form;
use crate::routes::render;

/// The set-up page's path.
pub const SECOND_FACTOR_PAGE: &str = "/account/second-factor";

/// The sign-in's second step.
pub const CODE_PAGE: &str = "/login/code";

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage {
    token: String,
    error: Option<String>,
    /// The passkey challenge, when the account has passkeys.
    passkey_options: Option<String>,
}

fn code_page(
    token: &CsrfToken,
    error: Option<ApiError>,
    passkey_options: Option<String>,
) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let retry_after = error.as_ref().and_then(|e| e.retry_after);
    let mut response = render(
        status,
        &CodePage {
            token: token.authenticity_token().unwrap_or_default(),
            error: error.map(|e| e.message),
            passkey_options,
        },
    );
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    (token.clone(), response).into_response()
}

/// The code form (and the passkey button, when the account has passkeys), for a sign-in
/// whose password was right; anyone else goes to the sign-in.
#[tracing::instrument(skip_all)]
pub async fn code_form(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
) -> Response {
    code_page_again(&state, &session, &token, None).await
}

/// The code page (with `error`), a fresh passkey challenge on it; the sign-in page when no
/// sign-in waits for its second step.
pub(crate) async fn code_page_again(
    state: &AppState,
    session: &Session,
    token: &CsrfToken,
    error: impl Into<Option<ApiError>>,
) -> Response {
    let pending = match session::pending_second_factor(session).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return failed(e),
    };
    match crate::passkey::second_step_options(state, session, pending).await {
        Ok(options) => code_page(token, error.into(), options),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    one_time_code: String,
}

/// Completes the sign-in with the code.
#[tracing::instrument(skip_all)]
pub async fn code_submit(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Form(form): Form<CodeForm>,
) -> Response {
    let pending = match session::pending_second_factor(&session).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return failed(e),
    };
    match state
        .auth
        .complete_second_factor(pending, &form.one_time_code, &origin)
        .await
    {
        Ok(authenticated) => match session::start(&session, authenticated).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => failed(e),
        },
        Err(e) => code_page_again(&state, &session, &token, ApiError::from(e)).await,
    }
}

/// What the set-up page shows besides the person's state.
#[derive(Default)]
pub(crate) struct Shown {
    pub(crate) recovery_codes: Option<Vec<String>>,
    pub(crate) error: Option<ApiError>,
    /// A passkey registration under way: the options for the authenticator.
    pub(crate) registration: Option<String>,
}

/// One of the person's passkeys, as listed.
struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

struct EnrolmentView {
    secret: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "account_second_factor.html")]
struct SecondFactorPage {
    token: String,
    required: bool,
    must_have: bool,
    enrolment: Option<EnrolmentView>,
    recovery_codes: Option<Vec<String>>,
    error: Option<ApiError>,
    /// An authenticator app is set up.
    app: bool,
    /// Passkeys are offered (staff, on a server with a relying party).
    passkeys_offered: bool,
    passkeys: Vec<PasskeyRow>,
    registration: Option<String>,
}

fn enrolment_view(user: &SignedIn, secret: &TotpSecret) -> EnrolmentView {
    let label = renrakucho_api::second_factor::account_label(user);
    EnrolmentView {
        secret: secret.base32(),
        qr_svg: secret.qr_svg(&label),
    }
}

/// The page: the recovery codes just made, or else the authenticator being set up (its QR
/// code), or what the person can do.
pub(crate) async fn page(request: &PasswordPageRequest, shown: Shown) -> Response {
    let who = &request.user.who;
    let factors = match request.state.auth.factors(request.user.principal).await {
        Ok(factors) => factors,
        Err(e) => return failed(e),
    };
    let passkeys_offered = request.state.auth.passkeys_available();
    let mut status = shown.error.as_ref().map_or(StatusCode::OK, |e| e.status);
    // Operators always must.
    let must_have = who
        .role
        .is_none_or(|role| request.state.auth.second_factor_required(role));
    let mut enrolment = None;
    // The secret of a set-up under way is shown again only to whoever gave the password
    // within the window: a session left open does not give it away.
    let recent = request
        .user
        .require_recent_password(request.state.sessions.reauthenticate_within)
        .is_ok();
    if recent && !factors.app && shown.recovery_codes.is_none() && shown.registration.is_none() {
        match request
            .state
            .auth
            .pending_totp(request.user.principal)
            .await
        {
            Ok(secret) => enrolment = secret.map(|s| enrolment_view(&request.user, &s)),
            Err(e) => return failed(e),
        }
    }
    if status == StatusCode::OK && shown.error.is_some() {
        status = StatusCode::UNPROCESSABLE_ENTITY;
    }
    let response = render(
        status,
        &SecondFactorPage {
            token: request.token.authenticity_token().unwrap_or_default(),
            required: who.second_factor_enrolment_required,
            must_have,
            enrolment,
            recovery_codes: shown.recovery_codes,
            error: shown.error,
            app: factors.app,
            passkeys_offered,
            passkeys: factors
                .passkeys
                .into_iter()
                .map(|p| PasskeyRow {
                    id: p.id.to_string(),
                    name: p.name,
                    created: crate::context::local(p.created_at),
                    last_used: p
                        .last_used_at
                        .map(crate::context::local)
                        .unwrap_or_else(|| "—".into()),
                })
                .collect(),
            registration: shown.registration,
        },
    );
    (request.token.clone(), response).into_response()
}

/// The password page, while the password must change: it comes before the second factor.
fn password_first(request: &PasswordPageRequest) -> Option<Response> {
    request
        .user
        .who
        .password_change_required
        .then(|| Redirect::to(PASSWORD_PAGE).into_response())
}

/// The person's second factor: set up or not, and what they can do.
#[tracing::instrument(skip_all)]
pub async fn second_factor_page(request: PasswordPageRequest) -> Response {
    if let Some(response) = password_first(&request) {
        return response;
    }
    page(&request, Shown::default()).await
}

/// What a change asks first: the password changed if it must be, and given within the
/// network's window (else the confirmation page, coming back here).
pub(crate) fn before_a_change(request: &PasswordPageRequest) -> Option<Response> {
    password_first(request).or_else(|| {
        let within = request.state.sessions.reauthenticate_within;
        request
            .user
            .require_recent_password(within)
            .is_err()
            .then(|| confirm_then(SECOND_FACTOR_PAGE))
    })
}

/// The page with what was refused.
pub(crate) async fn refused(request: &PasswordPageRequest, e: impl Into<ApiError>) -> Response {
    let shown = Shown {
        error: Some(e.into()),
        ..Shown::default()
    };
    page(request, shown).await
}

/// The page with the recovery codes just made: shown in this answer only, never stored where
/// they could be read again.
pub(crate) async fn with_codes(request: &PasswordPageRequest, codes: Vec<String>) -> Response {
    let shown = Shown {
        recovery_codes: Some(codes),
        ..Shown::default()
    };
    page(request, shown).await
}

/// Starts the set-up (a recent password first), then back to the page, which shows the QR
/// code and the confirmation form.
#[tracing::instrument(skip_all)]
pub async fn begin(request: PasswordPageRequest) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let user = &request.user;
    match request
        .state
        .auth
        .begin_totp(user.principal, &user.origin)
        .await
    {
        Ok(_) => Redirect::to(SECOND_FACTOR_PAGE).into_response(),
        Err(e) => refused(&request, e).await,
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    one_time_code: String,
}

/// Confirms the set-up with a code from the app (a recent password first): the recovery codes
/// follow, and the person's other sessions end.
#[tracing::instrument(skip_all)]
pub async fn confirm(
    request: PasswordPageRequest,
    session: tower_sessions::Session,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let (state, user) = (&request.state, &request.user);
    match state
        .auth
        .confirm_totp(user.principal, &form.one_time_code, &user.origin)
        .await
    {
        Ok(confirmed) => {
            state.principals.forget_person(&user.principal);
            // The person's other sessions have ended; this one goes on under a new ID.
            if let Err(e) = session::password_changed(&session, confirmed.password_version).await {
                return failed(e);
            }
            let mut request = request;
            request.user.who.second_factor_enabled = true;
            request.user.who.second_factor_enrolment_required = false;
            with_codes(&request, confirmed.recovery_codes).await
        }
        Err(e) => refused(&request, e).await,
    }
}

/// New recovery codes (a recent password first).
#[tracing::instrument(skip_all)]
pub async fn new_recovery_codes(request: PasswordPageRequest) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let user = &request.user;
    match request
        .state
        .auth
        .new_recovery_codes(user.principal, &user.origin)
        .await
    {
        Ok(codes) => with_codes(&request, codes).await,
        Err(e) => refused(&request, e).await,
    }
}

/// Removes the person's authenticator app (a recent password first).
#[tracing::instrument(skip_all)]
pub async fn remove(request: PasswordPageRequest, session: tower_sessions::Session) -> Response {
    if let Some(response) = before_a_change(&request) {
        return response;
    }
    let (state, user) = (&request.state, &request.user);
    match state
        .auth
        .remove_second_factor(user.principal, user.principal, &user.origin)
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
