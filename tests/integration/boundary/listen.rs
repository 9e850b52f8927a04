//! LISTEN: listening on the server's channels tells only that something happened.

use super::*;

#[tokio::test]
async fn listening_on_the_server_s_channels_tells_only_that_something_happened() {
    use renrakucho_store::announcements::{ACCESS_CHANGES, EVENTS, KEY_CHANGES};
    let app = spawn_app().await;
    let t = trio(&app, "BND-LISTEN").await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(app.database.runtime_options())
        .await
        .unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    // And on a channel of the test's own, for the marker below.
    const MARKER: &str = "boundary_test_marker";
    listener
        .listen_all([EVENTS, ACCESS_CHANGES, KEY_CHANGES, MARKER])
        .await
        .unwrap();

    // B writes in its patient's notebook and withdraws the consent.
    let entry = crate::support::post_note(
        &app,
        &t.b_client,
        t.b_patient,
        "urgent",
        "聞かれてはならない記録",
    )
    .await;
    let response = t
        .b_client
        .post(patient_url(&app, t.b_patient, "/consents/withdraw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "B withdraws the consent");

    // Both requests committed before they were answered, and PostgreSQL delivers notifications
    // in commit order, whatever their channel: everything they announced comes before a marker
    // sent now.
    let mut su = superuser(&app).await;
    exec(&mut su, &format!("NOTIFY {MARKER}")).await;
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let n = tokio::time::timeout_at(deadline, listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no marker within {PATIENCE:?}; heard {heard:?}"))
            .unwrap();
        if n.channel() == MARKER {
            break;
        }
        heard.push((n.channel().to_string(), n.payload().to_string()));
    }
    let channels: Vec<&str> = heard.iter().map(|(c, _)| c.as_str()).collect();
    assert!(
        channels.contains(&EVENTS) && channels.contains(&ACCESS_CHANGES),
        "{heard:?}"
    );
    for (channel, payload) in &heard {
        assert!(
            payload.parse::<i64>().is_ok(),
            "{channel} carried more than a number: {payload}"
        );
        for secret in [
            t.b_patient.to_string(),
            entry.to_string(),
            t.b.id.as_uuid().to_string(),
        ] {
            assert!(!payload.contains(&secret), "{channel}: {payload}");
        }
    }
    // The announcement itself is the listener role's to read.
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;
    for (_, payload) in &heard {
        refused(
            &mut me,
            &format!("SELECT payload FROM private.announcements WHERE id = {payload}"),
            &["42501"],
        )
        .await;
    }
    refused(
        &mut me,
        "SELECT count(*) FROM private.announcements",
        &["42501"],
    )
    .await;
    exec(&mut me, "ROLLBACK").await;
    // (The listener holds a connection of the pool: closing the pool would wait for it.)
    drop(listener);
    pool.close().await;
}
