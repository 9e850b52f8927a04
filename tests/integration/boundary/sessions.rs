//! Sessions: the stored session records can be neither read nor forged by the web role.

use super::*;

/// GET /api/v1/me with exactly this session cookie.
async fn me_with_cookie(app: &TestApp, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header(
            reqwest::header::COOKIE,
            format!("{}={cookie}", renrakucho_http::session::SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn sessions_can_be_neither_read_nor_forged() {
    use base64::Engine;
    let app = spawn_app().await;
    let t = trio(&app, "BND-SESS").await;
    let cookie = crate::support::session_cookie_value(&app, Some(&t.b.code), "admin").await;
    assert_eq!(
        me_with_cookie(&app, &cookie).await,
        200,
        "B's administrator's own cookie"
    );
    let stored = renrakucho_store::sessions::stored_id(&cookie);
    let mut su = superuser(&app).await;
    let genuine: Vec<u8> =
        sqlx::query_scalar("SELECT data FROM private.sessions WHERE id_hash = $1")
            .bind(&stored)
            .fetch_one(&mut su)
            .await
            .unwrap();

    let before = snapshot(&app).await;
    let mut me = attacker(&app).await;
    exec(&mut me, "BEGIN").await;
    refused(&mut me, "SELECT * FROM private.sessions", &["42501"]).await;
    refused(
        &mut me,
        "UPDATE private.sessions SET expiry_date = now() + interval '1 year' RETURNING 1",
        &["42501"],
    )
    .await;
    refused(
        &mut me,
        "DELETE FROM private.sessions RETURNING 1",
        &["42501"],
    )
    .await;
    refused(
        &mut me,
        "SELECT * FROM tower_sessions.session",
        &["3F000", "42P01"],
    )
    .await;
    // session_load answers only for the cookie value itself, never for its hash.
    nothing(
        &mut me,
        &format!("SELECT * FROM session_load('{}')", hex(&stored)),
    )
    .await;
    assert_eq!(
        probe(&mut me, &format!("SELECT * FROM session_load('{cookie}')"))
            .await
            .unwrap()
            .len(),
        1,
        "(the cookie value itself loads its record)"
    );
    exec(&mut me, "ROLLBACK").await;
    unchanged(&before, &snapshot(&app).await, &[], "reading sessions");

    // Forged records, written through session_save (which the web role may call): one made up
    // in the server's format naming B's administrator, and B's genuine sealed record copied
    // under another ID (as from a leaked dump). Neither signs anyone in.
    let record = &genuine[..genuine.len() - 32];
    let mut made_up = record.to_vec();
    made_up.extend_from_slice(&[0u8; 32]);
    for (id, data) in [
        (
            format!("forged-{}", Uuid::new_v4().simple()),
            made_up.clone(),
        ),
        (
            format!("copied-{}", Uuid::new_v4().simple()),
            genuine.clone(),
        ),
        (format!("bare-{}", Uuid::new_v4().simple()), record.to_vec()),
    ] {
        sqlx::query("SELECT session_save($1, $2, now() + interval '1 hour')")
            .bind(&id)
            .bind(&data)
            .execute(&mut me)
            .await
            .unwrap();
        assert_eq!(
            me_with_cookie(&app, &id).await,
            401,
            "a record the attacker saved under {id}"
        );
    }

    // A dump holds no working cookie: only hashes, and a hash is no cookie.
    let dump: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT id_hash, data FROM private.sessions")
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert!(
        dump.iter().any(|(h, _)| *h == stored),
        "B's session is stored under its hash"
    );
    for (hash, data) in &dump {
        assert!(!crate::support::contains(hash, cookie.as_bytes()));
        assert!(
            !crate::support::contains(data, cookie.as_bytes()),
            "the cookie value in a record"
        );
    }
    let dump_text: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ',') FROM private.sessions t")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(!dump_text.contains(&cookie));
    for as_cookie in [
        hex(&stored),
        base64::engine::general_purpose::STANDARD.encode(&stored),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&stored),
    ] {
        assert_eq!(
            me_with_cookie(&app, &as_cookie).await,
            401,
            "a hash as the cookie"
        );
    }

    // Moving B's record under another ID (as the superuser could): that ID's cookie signs no
    // one in, and B's cookie stops working with it.
    assert_eq!(
        me_with_cookie(&app, &cookie).await,
        200,
        "B's cookie works until then"
    );
    let other = format!("moved-{}", Uuid::new_v4().simple());
    sqlx::query("UPDATE private.sessions SET id_hash = $1 WHERE id_hash = $2")
        .bind(renrakucho_store::sessions::stored_id(&other))
        .bind(&stored)
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(me_with_cookie(&app, &other).await, 401, "a moved record");
    // The server remembered B's session; the move is announced (a trigger on the table), and the
    // server forgets it within moments (ADR 0025).
    crate::support::wait_until("B's cookie refused, its record moved away", || async {
        me_with_cookie(&app, &cookie).await == 401
    })
    .await;
}
