//! Server-side sessions: the cookie's attributes, a new session ID at every sign-in (no
//! fixation), sign-out, idle timeout and absolute lifetime, accounts suspended mid-session, and
//! the HTML portal's sign-in and sign-out.

use std::time::{Duration, Instant};

use renrakucho_core::{FacilityKind, Profession, StaffRole, StaffStatus};
use renrakucho_store::audit;
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::{self, StaffAccount};
use renrakucho_store::Scope;
use renrakucho_testkit::{new_client, spawn_app, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

const COOKIE_NAME: &str = "renrakucho_session";
/// What fixture staff are called.
const DISPLAY_NAME: &str = "試験 太郎";

/// The session cookie a response sets: its value and its attributes.
#[derive(Debug)]
struct SetCookie {
    value: String,
    /// Lower-cased attribute names with their values (empty for flags).
    attributes: Vec<(String, String)>,
}

impl SetCookie {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

/// The `renrakucho_session` cookie set by `response`, if any.
fn session_cookie(response: &reqwest::Response) -> Option<SetCookie> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|header| {
            let mut parts = header.split(';').map(str::trim);
            let value = parts.next()?.strip_prefix(COOKIE_NAME)?.strip_prefix('=')?;
            let attributes = parts
                .map(|p| {
                    let (name, value) = p.split_once('=').unwrap_or((p, ""));
                    (name.trim().to_ascii_lowercase(), value.trim().to_string())
                })
                .collect();
            Some(SetCookie {
                value: value.to_string(),
                attributes,
            })
        })
}

fn session_id(response: &reqwest::Response) -> String {
    session_cookie(response)
        .expect("a session cookie on the response")
        .value
}

/// A client without a cookie store: the tests send the session cookie by hand.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET /api/v1/me from another browser that presents `session` as its cookie.
async fn me_with_cookie(app: &TestApp, session: &str) -> reqwest::Response {
    bare_client()
        .get(app.url("/api/v1/me"))
        .header(COOKIE, format!("{COOKIE_NAME}={session}"))
        .send()
        .await
        .unwrap()
}

async fn status_with_cookie(app: &TestApp, session: &str) -> StatusCode {
    me_with_cookie(app, session).await.status()
}

/// Session records stored for the cookie value `id` (under its SHA-256), counted as a superuser
/// (the web role cannot read the table at all).
async fn stored_sessions(app: &TestApp, id: &str) -> i64 {
    let mut su = sqlx::ConnectOptions::connect(&app.database.superuser_options())
        .await
        .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM private.sessions WHERE id_hash = $1")
        .bind(renrakucho_store::sessions::stored_id(id))
        .fetch_one(&mut su)
        .await
        .unwrap()
}

async fn clinic(app: &TestApp, code: &str, logins: &[&str]) -> (Facility, Vec<StaffAccount>) {
    let facility = app.seed_facility(code, FacilityKind::Clinic).await;
    let mut accounts = Vec::new();
    for login in logins {
        accounts.push(
            app.seed_staff(&facility, login, StaffRole::Staff, Profession::Doctor)
                .await,
        );
    }
    (facility, accounts)
}

/// Signs `login` in with the app's own client; returns the new session ID.
async fn sign_in(app: &TestApp, code: &str, login: &str) -> String {
    let response = app.sign_in(Some(code), login, FIXTURE_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK, "signing {login} in");
    session_id(&response)
}

