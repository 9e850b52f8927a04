//! A real OpenID Connect provider for the sign-in tests: panva's `oidc-provider` (npm), run by
//! Node from `tests/oidc-provider/server.mjs` on a free loopback port and stopped when dropped.
//!
//! It speaks the authorization code flow with PKCE as a production provider does (discovery,
//! JWKS, RS256 ID tokens, RP-initiated logout), signs in and consents by itself, and has a
//! `/__test/*` API through which a test chooses who signs in and makes it misbehave: tampered ID
//! tokens, a key rotation, an outage. `node tests/oidc-provider/selftest.mjs` checks all that.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MISSING: &str = "the OIDC tests need the test provider's npm packages: \
                       `npm ci --prefix tests/oidc-provider` (.ci/run does)";

/// What server.mjs prints, once, when it accepts requests.
const LISTENING: &str = "oidc-provider listening on ";

/// A relying party registered at the provider (confidential: it authenticates with its secret,
/// by `client_secret_basic` or `client_secret_post`).
#[derive(Debug, Clone)]
pub struct OidcClientConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Matched exactly, as a production provider does.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

/// A user at the provider. The claims are in the ID token (scopes `openid email profile`); a
/// `None` is left out, as a provider that does not know it would.
#[derive(Debug, Clone)]
pub struct OidcAccount {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
}

/// A running provider.
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`; discovery is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    client: reqwest::Client,
    _config: tempfile::TempDir,
    _process: Child,
}

impl OidcProvider {
    /// Starts the provider with these clients and accounts and waits until it listens. The first
    /// account is the one that signs in until [`next_login`](Self::next_login) picks another.
    pub async fn start(clients: Vec<OidcClientConfig>, accounts: Vec<OidcAccount>) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{MISSING} ({} is missing)",
            dir.join("node_modules").display()
        );

        let config = tempfile::tempdir().expect("a directory for the provider's config");
        let config_path = config.path().join("config.json");
        let clients: Vec<_> = clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "redirect_uris": c.redirect_uris,
                    "post_logout_redirect_uris": c.post_logout_redirect_uris,
                })
            })
            .collect();
        let accounts: Vec<_> = accounts
            .iter()
            .map(|a| {
                json!({
                    "sub": a.sub,
                    "email": a.email,
                    "email_verified": a.email_verified,
                    "preferred_username": a.preferred_username,
                    "name": a.name,
                })
            })
            .collect();
        std::fs::write(
            &config_path,
            json!({ "clients": clients, "accounts": accounts }).to_string(),
        )
        .expect("the provider's config written");

        // The provider picks its own free port (it listens on port 0, then names the issuer
        // after the port it got), so no other process can take the port in between.
        let mut process = Command::new("node")
            .arg(dir.join("server.mjs"))
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run `node` ({e}); {MISSING}"));

        // The last lines of stderr, for the panic message if the provider does not start; read
        // to the end in any case, so that the child never blocks on a full pipe.
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = {
            let tail = Arc::clone(&stderr_tail);
            let mut lines = BufReader::new(process.stderr.take().expect("piped stderr")).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().expect("stderr tail");
                    if tail.len() == 20 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            })
        };

        let mut stdout = BufReader::new(process.stdout.take().expect("piped stdout")).lines();
        let listening = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(issuer) = line.strip_prefix(LISTENING) {
                    return Some(issuer.to_owned());
                }
            }
            None // stdout closed: the process ended
        })
        .await;
        let issuer = match listening {
            Ok(Some(issuer)) => issuer,
            failed => {
                let _ = process.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), stderr_reader).await;
                let tail = Vec::from(stderr_tail.lock().expect("stderr tail").clone());
                let what = if failed.is_err() {
                    "did not start within 30 s"
                } else {
                    "exited"
                };
                panic!(
                    "the test OpenID provider {what}: {MISSING}\nits stderr ended with:\n{}",
                    tail.join("\n")
                );
            }
        };
        // Nothing more is expected on stdout, but it is drained all the same.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

        Self {
            issuer,
            client: reqwest::Client::builder()
                // A loopback peer: no proxy from the environment in between.
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            _config: config,
            _process: process,
        }
    }

    /// The account that signs in from now on (sticky until the next call). When the browser is
    /// still signed in at the provider as someone else, the provider signs that one out first
    /// (a self-submitting form: the browser needs JavaScript).
    pub async fn next_login(&self, sub: &str) {
        self.post("next-login", json!({ "sub": sub })).await;
    }

    /// Makes the next token-endpoint response a bad one, once: `wrong_issuer`,
    /// `wrong_audience`, `expired`, `nonce_mismatch` (re-signed properly, one claim wrong),
    /// `bad_signature`, `alg_none`, `hs256_public_key` (HMAC keyed with the RSA public key's
    /// PEM), `unknown_kid` (a key not in the JWKS), or `garbage` (a 200 whose body is not JSON).
    /// The relying party must refuse each.
    pub async fn tamper(&self, mode: &str) {
        self.post("tamper", json!({ "mode": mode })).await;
    }

    /// Rotates the signing key: a new key (new `kid`) joins the JWKS and signs every ID token
    /// from now on. A relying party that caches the JWKS must fetch it again on the unknown
    /// `kid`.
    pub async fn rotate_keys(&self) {
        self.post("rotate-keys", json!({})).await;
    }

    /// Requests received so far: `{"discovery", "jwks", "token", "authorization"}` (counted
    /// even while down), to see what the relying party fetched and what it cached.
    pub async fn stats(&self) -> serde_json::Value {
        let response = self
            .client
            .get(format!("{}/__test/stats", self.issuer))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the test OpenID provider's stats");
        response
            .json()
            .await
            .expect("the test OpenID provider's stats as JSON")
    }

    /// `up`, `down` (every request answers 503) or `garbage` (every request answers 200 with
    /// an HTML body): the relying party must fail cleanly while the provider is unusable, and
    /// recover after.
    pub async fn set_mode(&self, mode: &str) {
        self.post("down", json!({ "mode": mode })).await;
    }

    async fn post(&self, route: &str, body: serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/__test/{route}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the test OpenID provider's /__test/{route}: {e}"));
        let status = response.status();
        assert!(
            status.is_success(),
            "the test OpenID provider refused /__test/{route} {body}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
}

/// Follows the redirects of a browser from `start` (a provider's authorization URL) through the
/// provider until it is sent back to `app`: that URL (the app's callback with its `code` and
/// `state`), not fetched yet.
pub async fn follow_to_app(app: &crate::TestApp, client: &reqwest::Client, start: &str) -> String {
    let home = app.url("/");
    let mut next = start.to_string();
    for _ in 0..10 {
        if next.starts_with(&home) {
            return next;
        }
        let response = client
            .get(&next)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the provider at {next}: {e}"));
        assert!(
            response.status().is_redirection(),
            "the provider answered {} at {next}",
            response.status()
        );
        let location = response.headers()["location"]
            .to_str()
            .expect("a Location header")
            .to_string();
        next = reqwest::Url::parse(&next)
            .and_then(|base| base.join(&location))
            .expect("a Location URL")
            .to_string();
    }
    panic!("the provider never sent the browser back");
}
