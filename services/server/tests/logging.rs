//! What the logs hold: the real `renrakucho serve --demo` logging everything (`RENRAKUCHO_LOG=trace`,
//! JSON) while a person registers a patient, writes an entry and searches; one line per request
//! with its fields, and none of the patient data, the password or the session cookie anywhere in
//! the output. Then the server's input and view types in `Debug`, and the cause chain of an
//! error as the log gets it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use renrakucho_api::{emergency, notebook, patients};
use renrakucho_core::{Category, FacilityId, PatientId, Priority, StaffId, Vitals};
use renrakucho_http::error::Chain;
use serde_json::{json, Value};
use time::macros::datetime;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_renrakucho");
const LISTENING: &str = "Renrakucho is listening on http://";

/// Patient data this test sends; none of it may reach the log, in any spelling.
const NAME: &str = "鳳凰堂 Quetzalcoatl";
const KANA: &str = "ホウオウドウ ケツァルコアトル";
const ADDRESS: &str = "静岡県伊豆市蓬莱町 Marimbaweg 7";
const PHONE: &str = "0558-77-4321";
const DOCTOR: &str = "鶴亀 Okapini";
const BODY: &str = "Zanzibarmarmalade: 眩暈と嘔気あり、夜間に転倒";
const SEARCH: &str = "Zanzibarmarmalade";
const SIGNER: &str = "玄武 Wombatia";

