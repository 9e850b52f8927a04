//! Sign-in, sign-out and "who am I" for API clients.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use renrakucho_core::Password;
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{self, SignedInToSecureAccount, WhoAmI};
use renrakucho_http::state::AppState;
use renrakucho_identity::{PasswordChangeError, SignInOutcome, SignInRequest};
use serde::Deserialize;
use tower_sessions::Session;
use utoipa::ToSchema;

/// Credentials. Staff give their facility's code; platform operators leave it out.
#[derive(Deserialize, ToSchema)]
pub struct SignInBody {
    #[serde(default)]
    pub facility_code: Option<String>,
    pub login_id: String,
    pub password: String,
    /// The code of the account's second factor (six digits from the authenticator app, or a
    /// recovery code), for clients that send it in one request. Without it, an account with a
    /// second factor answers 401 `second_factor_required` and the code follows in
    /// `POST /api/v1/auth/second-factor`.
    #[serde(default)]
    pub one_time_code: Option<String>,
}

/// Signs in and starts a session (cookie `renrakucho_session`, new ID at every sign-in).
#[utoipa::path(post, path = "/api/v1/auth/sign-in", tag = "auth", request_body = SignInBody,
    responses(
        (status = 200, description = "Signed in", body = WhoAmI),
        (status = 401, description = "Wrong facility code, login ID or password (`bad_credentials`); the password was right and the account's second factor must follow (`second_factor_required`: this session waits five minutes for `POST /api/v1/auth/second-factor`); the one-time code was wrong or used (`wrong_one_time_code`)", body = ErrorBody),
        (status = 403, description = "Account or facility not active", body = ErrorBody),
        (status = 422, description = "Malformed input", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Json<WhoAmI>, ApiError> {
    let password = Password::for_sign_in(body.password)?;
    let outcome = state
        .auth
        .sign_in(SignInRequest {
            facility_code: body.facility_code,
            login_id: body.login_id,
            password,
            one_time_code: body.one_time_code,
            origin,
        })
        .await?;
    let authenticated = match outcome {
        SignInOutcome::SignedIn(authenticated) => authenticated,
        SignInOutcome::SecondFactorNeeded(pending) => {
            session::await_second_factor(&session, pending).await?;
            return Err(ApiError::second_factor_required());
        }
    };
    session::start(&session, authenticated).await?;
    let signed_in = session::current(&state, &session)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(signed_in.who))
}

/// The second factor's code.
#[derive(Deserialize, ToSchema)]
pub struct SecondFactorBody {
    /// Six digits from the authenticator app, or one of the recovery codes.
    pub one_time_code: String,
}

/// Completes a sign-in whose password was right (`second_factor_required`) with the code of the
/// account's second factor, within five minutes. A TOTP code is accepted once, for the current
/// 30 seconds or one step either side; a recovery code once ever.
#[utoipa::path(post, path = "/api/v1/auth/second-factor", tag = "auth",
    request_body = SecondFactorBody,
    responses(
        (status = 200, description = "Signed in", body = WhoAmI),
        (status = 401, description = "No sign-in is waiting for a code (`unauthenticated`), or the code is wrong, used, or came too late (`wrong_one_time_code`)", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn second_factor(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    ApiJson(body): ApiJson<SecondFactorBody>,
) -> Result<Json<WhoAmI>, ApiError> {
    let Some(pending) = session::pending_second_factor(&session).await? else {
        return Err(ApiError::unauthenticated());
    };
    let authenticated = state
        .auth
        .complete_second_factor(pending, &body.one_time_code, &origin)
        .await?;
    session::start(&session, authenticated).await?;
    let signed_in = session::current(&state, &session)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(signed_in.who))
}

/// Whether a request says its body is JSON (`Content-Type: application/json`, parameters and
/// case aside). An HTML form cannot send that to another site without the browser asking
/// first (a CORS preflight, which this server never grants).
fn sent_as_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == mime::APPLICATION_JSON.essence_str())
}

