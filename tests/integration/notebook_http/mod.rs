//! The contact notebook (連絡帳) over HTTP, as the care team's browsers and phones call it:
//! entries of every kind with checked vital signs, replies and mentions, keyset pages, edits
//! with optimistic concurrency and a kept history, withdrawal, read receipts and unread counts,
//! search, attachments cleaned of their metadata and stored encrypted (locally and in S3),
//! exports, support requests to a facility outside the care team, notifications (feed, live
//! over server-sent events, the daily e-mail digest). A facility that has nothing to do with
//! the patient gets the same 404 as for a patient that does not exist, everywhere.
//!
//! The fixture network: a clinic (registering the patient: a doctor who is its facility
//! administrator, a nurse and a clerk), a visiting-nurse station in the care team with the
//! patient's consent on file (its administrator accepted the invitation; a nurse), and an
//! unrelated hospital (a doctor).
//!
//! Shared here: the fixture network, the calls every feature makes (posting, reading, editing,
//! uploading), and the error assertions; one file per feature beside it.

mod attachments;
mod digest;
mod editing;
mod export;
mod isolation;
mod live;
mod notifications;
mod posting;
mod read_receipts;
mod search;
mod support_requests;
mod timeline;

pub(crate) use live::Live;

use std::time::Duration;

use renrakucho_authz::Action;
use renrakucho_core::{
    Category, DisplayName, EntryBody, FacilityKind, LoginId, Password, PatientId, Priority,
    Profession, StaffRole, Vitals,
};
use renrakucho_identity::{PasswordHasher, PasswordParams};
use renrakucho_notebook::{EntryContent, NewEntryInput};
use renrakucho_registry::StaffActor;
use renrakucho_server::admin_commands::{self, StaffToIssue};
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::StaffAccount;
pub(crate) use renrakucho_testkit::acting::Writer;
use renrakucho_testkit::{spawn_app, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

const SIGNED_ON: &str = "2026-11-01";
const SCOPE: &str = "在宅医療のため、ケアチームの施設間で連絡帳を共有すること";

/// The fixture patient (fictional): neither part of the name appears in any fixed text of
/// the product, so a leak is noticed.
const PATIENT_NAME: &str = "梅田 花子";
const PATIENT_KANA: &str = "ウメダ ハナコ";

const DOCTOR: &str = "院長 一郎";
const NURSE: &str = "看護 花江";
const CLERK: &str = "事務 次郎";
const STATION_ADMIN: &str = "所長 三郎";
const MEMBER: &str = "訪問 桜";
const OUTSIDER: &str = "病院 五郎";

const CATEGORIES: [&str; 8] = [
    "instruction",
    "treatment",
    "support",
    "complaint",
    "vitals",
    "medication",
    "notice",
    "other",
];

// ---------------------------------------------------------------------------------------------
// Errors as the client sees them (the shared ones are in `support.rs`).

/// Asserts a 409 `conflict`.
async fn conflict(response: Response, what: &str) {
    let f = failure(response).await;
    assert_eq!(
        (f.status, f.code.as_str()),
        (409, "conflict"),
        "{what}: {f:?}"
    );
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an ID").to_string()
}

/// `X-File-Name`: every byte but unreserved ASCII as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

// ---------------------------------------------------------------------------------------------
// The network.

/// An active staff account with its own display name and [`FIXTURE_PASSWORD`].
async fn person(
    app: &TestApp,
    facility: &Facility,
    login: &str,
    role: StaffRole,
    profession: Profession,
    name: &str,
) -> StaffAccount {
    let hasher = PasswordHasher::new(PasswordParams {
        memory_kib: app.settings.password_memory_kib,
        iterations: app.settings.password_iterations,
        parallelism: 1,
    })
    .expect("hasher");
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).expect("password");
    let account = admin_commands::create_staff(
        &app.db,
        &hasher,
        facility,
        StaffToIssue {
            login_id: LoginId::parse(login).expect("login"),
            name: DisplayName::parse(name).expect("name"),
            role,
            profession,
            password: &password,
            password_must_change: false,
        },
    )
    .await
    .expect("seeding staff");
    app.enrol_second_factor(
        &facility.code,
        account.facility_id,
        account.id,
        &account.login_id,
    )
    .await;
    account
}

