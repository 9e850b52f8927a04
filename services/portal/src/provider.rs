//! Sign-in through the facility's OpenID provider in the portal: the sign-in page's provider
//! form, the provider's return (`/login/provider/callback`), and the facility admin's page to
//! configure, test and enable the provider, link subjects to staff and approve just-in-time
//! accounts.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_core::{Profession, StaffId};
use renrakucho_http::error::ApiError;
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session;
use renrakucho_http::state::AppState;
use renrakucho_identity::oidc::{
    PendingProviderSignIn, ProviderCallback, ProviderInput, ProviderOutcome, ProviderPurpose,
    ProviderSignInError, ProviderView, PENDING_PROVIDER_KEY,
};
use renrakucho_identity::Principal;
use renrakucho_store::identity_providers::ExternalIdentity;
use renrakucho_store::staff::StaffAccount;
use serde::Deserialize;
use tower_sessions::Session;

use crate::account::confirm_then;
use crate::context::{failed, PageRequest};
use crate::csrf::CsrfToken;
use crate::input::Form;
use crate::routes::{render, LoginPage};

/// The facility admin's page for the provider.
pub const ADMIN_PAGE: &str = "/admin/identity-provider";

#[derive(Template)]
#[template(path = "login_provider_go.html")]
struct GoPage {
    url: String,
}

/// On to the provider. Not a redirect: the pages' `form-action 'self'` (CSP) also holds for a
/// form's redirects, so a form's answer may not send the browser to another origin; a page
/// that moves on by itself (and offers the link) starts a navigation of its own.
pub(crate) fn to_provider(url: &url::Url) -> Response {
    render(
        StatusCode::OK,
        &GoPage {
            url: url.to_string(),
        },
    )
}

/// Keeps the pending sign-in in the session (taken out at the callback) and sends the browser
/// on to the provider.
async fn keep_and_go(
    session: &Session,
    url: &url::Url,
    pending: PendingProviderSignIn,
) -> Response {
    match session.insert(PENDING_PROVIDER_KEY, pending).await {
        Ok(()) => to_provider(url),
        Err(e) => failed(ApiError::from(e)),
    }
}

#[derive(Deserialize)]
pub struct ProviderForm {
    #[serde(default)]
    facility_code: String,
}

pub(crate) fn login_again(
    state: &AppState,
    token: &CsrfToken,
    facility_code: &str,
    error: Option<ApiError>,
    notice: Option<String>,
) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let page = render(
        status,
        &LoginPage {
            token: token.authenticity_token().unwrap_or_default(),
            error: error.map(|e| e.message),
            notice,
            facility_code: facility_code.to_owned(),
            login_id: String::new(),
            passkeys: state.auth.passkeys_available(),
        },
    );
    (token.clone(), page).into_response()
}

/// The sign-in page's provider form: off to the facility's provider, or back to the password
/// form when the facility has none.
#[tracing::instrument(skip_all)]
pub async fn begin(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Form(form): Form<ProviderForm>,
) -> Response {
    match state
        .auth
        .begin_provider_sign_in(&form.facility_code, &state.provider_callback_url(), &origin)
        .await
    {
        Ok((url, pending)) => keep_and_go(&session, &url, pending).await,
        Err(ProviderSignInError::NoProvider) => {
            let notice = if form.facility_code.trim().is_empty() {
                "運用者のIDプロバイダは設定されていません。ユーザーIDとパスワードでサインインしてください / \
                 operators sign in with login IDs and passwords here"
            } else {
                "この施設はIDプロバイダを使っていません。ユーザーIDとパスワードでサインインしてください / \
                 this facility signs in with login IDs and passwords"
            };
            login_again(
                &state,
                &token,
                &form.facility_code,
                None,
                Some(notice.into()),
            )
        }
        Err(e) => login_again(&state, &token, &form.facility_code, Some(e.into()), None),
    }
}

#[derive(Template)]
#[template(path = "login_provider.html")]
struct ProviderResultPage {
    heading: &'static str,
    heading_en: &'static str,
    message: String,
    back: &'static str,
}

