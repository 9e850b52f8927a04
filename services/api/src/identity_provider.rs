//! Sign-in through a facility's OpenID provider under `/api/v1`: the facility admin configures
//! the provider, tests it, enables it, links the provider's subjects to staff accounts and
//! approves just-in-time accounts; anyone starts a sign-in through it (`POST
//! /auth/provider`). The provider sends the person back to the portal's
//! `/login/provider/callback`, which completes the sign-in (or the test).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{Profession, StaffId};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::{SignedIn, SignedInToSecureAccount};
use renrakucho_http::state::AppState;
use renrakucho_identity::oidc::{ProviderInput, ProviderView, PENDING_PROVIDER_KEY};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::facility_admin::facility_admin;

/// The facility's provider settings (none configured: `provider` is null) and the redirect URI
/// to register at the provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderAnswer {
    pub provider: Option<ProviderSettingsView>,
    /// Register this as the client's redirect URI at the provider.
    pub redirect_uri: String,
    /// Register this as the client's post-logout redirect URI.
    pub post_logout_redirect_uri: String,
}

/// A facility's provider as its admin sees it; the client secret never leaves the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderSettingsView {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_set: bool,
    pub scopes: Vec<String>,
    /// `email` or `preferred_username`.
    pub login_claim: String,
    pub allowed_domains: Vec<String>,
    /// `pre_linked` or `just_in_time`.
    pub account_policy: String,
    pub enabled: bool,
    /// Send it back with a change: a change made meanwhile is not overwritten.
    pub revision: i32,
    /// A test sign-in passed under the current settings (needed before enabling).
    pub tested: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub tested_at: Option<OffsetDateTime>,
}

impl From<ProviderView> for ProviderSettingsView {
    fn from(v: ProviderView) -> Self {
        Self {
            issuer: v.issuer,
            client_id: v.client_id,
            client_secret_set: v.client_secret_set,
            scopes: v.scopes,
            login_claim: v.login_claim.as_str().into(),
            allowed_domains: v.allowed_domains,
            account_policy: v.account_policy.as_str().into(),
            enabled: v.enabled,
            revision: v.revision,
            tested: v.tested,
            tested_at: v.tested_at,
        }
    }
}

/// The settings to save. A change disables sign-in through the provider until a test passes.
#[derive(Deserialize, ToSchema)]
pub struct ProviderBody {
    /// The issuer URL (`https://…`; plain HTTP only on loopback).
    pub issuer: String,
    pub client_id: String,
    /// Required for a new provider; left out, the stored one is kept.
    pub client_secret: Option<String>,
    /// Extra scopes (`openid` is always requested), e.g. `["email", "profile"]`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `email` or `preferred_username`.
    pub login_claim: String,
    /// With `email`: the domains an address must be in (verified by the provider).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// `pre_linked` or `just_in_time`.
    pub account_policy: String,
    /// The revision the change is based on (from the settings read).
    pub revision: Option<i32>,
}

/// The secret never shows in a debug print.
impl std::fmt::Debug for ProviderBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderBody")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "**redacted**"),
            )
            .finish_non_exhaustive()
    }
}

/// Sign-in through the provider on or off.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnabledBody {
    pub enabled: bool,
}

/// Where to send the person's browser: the provider's sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationView {
    pub authorization_url: String,
}

/// A sign-in through a facility's provider, started by facility code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProviderSignInBody {
    pub facility_code: String,
}

/// A provider's subject linked to a staff account.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityLinkView {
    pub id: Uuid,
    pub staff_id: Uuid,
    pub issuer: String,
    pub subject: String,
    /// `admin` or `just_in_time`.
    pub linked_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<renrakucho_store::identity_providers::ExternalIdentity> for IdentityLinkView {
    fn from(l: renrakucho_store::identity_providers::ExternalIdentity) -> Self {
        Self {
            id: l.id,
            staff_id: l.staff_id.as_uuid(),
            issuer: l.issuer,
            subject: l.subject,
            linked_by: l.linked_by,
            created_at: l.created_at,
        }
    }
}

/// A link to make: the subject (`sub`) of the person at the facility's provider.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LinkBody {
    pub subject: String,
}

/// The profession of an approved account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApproveBody {
    pub profession: Profession,
}

fn answer(state: &AppState, provider: Option<ProviderView>) -> ProviderAnswer {
    ProviderAnswer {
        provider: provider.map(Into::into),
        redirect_uri: state.provider_callback_url().to_string(),
        post_logout_redirect_uri: state.after_logout_url().to_string(),
    }
}

/// This process forgets at once the accounts whose sessions a change ended (every other
/// process when the database announces the change), so no remembered account keeps them going.
pub fn forget_ended(state: &AppState, signed_in: &SignedIn, ended: &[StaffId]) {
    if let renrakucho_identity::Principal::Staff { facility, .. } = signed_in.principal {
        for id in ended {
            state
                .principals
                .forget_person(&renrakucho_identity::Principal::Staff { id: *id, facility });
        }
    }
}