/// Ends the session: the record is deleted from the store and the cookie cleared. JSON only
/// (`Content-Type: application/json`, the body empty or `{}`), so a form on another page
/// cannot sign a person out.
#[utoipa::path(post, path = "/api/v1/auth/sign-out", tag = "auth",
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "Not read (`{}` will do): what counts is that it is sent as JSON"),
    responses((status = 204, description = "Signed out (also when no one was signed in)"),
              (status = 415, description = "Not sent as JSON", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn sign_out(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    session: Session,
) -> Result<StatusCode, ApiError> {
    if !sent_as_json(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_only",
            "サインアウトは JSON で送ってください / send the sign-out as JSON \
             (Content-Type: application/json)",
        ));
    }
    if let Some(signed_in) = session::current(&state, &session).await? {
        state.auth.sign_out(signed_in.principal, &origin).await?;
    }
    session::end(&state, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user (also while their password must be changed: `password_change_required`).
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = WhoAmI),
              (status = 401, description = "Not signed in, or the session expired", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn me(SignedInToSecureAccount(signed_in): SignedInToSecureAccount) -> Json<WhoAmI> {
    Json(signed_in.who)
}

/// The current password and the new one.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeBody {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the signed-in person's own password. The new one must be at least 12 characters
/// (the network may ask more), not a common or easily guessed password, not contain the login
/// ID, and not be the current password or one of the last five; each refusal names its rule.
/// The only request, with `GET /api/v1/me` and sign-out, that a person whose password must be
/// changed may make.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = PasswordChangeBody,
    responses(
        (status = 204, description = "Changed: this session goes on under a new ID (a new cookie); every other session of the person has ended"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Account not active", body = ErrorBody),
        (status = 409, description = "The password was changed by another request meanwhile", body = ErrorBody),
        (status = 422, description = "The current password is wrong (`wrong_current_password`), or the new one breaks a rule (`validation`, the message names the rule)", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn change_password(
    State(state): State<AppState>,
    SignedInToSecureAccount(signed_in): SignedInToSecureAccount,
    session: Session,
    ApiJson(body): ApiJson<PasswordChangeBody>,
) -> Result<StatusCode, ApiError> {
    let current = Password::for_sign_in(body.current_password).map_err(|e| {
        ApiError::from(renrakucho_core::InvalidValue {
            field: "current_password",
            ..e
        })
    })?;
    let version = state
        .auth
        .change_password(
            signed_in.principal,
            current,
            body.new_password,
            &signed_in.origin,
        )
        .await?;
    // This process forgets the account as it was at once (the others when the database
    // announces the change); this session goes on under a new ID, the person's others end.
    state.principals.forget_person(&signed_in.principal);
    if let Err(e) = session::password_changed(&session, version).await {
        // The password did change: the person signs in again with it.
        tracing::warn!(status = %e.status, "the session could not follow a password change");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The password, given again.
#[derive(Deserialize, ToSchema)]
pub struct ReauthenticateBody {
    pub password: String,
}

/// Gives the password again: break-glass access (`POST /api/v1/emergency-access`) and erasure
/// (`POST /api/v1/patients/{id}/deletion`) ask for it when it was last given (at sign-in, a
/// password change or here) more than 10 minutes ago (`RENRAKUCHO_REAUTHENTICATE_WITHIN`),
/// answering 403 `reauthentication_required`.
#[utoipa::path(post, path = "/api/v1/me/reauthenticate", tag = "auth",
    request_body = ReauthenticateBody,
    responses(
        (status = 204, description = "Confirmed: the acts that ask for it may follow"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Account not active, or the password must be changed first", body = ErrorBody),
        (status = 422, description = "The password is wrong (`wrong_password`)", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reauthenticate(
    State(state): State<AppState>,
    SignedInToSecureAccount(signed_in): SignedInToSecureAccount,
    session: Session,
    ApiJson(body): ApiJson<ReauthenticateBody>,
) -> Result<StatusCode, ApiError> {
    // Also while a second factor must be set up (its set-up asks for a recent password), not
    // while the password itself must change.
    if signed_in.who.password_change_required {
        return Err(ApiError::password_change_required());
    }
    let password = Password::for_sign_in(body.password)?;
    state
        .auth
        .reauthenticate(signed_in.principal, password, &signed_in.origin)
        .await
        .map_err(|e| match e {
            PasswordChangeError::WrongCurrentPassword => ApiError {
                field: Some("password".into()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong_password",
                    "パスワードが違います / the password is wrong",
                )
            },
            other => other.into(),
        })?;
    session::reauthenticated(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}
