//! Every request has a deadline (issue 14, ADR 0024): a client that sends a request's head and
//! then stalls its body is answered 503 at the deadline — JSON from the API, a page in Japanese
//! from the portal — its request stopped and nothing changed; the live event stream, whose
//! answer starts at once, goes on past the deadline.

use std::time::Duration;

use renrakucho_testkit::{spawn_app_with, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::notebook_http::Live;
use crate::support::{patient_url, post_note, session_cookie_value, trio, PATIENCE};

const DEADLINE: Duration = Duration::from_secs(1);

/// Sends a request's head announcing a body of `length` bytes, never sends the body, and
/// returns the whole answer (the server closes the connection after it) and how long it took.
async fn stalled(
    app: &TestApp,
    post_to: &str,
    content_type: &str,
    cookie: &str,
    length: usize,
) -> (String, Duration) {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST {post_to} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Cookie: {}={cookie}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n",
        renrakucho_http::session::SESSION_COOKIE
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer before the test's patience ran out")
        .unwrap();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

async fn entry_count(app: &TestApp, client: &reqwest::Client, patient: uuid::Uuid) -> usize {
    let response = client
        .get(patient_url(app, patient, "/entries?limit=100"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: serde_json::Value = response.json().await.unwrap();
    page["entries"].as_array().expect("entries").len()
}

#[tokio::test]
async fn a_stalled_request_is_stopped_at_its_deadline_and_changes_nothing() {
    let app = spawn_app_with(|s| s.request_timeout = DEADLINE).await;
    let t = trio(&app, "DEADLINE").await;
    let cookie = session_cookie_value(&app, Some(&t.b.code), "admin").await;
    let before = entry_count(&app, &t.b_client, t.b_patient).await;

    // The API: an entry whose body never comes.
    let (answer, took) = stalled(
        &app,
        &format!("/api/v1/patients/{}/entries", t.b_patient),
        "application/json",
        &cookie,
        200,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "503 at the deadline: {answer}"
    );
    assert!(
        answer.contains(r#""code":"timeout""#),
        "the API's error: {answer}"
    );
    assert!(took >= DEADLINE, "not before the deadline ({took:?})");
    assert_eq!(entry_count(&app, &t.b_client, t.b_patient).await, before);

    // The portal: a registration form whose body never comes (the CSRF check is waiting for
    // it when the deadline passes).
    let (answer, took) = stalled(
        &app,
        "/patients/new",
        "application/x-www-form-urlencoded",
        &cookie,
        100,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "503 at the deadline: {answer}"
    );
    assert!(answer.contains("text/html"), "a page: {answer}");
    assert!(
        answer.contains("処理に時間がかかりすぎたため中断しました"),
        "in Japanese: {answer}"
    );
    assert!(took >= DEADLINE, "not before the deadline ({took:?})");

    // Requests that do not stall are answered as ever.
    let id = post_note(&app, &t.b_client, t.b_patient, "info", "締め切りの後の記録").await;
    assert_eq!(
        entry_count(&app, &t.b_client, t.b_patient).await,
        before + 1
    );
    assert!(!id.is_nil());
}

#[tokio::test]
async fn the_live_event_stream_goes_on_past_the_deadline() {
    // Long enough for the setting-up requests and the post on a loaded machine (a second was
    // not, once, beside a build), short enough to outlive twice.
    let deadline = DEADLINE * 3;
    let app = spawn_app_with(|s| s.request_timeout = deadline).await;
    let t = trio(&app, "DEADLINE-SSE").await;
    let mut live = Live::open(&app, &t.b_client).await;
    // The condition here is time itself: the stream must outlive the deadline.
    tokio::time::sleep(deadline * 2).await;
    post_note(
        &app,
        &t.c_client,
        t.b_patient,
        "urgent",
        "締め切りを過ぎても届く",
    )
    .await;
    let event = live.next(PATIENCE).await;
    assert!(
        event.is_some(),
        "the stream still delivers after the deadline"
    );
}
