//! Requests dropped by their clients at any point leave nothing behind (issue 10, ADR 0013).
//!
//! For fifteen seconds, clients send requests of every scope — unknown-facility sign-ins (a
//! platform-scope audit record), wrong passwords (a facility-scope record), notebook reads and
//! posts, consent changes (access sync in the server), the live event stream — and drop them
//! after a random 0–5 ms, over raw TCP or with a client timeout. Meanwhile the administrators of
//! two other facilities poll their audit log, patient list and notebook. No answer may hold a
//! record of another facility or be a 5xx; afterwards the PostgreSQL log holds no transaction
//! mix-up, the web pool is within its bound, and the database saw no backend churn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use renrakucho_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::{patient_url, session_cookie_value, superuser, trio};

const RUN_FOR: Duration = Duration::from_secs(15);

/// A random number below `n` (the tests crate has no RNG of its own; v4 UUIDs are random).
fn below(n: u64) -> u64 {
    (Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

/// Sessions opened so far for the test's database, as PostgreSQL counts them.
async fn sessions_opened(app: &TestApp) -> i64 {
    let mut su = superuser(app).await;
    // Backends report their counters when idle, at most once a second. Not a condition this
    // test can see (short of ending every session): reading early only undercounts, which the
    // bound allows for at the start (the pools open then are counted in it) and which can only
    // make the check at the end easier, never fail it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n: i64 = sqlx::query_scalar(
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    sqlx::Connection::close(su).await.ok();
    n
}

/// Waits until the server's web pool holds only idle connections and no other session of the
/// test's database is running a statement or inside a transaction.
async fn quiesced(app: &TestApp) {
    let mut su = superuser(app).await;
    let deadline = Instant::now() + crate::support::PATIENCE;
    loop {
        let (size, idle) = app.server_db.web_pool_size();
        let busy: Vec<(String, String)> = sqlx::query_as(
            "SELECT coalesce(state, ''), coalesce(query, '') FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND backend_type = 'client backend'
                AND (state <> 'idle' OR xact_start IS NOT NULL)",
        )
        .fetch_all(&mut su)
        .await
        .unwrap();
        if size == idle && busy.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still working after {:?}: web pool {size} ({idle} idle), {busy:?}",
            crate::support::PATIENCE
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::Connection::close(su).await.ok();
}

/// One HTTP/1.1 request as bytes, with the session cookie when given.
fn raw_request(method: &str, path: &str, cookie: Option<&str>, body: Option<&Value>) -> Vec<u8> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        head.push_str(&format!(
            "Cookie: {}={cookie}\r\n",
            renrakucho_http::session::SESSION_COOKIE
        ));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// What the aborting clients send: (method, path, cookie, body).
#[derive(Clone)]
struct Attack {
    method: &'static str,
    path: String,
    cookie: Option<String>,
    body: Option<Value>,
}

fn attacks(t: &crate::support::Trio, b_cookie: &str, c_cookie: &str) -> Vec<Attack> {
    let entries = format!("/api/v1/patients/{}/entries", t.b_patient);
    let mut list = vec![
        // Platform scope: the audit record of a sign-in naming no facility.
        Attack {
            method: "POST",
            path: "/api/v1/auth/sign-in".into(),
            cookie: None,
            body: Some(
                json!({ "facility_code": "NOPE-CANCEL", "login_id": "nobody", "password": "x".repeat(12) }),
            ),
        },
        // Facility scope: a wrong password in B.
        Attack {
            method: "POST",
            path: "/api/v1/auth/sign-in".into(),
            cookie: None,
            body: Some(
                json!({ "facility_code": t.b.code, "login_id": "nurse", "password": "wrong password here" }),
            ),
        },
        Attack {
            method: "GET",
            path: entries.clone(),
            cookie: Some(b_cookie.into()),
            body: None,
        },
        Attack {
            method: "GET",
            path: entries.clone(),
            cookie: Some(c_cookie.into()),
            body: None,
        },
        Attack {
            method: "POST",
            path: entries,
            cookie: Some(c_cookie.into()),
            body: Some(
                json!({ "category": "notice", "priority": "info", "body": "打ち切られるかもしれない記録" }),
            ),
        },
        Attack {
            method: "GET",
            path: "/api/v1/patients".into(),
            cookie: Some(b_cookie.into()),
            body: None,
        },
        Attack {
            method: "GET",
            path: "/api/v1/audit?limit=1000".into(),
            cookie: Some(b_cookie.into()),
            body: None,
        },
        // The live event stream, opened and dropped.
        Attack {
            method: "GET",
            path: "/api/v1/events".into(),
            cookie: Some(c_cookie.into()),
            body: None,
        },
    ];
    // Consent changes (the access loader of every process follows them).
    list.push(Attack {
        method: "POST",
        path: format!("/api/v1/patients/{}/consents/withdraw", t.b_patient),
        cookie: Some(b_cookie.into()),
        body: None,
    });
    list.push(Attack {
        method: "POST",
        path: format!("/api/v1/patients/{}/consents", t.b_patient),
        cookie: Some(b_cookie.into()),
        body: Some(json!({
            "signer": { "kind": "family", "name": "境界 和子", "relation": "長女" },
            "signed_on": "2026-11-01",
            "scope": "在宅医療のため、ケアチームの施設間で連絡帳を共有すること",
        })),
    });
    list
}

/// Everything of B and C an answer to A must not mention, and the unknown facility's code.
fn foreign_to_a(t: &crate::support::Trio) -> Vec<String> {
    vec![
        t.b.id.as_uuid().to_string(),
        t.c.id.as_uuid().to_string(),
        t.b_admin.id.as_uuid().to_string(),
        t.b_nurse.id.as_uuid().to_string(),
        t.c_admin.id.as_uuid().to_string(),
        t.b_patient.to_string(),
        "NOPE-CANCEL".into(),
        "unknown_facility".into(),
        "nurse".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_dropped_at_any_point_leave_nothing_behind() {
    let app = Arc::new(
        spawn_app_with(|s| {
            // Cheap hashing and no throttling: the point is many sign-ins dropped mid-way.
            s.password_memory_kib = 8 * 1024;
            s.password_iterations = 1;
            s.signin_account_burst = 1_000_000;
            s.signin_address_burst = 1_000_000;
        })
        .await,
    );
    let t = Arc::new(trio(&app, "CANCEL").await);
    let b_cookie = session_cookie_value(&app, Some(&t.b.code), "admin").await;
    let c_cookie = session_cookie_value(&app, Some(&t.c.code), "admin").await;
    let attacks = Arc::new(attacks(&t, &b_cookie, &c_cookie));
    let log_start = app
        .database
        .server_log()
        .map(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
    let sessions_before = sessions_opened(&app).await;

    let aborted = Arc::new(AtomicU64::new(0));
    let answered_anyway = Arc::new(AtomicU64::new(0));
    let polls = Arc::new(AtomicU64::new(0));
    let slowest_poll_ms = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();

    // Raw TCP: the request written, the socket closed after 0–5 ms.
    for _ in 0..3 {
        let (app, attacks, aborted) = (app.clone(), attacks.clone(), aborted.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let attack = attacks[below(attacks.len() as u64) as usize].clone();
                let wait = Duration::from_micros(below(5_000));
                let Ok(mut stream) = tokio::net::TcpStream::connect(app.addr).await else {
                    continue;
                };
                let bytes = raw_request(
                    attack.method,
                    &attack.path,
                    attack.cookie.as_deref(),
                    attack.body.as_ref(),
                );
                // Sometimes only part of the request.
                let cut = if below(5) == 0 {
                    bytes.len() / 2
                } else {
                    bytes.len()
                };
                if stream.write_all(&bytes[..cut]).await.is_ok() {
                    tokio::time::sleep(wait).await;
                }
                drop(stream);
                aborted.fetch_add(1, Ordering::Relaxed);
                // Paced: every dropped request still runs to its end on the server (two cores).
                tokio::time::sleep(Duration::from_millis(10 + below(20))).await;
            }
        }));
    }
    // A client with a timeout of a few milliseconds.
    for _ in 0..1 {
        let (app, attacks, aborted, answered_anyway) = (
            app.clone(),
            attacks.clone(),
            aborted.clone(),
            answered_anyway.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().build().unwrap();
            while Instant::now() < deadline {
                let attack = attacks[below(attacks.len() as u64) as usize].clone();
                let timeout = Duration::from_micros(200 + below(7_800));
                let mut request = client
                    .request(attack.method.parse().unwrap(), app.url(&attack.path))
                    .timeout(timeout);
                if let Some(cookie) = &attack.cookie {
                    request = request.header(
                        reqwest::header::COOKIE,
                        format!("{}={cookie}", renrakucho_http::session::SESSION_COOKIE),
                    );
                }
                if let Some(body) = &attack.body {
                    request = request.json(body);
                }
                match request.send().await {
                    Ok(response) => {
                        // An event stream answers at once and streams on: drop it now.
                        drop(response);
                        answered_anyway.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        aborted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10 + below(20))).await;
            }
        }));
    }
    // A's administrator: its audit log, its patients, its notebook; nothing of anyone else.
    {
        let (app, t, polls, slowest) = (
            app.clone(),
            t.clone(),
            polls.clone(),
            slowest_poll_ms.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let foreign = foreign_to_a(&t);
            let a_staff = t.a_admin.id.as_uuid().to_string();
            let paths = [
                "/api/v1/audit?limit=1000".to_string(),
                "/api/v1/patients".to_string(),
                format!("/api/v1/patients/{}/entries", t.a_patient),
            ];
            let mut i = 0;
            while Instant::now() < deadline {
                let path = &paths[i % paths.len()];
                i += 1;
                let started = Instant::now();
                let response = t.a_client.get(app.url(path)).send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                assert!(status < 500, "A: {path}: {status} {text}");
                assert_eq!(status, 200, "A: {path}: {text}");
                for secret in &foreign {
                    assert!(
                        !text.contains(secret.as_str()),
                        "A's {path} mentions {secret}: {text}"
                    );
                }
                let body: Value = serde_json::from_str(&text).unwrap();
                if path.starts_with("/api/v1/audit") {
                    for record in body.as_array().unwrap() {
                        let actor = record["actor_id"].as_str();
                        assert!(
                            actor.is_none() || actor == Some(a_staff.as_str()),
                            "A's audit log: {record}"
                        );
                    }
                } else if path == "/api/v1/patients" {
                    assert!(
                        text.contains(&t.a_patient.to_string()),
                        "A's patient list: {text}"
                    );
                } else {
                    slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    for entry in body["entries"].as_array().unwrap() {
                        let id = Uuid::parse_str(entry["id"].as_str().unwrap()).unwrap();
                        assert!(t.a_entries.contains(&id), "A's notebook: {entry}");
                        assert_eq!(
                            entry["patient"].as_str(),
                            Some(t.a_patient.to_string().as_str())
                        );
                        assert_eq!(
                            entry["facility"].as_str(),
                            Some(t.a.id.as_uuid().to_string().as_str())
                        );
                    }
                }
                polls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // C's administrator: its audit log (its own staff only, none of B's, no platform record).
    {
        let (app, t, polls) = (app.clone(), t.clone(), polls.clone());
        tasks.push(tokio::spawn(async move {
            let c_staff = t.c_admin.id.as_uuid().to_string();
            let foreign = [
                t.b_admin.id.as_uuid().to_string(),
                t.b_nurse.id.as_uuid().to_string(),
                t.a_admin.id.as_uuid().to_string(),
                t.a_patient.to_string(),
                "NOPE-CANCEL".to_string(),
                "unknown_facility".to_string(),
            ];
            while Instant::now() < deadline {
                let response = t
                    .c_client
                    .get(app.url("/api/v1/audit?limit=1000"))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                assert_eq!(status, 200, "C's audit log: {text}");
                for secret in &foreign {
                    assert!(
                        !text.contains(secret.as_str()),
                        "C's audit log mentions {secret}: {text}"
                    );
                }
                let body: Value = serde_json::from_str(&text).unwrap();
                for record in body.as_array().unwrap() {
                    let actor = record["actor_id"].as_str();
                    assert!(
                        actor.is_none() || actor == Some(c_staff.as_str()),
                        "C's audit log: {record}"
                    );
                }
                polls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task");
    }
    // Requests still running on the server run to their end: every connection of its web pool
    // back and idle, and no session of the database working or inside a transaction.
    quiesced(&app).await;

    let (size, idle) = app.server_db.web_pool_size();
    let sessions_after = sessions_opened(&app).await;
    let opened = sessions_after - sessions_before;
    let max_web = app.settings.database_max_connections as i64;
    // Every pool of the server and of the fixtures' second process, filled once, and this
    // test's own superuser connections.
    let server_pools = max_web + 4 * (max_web / 2).max(2) + 4;
    let fixture_pools = 4 + 4 * 2 + 4;
    let bound = server_pools + fixture_pools + 4;
    eprintln!(
        "cancellation: {} requests aborted ({} answered before their client gave up), {} polls; \
         slowest notebook read {} ms; web pool {size} ({idle} idle, at most {max_web}); sessions \
         opened during the run: {opened} (bound {bound})",
        aborted.load(Ordering::Relaxed),
        answered_anyway.load(Ordering::Relaxed),
        polls.load(Ordering::Relaxed),
        slowest_poll_ms.load(Ordering::Relaxed),
    );
    assert!(
        aborted.load(Ordering::Relaxed) > 300,
        "enough requests were aborted"
    );
    assert!(
        polls.load(Ordering::Relaxed) > 20,
        "the readers got through"
    );
    assert!(
        size <= app.settings.database_max_connections as usize,
        "web pool {size}"
    );
    assert!(
        opened <= bound,
        "{opened} backend sessions opened for {} aborted requests",
        aborted.load(Ordering::Relaxed)
    );

    if let (Some(path), Some(start)) = (app.database.server_log(), log_start) {
        let log = std::fs::read(&path).unwrap();
        let appended = String::from_utf8_lossy(&log[(start as usize).min(log.len())..]).to_string();
        for complaint in [
            "there is already a transaction in progress",
            "there is no transaction in progress",
        ] {
            let lines: Vec<&str> = appended.lines().filter(|l| l.contains(complaint)).collect();
            assert!(lines.is_empty(), "the server log: {lines:#?}");
        }
        eprintln!(
            "cancellation: {} lines appended to the PostgreSQL log, none about transactions",
            appended.lines().count()
        );
    }

    // The server still serves everyone as before.
    let status = t
        .a_client
        .get(patient_url(&app, t.a_patient, "/entries"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