/// The provider sends the person back here: signed in, waiting for approval, or (for the
/// admin's test) the test's result.
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    session: Session,
    token: CsrfToken,
    Query(callback): Query<ProviderCallback>,
) -> Response {
    // Taken out whatever happens next: a `state` works once.
    let pending = match session
        .remove::<PendingProviderSignIn>(PENDING_PROVIDER_KEY)
        .await
    {
        Ok(pending) => pending,
        Err(e) => return failed(ApiError::from(e)),
    };
    let testing = pending
        .as_ref()
        .is_some_and(|p| matches!(p.purpose, ProviderPurpose::Test { .. }));
    let outcome = state
        .auth
        .complete_provider_sign_in(
            pending,
            callback,
            &state.provider_callback_url(),
            &state.after_logout_url(),
            &origin,
        )
        .await;
    match outcome {
        Ok(ProviderOutcome::SignedIn {
            authenticated,
            logout_url,
        }) => match session::start_via_provider(&session, authenticated, logout_url).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => failed(e),
        },
        Ok(ProviderOutcome::Reauthenticated { account, next }) => {
            // Only the session that asked, still signed in as the same person, counts it.
            match session::current(&state, &session).await {
                Ok(Some(signed_in)) if signed_in.principal == account => {}
                Ok(_) => return failed(ApiError::unauthenticated()),
                Err(e) => return failed(e),
            }
            match session::reauthenticated(&session).await {
                Ok(()) => {
                    Redirect::to(&crate::account::local_path(next.as_deref())).into_response()
                }
                Err(e) => failed(e),
            }
        }
        Ok(ProviderOutcome::AwaitingApproval) => render(
            StatusCode::FORBIDDEN,
            &ProviderResultPage {
                heading: "承認待ち",
                heading_en: "Waiting for approval",
                message: "アカウントを作成しました。施設管理者が承認するとサインインできます / \
                          your account was created; you can sign in once your facility administrator approves it"
                    .into(),
                back: "/login",
            },
        ),
        Ok(ProviderOutcome::Tested {
            subject,
            login_value,
            linked,
        }) => render(
            StatusCode::OK,
            &ProviderResultPage {
                heading: "テスト成功",
                heading_en: "Test passed",
                message: format!(
                    "IDプロバイダから有効なIDトークンを受け取りました。サブジェクト: {subject}、ログイン名: {}、{} / \
                     the provider answered with a valid ID token; you can now enable sign-in through it",
                    login_value.as_deref().unwrap_or("（なし）"),
                    if linked { "紐付け済み" } else { "未紐付け" }
                ),
                back: ADMIN_PAGE,
            },
        ),
        // The admin's test failed: said on a page that leads back to the settings.
        Err(e) if testing => {
            let e = ApiError::from(e);
            render(
                e.status,
                &ProviderResultPage {
                    heading: "テスト失敗",
                    heading_en: "Test failed",
                    message: e.message,
                    back: ADMIN_PAGE,
                },
            )
        }
        Err(e) => login_again(&state, &token, "", Some(e.into()), None),
    }
}

#[derive(Template)]
#[template(path = "admin_provider.html")]
struct AdminPage {
    admin: bool,
    token: String,
    error: Option<String>,
    saved: Option<&'static str>,
    provider: Option<ProviderView>,
    redirect_uri: String,
    post_logout_redirect_uri: String,
    links: Vec<ExternalIdentity>,
    pending: Vec<StaffAccount>,
    staff: Vec<StaffAccount>,
    professions: &'static [Profession],
}

impl AdminPage {
    /// What the provider said of a waiting account's person: subject and address, and
    /// whether the provider verified the address (approving grants access to patient data).
    fn claims_of(&self, id: &StaffId) -> String {
        self.links
            .iter()
            .find(|l| &l.staff_id == id)
            .map(|l| {
                let verified = if l.email_verified {
                    "確認済み / verified"
                } else {
                    "未確認 / not verified"
                };
                format!(
                    "sub: {}, {} ({verified})",
                    l.subject,
                    l.email.as_deref().unwrap_or("メールなし / no e-mail")
                )
            })
            .unwrap_or_default()
    }

