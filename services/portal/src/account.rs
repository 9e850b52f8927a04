//! The person's own account: changing their password (the rules are the identity crate's,
//! each refusal naming the one broken; the one page a person whose password must be changed
//! may see until they have), and giving it again before break-glass access or erasure.

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_core::{InvalidValue, Password};
use renrakucho_http::error::ApiError;
use serde::Deserialize;

use crate::context::{is_admin, PasswordPageRequest, PASSWORD_PAGE};
use crate::input::Form;
use crate::routes::render;

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage {
    token: String,
    required: bool,
    min_chars: usize,
    remembered: usize,
    error: Option<ApiError>,
    done: bool,
}

#[derive(Deserialize, Default)]
pub struct PasswordQuery {
    #[serde(default)]
    done: Option<String>,
}

fn page(request: &PasswordPageRequest, error: Option<ApiError>, done: bool) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let retry_after = error.as_ref().and_then(|e| e.retry_after);
    let mut response = render(
        status,
        &PasswordPage {
            token: request.token.authenticity_token().unwrap_or_default(),
            required: request.user.who.password_change_required,
            min_chars: request.state.auth.password_rules().min_chars,
            remembered: renrakucho_identity::REMEMBERED_PASSWORDS,
            error,
            done,
        },
    );
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    (request.token.clone(), response).into_response()
}

/// The form (and, after a change, that it was done).
#[tracing::instrument(skip_all)]
pub async fn password_page(
    request: PasswordPageRequest,
    axum::extract::Query(query): axum::extract::Query<PasswordQuery>,
) -> Response {
    page(&request, None, query.done.as_deref() == Some("changed"))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

/// Changes the password; a refusal shows the form again with the rule it broke (the typed
/// passwords are never sent back).
#[tracing::instrument(skip_all)]
pub async fn change_password(
    request: PasswordPageRequest,
    session: tower_sessions::Session,
    Form(form): Form<PasswordForm>,
) -> Response {
    if form.new_password != form.new_password_again {
        let e = InvalidValue::new(
            "new_password_again",
            "確認用の新しいパスワードが一致しません / the new password and its confirmation differ",
        );
        return page(&request, Some(e.into()), false);
    }
    let current = match Password::for_sign_in(form.current_password) {
        Ok(p) => p,
        Err(e) => {
            let e = InvalidValue {
                field: "current_password",
                ..e
            };
            return page(&request, Some(e.into()), false);
        }
    };
    match request
        .state
        .auth
        .change_password(
            request.user.principal,
            current,
            form.new_password,
            &request.user.origin,
        )
        .await
    {
        Ok(version) => {
            // This process forgets the account as it was at once; this session goes on under
            // a new ID, the person's others end.
            request
                .state
                .principals
                .forget_person(&request.user.principal);
            if let Err(e) = renrakucho_http::session::password_changed(&session, version).await {
                // The password did change: the person signs in again with it.
                tracing::warn!(status = %e.status, "the session could not follow a password change");
            }
            Redirect::to(&format!("{PASSWORD_PAGE}?done=changed")).into_response()
        }
        Err(e) => page(&request, Some(e.into()), false),
    }
}

/// The page that asks for the password again before an act that needs it (break-glass access,
/// erasure); `next` is where the person goes back to.
#[derive(Template)]
#[template(path = "account_confirm.html")]
struct ConfirmPage {
    admin: bool,
    /// Signed in through a provider: proof is given there again, not with a password.
    via_provider: bool,
    token: String,
    next: String,
    minutes: u64,
    error: Option<ApiError>,
}

/// Where to go back to after confirming: a path of this site only (never another site's
/// address, nor a scheme-relative `//…`), else home.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_".contains(c)) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The way to the confirmation page, coming back to `next`.
pub fn confirm_then(next: &str) -> Response {
    Redirect::to(&format!("{CONFIRM_PAGE}?next={}", local_path(Some(next)))).into_response()
}

/// The confirmation page's path.
pub const CONFIRM_PAGE: &str = "/account/confirm";

#[derive(Deserialize, Default)]
pub struct ConfirmQuery {
    #[serde(default)]
    next: Option<String>,
}

fn confirm_page(page: &PasswordPageRequest, next: String, error: Option<ApiError>) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let retry_after = error.as_ref().and_then(|e| e.retry_after);
    let mut response = render(
        status,
        &ConfirmPage {
            admin: is_admin(&page.user),
            via_provider: page.user.via_provider,
            token: page.token.authenticity_token().unwrap_or_default(),
            next,
            minutes: page
                .state
                .sessions
                .reauthenticate_within
                .as_secs()
                .div_ceil(60),
            error,
        },
    );
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    (page.token.clone(), response).into_response()
}

#[tracing::instrument(skip_all)]
pub async fn confirm_form(
    page: PasswordPageRequest,
    axum::extract::Query(query): axum::extract::Query<ConfirmQuery>,
) -> Response {
    // Also while a second factor must be set up (its set-up asks for this), not while the
    // password itself must change.
    if page.user.who.password_change_required {
        return Redirect::to(PASSWORD_PAGE).into_response();
    }
    let next = local_path(query.next.as_deref());
    confirm_page(&page, next, None)
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Checks the password; on success the person goes back to `next` to do the act.
#[tracing::instrument(skip_all)]
pub async fn confirm(
    page: PasswordPageRequest,
    session: tower_sessions::Session,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if page.user.who.password_change_required {
        return Redirect::to(PASSWORD_PAGE).into_response();
    }
    let next = local_path(Some(&form.next));
    let password = match Password::for_sign_in(form.password) {
        Ok(p) => p,
        Err(e) => return confirm_page(&page, next, Some(e.into())),
    };
    let state = &page.state;
    match state
        .auth
        .reauthenticate(page.user.principal, password, &page.user.origin)
        .await
    {
        Ok(()) => match renrakucho_http::session::reauthenticated(&session).await {
            Ok(()) => Redirect::to(&next).into_response(),
            Err(e) => crate::context::failed(e),
        },
        Err(renrakucho_identity::PasswordChangeError::WrongCurrentPassword) => {
            let e = ApiError {
                field: Some("password".into()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong_password",
                    "パスワードが違います / the password is wrong",
                )
            };
            confirm_page(&page, next, Some(e))
        }
        Err(e) => confirm_page(&page, next, Some(e.into())),
    }
}