/// A `renrakucho serve --demo` over a scratch data directory under /tmp (which the
/// `postgres` user can traverse when the tests run as root), logging everything as JSON to
/// `stderr.log`. Dropping it stops the server, waits for its PostgreSQL and removes the
/// directory.
struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Server {
    async fn start() -> Self {
        let dir = Path::new("/tmp").join(format!("renrakucho-logging-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("a log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--demo"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("RENRAKUCHO_DATA_DIR", dir.join("data"))
            .env("RENRAKUCHO_LISTEN", "127.0.0.1:0")
            .env("RENRAKUCHO_LOG", "trace")
            .env("RENRAKUCHO_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("starting renrakucho serve --demo");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut server = Self {
            child,
            dir,
            base: String::new(),
        };
        let line = tokio::time::timeout(Duration::from_secs(180), stdout.next_line())
            .await
            .ok()
            .and_then(|l| l.ok().flatten())
            .unwrap_or_else(|| panic!("no listening line; stderr:\n{}", server.log_tail()));
        let addr = line
            .strip_prefix(LISTENING)
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
        server.base = format!("http://{addr}");
        // Keep reading stdout (the demo sign-in line), so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGTERM, and the exit status within a minute.
    async fn stop(&mut self) -> Option<i32> {
        let pid = self.child.id().expect("the server is running");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("sending SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("no exit within a minute of SIGTERM")
            .expect("waiting for the server");
        status.code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = self.child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.start_kill();
        }
        // A server that died without stopping PostgreSQL leaves it to the cluster's watchdog.
        let pidfile = self.dir.join("data/postgres/pgdata/postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pidfile.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `request handled` lines of the JSON log whose request ID is `id`.
fn request_lines(log: &str, id: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["fields"]["message"] == "request handled" && v["fields"]["request_id"] == id)
        .collect()
}

fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn one_line_per_request_and_no_patient_data_in_the_log_even_at_trace() {
    let mut server = Server::start().await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let signed_in = client
        .post(server.url("/api/v1/auth/sign-in"))
        .json(&json!({
            "facility_code": "IZ-CLINIC", "login_id": "sato", "password": "renrakucho-demo"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200, "{}", server.log_tail());
    let cookie = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("renrakucho_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let me: Value = signed_in.json().await.unwrap();
    // An administrator sets up an authenticator first (ADR 0031): its secret and recovery
    // codes must not reach the log either.
    let begun: Value = client
        .post(server.url("/api/v1/me/second-factor/totp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let totp_secret = begun["secret"].as_str().expect("a secret").to_string();
    let authenticator =
        renrakucho_identity::totp::secret_from_base32(&totp_secret).expect("a base32 secret");
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / renrakucho_identity::totp::STEP_SECONDS;
    let confirmed = client
        .post(server.url("/api/v1/me/second-factor/totp/confirm"))
        .json(&json!({ "one_time_code": authenticator.code_at(step) }))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200, "{}", server.log_tail());
    let recovery: Value = confirmed.json().await.unwrap();
    let recovery_codes: Vec<String> = recovery["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();

    // A patient with a distinctive name, address, phone and doctor; found again by name, shown.
    let registered = client
        .post(server.url("/api/v1/patients"))
        .json(&json!({
            "name": NAME, "kana": KANA, "birth_date": "1931-02-03", "sex": "female",
            "care_level": "care_3", "address": ADDRESS, "phone": PHONE, "primary_doctor": DOCTOR,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201, "{}", server.log_tail());
    let patient: Value = registered.json().await.unwrap();
    let new_patient = patient["id"].as_str().unwrap().to_string();
    let consent = client
        .post(server.url(&format!("/api/v1/patients/{new_patient}/consents")))
        .json(&json!({
            "signer": { "kind": "family", "name": SIGNER, "relation": "長女" },
            "signed_on": "2026-11-30",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 201, "{}", server.log_tail());
    let found: Value = client
        .get(server.url("/api/v1/patients"))
        .query(&[("q", "Quetzalcoatl")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == new_patient.as_str()),
        "{found}"
    );
    let shown = client
        .get(server.url(&format!("/api/v1/patients/{new_patient}")))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);

    // The demo's patients, as the clinic lists them (their data is checked below too).
    let listed: Vec<Value> = client
        .get(server.url("/api/v1/patients"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let abe = listed
        .iter()
        .find(|p| p["name"] == "阿部 ハル")
        .expect("the demo's first patient, who consented");
    let abe_id = abe["id"].as_str().unwrap().to_string();

    // An entry with a distinctive body, under a request ID of our own; then searched for.
    let posted = client
        .post(server.url(&format!("/api/v1/patients/{abe_id}/entries")))
        .header("x-request-id", "logging-test-post")
        .json(&json!({ "category": "complaint", "priority": "urgent", "body": BODY }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201, "{}", server.log_tail());
    let hits: Value = client
        .get(server.url(&format!("/api/v1/patients/{abe_id}/entries/search")))
        .query(&[("q", SEARCH)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits.as_array().map(Vec::len), Some(1), "{hits}");
    // The same through the portal's pages.
    for path in [
        "/patients".to_string(),
        format!("/patients/{abe_id}/notebook/search"),
    ] {
        let page = client
            .get(server.url(&path))
            .header("x-request-id", "logging-test-page")
            .query(&[("q", SEARCH)])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
    }
    // Someone not signed in.
    let anonymous = reqwest::Client::new()
        .get(server.url("/api/v1/me?q=Zanzibarmarmalade"))
        .header("x-request-id", "logging-test-anonymous")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let exit = server.stop().await;
    assert_eq!(exit, Some(0), "{}", server.log_tail());
    let log = server.log();
    assert!(
        log.lines().count() > 20,
        "the log at TRACE should hold far more than this:\n{log}"
    );
    assert!(
        log.contains("\"level\":\"TRACE\"") && log.contains("\"level\":\"DEBUG\""),
        "TRACE and DEBUG events were logged"
    );

    // Not one statement of sqlx's, even at TRACE: entering a tenant context sends the MAC in
    // its text.
    assert!(
        !log.contains("renrakucho_enter("),
        "a statement was logged:\n{}",
        log.lines()
            .filter(|l| l.contains("renrakucho_enter("))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // One line for the post, with its fields.
    let lines = request_lines(&log, "logging-test-post");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["route"], "/api/v1/patients/{id}/entries");
    assert_eq!(fields["status"], 201);
    assert!(
        fields["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{fields}"
    );
    assert_eq!(fields["facility_id"], me["facility"]["id"]);
    assert_eq!(fields["staff_id"], me["id"]);
    assert!(fields.get("operator_id").is_none(), "{fields}");
    // Each page request got a line of its own, under its route template.
    let pages = request_lines(&log, "logging-test-page");
    let routes: Vec<&str> = pages
        .iter()
        .filter_map(|l| l["fields"]["route"].as_str())
        .collect();
    assert_eq!(
        routes,
        ["/patients", "/patients/{id}/notebook/search"],
        "{pages:?}"
    );
    assert!(pages.iter().all(|l| l["fields"]["staff_id"] == me["id"]));
    // Nobody signed in: no one named.
    let anonymous = request_lines(&log, "logging-test-anonymous");
    assert_eq!(anonymous.len(), 1, "{anonymous:?}");
    assert_eq!(anonymous[0]["fields"]["status"], 401);
    assert_eq!(anonymous[0]["fields"]["route"], "/api/v1/me");
    assert!(anonymous[0]["fields"].get("staff_id").is_none());
    assert!(anonymous[0]["fields"].get("facility_id").is_none());

    // Nothing of the patient data, in any spelling a URL or a JSON string may give it; not the
    // demo patients' either, nor the password or the session.
    let sent = [NAME, KANA, ADDRESS, PHONE, DOCTOR, BODY, SIGNER];
    let mut secrets: Vec<String> = sent.iter().map(|s| s.to_string()).collect();
    secrets.extend(
        sent.iter()
            .flat_map(|s| s.split(' '))
            .filter(|part| part.chars().count() >= 3)
            .map(String::from),
    );
    secrets.extend(["Quetzalcoatl", "Marimbaweg", "Okapini", "Wombatia", SEARCH].map(String::from));
    secrets.extend(
        listed
            .iter()
            .filter_map(|p| p["name"].as_str().map(String::from)),
    );
    secrets.extend(
        listed
            .iter()
            .filter_map(|p| p["kana"].as_str().map(String::from)),
    );
    secrets.extend(["仙台市泉区", "090-0000-01", "renrakucho-demo"].map(String::from));
    secrets.push(cookie);
    secrets.push(totp_secret);
    secrets.extend(recovery_codes);
    let lower = log.to_lowercase();
    for secret in &secrets {
        for spelling in [secret.clone(), percent_encoded(secret)] {
            assert!(
                !lower.contains(&spelling.to_lowercase()),
                "the log holds {secret:?} ({spelling}):\n{}",
                log.lines()
                    .filter(|l| l.to_lowercase().contains(&spelling.to_lowercase()))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[test]
fn server_inputs_and_views_print_redacted() {
    let secrets = [
        NAME,
        KANA,
        ADDRESS,
        PHONE,
        DOCTOR,
        BODY,
        SIGNER,
        "1931-02-03",
        "38.7",
    ];
    let content = json!({
        "category": "vitals", "priority": "urgent", "body": BODY,
        "vitals": { "temperature": { "value": 38.7, "unit": "℃" } },
        "mentions": [Uuid::nil()],
    });
    let mut printed = vec![
        format!(
            "{:?}",
            serde_json::from_value::<emergency::EmergencyBody>(json!({
                "card_number": "7K3M-Q9TX-2HCE-WR4P", "birth_date": "1931-02-03", "reason": BODY,
            }))
            .unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::ContentBody>(content.clone()).unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::EntryBodyIn>(content.clone()).unwrap()
        ),
        format!("{:?}", {
            let mut edit = content.clone();
            edit["expected_version"] = json!(3);
            serde_json::from_value::<notebook::EditBody>(edit).unwrap()
        }),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::WithdrawBody>(json!({ "reason": BODY })).unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::SearchQuery>(json!({ "q": SEARCH })).unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::SupportBody>(json!({
                "to": "IZ-NURSE", "kind": "information", "question": BODY, "summary": NAME,
            }))
            .unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::AnswerBody>(json!({ "answer": BODY })).unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<notebook::PreferencesBody>(json!({
                "email": "Quetzalcoatl@example.jp", "live_level": "info",
            }))
            .unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<patients::PatientBody>(json!({
                "name": NAME, "kana": KANA, "birth_date": "1931-02-03", "sex": "female",
                "care_level": "care_3", "address": ADDRESS, "phone": PHONE,
                "primary_doctor": DOCTOR,
            }))
            .unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<patients::PatientQuery>(json!({ "q": NAME })).unwrap()
        ),
        format!(
            "{:?}",
            serde_json::from_value::<patients::ConsentBody>(json!({
                "signer": { "kind": "family", "name": SIGNER, "relation": "長女" },
                "signed_on": "1931-02-03", "scope": BODY,
            }))
            .unwrap()
        ),
        format!(
            "{:?}",
            patients::PatientView {
                id: Uuid::nil(),
                registering_facility: Uuid::nil(),
                name: NAME.into(),
                kana: KANA.into(),
                birth_date: "1931-02-03".into(),
                sex: "female".into(),
                care_level: "care_3".into(),
                address: Some(ADDRESS.into()),
                phone: Some(PHONE.into()),
                primary_doctor: Some(DOCTOR.into()),
                registered_at: datetime!(2026-12-01 09:00 UTC),
            }
        ),
        format!(
            "{:?}",
            patients::PatientLine {
                id: Uuid::nil(),
                name: NAME.into(),
                kana: KANA.into(),
            }
        ),
        format!(
            "{:?}",
            patients::ConsentView {
                id: Uuid::nil(),
                signer: "family".into(),
                signer_name: Some(SIGNER.into()),
                signer_relation: Some("長女".into()),
                signed_on: "1931-02-03".into(),
                scope: BODY.into(),
                collected_by: Uuid::nil(),
                recorded_at: datetime!(2026-12-01 09:00 UTC),
                scan_media_type: None,
                scan_size: None,
                withdrawn_at: None,
                renewal: false,
            }
        ),
        format!(
            "{:?}",
            renrakucho_registry::EmergencyGrant {
                id: Uuid::nil(),
                patient: PatientId::from_uuid(Uuid::nil()),
                facility: FacilityId::from_uuid(Uuid::nil()),
                facility_name: None,
                opened_by: StaffId::from_uuid(Uuid::nil()),
                reason: Some(BODY.into()),
                reason_unreadable: false,
                opened_at: datetime!(2026-12-01 09:00 UTC),
                expires_at: datetime!(2026-12-01 10:00 UTC),
                ended_at: None,
                reviewed_at: None,
                open: true,
                ours: true,
            }
        ),
        format!(
            "{:?}",
            renrakucho_registry::PatientCard {
                patient: PatientId::from_uuid(Uuid::nil()),
                number: "7K3M-Q9TX-2HCE-WR4P".into(),
                issued_at: datetime!(2026-12-01 09:00 UTC),
                failures_within_hour: 0,
                locked_until: None,
                recent_failures: vec![],
            }
        ),
        format!(
            "{:?}",
            renrakucho_notebook::EntryView {
                id: Uuid::nil(),
                patient: PatientId::from_uuid(Uuid::nil()),
                facility: FacilityId::from_uuid(Uuid::nil()),
                facility_name: None,
                author: StaffId::from_uuid(Uuid::nil()),
                author_name: SIGNER.into(),
                author_profession: "doctor".into(),
                category: Category::Vitals,
                priority: Priority::Urgent,
                body: BODY.into(),
                vitals: Some(Vitals {
                    temperature_c: Some(38.7),
                    ..Vitals::default()
                }),
                reply_to: None,
                mentions: vec![],
                version: 1,
                created_at: datetime!(2026-12-01 09:00 UTC),
                updated_at: datetime!(2026-12-01 09:00 UTC),
                attachments: vec![renrakucho_notebook::AttachmentLine {
                    id: Uuid::nil(),
                    file_name: NAME.into(),
                    media_type: "image/png".into(),
                    size: 1,
                    has_thumbnail: false,
                }],
                read: false,
                withdrawn_at: None,
                withdrawal_reason: Some(BODY.into()),
            }
        ),
    ];
    printed.push(format!(
        "{:?}",
        serde_json::from_value::<patients::SignerBody>(
            json!({ "kind": "family", "name": SIGNER, "relation": "長女" })
        )
        .unwrap()
    ));
    for text in &printed {
        for secret in secrets.iter().chain(&["7K3M", "Zanzibar", "Quetzalcoatl"]) {
            assert!(!text.contains(secret), "{secret:?} printed: {text}");
        }
    }
    assert!(
        printed[1].starts_with("ContentBody { mentions: ["),
        "{}",
        printed[1]
    );
}

/// The log gets an error with its causes, each said once.
#[test]
fn errors_are_logged_with_their_cause_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("storage error")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("could not read patient {0}: {1}")]
    struct Middle(Uuid, #[source] std::io::Error);

    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
    let error = Outer(Middle(Uuid::nil(), io));
    assert_eq!(
        Chain(&error).to_string(),
        format!(
            "storage error: could not read patient {}: connection reset",
            Uuid::nil()
        )
    );
}
