use axum::Json;
use renrakucho_http::error::{ErrorBody, ErrorDetail};
use renrakucho_http::session::{FacilitySummary, WhoAmI};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The API description, generated from the handlers' annotations. Every route of
/// [`crate::api_routes`] is listed here, and nothing else under `/api/v1` (a test holds the
/// two against each other); [`Common`] adds the answers all operations share.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Renrakucho API",
        version = "1",
        description = "連絡帳 — the contact notebook of a regional home-medical-care network.\n\n\
            Every error, whatever its status, is `ErrorBody`: `{\"error\": {\"code\", \"message\", \
            \"request_id\", \"field\"?}}`, the message in Japanese, then English. A method a path \
            does not serve is 405 with `Allow`. Sign in with `POST /api/v1/auth/sign-in`; the \
            session is the cookie it sets (`renrakucho_session`, `__Host-renrakucho_session` \
            over HTTPS). Writes from another site (`Sec-Fetch-Site` or `Origin`) are refused."
    ),
    modifiers(&Common),
    paths(
        crate::auth::sign_in,
        crate::auth::sign_out,
        crate::auth::me,
        crate::auth::change_password,
        crate::auth::reauthenticate,
        crate::auth::second_factor,
        crate::second_factor::begin_totp,
        crate::second_factor::confirm_totp,
        crate::second_factor::new_recovery_codes,
        crate::second_factor::remove_own,
        crate::second_factor::reset,
        crate::identity_provider::begin_sign_in,
        crate::identity_provider::reauthenticate,
        crate::identity_provider::show,
        crate::identity_provider::save,
        crate::identity_provider::remove,
        crate::identity_provider::set_enabled,
        crate::identity_provider::test,
        crate::identity_provider::links,
        crate::identity_provider::link,
        crate::identity_provider::unlink,
        crate::identity_provider::approve,
        crate::health::healthz,
        crate::health::readyz,
        crate::patients::registry::list,
        crate::patients::registry::register,
        crate::patients::registry::show,
        crate::patients::registry::update,
        crate::patients::consents::record_consent,
        crate::patients::consents::consents,
        crate::patients::consents::consent_scan,
        crate::patients::consents::withdraw_consent,
        crate::patients::care_team::care_team,
        crate::patients::care_team::invite,
        crate::patients::care_team::accept,
        crate::patients::care_team::decline,
        crate::patients::care_team::leave,
        crate::patients::care_team::remove,
        crate::patients::care_team::invitations,
        crate::patients::deletion::request_deletion,
        crate::patients::care_team::directory,
        crate::emergency::open,
        crate::emergency::list,
        crate::emergency::end,
        crate::emergency::review,
        crate::emergency::status,
        crate::emergency::card,
        crate::emergency::reissue_card,
        crate::notebook::entries::timeline,
        crate::notebook::entries::post,
        crate::notebook::entries::detail,
        crate::notebook::entries::edit,
        crate::notebook::entries::withdraw,
        crate::notebook::entries::mark_read,
        crate::notebook::search::search,
        crate::notebook::files::upload,
        crate::notebook::files::attachment,
        crate::notebook::files::thumbnail,
        crate::notebook::files::export_json,
        crate::notebook::files::export_pdf,
        crate::notebook::unread::unread,
        crate::notebook::support::send_support,
        crate::notebook::support::support_list,
        crate::notebook::support::support_detail,
        crate::notebook::support::support_step,
        crate::notebook::unread::notifications,
        crate::notebook::unread::preferences,
        crate::notebook::unread::save_preferences,
        crate::notebook::unread::mute,
        renrakucho_http::events::stream,
        crate::facility_admin::audit_log,
        crate::facility_admin::list_staff,
        crate::facility_admin::set_may_accept_invitations,
        crate::platform::alerts,
        crate::platform::acknowledge,
        crate::platform::reset_administrators_second_factor,
        document,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        WhoAmI,
        FacilitySummary,
        crate::auth::SignInBody,
        crate::auth::PasswordChangeBody,
        crate::auth::ReauthenticateBody,
        crate::auth::SecondFactorBody,
        crate::second_factor::TotpEnrolmentView,
        crate::second_factor::RecoveryCodesView,
        crate::second_factor::TotpConfirmBody,
        crate::patients::PatientBody,
        crate::patients::PatientView,
        crate::patients::PatientLine,
        crate::patients::UnreadableSchema,
        crate::patients::PatientListItem,
        crate::patients::ConsentListItem,
        crate::notebook::EntryListItem,
        crate::patients::SignerBody,
        crate::patients::ConsentBody,
        crate::patients::ConsentView,
        crate::patients::Created,
        crate::patients::RecordedConsent,
        crate::patients::MemberView,
        crate::patients::InviteBody,
        crate::patients::InvitationView,
        crate::patients::DeletionBody,
        crate::patients::ErasureView,
        crate::patients::DirectoryView,
        crate::emergency::EmergencyBody,
        renrakucho_registry::EmergencyGrant,
        renrakucho_registry::IdentificationStatus,
        renrakucho_registry::PatientCard,
        renrakucho_registry::CardAttempt,
        crate::notebook::ContentBody,
        crate::notebook::EntryBodyIn,
        crate::notebook::EditBody,
        crate::notebook::WithdrawBody,
        crate::notebook::ReadBody,
        crate::notebook::Marked,
        renrakucho_notebook::EntryView,
        renrakucho_notebook::AttachmentLine,
        crate::notebook::SupportBody,
        crate::notebook::CreatedId,
        crate::notebook::AnswerBody,
        crate::notebook::PreferencesBody,
        crate::notebook::MuteBody,
        crate::facility_admin::AuditView,
        crate::facility_admin::StaffView,
        crate::facility_admin::AcceptPermissionBody,
        crate::identity_provider::ProviderAnswer,
        crate::identity_provider::ProviderSettingsView,
        crate::identity_provider::ProviderBody,
        crate::identity_provider::EnabledBody,
        crate::identity_provider::AuthorizationView,
        crate::identity_provider::ProviderSignInBody,
        crate::identity_provider::IdentityLinkView,
        crate::identity_provider::LinkBody,
        crate::identity_provider::ApproveBody,
        crate::identity_provider::ReauthenticateBody,
        crate::platform::AlertView,
    ))
)]
pub struct ApiDoc;

