//! Patients, their consent and care team, and deletion requests, as JSON under `/api/v1`.
//! Every handler asks the authorizer first (`access::authorize`); the database's row-level
//! security applies underneath. A patient the facility has nothing to do with is a 404, the
//! same as one that does not exist.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use base64::Engine;
use renrakucho_core::{
    Address, BirthDate, CareLevel, FacilityId, InvalidValue, KanaName, PatientId, PatientName,
    PatientProfile, Phone, PrimaryDoctor, Sex,
};
use renrakucho_http::access::{authorize, permit, staff};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::{
    ConsentForm, ConsentScope, Listed, NewPatient, NewScan, Signer, TeamMember,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
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

/// A patient's registration as entered.
#[derive(Clone, Deserialize, ToSchema)]
pub struct PatientBody {
    /// 氏名, e.g. 山田 花子
    pub name: String,
    /// フリガナ (katakana or hiragana)
    pub kana: String,
    /// YYYY-MM-DD
    #[schema(format = Date)]
    pub birth_date: String,
    /// female, male, other, unknown
    #[schema(value_type = Sex)]
    pub sex: String,
    /// not_certified, pending, independent, support_1, support_2, care_1 … care_5
    pub care_level: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub primary_doctor: Option<String>,
}

renrakucho_core::redacted_debug!(PatientBody);

fn optional<T>(
    raw: &Option<String>,
    parse: impl Fn(&str) -> Result<T, InvalidValue>,
) -> Result<Option<T>, InvalidValue> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse(s).map(Some),
    }
}

impl PatientBody {
    /// The registration, checked field by field.
    pub fn parse(&self) -> Result<NewPatient, InvalidValue> {
        Ok(NewPatient {
            name: PatientName::parse(&self.name)?,
            kana: KanaName::parse(&self.kana)?,
            profile: PatientProfile {
                birth_date: BirthDate::parse(&self.birth_date, today())?,
                sex: self
                    .sex
                    .parse::<Sex>()
                    .map_err(|_| InvalidValue::new("sex", "性別を選んでください / choose a sex"))?,
                care_level: self.care_level.parse::<CareLevel>().map_err(|_| {
                    InvalidValue::new(
                        "care_level",
                        "要介護度を選んでください / choose a care level",
                    )
                })?,
                address: optional(&self.address, Address::parse)?,
                phone: optional(&self.phone, Phone::parse)?,
                primary_doctor: optional(&self.primary_doctor, PrimaryDoctor::parse)?,
            },
        })
    }
}

/// A patient as shown to a facility that may read them.
#[derive(Serialize, ToSchema)]
pub struct PatientView {
    pub id: Uuid,
    pub registering_facility: Uuid,
    pub name: String,
    pub kana: String,
    pub birth_date: String,
    pub sex: String,
    pub care_level: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub primary_doctor: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

renrakucho_core::redacted_debug!(PatientView {
    id,
    registering_facility
});

impl From<renrakucho_registry::Patient> for PatientView {
    fn from(p: renrakucho_registry::Patient) -> Self {
        let date = time::macros::format_description!("[year]-[month]-[day]");
        Self {
            id: p.id.as_uuid(),
            registering_facility: p.registering_facility.as_uuid(),
            name: p.name.as_str().to_string(),
            kana: p.kana.as_str().to_string(),
            birth_date: p
                .profile
                .birth_date
                .date()
                .format(&date)
                .unwrap_or_default(),
            sex: p.profile.sex.as_str().to_string(),
            care_level: p.profile.care_level.as_str().to_string(),
            address: p.profile.address.map(|a| a.as_str().to_string()),
            phone: p.profile.phone.map(|a| a.as_str().to_string()),
            primary_doctor: p.profile.primary_doctor.map(|a| a.as_str().to_string()),
            registered_at: p.registered_at,
        }
    }
}

/// A line of a patient list.
#[derive(Serialize, ToSchema)]
pub struct PatientLine {
    pub id: Uuid,
    pub name: String,
    pub kana: String,
}

renrakucho_core::redacted_debug!(PatientLine { id });

/// An item of a listing whose stored value fails its integrity check (altered, moved, or
/// naming a key that does not exist): only its ID and the marker. The rest of the listing is
/// shown; the platform operators are alerted (ADR 0017).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UnreadableItem)]
pub struct UnreadableSchema {
    /// The item's ID (patient, entry, entry version row or consent).
    pub id: Uuid,
    /// Always `true`.
    pub unreadable: bool,
}

/// A line of the patient list: the patient, or the unreadable marker.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PatientListItem {
    Patient(PatientLine),
    Unreadable(UnreadableSchema),
}

