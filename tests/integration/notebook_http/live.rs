//! Live notifications over server-sent events: no content, only for the care team, quiet
//! hours, across server processes, and a stream that ends with its session.
//!
//! That nothing reaches a stream is never waited out: something that must reach it is sent
//! after, and has to be the next thing it hears.

use super::*;

/// A server-sent-events stream read chunk by chunk.
pub(crate) struct Live {
    response: Response,
    buffer: Vec<u8>,
    /// Everything received, to check what never appears.
    pub(crate) raw: Vec<u8>,
}

impl Live {
    pub(crate) async fn open(app: &TestApp, client: &Client) -> Self {
        let response = client.get(app.url("/api/v1/events")).send().await.unwrap();
        assert_eq!(response.status(), 200, "opening the event stream");
        assert!(header(&response, "content-type").starts_with("text/event-stream"));
        Self {
            response,
            buffer: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// The next `notification` event's data within `wait`, or `None`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("UTF-8 events");
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = Some(e.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if event.as_deref() == Some("notification") {
                    return Some(serde_json::from_str(&data).expect("JSON data"));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match tokio::time::timeout(left, self.response.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => {
                    self.buffer.extend_from_slice(&chunk);
                    self.raw.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => panic!("the event stream ended"),
                Ok(Err(e)) => panic!("reading the event stream: {e}"),
            }
        }
    }
}

impl Live {
    /// The next `notification` event, which must come (within [`PATIENCE`]).
    pub(crate) async fn expect(&mut self, what: &str) -> Value {
        self.next(PATIENCE)
            .await
            .unwrap_or_else(|| panic!("{what}: no live notification within {PATIENCE:?}"))
    }

    /// Whether the stream ends within `wait` (events and keep-alives before the end are
    /// skipped).
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
            }
        }
    }
}

/// Signing out (here, in the same browser; equally in another tab) stops the live
/// notifications of that session: an open stream does not outlive its session.
#[tokio::test]
async fn the_event_stream_ends_when_its_session_is_signed_out() {
    // A short idle timeout: the stream checks its session every two seconds.
    let app = spawn_app_with(|s| {
        s.session_idle_timeout = Duration::from_secs(8);
    })
    .await;
    let clinic = app.seed_facility("SSE-END", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &client).await;
    assert!(
        !live.ends_within(Duration::from_secs(3)).await,
        "the stream stays open while the session is good"
    );
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "signing out");
    assert!(
        live.ends_within(PATIENCE).await,
        "the stream ends after signing out"
    );
    let again = client.get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(again.status(), 401, "and cannot be opened again");
}

/// A stream does not outlive its session's password either: a change made in another session
/// ends it (the session's password version is behind), and so does a change becoming required.
#[tokio::test]
async fn the_event_stream_ends_when_the_password_changes_or_must_change() {
    // A short idle timeout: the stream checks its session every two seconds.
    let app = spawn_app_with(|s| {
        s.session_idle_timeout = Duration::from_secs(8);
    })
    .await;
    let clinic = app.seed_facility("SSE-PW", FacilityKind::Clinic).await;
    let nurse = app
        .seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let phone = app.client_for(&clinic, "nurse").await;
    let desk = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &phone).await;
    let new_password = "Umegaoka-7-kaidan-no-neko";
    let changed = desk
        .post(app.url("/api/v1/me/password"))
        .json(&json!({ "current_password": FIXTURE_PASSWORD, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    assert!(
        live.ends_within(PATIENCE).await,
        "the other session's stream ends with the change"
    );
    let me = phone.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);

    let mut live = Live::open(&app, &desk).await;
    let mut tx = app
        .db
        .begin(renrakucho_store::Scope::Facility(clinic.id))
        .await
        .unwrap();
    sqlx::query("UPDATE staff_accounts SET password_must_change = true WHERE id = $1")
        .bind(nurse.id.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        live.ends_within(PATIENCE).await,
        "the stream ends once the password must be changed"
    );
    let again = desk.get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(
        again.status(),
        403,
        "and cannot be opened again until it is"
    );
}

/// With the default idle timeout (30 minutes; the stream checks its session every 30 s), a
/// sign-out in the same server ends the stream at once, not at the next check: through the
/// API and through the portal's sign-out form.
#[tokio::test]
async fn signing_out_ends_the_event_stream_at_once() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("SSE-NOW", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &client).await;
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "signing out");
    // At once: well before the stream's first check of its session, 30 s after it opened.
    assert!(
        live.ends_within(Duration::from_secs(15)).await,
        "the stream ends at the sign-out"
    );

    let client = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &client).await;
    let token = app.form_token(&client, "/").await;
    let response = client
        .post(app.url("/logout"))
        .form(&[("authenticity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "signing out through the portal");
    assert!(
        live.ends_within(Duration::from_secs(15)).await,
        "the stream ends at the portal's sign-out"
    );
}

/// A support request from the clinic to the unrelated hospital, about the patient: a live
/// notification the hospital's people must get. Sent after something they must not hear of, it
/// has to be the next thing they hear (`hospital_hears_only_the_marker`).
async fn hospital_marker(app: &TestApp, net: &Net) -> String {
    let response = net
        .doctor_c
        .post(patient_url(app, net.patient, "/support-requests"))
        .json(&json!({ "to": net.hospital.code, "kind": "information",
                       "question": "経過を教えてください", "summary": "概要" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "sending the marker request");
    id_of(&json_of(response).await)
}

/// Asserts that the hospital's stream heard nothing (of what happened since it last heard
/// anything) before a marker sent now: the next event is the marker.
async fn hospital_hears_only_the_marker(app: &TestApp, net: &Net, live: &mut Live, what: &str) {
    let marker = hospital_marker(app, net).await;
    let event = live.expect("the marker request").await;
    assert_eq!(
        (&event["kind"], &event["request"]),
        (&json!("support"), &json!(marker)),
        "{what}: the hospital heard something else first"
    );
}

#[tokio::test]
async fn live_notifications_arrive_without_content_and_only_for_the_care_team() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let mut live = Live::open(&app, &net.member_c).await;
    let mut outsider = Live::open(&app, &net.outsider_c).await;

    let secret = "夜間に38.5度の発熱、解熱剤を使用";
    let urgent = note(&app, &net.doctor_c, p, "complaint", "urgent", secret).await;
    let event = live.expect("an urgent entry").await;
    assert_eq!(event["kind"], "entry");
    assert_eq!(event["priority"], "urgent");
    assert_eq!(event["patient"], p.to_string());
    assert_eq!(event["entry"], urgent.as_str());
    assert!(
        !contains(&live.raw, secret.as_bytes()),
        "no text of the entry"
    );
    assert!(!contains(&live.raw, "発熱".as_bytes()));
    assert!(!contains(&live.raw, "梅田".as_bytes()), "no name");
    let info = note(&app, &net.doctor_c, p, "notice", "info", "参考の連絡").await;
    let event = live
        .expect("an info entry arrives outside quiet hours")
        .await;
    assert_eq!(event["entry"], info.as_str());
    assert_eq!(event["priority"], "info");
    // Her own entries do not come back to her (the next thing she hears is the reply to it); a
    // reply to one does, and a mention of her facility, both at least as 要返信.
    let hers = note(&app, &net.member_c, p, "support", "urgent", "自分の記録").await;
    let reply = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "了解", "reply_to": hers }),
        )
        .await,
    );
    let event = live.expect("a reply to her entry").await;
    assert_eq!(
        (&event["kind"], &event["entry"], &event["priority"]),
        (&json!("reply"), &json!(reply), &json!("reply_requested")),
        "her own entry came back to her"
    );
    let mention = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "確認を", "mentions": [net.station_id()] }),
        )
        .await,
    );
    let event = live.expect("a mention of her facility").await;
    assert_eq!(
        (&event["kind"], &event["entry"], &event["priority"]),
        (
            &json!("mention"),
            &json!(mention),
            &json!("reply_requested")
        )
    );
    // The unrelated hospital hears nothing of the patient's entries.
    hospital_hears_only_the_marker(&app, &net, &mut outsider, "the hospital is told nothing").await;
}

