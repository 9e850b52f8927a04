use axum::Json;
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::session::{FacilitySummary, WhoAmI};

/// The API description, generated from the handlers' annotations. Every endpoint added to
/// `/api/v1` is listed here.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Renrakucho API",
        version = "1",
        description = "連絡帳 — the contact notebook of a regional home-medical-care network."
    ),
    paths(
        super::auth::sign_in,
        super::auth::sign_out,
        super::auth::me,
        super::health::healthz,
        super::health::readyz,
        super::patients::list,
        super::patients::register,
        super::patients::show,
        super::patients::update,
        super::patients::record_consent,
        super::patients::consents,
        super::patients::consent_scan,
        super::patients::withdraw_consent,
        super::patients::care_team,
        super::patients::invite,
        super::patients::accept,
        super::patients::decline,
        super::patients::leave,
        super::patients::remove,
        super::patients::invitations,
        super::patients::request_deletion,
        super::patients::directory,
        super::emergency::open,
        super::emergency::list,
        super::emergency::end,
        super::emergency::review,
        super::notebook::timeline,
        super::notebook::post,
        super::notebook::detail,
        super::notebook::edit,
        super::notebook::withdraw,
        super::notebook::mark_read,
        super::notebook::search,
        super::notebook::upload,
        super::notebook::attachment,
        super::notebook::thumbnail,
        super::notebook::export_json,
        super::notebook::export_pdf,
        super::notebook::unread,
        super::notebook::send_support,
        super::notebook::support_list,
        super::notebook::support_detail,
        super::notebook::support_step,
        super::notebook::notifications,
        super::notebook::preferences,
        super::notebook::save_preferences,
        super::notebook::mute,
        super::admin::audit_log,
        super::admin::set_may_accept_invitations,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        WhoAmI,
        FacilitySummary,
        super::auth::SignInBody,
        super::patients::PatientBody,
        super::patients::PatientView,
        super::patients::PatientLine,
        super::patients::UnreadableSchema,
        super::patients::PatientListItem,
        super::patients::ConsentListItem,
        super::notebook::EntryListItem,
        super::patients::SignerBody,
        super::patients::ConsentBody,
        super::patients::ConsentView,
        super::patients::Created,
        super::patients::MemberView,
        super::patients::InviteBody,
        super::patients::InvitationView,
        super::patients::DeletionBody,
        super::patients::ErasureView,
        super::patients::DirectoryView,
        super::emergency::EmergencyBody,
        super::emergency::GrantView,
        super::notebook::ContentBody,
        super::notebook::EntryBodyIn,
        super::notebook::EditBody,
        super::notebook::WithdrawBody,
        super::notebook::ReadBody,
        super::notebook::Marked,
        super::notebook::EntrySchema,
        super::notebook::SupportBody,
        super::notebook::CreatedId,
        super::notebook::AnswerBody,
        super::notebook::PreferencesBody,
        super::notebook::MuteBody,
        super::admin::AuditView,
        super::admin::AcceptPermissionBody,
    ))
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