/// The name of the session's security scheme in the document.
pub const SESSION_SCHEME: &str = "session";

/// The API routes anyone may call: no session needed (the rest answer 401 without one). The
/// second factor's step needs the session of a sign-in waiting for it, not a signed-in one.
pub const PUBLIC_ROUTES: [&str; 5] = [
    "/api/v1/auth/sign-in",
    "/api/v1/auth/provider",
    "/api/v1/auth/second-factor",
    "/api/v1/auth/sign-out",
    "/api/v1/openapi.json",
];

/// The answers every operation of the API shares, added to each operation whose annotation
/// does not give that status already, by what the operation takes:
///
/// - a session (everything under `/api/v1` but [`PUBLIC_ROUTES`]): the session cookie as its
///   security, and 401 without a valid one (`SignedIn`);
/// - a write (any method but GET): 403 for a write from another site (`same_origin_writes`);
/// - path parameters: 400 for a segment that does not decode, 404 for an ID that names
///   nothing (or is not an ID);
/// - query parameters: 400 for a value of the wrong type, 422 for a control character
///   (`input::Query`);
/// - a JSON body: 400 when it is not JSON, 413 over the route's limit, 415 when not sent as
///   JSON, 422 when it does not fit the operation, has a control character or a value the
///   domain refuses (`ApiJson`);
/// - everything but this document and `/healthz`: 503 while the database (or the key
///   service) is unavailable, or when the request is not answered within its deadline
///   (`timeout`, ADR 0024).
///
/// Every error's body is [`ErrorBody`].
pub struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "renrakucho_session",
                "The session cookie that `POST /api/v1/auth/sign-in` sets \
                 (`__Host-renrakucho_session` over HTTPS).",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let signed_in = api && !PUBLIC_ROUTES.contains(&path.as_str());
            let uses_database = path != "/api/v1/openapi.json" && path != "/healthz";
            let operations = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ];
            for (operation, write) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                add_common(operation, path, api, signed_in, write, uses_database);
            }
        }
    }
}

