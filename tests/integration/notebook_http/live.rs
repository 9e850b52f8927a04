//! Live notifications over server-sent events: no content, quiet hours, across server
//! processes, and a stream that ends with its session.

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
        live.ends_within(Duration::from_secs(8)).await,
        "the stream ends after signing out"
    );
    let again = client.get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(again.status(), 401, "and cannot be opened again");
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
    assert!(
        live.ends_within(Duration::from_secs(3)).await,
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
        live.ends_within(Duration::from_secs(3)).await,
        "the stream ends at the portal's sign-out"
    );
}

#[tokio::test]
async fn live_notifications_arrive_without_content_and_quiet_hours_hold_back_all_but_urgent() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let mut live = Live::open(&app, &net.member_c).await;
    let mut outsider = Live::open(&app, &net.outsider_c).await;

    let secret = "夜間に38.5度の発熱、解熱剤を使用";
    let urgent = note(&app, &net.doctor_c, p, "complaint", "urgent", secret).await;
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("a live notification within five seconds");
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
        .next(Duration::from_secs(5))
        .await
        .expect("an info entry arrives outside quiet hours");
    assert_eq!(event["entry"], info.as_str());
    assert_eq!(event["priority"], "info");
    // Her own entries do not come back to her; a reply to one does, and a mention of her
    // facility, both at least as 要返信.
    let hers = note(&app, &net.member_c, p, "support", "urgent", "自分の記録").await;
    assert!(live.next(Duration::from_millis(700)).await.is_none());
    let reply = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "了解", "reply_to": hers }),
        )
        .await,
    );
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("a reply to her entry");
    assert_eq!(
        (&event["kind"], &event["entry"], &event["priority"]),
        (&json!("reply"), &json!(reply), &json!("reply_requested"))
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
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("a mention of her facility");
    assert_eq!(
        (&event["kind"], &event["entry"], &event["priority"]),
        (
            &json!("mention"),
            &json!(mention),
            &json!("reply_requested")
        )
    );
    // The unrelated hospital hears nothing of the patient.
    assert!(
        outsider.next(Duration::from_millis(300)).await.is_none(),
        "the hospital is told nothing"
    );
    drop(live);

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
    note(&app, &net.doctor_c, p, "notice", "info", "静かな時間の連絡").await;
    assert!(
        live.next(Duration::from_millis(1500)).await.is_none(),
        "nothing arrives in quiet hours"
    );
    let urgent = note(&app, &net.doctor_c, p, "complaint", "urgent", "転倒あり").await;
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("an urgent entry comes through quiet hours");
    assert_eq!(event["entry"], urgent.as_str());
    assert_eq!(event["priority"], "urgent");
    assert!(outsider.next(Duration::from_millis(300)).await.is_none());

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
        .next(Duration::from_secs(5))
        .await
        .expect("emergency access is announced through quiet hours");
    assert_eq!(
        (&event["kind"], &event["priority"], &event["link"]),
        (&json!("emergency"), &json!("urgent"), &json!("/emergency"))
    );
    assert_eq!(event["patient"], p.to_string());
    assert!(!contains(&live.raw, "救急搬送".as_bytes()), "no reason");
    assert!(
        outsider.next(Duration::from_millis(500)).await.is_none(),
        "the opener is not told of its own access"
    );
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
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("the second server passes the event on within five seconds");
    assert_eq!(event["kind"], "entry");
    assert_eq!(event["priority"], "urgent");
    assert_eq!(event["entry"], entry.as_str());
    assert!(!String::from_utf8_lossy(&live.raw).contains("至急の連絡です"));
    let _ = stop.send(());
}