async fn signed_in_login(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let who: Value = response.json().await.unwrap();
    who["login_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_not_secure_on_loopback_http() {
    let app = spawn_app().await;
    clinic(&app, "SESS-1", &["alice"]).await;
    let response = app.sign_in(Some("SESS-1"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response).expect("a session cookie");
    assert!(cookie.value.len() >= 22, "a long random ID: {cookie:?}");
    assert!(cookie.has("httponly"), "{cookie:?}");
    assert!(
        cookie
            .attribute("samesite")
            .is_some_and(|v| v.eq_ignore_ascii_case("lax")),
        "{cookie:?}"
    );
    assert!(!cookie.has("secure"), "plain HTTP on loopback: {cookie:?}");
    assert_eq!(cookie.attribute("path"), Some("/"));
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_https() {
    let app = spawn_app_with(|s| {
        s.public_url = Some("https://renrakucho.example.jp".parse().unwrap());
    })
    .await;
    clinic(&app, "SESS-2", &["alice"]).await;
    let response = app.sign_in(Some("SESS-2"), "alice", FIXTURE_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        session_cookie(&response).is_none(),
        "not under the plain name"
    );
    // `__Host-`: set only by this host, over HTTPS, for the whole site, never by a sibling.
    let set: Vec<String> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let cookie = set
        .iter()
        .find(|c| c.starts_with("__Host-renrakucho_session="))
        .unwrap_or_else(|| panic!("a __Host- session cookie: {set:?}"));
    let attributes = cookie.to_ascii_lowercase();
    for wanted in ["; secure", "; httponly", "; path=/"] {
        assert!(attributes.contains(wanted), "{cookie}");
    }
    assert!(!attributes.contains("domain="), "{cookie}");
    // The portal's CSRF cookie too.
    let page = new_client().get(app.url("/login")).send().await.unwrap();
    let csrf: Vec<String> = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    assert!(
        csrf.iter().any(|c| c.starts_with("__Host-renrakucho_csrf=")
            && c.to_ascii_lowercase().contains("; secure")),
        "{csrf:?}"
    );
}

#[tokio::test]
async fn no_session_before_sign_in_and_a_planted_id_is_never_adopted() {
    let app = spawn_app().await;
    clinic(&app, "SESS-3", &["alice"]).await;

    // Nothing hands out a session before sign-in.
    let anonymous = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&anonymous).is_none());
    let login_page = app.client.get(app.url("/login")).send().await.unwrap();
    assert!(session_cookie(&login_page).is_none());
    let failed = app
        .sign_in(Some("SESS-3"), "alice", "wrong password here")
        .await;
    assert!(session_cookie(&failed).is_none());

    // An attacker plants an ID of their choosing (well-formed, or not) in the victim's
    // browser; the victim signs in.
    for planted in ["cGxhbnRlZC1ieS1ldmlsIQ", "attacker-chosen-value"] {
        let response = bare_client()
            .post(app.url("/api/v1/auth/sign-in"))
            .header(COOKIE, format!("{COOKIE_NAME}={planted}"))
            .json(&serde_json::json!({
                "facility_code": "SESS-3", "login_id": "alice", "password": FIXTURE_PASSWORD,
                "one_time_code": app.one_time_code("SESS-3", "alice").await
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let issued = session_id(&response);
        assert_ne!(issued, planted, "the server adopted a planted session ID");
        assert_eq!(stored_sessions(&app, planted).await, 0);
        assert_eq!(stored_sessions(&app, &issued).await, 1);
        assert_eq!(
            status_with_cookie(&app, planted).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status_with_cookie(&app, &issued).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_attackers_own_session_id_planted_in_a_browser_does_not_follow_the_victim() {
    let app = spawn_app().await;
    clinic(&app, "SESS-4", &["victim", "mallory"]).await;
    let attacker = bare_client();
    let own = app
        .sign_in_with(&attacker, Some("SESS-4"), "mallory", FIXTURE_PASSWORD)
        .await;
    let attacker_id = session_id(&own);
    assert_eq!(
        signed_in_login(me_with_cookie(&app, &attacker_id).await).await,
        "mallory"
    );

    let victim = bare_client()
        .post(app.url("/api/v1/auth/sign-in"))
        .header(COOKIE, format!("{COOKIE_NAME}={attacker_id}"))
        .json(&serde_json::json!({
            "facility_code": "SESS-4", "login_id": "victim", "password": FIXTURE_PASSWORD,
            "one_time_code": app.one_time_code("SESS-4", "victim").await
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(victim.status(), StatusCode::OK);
    let victim_id = session_id(&victim);
    assert_ne!(victim_id, attacker_id);
    assert_eq!(
        signed_in_login(me_with_cookie(&app, &victim_id).await).await,
        "victim"
    );
    // The attacker's ID does not lead into the victim's session.
    assert_eq!(
        status_with_cookie(&app, &attacker_id).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn every_sign_in_issues_a_new_session_id_and_retires_the_old_one() {
    let app = spawn_app().await;
    clinic(&app, "SESS-5", &["alice", "bob"]).await;
    let first = sign_in(&app, "SESS-5", "alice").await;
    let second = sign_in(&app, "SESS-5", "alice").await;
    let third = sign_in(&app, "SESS-5", "bob").await;
    assert_ne!(first, second);
    assert_ne!(second, third);
    assert_ne!(first, third);

    for old in [&first, &second] {
        assert_eq!(
            status_with_cookie(&app, old).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(stored_sessions(&app, old).await, 0);
    }
    assert_eq!(
        signed_in_login(me_with_cookie(&app, &third).await).await,
        "bob"
    );
    assert_eq!(signed_in_login(app.me().await).await, "bob");
}

#[tokio::test]
async fn sign_out_ends_the_session_everywhere() {
    let app = spawn_app().await;
    let (facility, accounts) = clinic(&app, "SESS-6", &["alice"]).await;
    let id = sign_in(&app, "SESS-6", "alice").await;
    assert_eq!(stored_sessions(&app, &id).await, 1);
    assert_eq!(status_with_cookie(&app, &id).await, StatusCode::OK);

    let out = app.sign_out().await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let removal = session_cookie(&out).expect("the cookie is cleared");
    assert!(
        removal.value.is_empty() || removal.attribute("max-age") == Some("0"),
        "{removal:?}"
    );

    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);
    // A copy of the cookie (another tab, a stolen copy) is worthless too.
    assert_eq!(
        status_with_cookie(&app, &id).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stored_sessions(&app, &id).await, 0);

    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    let records = audit::recent(&mut tx, 10).await.unwrap();
    tx.commit().await.unwrap();
    let sign_out = records
        .iter()
        .find(|r| r.action == "auth.sign_out")
        .expect("the sign-out is audited");
    assert_eq!(sign_out.actor_id, Some(accounts[0].id.as_uuid()));

    // Signing out again, or when never signed in, is harmless.
    assert_eq!(app.sign_out().await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_app_with(|s| {
        s.session_idle_timeout = Duration::from_secs(2);
        s.session_max_lifetime = Duration::from_secs(60);
    })
    .await;
    clinic(&app, "SESS-7", &["alice"]).await;
    let id = sign_in(&app, "SESS-7", "alice").await;
    assert_eq!(app.me().await.status(), StatusCode::OK);

    // Time itself must pass here: whether a session has expired is decided by the database's
    // clock (`session_load`) and tower-sessions' own, which no test clock reaches. Waiting
    // longer than the timeout cannot fail a good server, however slow the machine.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let response = app.me().await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(TestApp::error_code(response).await, "unauthenticated");
    assert_eq!(
        status_with_cookie(&app, &id).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_active_session_still_ends_at_its_absolute_lifetime() {
    // The idle timeout is ten times the requests' spacing, so that only a machine stalled for
    // four seconds could let it expire first.
    let app = spawn_app_with(|s| {
        s.session_idle_timeout = Duration::from_secs(4);
        s.session_max_lifetime = Duration::from_secs(6);
    })
    .await;
    clinic(&app, "SESS-8", &["alice"]).await;
    sign_in(&app, "SESS-8", "alice").await;
    let signed_in = Instant::now();

    // A request every 0.4 s renews the idle timeout; the lifetime is counted from sign-in.
    let mut seen = Vec::new();
    let ended_at = loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let status = app.me().await.status();
        let elapsed = signed_in.elapsed();
        seen.push((elapsed, status));
        if status == StatusCode::UNAUTHORIZED {
            break elapsed;
        }
        assert_eq!(status, StatusCode::OK, "{seen:?}");
        assert!(elapsed < Duration::from_secs(40), "never expired: {seen:?}");
    };
    // Past the idle timeout thanks to the renewals, but not before the lifetime.
    assert!(
        ended_at > Duration::from_millis(5900),
        "ended too early: {seen:?}"
    );
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn suspending_an_account_or_its_facility_ends_its_sessions_as_soon_as_announced() {
    let app = spawn_app().await;
    // The server remembers sessions and accounts only while it follows the announced changes:
    // wait for that, so that the test sees the remembered path (ADR 0025).
    crate::support::wait_until("the server following principal changes", || async {
        app.server_principals.is_listening()
    })
    .await;
    let (facility, accounts) = clinic(&app, "SESS-9", &["alice"]).await;
    let (other_facility, _) = clinic(&app, "SESS-10", &["bob"]).await;
    let alice = sign_in(&app, "SESS-9", "alice").await;
    let bob_client = new_client();
    let bob = session_id(
        &app.sign_in_with(&bob_client, Some("SESS-10"), "bob", FIXTURE_PASSWORD)
            .await,
    );
    assert_eq!(status_with_cookie(&app, &alice).await, StatusCode::OK);
    assert_eq!(status_with_cookie(&app, &bob).await, StatusCode::OK);

    let mut tx = app.db.begin(Scope::Facility(facility.id)).await.unwrap();
    staff::set_status(&mut tx, accounts[0].id, StaffStatus::Suspended)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The change is made by another process (the fixture's connections): the server learns of
    // it from the database's announcement, within moments.
    crate::support::wait_until("the suspended account refused", || async {
        app.me().await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        stored_sessions(&app, &alice).await,
        0,
        "the session is ended, not just refused"
    );

    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    sqlx::query("UPDATE facilities SET status = 'suspended' WHERE id = $1")
        .bind(other_facility.id.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    crate::support::wait_until("the suspended facility's staff refused", || async {
        status_with_cookie(&app, &bob).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(stored_sessions(&app, &bob).await, 0);
}

mod portal;