#[tokio::test]
async fn quiet_hours_hold_back_all_but_urgent_entries_and_emergency_access() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    // Quiet hours around the present hour (Japan time): info waits, urgent comes through.
    let hour = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .hour();
    let response = save_settings(
        &app,
        &net.member_c,
        json!({ "live_level": "info", "quiet_start": hour, "quiet_end": (hour + 2) % 24 }),
    )
    .await;
    assert_eq!(response.status(), 204);
    let mut live = Live::open(&app, &net.member_c).await;
    let mut outsider = Live::open(&app, &net.outsider_c).await;
    note(&app, &net.doctor_c, p, "notice", "info", "静かな時間の連絡").await;
    let urgent = note(&app, &net.doctor_c, p, "complaint", "urgent", "転倒あり").await;
    let event = live
        .expect("an urgent entry comes through quiet hours")
        .await;
    assert_eq!(
        event["entry"],
        urgent.as_str(),
        "the info entry before it arrived in quiet hours"
    );
    assert_eq!(event["priority"], "urgent");
    hospital_hears_only_the_marker(&app, &net, &mut outsider, "the hospital is told nothing").await;

    // The hospital's doctor opens the notebook in an emergency: the care team hears of it at
    // once, through quiet hours, without the reason; the hospital is not told of itself.
    let reason = "救急搬送。意識障害あり、服薬歴の確認が必要";
    let card = card_number(&app, &net.doctor_c, p).await;
    let response = net
        .outsider_c
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": card, "birth_date": "1940-01-15", "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "emergency access opened");
    let event = live
        .expect("emergency access is announced through quiet hours")
        .await;
    assert_eq!(
        (&event["kind"], &event["priority"], &event["link"]),
        (&json!("emergency"), &json!("urgent"), &json!("/emergency"))
    );
    assert_eq!(event["patient"], p.to_string());
    assert!(!contains(&live.raw, "救急搬送".as_bytes()), "no reason");
    hospital_hears_only_the_marker(
        &app,
        &net,
        &mut outsider,
        "the opener is not told of its own access",
    )
    .await;
}

#[tokio::test]
async fn a_live_notification_reaches_people_connected_to_another_server_process() {
    // Two servers on one database: the doctor writes through the first, the nurse listens on the
    // second; the database's announcement carries the event across.
    let app = spawn_app().await;
    let net = network(&app).await;
    let second = renrakucho_server::Application::build(&app.settings, &app.database.connections())
        .await
        .unwrap();
    let second_url = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    // Sessions live in the database: the nurse's cookie works on either server.
    let response = net
        .member_c
        .get(format!("{second_url}/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut live = Live {
        response,
        buffer: Vec::new(),
        raw: Vec::new(),
    };
    let entry = note(
        &app,
        &net.doctor_c,
        net.patient,
        "treatment",
        "urgent",
        "至急の連絡です",
    )
    .await;
    let event = live.expect("the second server passes the event on").await;
    assert_eq!(event["kind"], "entry");
    assert_eq!(event["priority"], "urgent");
    assert_eq!(event["entry"], entry.as_str());
    assert!(!String::from_utf8_lossy(&live.raw).contains("至急の連絡です"));
    let _ = stop.send(());
}
