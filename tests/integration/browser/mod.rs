//! The web portal in a real browser: Debian's Chromium, headless, driven through chromedriver,
//! with a phone's screen (390 × 844 CSS pixels, touch, Japanese): the harness here, the tests
//! in the submodules (sign-in and the keyboard path, care work, the password).
//!
//! With `RENRAKUCHO_SCREENSHOTS=1` the main screens are saved to `docs/screenshots/`.
//!
//! Chromium and chromedriver must be installed (`apt-get install chromium chromium-driver`;
//! `.ci/run` does it): without them these tests fail, they are never skipped.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::{spawn_app, OneTimeCodes, TestApp, FIXTURE_PASSWORD};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A phone's viewport in CSS pixels (an iPhone 12–15 class screen).
const PHONE: (u32, u32) = (390, 844);
/// The longest any one step may take (page load, an element appearing, a script).
const PATIENCE: Duration = Duration::from_secs(20);
/// Starting chromedriver and Chromium, which is slower on a loaded machine.
const STARTUP: Duration = Duration::from_secs(60);
const MISSING: &str = "the browser tests need Chromium and chromedriver: install them with \
                       `apt-get install chromium chromium-driver` (.ci/run installs them)";

const SESSION_COOKIE: &str = "renrakucho_session";
/// What fixture staff are called, and the fixture facility's code and name.
const DISPLAY_NAME: &str = "試験 太郎";
const FACILITY_CODE: &str = "WEB-CLINIC";
const FACILITY_NAME: &str = "WEB-CLINIC 施設";
const LOGIN: &str = "sato";

const LOGIN_FORM: &str = "form[action='/login']";
const LOGOUT_FORM: &str = "form[action='/logout']";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// `root` and every process below it, from `/proc` (Linux).
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // "pid (comm) state ppid ...": the command may itself hold spaces and parentheses.
        let ppid = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let (_, rest) = stat.rsplit_once(')')?;
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while let Some(&parent) = tree.get(next) {
        tree.extend(
            parent_of
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        next += 1;
    }
    tree
}

/// chromedriver on a port of its own, with the Chromium it starts.
///
/// Closing the WebDriver session ends Chromium; killing chromedriver alone would not (Chromium
/// outlives it), so dropping this kills chromedriver's whole process tree.
struct Driver {
    child: Child,
    url: String,
    /// Chromium's `--user-data-dir`, removed when dropped.
    profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> (Self, Client) {
        let chromium = find_program(&["chromium", "chromium-browser"]).expect(MISSING);
        let chromedriver = find_program(&["chromedriver"]).expect(MISSING);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {MISSING}", chromedriver.display()));
        // chromedriver says when it listens; after that its output is only drained.
        let mut lines = BufReader::new(child.stdout.take().expect("chromedriver's stdout")).lines();
        let ready = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("started successfully") {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(STARTUP, ready).await {
            Ok(true) => {}
            Ok(false) => panic!("chromedriver exited before it was ready ({MISSING})"),
            Err(_) => panic!("chromedriver was not ready within {STARTUP:?}"),
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("a browser profile directory"),
        };
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--lang=ja",
                    format!("--window-size={},{}", PHONE.0, PHONE.1),
                    format!("--user-data-dir={}", driver.profile.path().display()),
                ],
                // On Linux `--lang` does not reach the page; this is Accept-Language and
                // navigator.languages.
                "prefs": { "intl.accept_languages": "ja,en" },
                // Headless windows are at least 500 pixels wide, so the phone's screen is
                // emulated: its width, touch, and the viewport meta tag taking effect.
                "mobileEmulation": {
                    "deviceMetrics": {
                        "width": PHONE.0, "height": PHONE.1, "pixelRatio": 2.0,
                        "mobile": true, "touch": true,
                    },
                },
            }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let connecting = builder.connect(&driver.url);
        let client = tokio::time::timeout(STARTUP, connecting)
            .await
            .unwrap_or_else(|_| panic!("Chromium did not start within {STARTUP:?}"))
            .unwrap_or_else(|e| panic!("starting a Chromium session: {e}"));
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(PATIENCE),
                Some(PATIENCE),
                Some(Duration::ZERO),
            ))
            .await
            .expect("setting the WebDriver timeouts");
        (driver, client)
    }

    fn kill_everything(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let Some(root) = self.child.id() else {
            return; // already reaped
        };
        for pid in process_tree(root) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    /// Kills chromedriver and anything left under it, and waits for chromedriver to go.
    async fn stop(mut self) {
        self.kill_everything();
        let _ = tokio::time::timeout(PATIENCE, self.child.wait()).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill_everything();
    }
}