    fn login_of(&self, id: &StaffId) -> String {
        self.staff
            .iter()
            .find(|s| &s.id == id)
            .map(|s| format!("{}（{}）", s.display_name, s.login_id))
            .unwrap_or_default()
    }
}

async fn admin_view(
    page: &PageRequest,
    error: Option<ApiError>,
    saved: Option<&'static str>,
) -> Response {
    let state = &page.state;
    let admin = page.user.principal;
    let loaded = async {
        let provider = state.auth.provider_settings(admin).await?;
        let links = state.auth.identity_links(admin).await?;
        let pending = state.auth.pending_accounts(admin).await?;
        let staff = state.auth.facility_accounts(admin).await?;
        Ok::<_, renrakucho_identity::oidc::ProviderAdminError>((provider, links, pending, staff))
    }
    .await;
    let (provider, links, pending, staff) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return failed(ApiError::from(e)),
    };
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    render(
        status,
        &AdminPage {
            admin: true,
            token: page.authenticity(),
            error: error.map(|e| e.message),
            saved,
            provider,
            redirect_uri: state.provider_callback_url().to_string(),
            post_logout_redirect_uri: state.after_logout_url().to_string(),
            links,
            pending,
            staff,
            professions: Profession::ALL,
        },
    )
}

/// Anyone but a facility admin gets the API's 403 page.
fn admin_only(page: &PageRequest) -> Option<Response> {
    (!page.is_admin()).then(|| {
        failed(ApiError::forbidden(
            "施設管理者のみが行えます / only the facility administrator can do this",
        ))
    })
}

/// The password first, unless given within the window: the confirmation page, back here.
fn confirm_first(page: &PageRequest) -> Option<Response> {
    page.user
        .require_recent_password(page.state.sessions.reauthenticate_within)
        .is_err()
        .then(|| confirm_then(ADMIN_PAGE))
}

#[derive(Deserialize, Default)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

#[derive(Deserialize)]
pub struct ReauthenticateForm {
    #[serde(default)]
    next: String,
}

/// The confirmation page's way for a person signed in through a provider: off to the provider
/// to sign in again, back where they were.
#[tracing::instrument(skip_all)]
pub async fn reauthenticate(
    page: crate::context::PasswordPageRequest,
    session: Session,
    Form(form): Form<ReauthenticateForm>,
) -> Response {
    let next = crate::account::local_path(Some(&form.next));
    let state = &page.state;
    match state
        .auth
        .begin_provider_reauthentication(
            page.user.principal,
            page.user.via_provider,
            Some(next),
            &state.provider_callback_url(),
            &page.user.origin,
        )
        .await
    {
        Ok((url, pending)) => keep_and_go(&session, &url, pending).await,
        Err(e) => failed(e),
    }
}

/// The facility admin's provider page.
#[tracing::instrument(skip_all)]
pub async fn admin_page(page: PageRequest, Query(query): Query<SavedQuery>) -> Response {
    if let Some(refused) = admin_only(&page) {
        return refused;
    }
    let saved = query.saved.is_some().then_some("保存しました / saved");
    admin_view(&page, None, saved).await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    login_claim: String,
    #[serde(default)]
    allowed_domains: String,
    #[serde(default)]
    account_policy: String,
    #[serde(default)]
    revision: Option<i32>,
}

/// Saves the settings (with a recent password); a change disables sign-in until tested.
#[tracing::instrument(skip_all)]
pub async fn save(page: PageRequest, Form(form): Form<SettingsForm>) -> Response {
    if let Some(refused) = admin_only(&page).or_else(|| confirm_first(&page)) {
        return refused;
    }
    let input = ProviderInput {
        issuer: form.issuer,
        client_id: form.client_id,
        client_secret: Some(form.client_secret),
        scopes: vec![form.scopes],
        login_claim: form.login_claim,
        allowed_domains: vec![form.allowed_domains],
        account_policy: form.account_policy,
    };
    match page
        .state
        .auth
        .save_provider_settings(page.user.principal, input, form.revision, page.origin())
        .await
    {
        Ok(change) => {
            renrakucho_api::identity_provider::forget_ended(
                &page.state,
                &page.user,
                &change.sessions_ended,
            );
            Redirect::to(&format!("{ADMIN_PAGE}?saved=1")).into_response()
        }
        Err(e) => admin_view(&page, Some(e.into()), None).await,
    }
}

