//! Notification settings (checked, kept) and the feed: replies, mentions and mutes.

use super::*;

fn has(feed: &[(String, String)], kind: &str, entry: &str) -> bool {
    feed.iter().any(|(k, e)| k == kind && e == entry)
}

fn mentions_entry(feed: &[(String, String)], entry: &str) -> bool {
    feed.iter().any(|(_, e)| e == entry)
}

#[tokio::test]
async fn notification_settings_are_checked_and_kept() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let me = &net.member_c;

    for (body, field, what) in [
        (
            json!({ "email": "not-an-address", "live_level": "info" }),
            "email",
            "a bad address",
        ),
        (
            json!({ "email": "a b@example.jp", "live_level": "info" }),
            "email",
            "an address with a space",
        ),
        (
            json!({ "live_level": "info", "digest_enabled": true }),
            "email",
            "a digest without an address",
        ),
        (
            json!({ "email": "", "live_level": "info", "digest_enabled": true }),
            "email",
            "a digest with an empty address",
        ),
        (
            json!({ "live_level": "loud" }),
            "live_level",
            "an unknown level",
        ),
        (
            json!({ "live_level": "info", "quiet_start": 24 }),
            "quiet_start",
            "hour 24",
        ),
        (
            json!({ "live_level": "info", "digest_hour": -1 }),
            "digest_hour",
            "hour -1",
        ),
    ] {
        invalid(save_settings(&app, me, body).await, field, what).await;
    }
    let response = save_settings(
        &app,
        me,
        json!({ "email": "sakura@nurse.example.jp", "live_level": "reply_requested",
                "quiet_start": 22, "quiet_end": 7, "digest_enabled": true, "digest_hour": 8 }),
    )
    .await;
    assert_eq!(response.status(), 204, "saving preferences");
    let saved = json_of(
        me.get(app.url("/api/v1/notifications/settings"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(saved["email"], "sakura@nurse.example.jp");
    assert_eq!(saved["live_level"], "reply_requested");
    assert_eq!(
        (saved["quiet_start"].as_i64(), saved["quiet_end"].as_i64()),
        (Some(22), Some(7))
    );
    assert_eq!(saved["digest_enabled"], true);
    assert_eq!(saved["digest_hour"], 8);
}

#[tokio::test]
async fn the_feed_follows_replies_mentions_and_mutes() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let me = &net.member_c;
    let response = save_settings(&app, me, json!({ "live_level": "info" })).await;
    assert_eq!(response.status(), 204);

    // Her entry, a reply to it, a mention of her facility.
    let hers = note(&app, me, p, "support", "info", "訪問看護の記録").await;
    let reply = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "了解しました", "reply_to": hers }),
        )
        .await,
    );
    let mention = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "次回訪問時に採血を",
                    "mentions": [net.station_id()] }),
        )
        .await,
    );
    let info = note(&app, &net.doctor_c, p, "notice", "info", "参考までに").await;
    let items = feed(&app, me).await;
    assert!(has(&items, "reply", &reply), "a reply to her entry");
    assert!(
        has(&items, "mention", &mention),
        "a mention of her facility"
    );
    assert!(
        has(&items, "entry", &info),
        "an ordinary entry at her level"
    );
    assert!(!mentions_entry(&items, &hers), "not her own entry");

    // Muted: ordinary entries of the patient go, urgent ones, replies and mentions stay.
    let response = me
        .put(patient_url(&app, p, "/mute"))
        .json(&json!({ "muted": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "muting");
    let saved = json_of(
        me.get(app.url("/api/v1/notifications/settings"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(saved["muted"], json!([p.to_string()]));
    let later = note(&app, &net.doctor_c, p, "notice", "info", "参考までに その2").await;
    let urgent = note(
        &app,
        &net.doctor_c,
        p,
        "complaint",
        "urgent",
        "呼吸苦の訴え",
    )
    .await;
    let items = feed(&app, me).await;
    assert!(!mentions_entry(&items, &info), "an info entry is muted");
    assert!(!mentions_entry(&items, &later), "a new info entry is muted");
    assert!(has(&items, "entry", &urgent), "an urgent one comes through");
    assert!(has(&items, "reply", &reply) && has(&items, "mention", &mention));
    // Only her: her colleague still sees everything.
    let colleague = feed(&app, &net.station_admin_c).await;
    assert!(has(&colleague, "entry", &later));

    let response = me
        .put(patient_url(&app, p, "/mute"))
        .json(&json!({ "muted": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "unmuting");
    assert!(has(&feed(&app, me).await, "entry", &later));

    // Muting a patient one does not see: 404.
    let response = net
        .outsider_c
        .put(patient_url(&app, p, "/mute"))
        .json(&json!({ "muted": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(response).await, not_found());
}