/// Runs `body` in a fresh browser against `app`, then ends the browser session and chromedriver
/// whether the body passed or panicked (and then panics the same way).
async fn in_browser<F, Fut>(app: &TestApp, body: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    in_browser_at(app, app.address.clone(), body).await
}

/// As [`in_browser`], with the app reached at `base` (another name for its address).
async fn in_browser_at<F, Fut>(app: &TestApp, base: String, body: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (driver, client) = Driver::start().await;
    let page = Page {
        client: client.clone(),
        base,
        codes: app.one_time_codes(),
    };
    let outcome = tokio::spawn(body(page)).await;
    let closed = tokio::time::timeout(PATIENCE, client.close()).await;
    driver.stop().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the browser test did not finish: {e}"),
        }
    }
    closed
        .expect("closing the browser session timed out")
        .expect("closing the browser session");
}

/// The browser as a test drives it, with the app's address.
struct Page {
    client: Client,
    base: String,
    /// The fixture accounts' authenticators, for the sign-in's code page.
    codes: OneTimeCodes,
}

impl Page {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("loading {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .path()
            .to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    async fn text(&self) -> String {
        self.js("return document.body.innerText")
            .await
            .as_str()
            .expect("the page's text")
            .to_string()
    }

    async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| {
                panic!("{css} did not appear within {PATIENCE:?}: {e}");
            })
    }

    /// Waits until the page's text contains `needle` (after a form is sent, the old page may
    /// still be showing for a moment).
    async fn wait_for_text(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self
                .js("return document.body ? document.body.innerText : ''")
                .await;
            if text.as_str().is_some_and(|t| t.contains(needle)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{needle:?} did not appear within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    async fn value_of(&self, id: &str) -> String {
        self.js(&format!("return document.getElementById('{id}').value"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Presses keys on the keyboard, into whatever has the focus.
    async fn press(&self, keys: &str) {
        let actions = keys
            .chars()
            .fold(KeyActions::new("keyboard".into()), |a, key| {
                a.then(KeyAction::Down { value: key })
                    .then(KeyAction::Up { value: key })
            });
        self.client
            .perform_actions(actions)
            .await
            .unwrap_or_else(|e| panic!("pressing keys: {e}"));
    }

    async fn press_key(&self, key: Key) {
        self.press(&char::from(key).to_string()).await;
    }

    /// Shift+Tab.
    async fn press_back_tab(&self) {
        let (shift, tab) = (char::from(Key::Shift), char::from(Key::Tab));
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: shift })
            .then(KeyAction::Down { value: tab })
            .then(KeyAction::Up { value: tab })
            .then(KeyAction::Up { value: shift });
        self.client
            .perform_actions(actions)
            .await
            .expect("pressing Shift+Tab");
    }

    /// The focused element as a selector: `#id`, `a[href="/"]` or `button[type=submit]`.
    async fn focused(&self) -> String {
        let script = r#"
            const e = document.activeElement;
            if (!e || e === document.body) return 'body';
            if (e.id) return '#' + e.id;
            const tag = e.tagName.toLowerCase();
            if (e.hasAttribute("href")) return `${tag}[href="${e.getAttribute("href")}"]`;
            if (e.hasAttribute("type")) return `${tag}[type=${e.getAttribute("type")}]`;
            return tag;
        "#;
        self.js(script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether the focused element shows it: an outline, on the screen.
    async fn focus_is_visible(&self) -> bool {
        let script = r#"
            const e = document.activeElement, style = getComputedStyle(e);
            const box = e.getBoundingClientRect();
            return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0
                && box.left >= 0 && box.top >= 0 && box.width > 0 && box.height > 0;
        "#;
        self.js(script).await == Value::Bool(true)
    }

    async fn has_session_cookie(&self) -> bool {
        self.client
            .get_all_cookies()
            .await
            .expect("the browser's cookies")
            .iter()
            .any(|c| c.name() == SESSION_COOKIE)
    }

    /// Types into the sign-in form's fields and clicks the button; when the code page follows
    /// (the password was right), types a code of the account's fixture authenticator there.
    async fn sign_in(&self, code: &str, login: &str, password: &str) {
        for (id, text) in [
            ("facility_code", code),
            ("login_id", login),
            ("password", password),
        ] {
            let field = self.wait_for(&format!("#{id}")).await;
            field.clear().await.expect("clearing a field");
            field.send_keys(text).await.expect("typing into a field");
        }
        // The page before the answer carries a mark: the answer is the page without it.
        self.js("window.renrakuchoAnswered = false; return null")
            .await;
        self.click(&format!("{LOGIN_FORM} button[type=submit]"))
            .await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sign-in form was not answered"
            );
            let before = self
                .client
                .execute("return window.renrakuchoAnswered === false", vec![])
                .await
                // Mid-navigation there may be no document to ask: not answered yet.
                .unwrap_or(Value::Bool(true));
            if before == Value::Bool(true) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let path = self.path().await;
            if path == "/login/code" {
                break;
            }
            let alert = self
                .client
                .find_all(Locator::Css("[role=alert]"))
                .await
                .map(|found| !found.is_empty())
                .unwrap_or(false);
            if path != "/login" || alert {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let one_time = self
            .codes
            .code(code, login)
            .await
            .expect("the account has a fixture authenticator");
        self.enter_code(&one_time).await;
    }

    /// Types `code` into the sign-in's code page and clicks the button.
    async fn enter_code(&self, code: &str) {
        let field = self.wait_for("#one_time_code").await;
        field.send_keys(code).await.expect("typing the code");
        self.click("form[action='/login/code'] button[type=submit]")
            .await;
    }

    /// The page is laid out for the phone (the viewport meta tag works) and nothing makes it
    /// wider: no sideways scrolling.
    async fn assert_fits_the_phone(&self, page: &str) {
        let widths = self
            .js("return [window.innerWidth, document.documentElement.scrollWidth]")
            .await;
        let (viewport, content) = (widths[0].as_u64(), widths[1].as_u64());
        assert_eq!(
            viewport,
            Some(u64::from(PHONE.0)),
            "{page}: the layout viewport is not the phone's width"
        );
        assert!(
            content <= viewport,
            "{page} scrolls sideways on a phone: {content:?} CSS pixels wide in {viewport:?}"
        );
    }

    /// Saves the page when screenshots are asked for (`RENRAKUCHO_SCREENSHOTS=1`).
    async fn screenshot(&self, name: &str) {
        if std::env::var("RENRAKUCHO_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("creating docs/screenshots");
        let png = self.client.screenshot().await.expect("a screenshot");
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("saving {}: {e}", file.display()));
    }
}

async fn app_with_staff() -> TestApp {
    let app = spawn_app().await;
    let clinic = app.seed_facility(FACILITY_CODE, FacilityKind::Clinic).await;
    app.seed_staff(&clinic, LOGIN, StaffRole::Staff, Profession::Nurse)
        .await;
    app
}

/// Every visible field has a label, and nothing scrolls sideways.
async fn assert_accessible_on_a_phone(page: &Page, name: &str) {
    let unlabelled = page
        .js(
            r#"return [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
                 .filter(e => e.labels.length === 0 || !e.labels[0].textContent.trim())
                 .map(e => e.name || e.id || e.outerHTML)"#,
        )
        .await;
    assert_eq!(
        unlabelled,
        json!([]),
        "{name}: every field has a <label for=…>"
    );
    page.assert_fits_the_phone(name).await;
}

mod care;
mod passkeys;
mod password;
mod provider;
mod sign_in;
mod staff;
