//! The consent-gated sharing API over HTTP, as a browser or another system calls it: another
//! facility's patient is indistinguishable from one that does not exist; consents carry real
//! scans, stored encrypted and sent back as attachments; roles are checked; invitations,
//! emergency access and deletion requests work end to end and leave nothing behind.
//!
//! Shared here: the fixture consent (with or without a scan), recording it and registering a
//! patient through the API, and the patients a list answers; hiding another facility's
//! patients, consents, roles, invitations, emergency access and deletion each in a file beside
//! it.

mod consents;
mod deletion;
mod emergency;
mod invitations;
mod not_found;
mod roles;

use renrakucho_authz::Action;
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_testkit::{spawn_app, TestApp};
use reqwest::Client;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// The signing date of the fixture consents.
const SIGNED_ON: &str = "2026-11-01";
const SCOPE: &str = "在宅医療のため、ケアチームの施設間で連絡帳を共有すること";
/// A reason long enough for emergency access (10–500 characters).
const REASON: &str = "救急搬送時に既往歴と服薬内容を確認するため";
/// The fixture patients' date of birth (`TestApp::seed_patient`).
const BIRTH_DATE: &str = "1940-01-15";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png_1x1() -> Vec<u8> {
    renrakucho_testkit::PNG_1X1.to_vec()
}

fn consent_body(scan: Option<&[u8]>) -> Value {
    let mut body = json!({
        "signer": { "kind": "family", "name": "試験 花子", "relation": "長女" },
        "signed_on": SIGNED_ON,
        "scope": SCOPE,
    });
    if let Some(scan) = scan {
        body["scan_base64"] = json!(base64(scan));
    }
    body
}

/// Records a family member's consent through the API; the new consent's ID.
async fn record_consent(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    scan: Option<&[u8]>,
) -> Uuid {
    let response = client
        .post(patient_url(app, patient, "/consents"))
        .json(&consent_body(scan))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "recording a consent");
    let created = json_of(response).await;
    Uuid::parse_str(created["id"].as_str().expect("the consent's ID")).unwrap()
}

fn patient_body(name: &str) -> Value {
    json!({
        "name": name,
        "kana": "カキカエ ハナコ",
        "birth_date": BIRTH_DATE,
        "sex": "female",
        "care_level": "care_2",
    })
}

/// The patient IDs a list answers.
async fn listed(app: &TestApp, client: &Client, q: &str) -> Vec<String> {
    let response = client
        .get(app.url("/api/v1/patients"))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "listing patients");
    json_of(response)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_string())
        .collect()
}