/// Starts the test sign-in: off to the provider, back to the callback, which records it.
#[tracing::instrument(skip_all)]
pub async fn test(page: PageRequest, session: Session) -> Response {
    if let Some(refused) = admin_only(&page) {
        return refused;
    }
    let state = &page.state;
    match state
        .auth
        .begin_provider_test(
            page.user.principal,
            &state.provider_callback_url(),
            page.origin(),
        )
        .await
    {
        Ok((url, pending)) => keep_and_go(&session, &url, pending).await,
        Err(e) => admin_view(&page, Some(e.into()), None).await,
    }
}

#[derive(Deserialize)]
pub struct EnableForm {
    #[serde(default)]
    enabled: String,
}

/// Turns sign-in through the provider on (after a passed test) or off.
#[tracing::instrument(skip_all)]
pub async fn enable(page: PageRequest, Form(form): Form<EnableForm>) -> Response {
    if let Some(refused) = admin_only(&page).or_else(|| confirm_first(&page)) {
        return refused;
    }
    let enabled = form.enabled == "true";
    match page
        .state
        .auth
        .enable_provider(page.user.principal, enabled, page.origin())
        .await
    {
        Ok(change) => {
            renrakucho_api::identity_provider::forget_ended(
                &page.state,
                &page.user,
                &change.sessions_ended,
            );
            Redirect::to(&format!("{ADMIN_PAGE}?saved=1")).into_response()
        }
        Err(e) => admin_view(&page, Some(e.into()), None).await,
    }
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    staff_id: String,
    #[serde(default)]
    subject: String,
}

/// Links the provider's subject to a staff member.
#[tracing::instrument(skip_all)]
pub async fn link(page: PageRequest, Form(form): Form<LinkForm>) -> Response {
    if let Some(refused) = admin_only(&page).or_else(|| confirm_first(&page)) {
        return refused;
    }
    let Ok(member) = uuid::Uuid::parse_str(&form.staff_id).map(StaffId::from_uuid) else {
        return admin_view(&page, Some(ApiError::not_found()), None).await;
    };
    match page
        .state
        .auth
        .link_identity(page.user.principal, member, &form.subject, page.origin())
        .await
    {
        Ok(_) => Redirect::to(&format!("{ADMIN_PAGE}?saved=1")).into_response(),
        Err(e) => admin_view(&page, Some(e.into()), None).await,
    }
}

#[derive(Deserialize)]
pub struct ApproveForm {
    #[serde(default)]
    staff_id: String,
    #[serde(default)]
    profession: String,
}

/// Approves a just-in-time account with the profession the admin chose.
#[tracing::instrument(skip_all)]
pub async fn approve(page: PageRequest, Form(form): Form<ApproveForm>) -> Response {
    if let Some(refused) = admin_only(&page).or_else(|| confirm_first(&page)) {
        return refused;
    }
    let member = uuid::Uuid::parse_str(&form.staff_id).map(StaffId::from_uuid);
    let profession = form.profession.parse::<Profession>();
    let (member, profession) = match (member, profession) {
        (Ok(m), Ok(p)) => (m, p),
        (Err(_), _) => return admin_view(&page, Some(ApiError::not_found()), None).await,
        (_, Err(e)) => return admin_view(&page, Some(e.into()), None).await,
    };
    let result = page
        .state
        .auth
        .approve_account(page.user.principal, member, profession, page.origin())
        .await;
    match result {
        Ok(()) => {
            if let Principal::Staff { facility, .. } = page.user.principal {
                page.state.principals.forget_person(&Principal::Staff {
                    id: member,
                    facility,
                });
            }
            Redirect::to(&format!("{ADMIN_PAGE}?saved=1")).into_response()
        }
        Err(e) => admin_view(&page, Some(e.into()), None).await,
    }
}