/// A consent of the list: the consent, or the unreadable marker.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConsentListItem {
    Consent(Box<ConsentView>),
    Unreadable(UnreadableSchema),
}

#[derive(Deserialize, IntoParams)]
pub struct PatientQuery {
    /// A name or reading (whole, family or given name); empty lists the newest.
    #[serde(default)]
    pub q: String,
    /// At most this many (1–200, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

renrakucho_core::redacted_debug!(PatientQuery { limit });

/// Patients the facility cares for (or holds an emergency grant on), found by name or reading.
/// Patients of other facilities never appear.
/// A patient whose name fails its integrity check is listed as `UnreadableItem`.
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", params(PatientQuery),
    responses((status = 200, body = [PatientListItem]), (status = 401, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Query(query): Query<PatientQuery>,
) -> Result<Json<Vec<Listed<PatientLine>>>, ApiError> {
    let who = permit::<may::PatientRead>(&state, &signed_in).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let found = renrakucho_registry::find_patients(
        &state.db,
        &state.keyring,
        &who,
        &origin,
        &query.q,
        limit,
    )
    .await?;
    Ok(Json(
        found
            .into_iter()
            .map(|listed| {
                listed.map(|p| PatientLine {
                    id: p.id.as_uuid(),
                    name: p.name.as_str().to_string(),
                    kana: p.kana.as_str().to_string(),
                })
            })
            .collect(),
    ))
}

/// Registers a patient; the facility becomes the registering facility. The notebook is shared
/// with other facilities only once consent is recorded.
#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", request_body = PatientBody,
    responses((status = 201, body = PatientView), (status = 422, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<PatientBody>,
) -> Result<(StatusCode, Json<PatientView>), ApiError> {
    let who = permit::<may::PatientRegister>(&state, &signed_in).await?;
    let new = body.parse()?;
    let patient =
        renrakucho_registry::register_patient(&state.db, &state.keyring, &who, &origin, new)
            .await?;
    renrakucho_http::access::changed(&state, patient.id).await;
    Ok((StatusCode::CREATED, Json(patient.into())))
}

/// One patient.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = PatientView), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The record is unreadable (code `unreadable`, names the record)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<PatientView>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::PatientRead>(&state, &signed_in, id).await?;
    let patient = renrakucho_registry::patient(&state.db, &state.keyring, &who, &origin).await?;
    Ok(Json(patient.into()))
}

/// Corrects a registration (the registering facility).
#[utoipa::path(put, path = "/api/v1/patients/{id}", tag = "patients", request_body = PatientBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = PatientView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "Changed by someone else meanwhile, or unreadable", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatientBody>,
) -> Result<Json<PatientView>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::PatientUpdate>(&state, &signed_in, id).await?;
    let new = body.parse()?;
    let patient =
        renrakucho_registry::update_patient(&state.db, &state.keyring, &who, &origin, new).await?;
    Ok(Json(patient.into()))
}

/// Who signed a consent form.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignerBody {
    Patient,
    Family { name: String, relation: String },
}

renrakucho_core::redacted_debug!(SignerBody);