fn add_common(
    operation: &mut Operation,
    path: &str,
    api: bool,
    signed_in: bool,
    write: bool,
    uses_database: bool,
) {
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let mut answers: Vec<(u16, &str)> = Vec::new();
    if signed_in {
        operation.security = Some(vec![SecurityRequirement::new(
            SESSION_SCHEME,
            Vec::<String>::new(),
        )]);
        answers.push((
            401,
            "not signed in, or the session expired (`unauthenticated`)",
        ));
    }
    if api && write {
        answers.push((
            403,
            "a write from another site (`Sec-Fetch-Site` or `Origin`), refused before anything runs",
        ));
    }
    if path.contains('{') {
        answers.push((400, "a path segment that does not decode"));
        answers.push((
            404,
            "nothing this facility may see has this ID (or it is not an ID)",
        ));
    }
    if has_query {
        answers.push((400, "a query parameter of the wrong type (`bad_request`)"));
        answers.push((
            422,
            "a query parameter with a control character (`validation`, `field` names it)",
        ));
    }
    if json_body {
        answers.push((400, "the body is not JSON (`bad_request`)"));
        answers.push((413, "the body is over the route's limit (`too_large`)"));
        answers.push((
            415,
            "the body is not sent as JSON (`unsupported_media_type`)",
        ));
        answers.push((
            422,
            "the body does not fit this operation (a field missing, a value of another type), \
             has a control character, or a value the rules refuse (`validation`; `field` names \
             the field where it can)",
        ));
    }
    if uses_database {
        answers.push((
            503,
            "the database or the key service is unavailable, or the request was not answered \
             within its deadline (`timeout`, RENRAKUCHO_REQUEST_TIMEOUT); try again later",
        ));
    }
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let reasons: Vec<&str> = answers
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, reason)| *reason)
            .collect();
        error(operation, status, &capitalized(&reasons.join("; ")));
    }
    // An annotation's error without a description of its own gets the common one.
    for (status, response) in operation.responses.responses.iter_mut() {
        if let RefOr::T(response) = response {
            if response.description.is_empty() {
                response.description = default_description(status).to_string();
            }
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What an error of this status means, for annotations that say no more.
fn default_description(status: &str) -> &'static str {
    match status {
        "400" => "Malformed (`bad_request`)",
        "401" => "Not signed in, or the session expired (`unauthenticated`)",
        "403" => "Not allowed (`forbidden`)",
        "404" => "Not found, or not this facility's business (`not_found`)",
        "409" => "In conflict with the current state (`conflict`)",
        "413" => "Too large (`too_large`)",
        "415" => "Unsupported content type",
        "422" => "A value is refused (`validation`, `field` names it)",
        "429" => "Too many attempts; see `Retry-After`",
        "503" => "Unavailable; try again later",
        _ => "",
    }
}

/// Adds an error answer to `operation`, unless its annotation gives that status already.
fn error(operation: &mut Operation, status: u16, description: &str) {
    let status = status.to_string();
    if operation.responses.responses.contains_key(&status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status, response.into());
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json")))]
#[tracing::instrument(skip_all)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Documented routes outside `/api/v1`, routed by `app::router`.
    const OUTSIDE_API: [(&str, &str); 2] = [("GET", "/healthz"), ("GET", "/readyz")];

    fn documented() -> BTreeSet<(String, String)> {
        let doc = ApiDoc::openapi();
        let mut found = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
                ("HEAD", item.head.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("TRACE", item.trace.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    found.insert((method.to_string(), path.clone()));
                }
            }
        }
        found
    }

    fn routed() -> BTreeSet<(String, String)> {
        crate::api_routes()
            .iter()
            .map(|r| (r.method.to_string(), format!("/api/v1{}", r.path)))
            .chain(
                OUTSIDE_API
                    .iter()
                    .map(|(m, p)| (m.to_string(), p.to_string())),
            )
            .collect()
    }

    #[test]
    fn the_document_lists_exactly_the_routes_of_the_router() {
        let documented = documented();
        let routed = routed();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let not_routed: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routed but missing from the OpenAPI document: {undocumented:?}"
        );
        assert!(
            not_routed.is_empty(),
            "in the OpenAPI document but not routed: {not_routed:?}"
        );
        assert!(routed.contains(&("GET".into(), "/api/v1/events".into())));
    }

    #[test]
    fn every_route_is_in_the_table_once() {
        let routes = crate::api_routes();
        let distinct: BTreeSet<_> = routes.iter().map(|r| (&r.method, r.path)).collect();
        assert_eq!(distinct.len(), routes.len(), "a route is listed twice");
    }

    #[test]
    fn every_error_answer_is_the_error_shape() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let error_ref = serde_json::json!({ "$ref": "#/components/schemas/ErrorBody" });
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let secured = operation.get("security").is_some();
                assert_eq!(
                    secured,
                    path.starts_with("/api/v1/") && !PUBLIC_ROUTES.contains(&path.as_str()),
                    "{method} {path}: the session is required exactly off the public routes"
                );
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let status: u16 = status.parse().unwrap();
                    // `/readyz` answers its own JSON; the stale edit adds the current entry.
                    let own_shape = path == "/readyz"
                        || (path == "/api/v1/patients/{id}/entries/{entry}" && status == 409);
                    if status < 400 || own_shape {
                        continue;
                    }
                    assert_eq!(
                        response["content"]["application/json"]["schema"], error_ref,
                        "{method} {path} {status}"
                    );
                }
                if secured {
                    assert!(
                        operation["responses"].get("401").is_some(),
                        "{method} {path}: 401"
                    );
                }
            }
        }
    }
}
