//! The daily e-mail digest: counts and a link, never patient data, once a day.

use super::*;
use crate::support::mail_text;

#[tokio::test]
async fn the_daily_digest_mails_counts_and_a_link_never_patient_data_once_a_day() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let texts = ["夜間に咳込みあり", "残薬が多い", "デイサービスの日程変更"];
    note(&app, &net.doctor_c, p, "complaint", "urgent", texts[0]).await;
    note(
        &app,
        &net.doctor_c,
        p,
        "medication",
        "reply_requested",
        texts[1],
    )
    .await;
    note(&app, &net.doctor_c, p, "notice", "info", texts[2]).await;
    let address = "sakura@nurse.example.jp";
    let response = save_settings(
        &app,
        &net.member_c,
        json!({ "email": address, "live_level": "info", "digest_enabled": true,
                "digest_hour": 0 }),
    )
    .await;
    assert_eq!(response.status(), 204);

    let sink = renrakucho_testkit::SmtpSink::start().await;
    let mut settings = app.settings.clone();
    settings.smtp_url = Some(renrakucho_server::config::Secret::new(sink.url.clone()));
    let mailer = renrakucho_server::mail::Mailer::from_settings(&settings)
        .expect("mail settings")
        .expect("a mailer");
    let now = time::OffsetDateTime::now_utc();
    let sent =
        renrakucho_server::digest::send_due(&app.db, &mailer, "http://renrakucho.test", now).await;
    assert_eq!(sent, 1, "one digest due");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one message received");
    let (head, text) = mail_text(&messages[0]);
    assert!(
        head.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(address)),
        "addressed to her"
    );
    assert!(text.contains("http://renrakucho.test/"), "the link");
    assert!(
        text.contains("未読の記録: 3件"),
        "the count of unread entries"
    );
    assert!(text.contains("至急 1件"), "the urgent count");
    assert!(text.contains("要返信 1件"), "the reply-requested count");
    assert!(text.contains("過去30日"), "how far back the counts go");
    assert!(
        text.contains(
            "3 unread entries of the last 30 days (1 urgent, 1 reply requested, 1 patients)"
        ),
        "the counts in English"
    );
    for raw in [text.as_str(), messages[0].as_str()] {
        for secret in [
            PATIENT_NAME,
            "梅田",
            "花子",
            PATIENT_KANA,
            "ウメダ",
            "ハナコ",
            texts[0],
            texts[1],
            texts[2],
        ] {
            assert!(!raw.contains(secret), "the digest holds patient data");
        }
        assert!(!raw.contains(&p.to_string()), "not even the patient's ID");
    }

    // Once a day.
    let again =
        renrakucho_server::digest::send_due(&app.db, &mailer, "http://renrakucho.test", now).await;
    assert_eq!(again, 0, "no second digest the same day");
    assert_eq!(sink.messages().len(), 1);
    let tomorrow = now + time::Duration::days(1);
    let next_day =
        renrakucho_server::digest::send_due(&app.db, &mailer, "http://renrakucho.test", tomorrow)
            .await;
    assert_eq!(next_day, 1, "the next day's digest");
    assert_eq!(sink.messages().len(), 2);
}

/// A mailer for the sink at `url`.
fn mailer_for(app: &TestApp, url: &str) -> renrakucho_server::mail::Mailer {
    let mut settings = app.settings.clone();
    settings.smtp_url = Some(renrakucho_server::config::Secret::new(url.to_string()));
    renrakucho_server::mail::Mailer::from_settings(&settings)
        .expect("mail settings")
        .expect("a mailer")
}