/// A signed consent form.
#[derive(Deserialize, ToSchema)]
pub struct ConsentBody {
    pub signer: SignerBody,
    /// YYYY-MM-DD
    #[schema(format = Date)]
    pub signed_on: String,
    /// What the patient agreed to share; the network's standard wording when left out.
    #[serde(default)]
    pub scope: Option<String>,
    /// The scan of the signed form (PDF, JPEG or PNG), base64.
    #[serde(default)]
    pub scan_base64: Option<String>,
}

renrakucho_core::redacted_debug!(ConsentBody);

/// Parses a consent form's fields as entered (API or portal).
pub fn consent_form(
    signer: Signer,
    signed_on: &str,
    scope: Option<&str>,
) -> Result<ConsentForm, InvalidValue> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(signed_on.trim(), format).map_err(|_| {
        InvalidValue::new(
            "signed_on",
            "署名日を YYYY-MM-DD で入力してください / enter the signing date as YYYY-MM-DD",
        )
    })?;
    Ok(ConsentForm {
        signer,
        signed_on: ConsentForm::check_date(date, today())?,
        scope: match scope.map(str::trim) {
            None | Some("") => ConsentScope::standard(),
            Some(s) => ConsentScope::parse(s)?,
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
}

/// A consent just recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedConsent {
    pub id: Uuid,
    /// It renewed a withdrawn consent (the care team sees the notebook again).
    pub renewal: bool,
}

/// Records a signed consent (第12条). From then on the care team's members see the notebook.
/// While the consent is withdrawn, this is a renewal: only the registering facility records
/// it, with the scan of the newly signed form, signed no earlier than the withdrawal (ADR 0014).
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents", tag = "consent",
    request_body = ConsentBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 201, body = RecordedConsent), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 409, body = ErrorBody),
              (status = 413, description = "The scan is over the upload limit (code `too_large`)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn record_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConsentBody>,
) -> Result<(StatusCode, Json<RecordedConsent>), ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::ConsentRecord>(&state, &signed_in, id).await?;
    let signer = match body.signer {
        SignerBody::Patient => Signer::Patient,
        SignerBody::Family { name, relation } => Signer::family(&name, &relation)?,
    };
    let form = consent_form(signer, &body.signed_on, body.scope.as_deref())?;
    let scan = match body.scan_base64 {
        None => None,
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| {
                    InvalidValue::new(
                        "scan_base64",
                        "同意書のファイルを読み取れません（base64） / the scan is not valid base64",
                    )
                })?;
            if bytes.len() > state.care.upload_limit_bytes {
                return Err(too_large(state.care.upload_limit_bytes));
            }
            Some(NewScan { bytes })
        }
    };
    let recorded = renrakucho_registry::record_consent(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
        form,
        scan,
    )
    .await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok((
        StatusCode::CREATED,
        Json(RecordedConsent {
            id: recorded.id,
            renewal: recorded.renewal,
        }),
    ))
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

/// A consent as shown.
#[derive(Serialize, ToSchema)]
pub struct ConsentView {
    pub id: Uuid,
    /// `patient` or `family`
    pub signer: String,
    pub signer_name: Option<String>,
    pub signer_relation: Option<String>,
    pub signed_on: String,
    pub scope: String,
    pub collected_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub scan_media_type: Option<String>,
    pub scan_size: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    /// Recorded after a withdrawal: a renewal.
    pub renewal: bool,
}

renrakucho_core::redacted_debug!(ConsentView {
    id,
    collected_by,
    renewal
});

impl From<renrakucho_registry::Consent> for ConsentView {
    fn from(c: renrakucho_registry::Consent) -> Self {
        let date = time::macros::format_description!("[year]-[month]-[day]");
        let (signer, signer_name, signer_relation) = match c.signer {
            Signer::Patient => ("patient".to_string(), None, None),
            Signer::Family { name, relation } => ("family".to_string(), Some(name), Some(relation)),
        };
        Self {
            id: c.id,
            signer,
            signer_name,
            signer_relation,
            signed_on: c.signed_on.format(&date).unwrap_or_default(),
            scope: c.scope.as_str().to_string(),
            collected_by: c.collected_by.as_uuid(),
            recorded_at: c.recorded_at,
            scan_media_type: c.scan_media_type,
            scan_size: c.scan_size,
            withdrawn_at: c.withdrawn_at,
            renewal: c.renewal,
        }
    }
}

