//! What a signed-in page handler needs, extracted once: [`PageRequest`] carries the server's
//! state, the person (with where the request came from, for the audit records it causes) and
//! their form token, so that handlers and the page builders they share take one argument
//! instead of four. Also the few helpers every page uses: the error page for an
//! [`ApiError`], times as the staff read them (Japan time).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_authz::{Authorized, Permission};
use renrakucho_core::StaffRole;
use renrakucho_http::access::authorize;
use renrakucho_http::error::ApiError;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{self, SignedIn};
use renrakucho_http::state::AppState;
use renrakucho_store::audit::Origin;
use time::OffsetDateTime;

use crate::csrf::CsrfToken;
use crate::routes::error_page;

/// A signed-in person on a page, with the request's origin; anyone else is sent to the
/// sign-in page, a person who must change their password first to [`PASSWORD_PAGE`], and one
/// who must set up a second factor to its page. For handlers that render no form (downloads, lists); the others take
/// [`PageRequest`].
pub struct PageUser(pub SignedIn);

/// The page where a person changes their own password.
pub const PASSWORD_PAGE: &str = "/account/password";

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let signed_in = page_user(parts, state).await?;
        if signed_in.who.password_change_required {
            return Err(Redirect::to(PASSWORD_PAGE).into_response());
        }
        if signed_in.who.second_factor_enrolment_required {
            return Err(Redirect::to(crate::second_factor::SECOND_FACTOR_PAGE).into_response());
        }
        Ok(PageUser(signed_in))
    }
}

/// The signed-in person of a page request, whatever the state of their password.
async fn page_user(parts: &mut Parts, state: &AppState) -> Result<SignedIn, Response> {
    let session = tower_sessions::Session::from_request_parts(parts, state)
        .await
        .map_err(|_| {
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &ApiError::internal().message,
            )
        })?;
    let RequestOrigin(origin) = RequestOrigin::from_request_parts(parts, state).await?;
    match session::current(state, &session).await {
        Ok(Some(mut signed_in)) => {
            signed_in.origin = origin;
            Ok(signed_in)
        }
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(error_page(e.status, &e.message)),
    }
}

/// The password page's request: the person even while their password must be changed (the
/// one page they may see then), and the form token.
pub struct PasswordPageRequest {
    pub state: AppState,
    pub user: SignedIn,
    pub token: CsrfToken,
}

impl FromRequestParts<AppState> for PasswordPageRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let user = page_user(parts, state).await?;
        let token = CsrfToken::from_request_parts(parts, state)
            .await
            .map_err(failed)?;
        Ok(PasswordPageRequest {
            state: state.clone(),
            user,
            token,
        })
    }
}

/// A request from a signed-in person to a page with a form: the state, the person and the
/// form token the page will carry (and the response must set: [`PageRequest::render`]).
pub struct PageRequest {
    pub state: AppState,
    pub user: SignedIn,
    pub token: CsrfToken,
}

impl FromRequestParts<AppState> for PageRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let PageUser(user) = PageUser::from_request_parts(parts, state).await?;
        let token = CsrfToken::from_request_parts(parts, state)
            .await
            .map_err(failed)?;
        Ok(PageRequest {
            state: state.clone(),
            user,
            token,
        })
    }
}

impl PageRequest {
    /// Where the request came from, for the audit records it causes.
    pub fn origin(&self) -> &Origin {
        &self.user.origin
    }

    /// The value for the form's hidden token field.
    pub fn authenticity(&self) -> String {
        self.token.authenticity_token().unwrap_or_default()
    }

    /// Whether the person administers their facility (the menu shows the admin pages).
    pub fn is_admin(&self) -> bool {
        is_admin(&self.user)
    }

    /// The capability `P` for the patient named in the path (`raw`): an ID that does not
    /// parse is the same 404 as an unknown one, a refusal the API's 403 or 404.
    pub async fn authorize<P: Permission>(&self, raw: &str) -> Result<Authorized<P>, ApiError> {
        let patient = renrakucho_api::patients::patient_id(raw)?;
        authorize::<P>(&self.state, &self.user, patient).await
    }

    /// The page with this request's form token cookie set.
    pub fn respond(&self, page: Response) -> Response {
        (self.token.clone(), page).into_response()
    }
}

/// What a page says after a form was done (`?done=…`, after the redirect).
#[derive(serde::Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: Option<String>,
}

/// Whether a person administers their facility.
pub fn is_admin(user: &SignedIn) -> bool {
    user.who.role == Some(StaffRole::FacilityAdmin)
}

/// Whether an error refuses the person (unknown, or not theirs to act on): such a form is
/// answered with the error page, not the page again with the error shown.
pub fn is_refusal(e: &ApiError) -> bool {
    e.status == StatusCode::NOT_FOUND || e.status == StatusCode::FORBIDDEN
}

/// A page for an error: the same words as the API's.
pub fn failed(e: impl Into<ApiError>) -> Response {
    let e = e.into();
    error_page(e.status, &e.message)
}

/// A moment as staff read it: Japan time, to the minute.
pub fn local(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(time::macros::offset!(+9))
        .format(&f)
        .unwrap_or_default()
}

/// Today's date in Japan (the default of date fields).
pub fn today() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date()
        .format(&f)
        .unwrap_or_default()
}
