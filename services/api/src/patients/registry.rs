//! The patient register: listing, searching, registering, showing and updating patients.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use renrakucho_core::{
    Address, BirthDate, CareLevel, InvalidValue, KanaName, PatientName, PatientProfile, Phone,
    PrimaryDoctor, Sex,
};
use renrakucho_http::access::{authorize, permit};
use renrakucho_http::error::{ApiError, ApiJson, ErrorBody};
use renrakucho_http::input::Query;
use renrakucho_http::origin::RequestOrigin;
use renrakucho_http::session::SignedIn;
use renrakucho_http::state::AppState;
use renrakucho_registry::may;
use renrakucho_registry::{Listed, NewPatient};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{patient_id, today};

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
