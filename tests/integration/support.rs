//! What the integration tests share: the JSON error shape and assertions on it (404/403/422),
//! URLs, waiting for the authorizer to follow the database, the file store's files, the
//! facility's audit log, and a superuser connection to look where the runtime role cannot.

use std::path::PathBuf;
use std::time::Duration;

use renrakucho_authz::{Action, Role};
use renrakucho_core::PatientId;
use renrakucho_store::facilities::Facility;
use renrakucho_testkit::TestApp;
use reqwest::{Client, Response};
use serde_json::Value;
use sqlx::{ConnectOptions, PgConnection};
use uuid::Uuid;

/// A JSON error as the client sees it (the request ID aside, which differs every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

pub async fn failure(response: Response) -> Failure {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    let error = &body["error"];
    Failure {
        status,
        code: error["code"].as_str().unwrap_or_default().to_string(),
        message: error["message"].as_str().unwrap_or_default().to_string(),
        field: error["field"].as_str().map(str::to_string),
    }
}

/// The one answer for a patient that does not exist or is not the facility's business.
pub fn not_found() -> Failure {
    Failure {
        status: 404,
        code: "not_found".into(),
        message: "見つかりません / not found".into(),
        field: None,
    }
}

/// Asserts a 422 naming `field`.
pub async fn invalid(response: Response, field: &str, what: &str) {
    let f = failure(response).await;
    assert_eq!(f.status, 422, "{what}: {f:?}");
    assert_eq!(f.code, "validation", "{what}");
    assert_eq!(f.field.as_deref(), Some(field), "{what}: {f:?}");
    assert!(!f.message.is_empty(), "{what}: a message for people");
}

/// Asserts a 403 `forbidden`.
pub async fn forbidden(response: Response, what: &str) {
    let f = failure(response).await;
    assert_eq!((f.status, f.code.as_str()), (403, "forbidden"), "{what}");
}

pub async fn json_of(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

pub fn patient_url(app: &TestApp, patient: impl std::fmt::Display, rest: &str) -> String {
    app.url(&format!("/api/v1/patients/{patient}{rest}"))
}

pub async fn status_of(client: &Client, url: &str) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

/// Polls `url` until it answers `status`: the authorizer follows the database's announcement,
/// so a change made by another request shows within moments.
pub async fn eventually(client: &Client, url: &str, status: u16) {
    for _ in 0..150 {
        if status_of(client, url).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} did not answer {status} within three seconds");
}

/// Waits (bounded) until the server's authorizer lets some role of `facility` do `action`
/// (or no longer does).
pub async fn authorizer_follows(
    app: &TestApp,
    facility: &Facility,
    patient: Uuid,
    action: Action,
    expected: bool,
) {
    let patient = PatientId::from_uuid(patient);
    for _ in 0..200 {
        let now = app
            .authz
            .allowed(&Role::all(), facility.id, patient, action)
            .await
            .unwrap();
        if now == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the authorizer did not follow the database within two seconds");
}

/// Every file under the server's local file store.
pub fn stored_files(app: &TestApp) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![app.settings.files_dir()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A connection as the cluster's superuser: to look at what the runtime role cannot.
pub async fn superuser(app: &TestApp) -> PgConnection {
    app.database.superuser_options().connect().await.unwrap()
}

/// The facility's audit records, newest first, as its administrator reads them.
pub async fn audit_of(app: &TestApp, admin: &Client) -> Vec<Value> {
    let response = admin
        .get(app.url("/api/v1/audit?limit=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading the audit log");
    json_of(response).await.as_array().expect("a list").clone()
}
