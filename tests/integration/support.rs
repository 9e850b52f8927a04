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

/// How long a test waits for what must happen (an event, the authorizer following the
/// database, a background task's work). Generous: a passing test waits only as long as the
/// thing takes, and a loaded two-core machine can take seconds for what takes milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every 10 ms until it holds; panics naming `what` after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_within(what, PATIENCE, done).await;
}

/// Polls `done` every 10 ms until it holds; panics naming `what` after `bound` (for a test whose
/// point is that it happens sooner than something else would make it happen).
pub async fn wait_within<F, Fut>(what: &str, bound: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `url` until it answers `status`: the authorizer follows the database's announcement,
/// so a change made by another request shows within moments.
pub async fn eventually(client: &Client, url: &str, status: u16) {
    wait_until(&format!("{url} answering {status}"), || async {
        status_of(client, url).await == status
    })
    .await;
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
    wait_until("the authorizer following the database", || async {
        app.authz
            .allowed(&Role::all(), facility.id, patient, action)
            .await
            .unwrap()
            == expected
    })
    .await;
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

/// The number on the patient's card, as the registering facility reads it to print the card.
pub async fn card_number(app: &TestApp, registering: &Client, patient: Uuid) -> String {
    let response = registering
        .get(patient_url(app, patient, "/card"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading the patient's card");
    json_of(response).await["number"]
        .as_str()
        .expect("the card number")
        .to_string()
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

// ---------------------------------------------------------------------------------------------
// A three-facility network (boundary.rs, cancellation.rs): B registers a patient, records the
// consent and brings C into the care team, both write in the notebook; A has nothing to do with
// B's patient and a patient of its own. Everything through the HTTP API but the accounts and
// the patients' registration.

/// The network [`trio`] builds, with a signed-in client per facility administrator.
pub struct Trio {
    /// Unrelated to B's patient (the attacker's facility in the boundary tests).
    pub a: Facility,
    /// Registers the shared patient.
    pub b: Facility,
    /// A member of the care team of B's patient.
    pub c: Facility,
    pub a_admin: renrakucho_store::staff::StaffAccount,
    pub b_admin: renrakucho_store::staff::StaffAccount,
    pub b_nurse: renrakucho_store::staff::StaffAccount,
    pub c_admin: renrakucho_store::staff::StaffAccount,
    pub a_patient: Uuid,
    pub b_patient: Uuid,
    pub a_client: Client,
    pub b_client: Client,
    pub c_client: Client,
    /// Entries on B's patient (B's two, C's one) and on A's patient.
    pub b_entries: Vec<Uuid>,
    pub a_entries: Vec<Uuid>,
}

/// Posts a notebook entry over HTTP; its ID.
pub async fn post_note(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    priority: &str,
    body: &str,
) -> Uuid {
    let response = client
        .post(patient_url(app, patient, "/entries"))
        .json(&serde_json::json!({ "category": "notice", "priority": priority, "body": body }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "posting an entry");
    let entry = json_of(response).await;
    Uuid::parse_str(entry["id"].as_str().expect("the entry's ID")).unwrap()
}

/// Facilities `{prefix}-A`, `-B`, `-C` (`prefix` at most 14 characters).
pub async fn trio(app: &TestApp, prefix: &str) -> Trio {
    use renrakucho_core::{FacilityKind, Profession, StaffRole};
    use serde_json::json;
    let a = app
        .seed_facility(&format!("{prefix}-A"), FacilityKind::Pharmacy)
        .await;
    let b = app
        .seed_facility(&format!("{prefix}-B"), FacilityKind::Clinic)
        .await;
    let c = app
        .seed_facility(&format!("{prefix}-C"), FacilityKind::VisitingNurseStation)
        .await;
    let a_admin = app
        .seed_staff(
            &a,
            "admin",
            StaffRole::FacilityAdmin,
            Profession::Pharmacist,
        )
        .await;
    let b_admin = app
        .seed_staff(&b, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    let b_nurse = app
        .seed_staff(&b, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let c_admin = app
        .seed_staff(&c, "admin", StaffRole::FacilityAdmin, Profession::Nurse)
        .await;
    let b_patient = app
        .seed_patient(&b_admin, "境界 花子", "キョウカイ ハナコ")
        .await
        .id
        .as_uuid();
    let a_patient = app
        .seed_patient(&a_admin, "薬局 次郎", "ヤッキョク ジロウ")
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &b, b_patient, Action::NotebookWrite, true).await;
    authorizer_follows(app, &a, a_patient, Action::NotebookWrite, true).await;
    let a_client = app.client_for(&a, "admin").await;
    let b_client = app.client_for(&b, "admin").await;
    let c_client = app.client_for(&c, "admin").await;

    let response = b_client
        .post(patient_url(app, b_patient, "/consents"))
        .json(&json!({
            "signer": { "kind": "family", "name": "境界 和子", "relation": "長女" },
            "signed_on": "2026-11-01",
            "scope": "在宅医療のため、ケアチームの施設間で連絡帳を共有すること",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "recording the consent");
    let response = b_client
        .post(patient_url(app, b_patient, "/care-team"))
        .json(&json!({ "facility_code": c.code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "inviting C");
    authorizer_follows(app, &c, b_patient, Action::CareTeamAccept, true).await;
    let response = c_client
        .post(patient_url(app, b_patient, "/care-team/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "C accepts");
    eventually(&c_client, &patient_url(app, b_patient, "/entries"), 200).await;

    let b_entries = vec![
        post_note(app, &b_client, b_patient, "info", "境界の記録 その一").await,
        post_note(app, &b_client, b_patient, "urgent", "境界の記録 その二").await,
        post_note(app, &c_client, b_patient, "info", "訪問看護の記録").await,
    ];
    let a_entries = vec![post_note(app, &a_client, a_patient, "info", "薬局の記録").await];
    for (client, email) in [
        (&b_client, "b-admin@clinic.example.jp"),
        (&a_client, "a-admin@pharmacy.example.jp"),
    ] {
        let response = client
            .put(app.url("/api/v1/notifications/settings"))
            .json(&json!({ "email": email, "live_level": "info", "digest_enabled": true, "digest_hour": 8 }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "saving notification settings");
    }
    Trio {
        a,
        b,
        c,
        a_admin,
        b_admin,
        b_nurse,
        c_admin,
        a_patient,
        b_patient,
        a_client,
        b_client,
        c_client,
        b_entries,
        a_entries,
    }
}

/// Signs `login` of the facility with code `facility_code` (`None`: an operator) in with the
/// fixture password from a client without a cookie store; the session cookie's value.
pub async fn session_cookie_value(
    app: &TestApp,
    facility_code: Option<&str>,
    login: &str,
) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = app
        .sign_in_with(
            &client,
            facility_code,
            login,
            renrakucho_testkit::FIXTURE_PASSWORD,
        )
        .await;
    assert_eq!(response.status(), 200, "signing in {login}");
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| {
            let first = h.split(';').next()?.trim();
            first
                .strip_prefix(renrakucho_http::session::SESSION_COOKIE)?
                .strip_prefix('=')
                .map(str::to_string)
        })
        .expect("a session cookie")
}

/// The text of a plain-text message as the sink stored it (base64 or quoted-printable undone).
pub fn mail_text(raw: &str) -> (String, String) {
    use base64::Engine;
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let encoding = head
        .lines()
        .find_map(|l| {
            let lower = l.to_ascii_lowercase();
            lower
                .strip_prefix("content-transfer-encoding:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    let text = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body"),
            )
            .expect("UTF-8 body")
        }
        "quoted-printable" => {
            let joined = body.replace("=\n", "");
            let b = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 3 <= b.len() {
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
            String::from_utf8(out).expect("UTF-8 body")
        }
        _ => body.to_string(),
    };
    (head.to_string(), text)
}