/// Keeps the pending sign-in in the session (taken out at the callback) and answers with the
/// provider's URL for the browser.
async fn to_provider(
    session: &Session,
    url: impl std::fmt::Display,
    pending: renrakucho_identity::oidc::PendingProviderSignIn,
) -> Result<Json<AuthorizationView>, ApiError> {
    session.insert(PENDING_PROVIDER_KEY, pending).await?;
    Ok(Json(AuthorizationView {
        authorization_url: url.to_string(),
    }))
}

fn staff_id(raw: &str) -> Result<StaffId, ApiError> {
    Uuid::parse_str(raw)
        .map(StaffId::from_uuid)
        .map_err(|_| ApiError::not_found())
}

/// The facility's provider settings (facility administrators).
#[utoipa::path(get, path = "/api/v1/facility/identity-provider", tag = "admin",
    responses((status = 200, body = ProviderAnswer),
              (status = 403, description = "Facility administrators only", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<ProviderAnswer>, ApiError> {
    facility_admin(&signed_in)?;
    let provider = state.auth.provider_settings(signed_in.principal).await?;
    Ok(Json(answer(&state, provider)))
}

/// Creates or changes the facility's provider settings, with a recent password. A change
/// disables sign-in through the provider until a test passes again.
#[utoipa::path(put, path = "/api/v1/facility/identity-provider", tag = "admin",
    request_body = ProviderBody,
    responses((status = 200, body = ProviderAnswer),
              (status = 403, description = "Facility administrators only; or the password must be given again (`reauthentication_required`)", body = ErrorBody),
              (status = 409, description = "Changed meanwhile", body = ErrorBody),
              (status = 422, description = "A setting breaks a rule (`field` names it)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<ProviderBody>,
) -> Result<Json<ProviderAnswer>, ApiError> {
    facility_admin(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let input = ProviderInput {
        issuer: body.issuer,
        client_id: body.client_id,
        client_secret: body.client_secret,
        scopes: body.scopes,
        login_claim: body.login_claim,
        allowed_domains: body.allowed_domains,
        account_policy: body.account_policy,
    };
    let change = state
        .auth
        .save_provider_settings(signed_in.principal, input, body.revision, &signed_in.origin)
        .await?;
    forget_ended(&state, &signed_in, &change.sessions_ended);
    Ok(Json(answer(&state, change.view)))
}

/// Removes the facility's provider, with a recent password: its staff sign in with passwords.
#[utoipa::path(delete, path = "/api/v1/facility/identity-provider", tag = "admin",
    responses((status = 204, description = "Removed"),
              (status = 403, description = "Facility administrators only; or the password must be given again", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn remove(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<StatusCode, ApiError> {
    facility_admin(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let change = state
        .auth
        .remove_provider(signed_in.principal, &signed_in.origin)
        .await?;
    forget_ended(&state, &signed_in, &change.sessions_ended);
    Ok(StatusCode::NO_CONTENT)
}

/// Turns sign-in through the provider on (after a passed test of the current settings) or off,
/// with a recent password. Turning it off ends the sessions of every linked account.
#[utoipa::path(put, path = "/api/v1/facility/identity-provider/enabled", tag = "admin",
    request_body = EnabledBody,
    responses((status = 200, body = ProviderAnswer),
              (status = 403, description = "Facility administrators only", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Not tested under the current settings", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_enabled(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<EnabledBody>,
) -> Result<Json<ProviderAnswer>, ApiError> {
    facility_admin(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let change = state
        .auth
        .enable_provider(signed_in.principal, body.enabled, &signed_in.origin)
        .await?;
    forget_ended(&state, &signed_in, &change.sessions_ended);
    Ok(Json(answer(&state, change.view)))
}

/// Starts a test sign-in through the provider: open `authorization_url` in this session's
/// browser and sign in there; the return to `/login/provider/callback` records the test.
#[utoipa::path(post, path = "/api/v1/facility/identity-provider/test", tag = "admin",
    responses((status = 200, body = AuthorizationView),
              (status = 403, description = "Facility administrators only", body = ErrorBody),
              (status = 404, description = "No provider configured", body = ErrorBody),
              (status = 502, description = "The provider cannot be reached", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn test(
    State(state): State<AppState>,
    session: Session,
    signed_in: SignedIn,
) -> Result<Json<AuthorizationView>, ApiError> {
    facility_admin(&signed_in)?;
    let (url, pending) = state
        .auth
        .begin_provider_test(
            signed_in.principal,
            &state.provider_callback_url(),
            &signed_in.origin,
        )
        .await?;
    to_provider(&session, url, pending).await
}

/// Every link of the facility's staff to providers' subjects.
#[utoipa::path(get, path = "/api/v1/facility/identity-links", tag = "admin",
    responses((status = 200, body = [IdentityLinkView]),
              (status = 403, description = "Facility administrators only", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn links(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<IdentityLinkView>>, ApiError> {
    facility_admin(&signed_in)?;
    let links = state.auth.identity_links(signed_in.principal).await?;
    Ok(Json(links.into_iter().map(Into::into).collect()))
}

/// Links a subject of the facility's provider to a staff member, with a recent password: that
/// subject then signs in as them here (and only here). Never another administrator's account.
#[utoipa::path(post, path = "/api/v1/staff/{id}/identity-links", tag = "admin",
    request_body = LinkBody,
    params(("id" = Uuid, Path, description = "The staff member")),
    responses((status = 201, body = IdentityLinkView),
              (status = 403, description = "Facility administrators only, not for another administrator; or the password must be given again", body = ErrorBody),
              (status = 404, description = "No such staff member, or no provider configured", body = ErrorBody),
              (status = 409, description = "Already linked", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn link(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<(StatusCode, Json<IdentityLinkView>), ApiError> {
    facility_admin(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let member = staff_id(&id)?;
    let link = state
        .auth
        .link_identity(
            signed_in.principal,
            member,
            &body.subject,
            &signed_in.origin,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(link.into())))
}

/// Removes a link.
#[utoipa::path(delete, path = "/api/v1/staff/{id}/identity-links/{link}", tag = "admin",
    params(("id" = Uuid, Path, description = "The staff member"),
           ("link" = Uuid, Path, description = "The link")),
    responses((status = 204, description = "Removed"),
              (status = 403, description = "Facility administrators only", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unlink(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((id, link)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    facility_admin(&signed_in)?;
    let member = staff_id(&id)?;
    let link = Uuid::parse_str(&link).map_err(|_| ApiError::not_found())?;
    state
        .auth
        .unlink_identity(signed_in.principal, member, link, &signed_in.origin)
        .await?;
    forget_ended(&state, &signed_in, &[member]);
    Ok(StatusCode::NO_CONTENT)
}

/// Approves an account made at a first sign-in through the provider (status `pending`), with
/// a recent password.
#[utoipa::path(post, path = "/api/v1/staff/{id}/approve", tag = "admin",
    request_body = ApproveBody,
    params(("id" = Uuid, Path, description = "The staff member")),
    responses((status = 204, description = "Approved: the person may sign in"),
              (status = 403, description = "Facility administrators only", body = ErrorBody),
              (status = 404, description = "No such account waiting for approval", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn approve(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApproveBody>,
) -> Result<StatusCode, ApiError> {
    let admin = facility_admin(&signed_in)?;
    signed_in.require_recent_password(state.sessions.reauthenticate_within)?;
    let member = staff_id(&id)?;
    state
        .auth
        .approve_account(
            signed_in.principal,
            member,
            body.profession,
            &signed_in.origin,
        )
        .await?;
    state
        .principals
        .forget_person(&renrakucho_identity::Principal::Staff {
            id: member,
            facility: admin.facility,
        });
    Ok(StatusCode::NO_CONTENT)
}

/// Where to come back to after a re-authentication (a local path; default the home page).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReauthenticateBody {
    pub next: Option<String>,
}

/// Starts a re-authentication through the provider this session signed in with (the provider
/// is asked to have the person sign in again now): send the browser to `authorization_url`;
/// its return to `/login/provider/callback` counts as a password given just now.
#[utoipa::path(post, path = "/api/v1/me/reauthenticate/provider", tag = "auth",
    request_body = ReauthenticateBody,
    responses((status = 200, body = AuthorizationView),
              (status = 404, description = "This session did not sign in through a provider, or it is no longer enabled", body = ErrorBody),
              (status = 502, description = "The provider cannot be reached", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reauthenticate(
    State(state): State<AppState>,
    session: Session,
    SignedInToSecureAccount(signed_in): SignedInToSecureAccount,
    ApiJson(body): ApiJson<ReauthenticateBody>,
) -> Result<Json<AuthorizationView>, ApiError> {
    let (url, pending) = state
        .auth
        .begin_provider_reauthentication(
            signed_in.principal,
            signed_in.via_provider,
            body.next,
            &state.provider_callback_url(),
            &signed_in.origin,
        )
        .await?;
    to_provider(&session, url, pending).await
}

/// Starts a sign-in through the facility's provider: send the browser to `authorization_url`.
/// A facility without one answers 404 `no_identity_provider` (sign in with the password).
#[utoipa::path(post, path = "/api/v1/auth/provider", tag = "auth",
    request_body = ProviderSignInBody,
    responses((status = 200, body = AuthorizationView),
              (status = 404, description = "No identity provider for that facility", body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 502, description = "The provider cannot be reached", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn begin_sign_in(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    ApiJson(body): ApiJson<ProviderSignInBody>,
) -> Result<Json<AuthorizationView>, ApiError> {
    let (url, pending) = state
        .auth
        .begin_provider_sign_in(&body.facility_code, &state.provider_callback_url(), &origin)
        .await?;
    to_provider(&session, url, pending).await
}
