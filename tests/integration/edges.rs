//! The edges of the HTTP interface, tried as an attacker with a browser or an HTTP client would
//! (issue 12): request IDs a client chooses, and a sign-out that a form on another page cannot
//! trigger.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::{spawn_app, spawn_app_with, FIXTURE_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// A client's `X-Request-Id` is kept only when it is a UUID or a short token; anything else is
/// replaced by one of the server's own, in the answer, the error body and the audit log.
#[tokio::test]
async fn a_request_id_the_client_chose_freely_is_replaced() {
    // Room for this test's sign-ins under one account from one address.
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 20;
        s.signin_address_burst = 20;
    })
    .await;
    let facility = app.seed_facility("EDGE-RID", FacilityKind::Clinic).await;
    app.seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let given_uuid = Uuid::new_v4().to_string();
    let long = "a".repeat(65);
    for (given, kept) in [
        (given_uuid.as_str(), true),
        ("proxy-7f3a.01_x", true),
        ("<script>alert(1)</script>", false),
        (long.as_str(), false),
        ("患者名", false),
        ("a b", false),
    ] {
        let client = renrakucho_testkit::new_client();
        // Unauthenticated: the error body quotes the request's ID.
        let response = client
            .get(app.url("/api/v1/me"))
            .header("x-request-id", given)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let echoed = response
            .headers()
            .get("x-request-id")
            .expect("the answer names the request")
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], echoed.as_str(), "{given}");
        if kept {
            assert_eq!(echoed, given);
        } else {
            assert_ne!(echoed, given);
            assert!(Uuid::parse_str(&echoed).is_ok(), "generated: {echoed}");
        }

        // Signed in: the sign-in's audit record carries the same ID.
        let response = client
            .post(app.url("/api/v1/auth/sign-in"))
            .header("x-request-id", given)
            .json(
                &json!({ "facility_code": facility.code, "login_id": "nurse",
                           "password": FIXTURE_PASSWORD,
                           "one_time_code": app.one_time_code(&facility.code, "nurse").await }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let mut su = superuser(&app).await;
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT request_id FROM audit_log WHERE action = 'auth.sign_in'
              ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(recorded.as_deref(), Some(echoed.as_str()), "{given}");
        assert_eq!(echoed == given, kept, "{given}");
    }
}

/// Sign-out is JSON only: a form (url-encoded, multipart or plain text, as a page on a sibling
/// site could send with the person's cookie) is refused with 415 and the session lives on.
#[tokio::test]
async fn a_form_cannot_sign_a_person_out() {
    let app = spawn_app().await;
    let facility = app.seed_facility("EDGE-OUT", FacilityKind::Clinic).await;
    app.seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&facility, "nurse").await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        let response = client
            .post(app.url("/api/v1/auth/sign-out"))
            .header("content-type", content_type)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "json_only");
        let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(
            me.status(),
            StatusCode::OK,
            "still signed in after {content_type}"
        );
    }
    // No content type at all: refused too.
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // JSON (any case, with parameters): signed out.
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

/// Sign-in attempts with a wrong password for `login`, from the client `forwarded` (through a
/// proxy on loopback that says so in `X-Forwarded-For`); the statuses.
async fn wrong_password(
    app: &renrakucho_testkit::TestApp,
    code: &str,
    login: &str,
    forwarded: &str,
) -> StatusCode {
    renrakucho_testkit::new_client()
        .post(app.url("/api/v1/auth/sign-in"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "facility_code": code, "login_id": login,
                       "password": "not the password at all" }))
        .send()
        .await
        .unwrap()
        .status()
}

