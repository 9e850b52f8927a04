//! The facility administrator's staff page: every account of the facility with its role,
//! status and whether a second factor is set up, and the reset of a member's second factor
//! for one who lost their phone (第9条; never another administrator's: the operators do that).

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use renrakucho_core::{StaffId, StaffRole, StaffStatus};
use renrakucho_http::error::ApiError;
use renrakucho_identity::Principal;
use serde::Deserialize;

use crate::account::confirm_then;
use crate::context::{failed, PageRequest};
use crate::input::Query;
use crate::routes::render;

/// The page's path.
pub const STAFF_PAGE: &str = "/admin/staff";

/// One account as listed.
struct Row {
    id: String,
    login_id: String,
    name: String,
    role: &'static str,
    profession: &'static str,
    status: &'static str,
    second_factor: bool,
    /// The administrator may reset this person's second factor here.
    resettable: bool,
}

#[derive(Template)]
#[template(path = "admin_staff.html")]
struct StaffPage {
    admin: bool,
    token: String,
    rows: Vec<Row>,
    error: Option<String>,
    done: Option<&'static str>,
}

fn role_label(role: StaffRole) -> &'static str {
    match role {
        StaffRole::FacilityAdmin => "施設管理者 / Administrator",
        StaffRole::Staff => "利用者 / Staff",
    }
}

fn status_label(status: StaffStatus) -> &'static str {
    match status {
        StaffStatus::Active => "有効 / Active",
        StaffStatus::Suspended => "停止中 / Suspended",
        StaffStatus::Disabled => "無効 / Disabled",
        StaffStatus::Pending => "承認待ち / Waiting for approval",
    }
}

async fn view(page: &PageRequest, error: Option<ApiError>, done: Option<&'static str>) -> Response {
    let admin = match renrakucho_http::access::staff(&page.user) {
        Ok(admin) => admin,
        Err(e) => return failed(e),
    };
    let accounts =
        match renrakucho_registry::facility_staff(&page.state.db, admin, page.origin()).await {
            Ok(accounts) => accounts,
            Err(e) => return failed(e),
        };
    let rows = accounts
        .into_iter()
        .map(|a| Row {
            id: a.id.to_string(),
            login_id: a.login_id,
            name: a.display_name,
            role: role_label(a.role),
            profession: a.profession.label_ja(),
            status: status_label(a.status),
            second_factor: a.second_factor_enabled,
            resettable: a.second_factor_enabled && a.role != StaffRole::FacilityAdmin,
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let response = render(
        status,
        &StaffPage {
            admin: true,
            token: page.authenticity(),
            rows,
            error: error.map(|e| e.message),
            done,
        },
    );
    (page.token.clone(), response).into_response()
}

fn admin_only(page: &PageRequest) -> Option<Response> {
    (!page.is_admin()).then(|| {
        failed(ApiError::forbidden(
            "施設管理者のみが行えます / only the facility administrator can do this",
        ))
    })
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    reset: Option<String>,
}

/// The staff list (facility administrators).
#[tracing::instrument(skip_all)]
pub async fn staff_page(page: PageRequest, Query(query): Query<DoneQuery>) -> Response {
    if let Some(refused) = admin_only(&page) {
        return refused;
    }
    let done = query
        .reset
        .is_some()
        .then_some("二要素認証をリセットしました。本人は次のログインで設定し直します / reset: they set it up again at their next sign-in");
    view(&page, None, done).await
}

/// Resets a member's second factor (app, passkeys, recovery codes), with a recent password:
/// their sessions end and they are told by e-mail.
#[tracing::instrument(skip_all)]
pub async fn reset_second_factor(page: PageRequest, Path(id): Path<String>) -> Response {
    if let Some(refused) = admin_only(&page) {
        return refused;
    }
    let within = page.state.sessions.reauthenticate_within;
    if page.user.require_recent_password(within).is_err() {
        return confirm_then(STAFF_PAGE);
    }
    let Principal::Staff { facility, .. } = page.user.principal else {
        return failed(ApiError::forbidden(
            "施設管理者のみが行えます / only the facility administrator can do this",
        ));
    };
    let Ok(member) = uuid::Uuid::parse_str(&id).map(StaffId::from_uuid) else {
        return view(&page, Some(ApiError::not_found()), None).await;
    };
    let member = Principal::Staff {
        id: member,
        facility,
    };
    match page
        .state
        .auth
        .remove_second_factor(page.user.principal, member, page.origin())
        .await
    {
        Ok(_) => {
            page.state.principals.forget_person(&member);
            Redirect::to(&format!("{STAFF_PAGE}?reset=1")).into_response()
        }
        Err(e) => view(&page, Some(e.into()), None).await,
    }
}
