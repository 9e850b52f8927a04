//! Patients, their consent and care team, and deletion requests, as JSON under `/api/v1`.
//! Every handler asks the authorizer first (`access::authorize`); the database's row-level
//! security applies underneath. A patient the facility has nothing to do with is a 404, the
//! same as one that does not exist.

pub mod care_team;
pub mod consents;
pub mod deletion;
pub mod registry;

pub use care_team::{DirectoryView, InvitationView, InviteBody, MemberView};
pub use consents::{
    consent_form, ConsentBody, ConsentListItem, ConsentView, Created, RecordedConsent, SignerBody,
};
pub use deletion::{DeletionBody, ErasureView};
pub use registry::{
    PatientBody, PatientLine, PatientListItem, PatientQuery, PatientView, UnreadableSchema,
};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use renrakucho_core::PatientId;
use renrakucho_http::error::ApiError;
use time::OffsetDateTime;
use uuid::Uuid;

/// A patient ID from a path: anything that is not one is simply not found.
pub fn patient_id(raw: &str) -> Result<PatientId, ApiError> {
    Uuid::parse_str(raw)
        .map(PatientId::from_uuid)
        .map_err(|_| ApiError::not_found())
}

fn today() -> time::Date {
    OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date()
}

/// The error for a file over the configured limit.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "ファイルが大きすぎます（{}MBまで） / the file is too large ({} MB at most)",
            limit / (1024 * 1024),
            limit / (1024 * 1024)
        ),
    )
}

/// Sends a decrypted file as a download: its real type, never sniffed, never shown inline.
pub fn download(media_type: &str, file_name: &str, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