/// The details of every sign-in record of a throttled attempt.
async fn throttled_records(app: &renrakucho_testkit::TestApp) -> Vec<Value> {
    let mut su = superuser(app).await;
    sqlx::query_scalar(
        "SELECT details FROM audit_log
          WHERE action = 'auth.sign_in' AND details->>'reason' = 'throttled'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap()
}

/// The address of the newest sign-in record.
async fn last_sign_in_address(app: &renrakucho_testkit::TestApp) -> Option<String> {
    let mut su = superuser(app).await;
    sqlx::query_scalar(
        "SELECT host(client_addr) FROM audit_log WHERE action = 'auth.sign_in'
          ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&mut su)
    .await
    .unwrap()
}

/// Behind a trusted proxy, the client is the address the proxy forwarded: one person's
/// mistakes slow down that person's address, not everyone behind the proxy. Without the proxy
/// configured, `X-Forwarded-For` is not believed.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_on_its_own() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = Some("127.0.0.1, ::1".into());
        s.signin_address_burst = 3;
        s.signin_account_burst = 100;
    })
    .await;
    let facility = app.seed_facility("EDGE-XFF", FacilityKind::Clinic).await;
    for (i, expected) in [(0, 401), (1, 401), (2, 401), (3, 429)] {
        let status = wrong_password(&app, &facility.code, &format!("who{i}"), "203.0.113.5").await;
        assert_eq!(status.as_u16(), expected, "attempt {i} from 203.0.113.5");
    }
    assert_eq!(
        wrong_password(&app, &facility.code, "who9", "203.0.113.6").await,
        StatusCode::UNAUTHORIZED,
        "another person behind the same proxy is not locked out"
    );
    assert_eq!(
        last_sign_in_address(&app).await.as_deref(),
        Some("203.0.113.6")
    );
    // A client's own entry further left is not believed: the proxy's is.
    assert_eq!(
        wrong_password(&app, &facility.code, "who8", "198.51.100.1, 203.0.113.7").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        last_sign_in_address(&app).await.as_deref(),
        Some("203.0.113.7")
    );

    // No trusted proxy: the header is ignored, the peer is the client.
    let direct = spawn_app().await;
    let facility = direct
        .seed_facility("EDGE-XFF2", FacilityKind::Clinic)
        .await;
    wrong_password(&direct, &facility.code, "who", "203.0.113.5").await;
    assert_eq!(
        last_sign_in_address(&direct).await.as_deref(),
        Some("127.0.0.1")
    );
}

/// Every refusal a set of throttled-attempt records accounts for: one for each record, and each
/// count's `more_refusals` beyond the refusal its window's first record stands for.
fn accounted(records: &[Value]) -> u64 {
    records
        .iter()
        .map(|d| d["more_refusals"].as_u64().unwrap_or(1))
        .sum()
}

/// A flood of refused sign-ins writes one audit record per key and window, plus one count
/// when the window closes, and every refusal is accounted for exactly once.
#[tokio::test]
async fn a_flood_of_refused_sign_ins_is_counted_not_recorded_one_by_one() {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(2);
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 1;
        s.signin_account_period = WINDOW;
        s.signin_address_burst = 10_000;
    })
    .await;
    let facility = app.seed_facility("EDGE-FLOOD", FacilityKind::Clinic).await;
    let mut refused = 0u64;
    let started = tokio::time::Instant::now();
    for _ in 0..150 {
        if wrong_password(&app, &facility.code, "target", "ignored").await
            == StatusCode::TOO_MANY_REQUESTS
        {
            refused += 1;
        }
    }
    let flood = started.elapsed();
    // One attempt per window gets through (to a wrong password); every other one is refused,
    // however long a loaded machine made the flood last.
    let passed_at_most = (flood.as_millis() / WINDOW.as_millis()) as u64 + 2;
    assert!(
        refused + passed_at_most >= 150 && refused > 0,
        "{refused} refused in {flood:?}"
    );
    // Once its window has closed, any attempt (or the housekeeping) writes a window's count:
    // attempts on other accounts (none of them refused) until every refusal is accounted for.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut attempt = 0;
    let records = loop {
        let records = throttled_records(&app).await;
        if accounted(&records) >= refused {
            break records;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {refused} refusals accounted for after {PATIENCE:?}: {records:?}",
            accounted(&records)
        );
        attempt += 1;
        let someone = format!("someone-else-{attempt}");
        assert_eq!(
            wrong_password(&app, &facility.code, &someone, "ignored").await,
            StatusCode::UNAUTHORIZED
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        accounted(&records),
        refused,
        "every refusal once: {records:?}"
    );
    // At most a record and a count per window the flood lasted (as many as a loaded machine
    // made it last): far fewer than the refusals.
    let windows = (flood.as_millis() / WINDOW.as_millis()) as u64 + 2;
    assert!(
        (records.len() as u64) <= 2 * windows,
        "{} records for {refused} refusals in {flood:?}",
        records.len()
    );
    assert!(
        records
            .iter()
            .any(|d| d["more_refusals"].as_u64().unwrap_or(0) > 0),
        "some window counted several refusals in one record: {records:?}"
    );
}

