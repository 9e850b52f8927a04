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
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        WhoAmI,
        FacilitySummary,
        super::auth::SignInBody
    ))
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