/// The staff member as the care domain's author (for bulk set-up without HTTP).
fn author(staff: &StaffAccount) -> Writer {
    Writer {
        actor: StaffActor {
            staff: staff.id,
            facility: staff.facility_id,
        },
        name: staff.display_name.clone(),
        profession: staff.profession,
        facility_admin: staff.role == StaffRole::FacilityAdmin,
    }
}

struct Net {
    clinic: Facility,
    station: Facility,
    hospital: Facility,
    /// The clinic's doctor, its facility administrator.
    admin: StaffAccount,
    /// The visiting-nurse station's nurse (a care-team member's staff).
    member: StaffAccount,
    patient: Uuid,
    /// Clients: the clinic's doctor (admin), nurse and clerk; the station's administrator and
    /// nurse; the hospital's doctor.
    doctor_c: Client,
    nurse_c: Client,
    clerk_c: Client,
    station_admin_c: Client,
    member_c: Client,
    outsider_c: Client,
}

async fn network(app: &TestApp) -> Net {
    let clinic = app.seed_facility("NB-CLINIC", FacilityKind::Clinic).await;
    let station = app
        .seed_facility("NB-NURSE", FacilityKind::VisitingNurseStation)
        .await;
    let hospital = app.seed_facility("NB-HOSP", FacilityKind::Hospital).await;
    let admin = person(
        app,
        &clinic,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
        DOCTOR,
    )
    .await;
    person(
        app,
        &clinic,
        "nurse",
        StaffRole::Staff,
        Profession::Nurse,
        NURSE,
    )
    .await;
    person(
        app,
        &clinic,
        "clerk",
        StaffRole::Staff,
        Profession::Clerk,
        CLERK,
    )
    .await;
    person(
        app,
        &station,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Nurse,
        STATION_ADMIN,
    )
    .await;
    let member = person(
        app,
        &station,
        "nurse",
        StaffRole::Staff,
        Profession::Nurse,
        MEMBER,
    )
    .await;
    person(
        app,
        &hospital,
        "doctor",
        StaffRole::Staff,
        Profession::Doctor,
        OUTSIDER,
    )
    .await;
    let patient = app
        .seed_patient(&admin, PATIENT_NAME, PATIENT_KANA)
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &clinic, patient, Action::NotebookWrite, true).await;
    let net = Net {
        doctor_c: app.client_for(&clinic, "admin").await,
        nurse_c: app.client_for(&clinic, "nurse").await,
        clerk_c: app.client_for(&clinic, "clerk").await,
        station_admin_c: app.client_for(&station, "admin").await,
        member_c: app.client_for(&station, "nurse").await,
        outsider_c: app.client_for(&hospital, "doctor").await,
        clinic,
        station,
        hospital,
        admin,
        member,
        patient,
    };
    net.share(app, patient).await;
    net
}

fn consent_body() -> Value {
    json!({
        "signer": { "kind": "family", "name": "試験 和子", "relation": "長女" },
        "signed_on": SIGNED_ON,
        "scope": SCOPE,
    })
}