/// The patient's consents, newest first, withdrawn ones included.
/// A consent whose details fail their integrity check is listed as `UnreadableItem`.
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents", tag = "consent",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = [ConsentListItem]), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn consents(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Vec<Listed<ConsentView>>>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::ConsentRead>(&state, &signed_in, id).await?;
    let found = renrakucho_registry::consents_of(&state.db, &state.keyring, &who, &origin).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|listed| listed.map(Into::into))
            .collect(),
    ))
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

/// The scan of a signed consent form.
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents/{consent}/scan", tag = "consent",
    params(("id" = Uuid, Path, description = "The patient"),
           ("consent" = Uuid, Path, description = "The consent")),
    responses((status = 200, description = "The file (PDF, JPEG or PNG), as an attachment",
               content_type = "application/octet-stream"),
              (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody),
              (status = 409, description = "The record is unreadable (code `unreadable`, names the record)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn consent_scan(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, consent)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = patient_id(&id)?;
    let consent = Uuid::parse_str(&consent).map_err(|_| ApiError::not_found())?;
    let who = authorize::<may::ConsentRead>(&state, &signed_in, id).await?;
    let (media_type, bytes) = renrakucho_registry::consent_scan(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
        consent,
    )
    .await?;
    let extension = renrakucho_files::MediaKind::parse(&media_type)
        .map(|k| k.extension())
        .unwrap_or("bin");
    Ok(download(
        &media_type,
        &format!("consent-{consent}.{extension}"),
        bytes,
    ))
}

/// Records the withdrawal of consent: every facility but the registering one loses access at
/// once.
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents/withdraw", tag = "consent",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Withdrawn"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::ConsentWithdraw>(&state, &signed_in, id).await?;
    renrakucho_registry::withdraw_consent(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A member of a care team as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub facility: Uuid,
    pub code: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub registering: bool,
    /// invited, active, declined, left, removed
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub joined_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl From<TeamMember> for MemberView {
    fn from(m: TeamMember) -> Self {
        Self {
            facility: m.facility.as_uuid(),
            code: m.code,
            name: m.name,
            kind: m.kind.map(|k| k.as_str().to_string()),
            registering: m.registering,
            status: m.status.to_string(),
            invited_at: m.invited_at,
            joined_at: m.joined_at,
            ended_at: m.ended_at,
        }
    }
}

/// The patient's care team.
#[utoipa::path(get, path = "/api/v1/patients/{id}/care-team", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = [MemberView]), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn care_team(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamRead>(&state, &signed_in, id).await?;
    let team = renrakucho_registry::care_team_of(&state.db, &who, &origin).await?;
    Ok(Json(team.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteBody {
    /// The invited facility's code (from the directory).
    pub facility_code: String,
}

/// Invites a facility into the care team. Consent on file is reused: no new form.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team", tag = "care team",
    request_body = InviteBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 201, body = MemberView), (status = 404, body = ErrorBody),
              (status = 409, description = "No participating facility has that code, or it is already invited or in the team", body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamInvite>(&state, &signed_in, id).await?;
    let member =
        renrakucho_registry::invite(&state.db, &who, &origin, body.facility_code.trim()).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok((StatusCode::CREATED, Json(member.into())))
}

/// Accepts the invitation for the signed-in person's facility (its administrator, or staff it
/// allows).
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team/accept", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamAccept>(&state, &signed_in, id).await?;
    renrakucho_registry::accept_invitation(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines the invitation.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team/decline", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn decline(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamAccept>(&state, &signed_in, id).await?;
    renrakucho_registry::decline_invitation(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes the signed-in person's facility out of the care team.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-team/leave", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 204, description = "Done"), (status = 404, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::CareTeamLeave>(&state, &signed_in, id).await?;
    renrakucho_registry::leave(&state.db, &who, &origin).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a facility from the care team, or cancels its invitation (registering facility).
#[utoipa::path(delete, path = "/api/v1/patients/{id}/care-team/{facility}", tag = "care team",
    params(("id" = Uuid, Path, description = "The patient"),
           ("facility" = Uuid, Path, description = "The member facility")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn remove(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path((id, facility)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = patient_id(&id)?;
    let facility = Uuid::parse_str(&facility)
        .map(FacilityId::from_uuid)
        .map_err(|_| ApiError::not_found())?;
    let who = authorize::<may::CareTeamRemove>(&state, &signed_in, id).await?;
    renrakucho_registry::remove_member(&state.db, &who, &origin, facility).await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub patient: Uuid,
    pub registering_facility: Uuid,
    pub registering_facility_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
}

/// Invitations waiting for the signed-in person's facility.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "care team",
    responses((status = 200, body = [InvitationView]), (status = 401, body = ErrorBody),
              (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invitations(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<InvitationView>>, ApiError> {
    let who = staff(&signed_in)?;
    let pending = renrakucho_registry::pending_invitations(&state.db, who).await?;
    Ok(Json(
        pending
            .into_iter()
            .map(|i| InvitationView {
                patient: i.patient.as_uuid(),
                registering_facility: i.registering_facility.as_uuid(),
                registering_facility_name: i.registering_facility_name,
                invited_at: i.invited_at,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeletionBody {
    /// Must be true: the deletion cannot be undone.
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    /// The deletion request's ID (kept, with counts only).
    pub request: Uuid,
    /// What was removed, by kind.
    #[schema(value_type = Object)]
    pub erased: serde_json::Value,
}

/// Records the patient's deletion request (第12条2–3) and carries it out at once: everything
/// stored about the patient is removed in every facility and the patient's key destroyed.
#[utoipa::path(post, path = "/api/v1/patients/{id}/deletion", tag = "patients",
    request_body = DeletionBody,
    params(("id" = Uuid, Path, description = "The patient")),
    responses((status = 200, body = ErasureView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn request_deletion(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    signed_in: SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeletionBody>,
) -> Result<Json<ErasureView>, ApiError> {
    let id = patient_id(&id)?;
    let who = authorize::<may::DeletionRecord>(&state, &signed_in, id).await?;
    if !body.confirm {
        return Err(InvalidValue::new(
            "confirm",
            "削除は取り消せません。確認してください / deletion cannot be undone: confirm it",
        )
        .into());
    }
    let erasure = renrakucho_registry::request_deletion(
        &state.db,
        &state.keyring,
        &state.files,
        &who,
        &origin,
    )
    .await?;
    renrakucho_http::access::changed(&state, id).await;
    Ok(Json(ErasureView {
        request: erasure.request,
        erased: erasure.erased,
    }))
}

/// A facility in the public directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub kind_ja: String,
}

/// The directory of participating facilities (第16条), to choose whom to invite.
#[utoipa::path(get, path = "/api/v1/facilities", tag = "directory",
    responses((status = 200, body = [DirectoryView]), (status = 403, description = "The signed-in person may not do this (a role without the right, a platform operator)", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn directory(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Vec<DirectoryView>>, ApiError> {
    let who = staff(&signed_in)?;
    let entries = renrakucho_registry::directory(&state.db, who.facility).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| DirectoryView {
                id: e.id.as_uuid(),
                code: e.code,
                name: e.name,
                kind: e.kind.as_str().to_string(),
                kind_ja: e.kind.label_ja().to_string(),
            })
            .collect(),
    ))
}