/// Several server processes send the digests at once (issue 14): each person gets one. A
/// digest whose send failed is sent at the next round; one claimed by a process that died is
/// sent by another once the claim's lease has run out, not before.
#[tokio::test]
async fn each_digest_goes_out_once_however_many_processes_send_it() {
    let app = spawn_app().await;
    let net = network(&app).await;
    note(&app, &net.doctor_c, net.patient, "notice", "urgent", "本文").await;
    let people = [
        (&net.doctor_c, "doctor@clinic.example.jp"),
        (&net.nurse_c, "nurse@clinic.example.jp"),
        (&net.clerk_c, "clerk@clinic.example.jp"),
        (&net.station_admin_c, "admin@station.example.jp"),
        (&net.member_c, "member@station.example.jp"),
        (&net.outsider_c, "doctor@hospital.example.jp"),
    ];
    for (client, address) in people {
        let response = save_settings(
            &app,
            client,
            json!({ "email": address, "live_level": "info", "digest_enabled": true,
                    "digest_hour": 0 }),
        )
        .await;
        assert_eq!(response.status(), 204);
    }
    let sink = renrakucho_testkit::SmtpSink::start().await;
    let mailer = mailer_for(&app, &sink.url);
    let base = "http://renrakucho.test";
    // Mid-morning in Japan, so that a lease never runs into the next day.
    let now = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .replace_time(time::macros::time!(10:00));

    // Four processes' rounds at the same moment.
    let (a, b, c, d) = tokio::join!(
        renrakucho_server::digest::send_due(&app.db, &mailer, base, now),
        renrakucho_server::digest::send_due(&app.db, &mailer, base, now),
        renrakucho_server::digest::send_due(&app.db, &mailer, base, now),
        renrakucho_server::digest::send_due(&app.db, &mailer, base, now),
    );
    assert_eq!(
        a + b + c + d,
        people.len(),
        "each digest sent by one process"
    );
    let mut to: Vec<String> = sink
        .messages()
        .iter()
        .filter_map(|m| {
            let (head, _) = mail_text(m);
            head.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                .map(str::to_string)
        })
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(sink.messages().len(), people.len(), "one message each");
    assert_eq!(to.len(), people.len(), "to every person");

    // The next day: the mail server is down for one round; the claims are given back and the
    // next round (another process) sends them all.
    let tomorrow = now + time::Duration::days(1);
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        mailer_for(&app, &format!("smtp://127.0.0.1:{port}"))
    };
    let failed = renrakucho_server::digest::send_due(&app.db, &unreachable, base, tomorrow).await;
    assert_eq!(failed, 0, "nothing went out while the mail server was down");
    let retried = renrakucho_server::digest::send_due(&app.db, &mailer, base, tomorrow).await;
    assert_eq!(
        retried,
        people.len(),
        "every failed digest retried at the next round"
    );
    assert_eq!(sink.messages().len(), 2 * people.len());

    // The day after: a process claims one person's digest and dies before sending it. Others
    // leave it alone while the claim lasts and send it once the lease has run out.
    let later = now + time::Duration::days(2);
    let due = renrakucho_notebook::digests_due(&app.db, later)
        .await
        .unwrap();
    assert_eq!(due.len(), people.len());
    assert!(renrakucho_notebook::claim_digest(&app.db, &due[0], later)
        .await
        .unwrap());
    assert!(
        !renrakucho_notebook::claim_digest(&app.db, &due[0], later)
            .await
            .unwrap(),
        "a claim is held once"
    );
    let others = renrakucho_server::digest::send_due(&app.db, &mailer, base, later).await;
    assert_eq!(others, people.len() - 1, "the claimed digest waits");
    let still_held = later + renrakucho_notebook::DIGEST_LEASE - time::Duration::seconds(1);
    let none = renrakucho_server::digest::send_due(&app.db, &mailer, base, still_held).await;
    assert_eq!(none, 0, "not while the claim lasts");
    let expired = later + renrakucho_notebook::DIGEST_LEASE;
    let taken_over = renrakucho_server::digest::send_due(&app.db, &mailer, base, expired).await;
    assert_eq!(taken_over, 1, "sent by another process after the lease");
    assert_eq!(sink.messages().len(), 3 * people.len(), "and only once");
}
