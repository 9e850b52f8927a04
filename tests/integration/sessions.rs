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

fn assert_redirect(response: &reqwest::Response, to: &str) {
    assert!(
        matches!(response.status().as_u16(), 302 | 303 | 307),
        "expected a redirect to {to}, got {}",
        response.status()
    );
    assert_eq!(response.headers()[LOCATION], to);
}

async fn html(response: reqwest::Response) -> String {
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    response.text().await.unwrap()
}

async fn post_login(app: &TestApp, code: &str, login: &str, password: &str) -> reqwest::Response {
    let token = app.form_token(&app.client, "/login").await;
    app.client
        .post(app.url("/login"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("facility_code", code),
            ("login_id", login),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_portal_sends_strangers_to_a_japanese_login_form() {
    let app = spawn_app().await;
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");

    let page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let body = html(page).await;
    for label in ["施設コード", "ユーザーID", "パスワード"] {
        assert!(body.contains(label), "the form lacks the label {label}");
    }
    assert!(body.contains(r#"action="/login""#));
    for field in ["facility_code", "login_id", "password"] {
        assert!(
            body.contains(&format!(r#"name="{field}""#)),
            "no {field} input"
        );
    }
    assert!(body.contains(r#"type="password""#));
}

#[tokio::test]
async fn the_portal_signs_in_shows_the_name_and_signs_out() {
    let app = spawn_app().await;
    clinic(&app, "PORTAL-1", &["alice"]).await;

    let submitted = post_login(&app, "portal-1", "alice", FIXTURE_PASSWORD).await;
    // The password was right: the code page follows, and nothing opens before it.
    assert_redirect(&submitted, "/login/code");
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");
    let token = app.form_token(&app.client, "/login/code").await;
    let code = app.one_time_code("PORTAL-1", "alice").await.unwrap();
    let submitted = app
        .client
        .post(app.url("/login/code"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("one_time_code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_redirect(&submitted, "/");
    let id = session_id(&submitted);

    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let body = html(home).await;
    assert!(
        body.contains(DISPLAY_NAME),
        "the home page does not greet the user"
    );
    assert!(body.contains("PORTAL-1"));
    // Signed in, the login page sends you home.
    let login_page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_redirect(&login_page, "/");

    // Signing out is a form too: without its token nothing happens.
    let forged = app.client.post(app.url("/logout")).send().await.unwrap();
    assert!(forged.status().is_client_error(), "{}", forged.status());
    assert_eq!(stored_sessions(&app, &id).await, 1);
    let token = app.form_token(&app.client, "/").await;
    let logout = app
        .client
        .post(app.url("/logout"))
        .form(&[("authenticity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_redirect(&logout, "/login");
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");
    assert_eq!(stored_sessions(&app, &id).await, 0);
    assert_eq!(
        status_with_cookie(&app, &id).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_portal_re_renders_the_form_after_bad_credentials() {
    let app = spawn_app().await;
    clinic(&app, "PORTAL-2", &["alice"]).await;
    let wrong = "wrong password 123";
    for (code, login) in [
        ("PORTAL-2", "alice"),
        ("PORTAL-2", "nobody"),
        ("NO-SUCH-9", "alice"),
    ] {
        let response = post_login(&app, code, login, wrong).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{code}/{login}"
        );
        assert!(session_cookie(&response).is_none());
        let body = html(response).await;
        assert!(
            body.contains("施設コード、ユーザーID、またはパスワードが違います"),
            "{code}/{login}: no Japanese error message"
        );
        assert!(body.contains(r#"role="alert""#));
        assert!(
            body.contains(&format!(r#"value="{login}""#)),
            "the login ID is kept"
        );
        assert!(!body.contains(wrong), "the password is echoed back");
        assert!(
            body.contains(r#"action="/login""#),
            "the form is shown again"
        );
    }
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");
}

#[tokio::test]
async fn portal_forms_refuse_a_missing_or_foreign_csrf_token() {
    let app = spawn_app().await;
    clinic(&app, "PORTAL-3", &["alice"]).await;
    let credentials = [
        ("facility_code", "PORTAL-3"),
        ("login_id", "alice"),
        ("password", FIXTURE_PASSWORD),
    ];
    // No token at all.
    let bare = app
        .client
        .post(app.url("/login"))
        .form(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&bare).is_none());
    assert!(html(bare).await.contains("フォームの有効期限が切れたか"));
    // A token taken from another browser (another cookie): a cross-site forgery's best try.
    let attacker = renrakucho_testkit::new_client();
    let stolen = app.form_token(&attacker, "/login").await;
    let _ = app.form_token(&app.client, "/login").await;
    let mut form = vec![("authenticity_token", stolen.as_str())];
    form.extend(credentials);
    let forged = app
        .client
        .post(app.url("/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&forged).is_none());
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);
}

/// The cookies a response sets, as `name=value`.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|h| h.split(';').next().map(|c| c.trim().to_string()))
        .collect()
}

/// The cookie of `jar` named `name`, as `name=value`.
fn cookie<'a>(jar: &'a [String], name: &str) -> &'a str {
    jar.iter()
        .rev()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {jar:?}"))
}

/// A browser without a cookie store: the test carries its cookies by hand, as a page on a
/// sibling site could make a browser carry them.
struct Browser {
    client: reqwest::Client,
    jar: Vec<String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Vec::new(),
        }
    }

    fn header(&self) -> String {
        self.jar.join("; ")
    }

    /// A page's form token, keeping the cookies the page sets.
    async fn form_token(&mut self, app: &TestApp, path: &str) -> String {
        let response = self
            .client
            .get(app.url(path))
            .header(COOKIE, self.header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        self.keep(&response);
        let page = response.text().await.unwrap();
        let marker = r#"name="authenticity_token" value=""#;
        let start = page.find(marker).expect("a form token") + marker.len();
        let end = page[start..].find('"').unwrap() + start;
        page[start..end].to_string()
    }

    async fn sign_in(&mut self, app: &TestApp, code: &str, login: &str) {
        let token = self.form_token(app, "/login").await;
        let response = self
            .client
            .post(app.url("/login"))
            .header(COOKIE, self.header())
            .form(&[
                ("authenticity_token", token.as_str()),
                ("facility_code", code),
                ("login_id", login),
                ("password", FIXTURE_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "signing {login} in"
        );
        self.keep(&response);
        // The password was right: the code of the account's authenticator completes it.
        let token = self.form_token(app, "/login/code").await;
        let one_time_code = app.one_time_code(code, login).await.unwrap();
        let response = self
            .client
            .post(app.url("/login/code"))
            .header(COOKIE, self.header())
            .form(&[
                ("authenticity_token", token.as_str()),
                ("one_time_code", one_time_code.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_redirect(&response, "/");
        self.keep(&response);
    }

    /// Keeps the cookies `response` sets, each replacing the one of its name.
    fn keep(&mut self, response: &reqwest::Response) {
        for cookie in set_cookies(response) {
            let name = cookie.split('=').next().unwrap_or_default().to_string();
            self.jar
                .retain(|kept| kept.split('=').next().unwrap_or_default() != name);
            self.jar.push(cookie);
        }
    }
}

/// Cookie tossing: a page on a sibling site plants the attacker's own CSRF cookie in the
/// victim's browser and submits the attacker's own form token with the victim's session
/// cookie. The token is bound to the session, so the form is refused and nothing is created;
/// the victim's own form goes through.
#[tokio::test]
async fn a_tossed_csrf_cookie_and_token_do_not_act_for_the_victim() {
    let app = spawn_app().await;
    let (facility, _) = clinic(&app, "PORTAL-TOSS", &["alice", "mallory"]).await;
    let mut victim = Browser::new();
    victim.sign_in(&app, "PORTAL-TOSS", "alice").await;
    let own_token = victim.form_token(&app, "/patients/new").await;

    // The attacker's cookie and token: as a visitor (no session), and signed in as themself.
    let mut visitor = Browser::new();
    let visitor_token = visitor.form_token(&app, "/login").await;
    let mut insider = Browser::new();
    insider.sign_in(&app, "PORTAL-TOSS", "mallory").await;
    let insider_token = insider.form_token(&app, "/patients/new").await;

    let registered = || {
        let app = &app;
        async move {
            let mut su = crate::support::superuser(app).await;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM patients WHERE facility_id = $1")
                .bind(facility.id.as_uuid())
                .fetch_one(&mut su)
                .await
                .unwrap()
        }
    };
    let submit = |csrf_cookie: String, token: String| {
        let app = &app;
        let session = cookie(&victim.jar, COOKIE_NAME).to_string();
        let client = victim.client.clone();
        async move {
            client
                .post(app.url("/patients/new"))
                .header(COOKIE, format!("{session}; {csrf_cookie}"))
                .form(&[
                    ("authenticity_token", token.as_str()),
                    ("name", "投げ込み 太郎"),
                    ("kana", "ナゲコミ タロウ"),
                    ("birth_date", "1940-01-15"),
                    ("sex", "male"),
                    ("care_level", "care_1"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for (attacker, token) in [(&visitor, visitor_token), (&insider, insider_token)] {
        let tossed = cookie(&attacker.jar, "renrakucho_csrf").to_string();
        let response = submit(tossed, token).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "a tossed cookie");
        assert!(html(response)
            .await
            .contains("フォームの有効期限が切れたか"));
        assert_eq!(registered().await, 0, "nothing was registered");
    }
    // The victim's own cookie and token: registered.
    let own_cookie = cookie(&victim.jar, "renrakucho_csrf").to_string();
    let response = submit(own_cookie, own_token).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the victim's own form"
    );
    assert_eq!(registered().await, 1);
}