impl Net {
    /// Consent on file, the station invited and accepted (all through the API), and the
    /// station's nurse reading the notebook.
    async fn share(&self, app: &TestApp, patient: Uuid) {
        let response = self
            .doctor_c
            .post(patient_url(app, patient, "/consents"))
            .json(&consent_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "recording the consent");
        let response = self
            .doctor_c
            .post(patient_url(app, patient, "/care-team"))
            .json(&json!({ "facility_code": self.station.code }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "inviting the station");
        authorizer_follows(app, &self.station, patient, Action::CareTeamAccept, true).await;
        let response = self
            .station_admin_c
            .post(patient_url(app, patient, "/care-team/accept"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "the station accepts");
        eventually(&self.member_c, &patient_url(app, patient, "/entries"), 200).await;
    }

    fn station_id(&self) -> String {
        self.station.id.as_uuid().to_string()
    }

    fn clinic_id(&self) -> String {
        self.clinic.id.as_uuid().to_string()
    }
}

/// A second patient of the clinic (no consent, no care team), once the server's authorizer
/// knows of it: registration is announced to the authorizer asynchronously.
async fn another_patient(app: &TestApp, net: &Net) -> Uuid {
    let patient = app
        .seed_patient(&net.admin, "松田 次郎", "マツダ ジロウ")
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &net.clinic, patient, Action::NotebookWrite, true).await;
    patient
}

// ---------------------------------------------------------------------------------------------
// Entries.

fn good_vitals() -> Value {
    json!({
        "temperature": { "value": 36.8, "unit": "℃" },
        "systolic": { "value": 128, "unit": "mmHg" },
        "diastolic": { "value": 76, "unit": "mmHg" },
    })
}

async fn try_post(app: &TestApp, client: &Client, patient: Uuid, body: &Value) -> Response {
    client
        .post(patient_url(app, patient, "/entries"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Posts an entry (201); the entry.
async fn post(app: &TestApp, client: &Client, patient: Uuid, body: Value) -> Value {
    let response = try_post(app, client, patient, &body).await;
    if response.status() != 201 {
        panic!("posting an entry: {:?}", failure(response).await);
    }
    json_of(response).await
}

/// A simple entry: category, priority, body.
async fn note(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    category: &str,
    priority: &str,
    body: &str,
) -> String {
    id_of(
        &post(
            app,
            client,
            patient,
            json!({ "category": category, "priority": priority, "body": body }),
        )
        .await,
    )
}

/// One page of the timeline (`query` without the leading `?`).
async fn page(app: &TestApp, client: &Client, patient: Uuid, query: &str) -> Value {
    let response = client
        .get(patient_url(app, patient, &format!("/entries?{query}")))
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        panic!("reading the timeline: {:?}", failure(response).await);
    }
    json_of(response).await
}

/// Every entry ID of the timeline, newest first, following the cursors.
async fn timeline_ids(app: &TestApp, client: &Client, patient: Uuid, filter: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("limit=100&{filter}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let p = page(app, client, patient, &query).await;
        ids.extend(p["entries"].as_array().unwrap().iter().map(id_of));
        match p["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
}

async fn detail(app: &TestApp, client: &Client, patient: Uuid, entry: &str) -> Value {
    let response = client
        .get(patient_url(app, patient, &format!("/entries/{entry}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading an entry");
    json_of(response).await
}

async fn edit(app: &TestApp, client: &Client, patient: Uuid, entry: &str, body: Value) -> Response {
    client
        .put(patient_url(app, patient, &format!("/entries/{entry}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn withdraw(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    entry: &str,
    reason: &str,
) -> Response {
    client
        .post(patient_url(
            app,
            patient,
            &format!("/entries/{entry}/withdraw"),
        ))
        .json(&json!({ "reason": reason }))
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Attachments and notifications: the calls several features make.

pub(crate) async fn upload(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    content_type: Option<&str>,
    name: &str,
    bytes: Vec<u8>,
) -> Response {
    let mut request = client
        .post(patient_url(app, patient, "/attachments"))
        .header("x-file-name", percent_encode(name))
        .body(bytes);
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    request.send().await.unwrap()
}

/// Uploads a file (201); its description.
pub(crate) async fn uploaded(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    content_type: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Value {
    let response = upload(app, client, patient, Some(content_type), name, bytes).await;
    if response.status() != 201 {
        panic!("uploading a file: {:?}", failure(response).await);
    }
    json_of(response).await
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn save_settings(app: &TestApp, client: &Client, body: Value) -> Response {
    client
        .put(app.url("/api/v1/notifications/settings"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The person's feed: (kind, entry) pairs.
async fn feed(app: &TestApp, client: &Client) -> Vec<(String, String)> {
    let response = client
        .get(app.url("/api/v1/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading notifications");
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_string(),
                n["entry"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