/// A page on another site (a sibling subdomain shares the cookies' site, so the session cookie
/// goes along) cannot make the browser write through the API: refused before anything runs,
/// whatever the body. The same requests from this site, or from a client that is not a
/// browser, go through.
#[tokio::test]
async fn a_page_on_another_site_cannot_write_through_the_api() {
    let app = spawn_app().await;
    let facility = app.seed_facility("EDGE-SITE", FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&facility, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&doctor, "越境 花子", "エッキョウ ハナコ")
        .await;
    let client = app.client_for(&facility, "doctor").await;
    let withdraw = app.url(&format!(
        "/api/v1/patients/{}/consents/withdraw",
        patient.id
    ));
    let host = app.addr.to_string();
    for (name, value) in [
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example.jp"),
        ("origin", "null"),
    ] {
        let response = client
            .post(&withdraw)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        let response = client
            .post(app.url("/api/v1/auth/sign-out"))
            .header(name, value)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    let mut su = superuser(&app).await;
    let withdrawn: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consents WHERE patient_id = $1 AND withdrawn_at IS NOT NULL",
    )
    .bind(patient.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(withdrawn, 0, "nothing was withdrawn");
    // Reads from another site are left alone (the page cannot read the answer).
    let response = client
        .get(app.url("/api/v1/me"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // From this site (as the browser says), or from a client that is no browser: allowed.
    let response = client
        .post(&withdraw)
        .header("sec-fetch-site", "same-origin")
        .header("origin", format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), StatusCode::FORBIDDEN);
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .header("origin", format!("http://{host}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// The API's larger answers are gzip-compressed for a client that asks (ADR 0027); the portal's
/// pages, which carry a form token next to what the person typed, never are.
#[tokio::test]
async fn api_answers_are_compressed_on_request_and_portal_pages_never() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let get = |path: &str, gzip: bool| {
        let mut request = client.get(app.url(path));
        if gzip {
            request = request.header(reqwest::header::ACCEPT_ENCODING, "gzip");
        }
        request.send()
    };
    let plain = get("/api/v1/openapi.json", false).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let packed = get("/api/v1/openapi.json", true).await.unwrap();
    assert_eq!(packed.headers()["content-encoding"], "gzip");
    let packed = packed.bytes().await.unwrap();
    assert!(
        packed.len() * 4 < plain.len(),
        "{} bytes compressed from {}",
        packed.len(),
        plain.len()
    );
    assert_eq!(&packed[..2], &[0x1f, 0x8b], "a gzip stream");

    let page = get("/login", true).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers().get("content-encoding").is_none(),
        "a portal page compressed"
    );

    // An error over a kilobyte (the framework's words about a body that does not fit quote
    // the unknown value) asked for with gzip: what arrives is what the headers say.
    let clinic = app.seed_facility("GZIP-ERR", FacilityKind::Clinic).await;
    app.seed_staff(
        &clinic,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let admin = app.client_for(&clinic, "admin").await;
    let refused = admin
        .post(app.url(&format!("/api/v1/staff/{}/approve", uuid::Uuid::new_v4())))
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .json(&json!({ "profession": "x".repeat(3000) }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.headers().get("content-encoding").is_none(),
        "the error is written anew, uncompressed"
    );
    let error: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).expect("JSON");
    assert!(error["error"]["request_id"].is_string());
    assert!(error["error"]["message"].as_str().unwrap().len() > 1024);
}
