//! The web portal in a real browser: Debian's Chromium, headless, at a phone's size, driven
//! through chromedriver. Sign-in and sign-out through the form, the error a person sees, the
//! keyboard path, labels and language. With `RENRAKUCHO_SCREENSHOTS=1` the main screens are
//! saved to `docs/screenshots/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::{spawn_app, TestApp, FIXTURE_PASSWORD};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const PHONE: (u32, u32) = (390, 844);

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// chromedriver and a headless Chromium session; both end when this is dropped or closed.
struct Browser {
    client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let missing = "Chromium and chromedriver are needed for the browser tests: \
                       apt-get install chromium chromium-driver (.ci/run installs them)";
        let chromium = find_program(&["chromium", "chromium-browser"]).expect(missing);
        let chromedriver = find_program(&["chromedriver"]).expect(missing);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let probe = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while probe.get(format!("{url}/status")).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--lang=ja",
                    format!("--window-size={},{}", PHONE.0, PHONE.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("running a script")
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .path()
            .to_string()
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    async fn value_of(&self, id: &str) -> String {
        self.js(&format!("return document.getElementById('{id}').value"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn focused_id(&self) -> String {
        self.js("return document.activeElement.id || document.activeElement.tagName")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves the page when screenshots are asked for (`RENRAKUCHO_SCREENSHOTS=1`).
    async fn screenshot(&self, name: &str) {
        if std::env::var("RENRAKUCHO_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("saving a screenshot");
    }

    /// No horizontal scrolling at a phone's width.
    async fn assert_fits_the_phone(&self, page: &str) {
        let fits = self
            .js("return document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        assert_eq!(
            fits,
            Value::Bool(true),
            "{page} scrolls sideways on a phone"
        );
    }
}

async fn app_with_staff() -> TestApp {
    let app = spawn_app().await;
    let clinic = app.seed_facility("WEB-CLINIC", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "sato", StaffRole::Staff, Profession::Nurse)
        .await;
    app
}

async fn fill_and_submit(browser: &Browser, code: &str, login: &str, password: &str) {
    for (id, text) in [
        ("facility_code", code),
        ("login_id", login),
        ("password", password),
    ] {
        let field = browser.wait_for(&format!("#{id}")).await;
        field.clear().await.expect("clearing a field");
        field.send_keys(text).await.expect("typing");
    }
    browser
        .client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("clicking sign in");
}

#[tokio::test]
async fn staff_sign_in_and_out_through_the_form_on_a_phone() {
    let app = app_with_staff().await;
    let browser = Browser::start().await;

    browser.client.goto(&app.url("/")).await.unwrap();
    browser.wait_for("form[action='/login']").await;
    assert_eq!(
        browser.path().await,
        "/login",
        "strangers are sent to sign in"
    );
    assert_eq!(
        browser.js("return document.documentElement.lang").await,
        "ja"
    );
    assert_eq!(
        browser
            .js("return !!document.querySelector('meta[name=viewport]')")
            .await,
        Value::Bool(true)
    );
    let unlabelled = browser
        .js(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => e.labels.length === 0).map(e => e.name)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "every field has a label");
    browser.assert_fits_the_phone("the sign-in page").await;
    browser.screenshot("login").await;

    fill_and_submit(&browser, "web-clinic", "sato", FIXTURE_PASSWORD).await;
    browser.wait_for("form[action='/logout']").await;
    assert_eq!(browser.path().await, "/");
    let text = browser.js("return document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("試験 太郎"), "{text}");
    assert!(text.contains("WEB-CLINIC 施設"), "{text}");
    browser.assert_fits_the_phone("the home page").await;
    browser.screenshot("home").await;

    browser
        .client
        .find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("form[action='/login']").await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.wait_for("form[action='/login']").await;
    assert_eq!(browser.path().await, "/login", "signed out for real");
    browser.close().await;
}

#[tokio::test]
async fn a_wrong_password_shows_an_alert_and_keeps_what_was_typed_except_the_password() {
    let app = app_with_staff().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/login")).await.unwrap();
    fill_and_submit(&browser, "WEB-CLINIC", "sato", "not the password").await;

    let alert = browser.wait_for("[role=alert]").await;
    let message = alert.text().await.unwrap();
    assert!(
        message.starts_with("施設コード、ユーザーID、またはパスワードが違います"),
        "{message}"
    );
    assert_eq!(browser.value_of("facility_code").await, "WEB-CLINIC");
    assert_eq!(browser.value_of("login_id").await, "sato");
    assert_eq!(
        browser.value_of("password").await,
        "",
        "a password is never sent back"
    );
    assert_eq!(
        browser
            .js("return document.querySelector('form').getAttribute('aria-describedby')")
            .await,
        "login-error"
    );
    browser.assert_fits_the_phone("the sign-in error").await;
    browser.screenshot("login-error").await;

    browser.client.goto(&app.url("/")).await.unwrap();
    browser.wait_for("form[action='/login']").await;
    assert_eq!(browser.path().await, "/login", "no session after a failure");
    browser.close().await;
}

#[tokio::test]
async fn the_form_works_from_the_keyboard_alone() {
    let app = app_with_staff().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/login")).await.unwrap();
    browser.wait_for("#facility_code").await;
    browser
        .js("document.getElementById('facility_code').focus()")
        .await;

    let tab: char = Key::Tab.into();
    let order = ["login_id", "password", "BUTTON"];
    let typed = [Some("WEB-CLINIC"), Some("sato"), Some(FIXTURE_PASSWORD)];
    assert_eq!(browser.focused_id().await, "facility_code");
    for (expected, text) in order.iter().zip(typed) {
        let field = browser.client.active_element().await.unwrap();
        if let Some(text) = text {
            field.send_keys(text).await.unwrap();
        }
        field.send_keys(&tab.to_string()).await.unwrap();
        assert_eq!(&browser.focused_id().await, expected, "tab order");
    }

    // Back to the password field and press Enter there.
    browser
        .js("document.getElementById('password').focus()")
        .await;
    let enter: char = Key::Enter.into();
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(&enter.to_string())
        .await
        .unwrap();
    browser.wait_for("form[action='/logout']").await;
    assert_eq!(browser.path().await, "/");
    browser.close().await;
}
