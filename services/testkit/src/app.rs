use std::collections::HashMap;
use std::net::SocketAddr;

use renrakucho_core::{
    DisplayName, FacilityCode, FacilityKind, FacilityName, LoginId, Password, Profession, StaffRole,
};
use renrakucho_identity::totp::{TotpSecret, STEP_SECONDS};
use renrakucho_identity::{PasswordHasher, PasswordParams};
use renrakucho_server::admin_commands::{self, StaffToIssue};
use renrakucho_server::config::Secret;
use renrakucho_server::{Application, Settings};
use renrakucho_store::facilities::Facility;
use renrakucho_store::operators::Operator;
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::Database;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::TestDatabase;

/// The server running on a free port over its own database, with a cookie-keeping client.
pub struct TestApp {
    pub address: String,
    pub addr: SocketAddr,
    /// The database as a second server process has it (web pool as the runtime role, privileged
    /// pools), for fixtures and direct checks.
    pub db: Database,
    /// The running server's own connections (its pools, as it uses them).
    pub server_db: Database,
    pub database: TestDatabase,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The running server's authorizer (Casbin), to compare its decisions with the database.
    pub authz: std::sync::Arc<renrakucho_authz::Authorizer>,
    /// The server's file store (a directory of the test's own).
    pub files: renrakucho_files::FileStore,
    /// The running server's password hasher, which counts its verifications.
    pub server_hasher: PasswordHasher,
    /// The running server's keyring (its master keys and caches, as it uses them).
    pub server_keyring: renrakucho_keyring::Keyring,
    /// What the running server remembers of sessions and accounts.
    pub server_principals: renrakucho_http::principals::Principals,
    hasher: PasswordHasher,
    /// The fixture accounts' authenticators.
    authenticators: OneTimeCodes,
    _scratch: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

/// Test defaults: a free port and a master key of the test's own (given directly, so no key
/// file is written anywhere); everything else as in production.
pub fn test_settings() -> Settings {
    use base64::Engine;
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut csrf = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut csrf);
    Settings {
        listen: "127.0.0.1:0".parse().expect("an address"),
        master_key: Some(Secret::new(
            base64::engine::general_purpose::STANDARD.encode(key),
        )),
        csrf_secret: Some(Secret::new(
            base64::engine::general_purpose::STANDARD.encode(csrf),
        )),
        // The test OpenID providers run on loopback, over plain HTTP.
        oidc_allow_private_providers: true,
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted first (short timeouts, tight throttles).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::create().await;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut settings = test_settings();
    settings.files_dir = Some(scratch.path().join("files"));
    adjust(&mut settings);
    let app = Application::build(&settings, &database.connections())
        .await
        .expect("building the application");
    let addr = app.local_addr();
    let authz = app.authorizer().clone();
    let server_db = app.database().clone();
    let files = app.files().clone();
    let server_hasher = app.password_hasher().clone();
    let server_keyring = app.keyring().clone();
    let server_principals = app.principals().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let db = Database::connect(&database.connections(), 4)
        .await
        .expect("connecting the fixture pool");
    let hasher = PasswordHasher::new(PasswordParams {
        memory_kib: settings.password_memory_kib,
        iterations: settings.password_iterations,
        parallelism: 1,
    })
    .expect("hasher");
    TestApp {
        address: format!("http://{addr}"),
        addr,
        db,
        server_db,
        database,
        client: new_client(),
        settings,
        authz,
        files,
        server_hasher,
        server_keyring,
        server_principals,
        hasher,
        authenticators: Default::default(),
        _scratch: scratch,
        shutdown: Some(tx),
    }
}

/// A client that keeps cookies and does not follow redirects (tests look at them).
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Facility codes and login IDs are not case-sensitive.
fn fixture_key(facility_code: &str, login: &str) -> String {
    format!(
        "{}/{}",
        facility_code.trim().to_uppercase(),
        login.trim().to_lowercase()
    )
}

/// The fixture accounts' authenticators, by `CODE/login`, shared with whoever signs in for a
/// test (a browser test's page).
#[derive(Clone, Default)]
pub struct OneTimeCodes(std::sync::Arc<std::sync::Mutex<HashMap<String, Authenticator>>>);

impl OneTimeCodes {
    /// A code of the authenticator of `facility_code`/`login` that the server has not seen:
    /// for the current step or the next (the server accepts one step either side, so a step
    /// boundary passed on the way does no harm); when both were given out, one of the
    /// account's recovery codes, and only when those are used up, a wait for a new step.
    pub async fn code(&self, facility_code: &str, login: &str) -> Option<String> {
        let key = fixture_key(facility_code, login);
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            let current = now / STEP_SECONDS;
            {
                let mut authenticators = self.0.lock().unwrap();
                let fixture = authenticators.get_mut(&key)?;
                let step = (fixture.last_step + 1).max(current);
                if step <= current + 1 {
                    fixture.last_step = step;
                    return Some(fixture.secret.code_at(step));
                }
                if let Some(recovery) = fixture.recovery_codes.pop() {
                    return Some(recovery);
                }
            }
            let into_step = now % STEP_SECONDS;
            tokio::time::sleep(std::time::Duration::from_secs(STEP_SECONDS - into_step)).await;
        }
    }
}

/// A fixture account's authenticator: the secret, the newest step whose code was given out (a
/// code is good once, for a later step than the last), the recovery codes not given out.
struct Authenticator {
    secret: TotpSecret,
    last_step: u64,
    recovery_codes: Vec<String>,
}

/// The password every fixture account gets.
pub const FIXTURE_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A keyring over this app's master keys (a second process's, with its own cache).
    pub async fn keyring(&self) -> renrakucho_keyring::Keyring {
        let keyring = renrakucho_server::keys::open_keyring(&self.settings)
            .await
            .expect("the keyring");
        keyring
            .prepare(&self.db)
            .await
            .expect("preparing the keyring");
        keyring
    }

    /// A patient registered by `staff` of their facility, with an ordinary profile.
    pub async fn seed_patient(
        &self,
        staff: &StaffAccount,
        name: &str,
        kana: &str,
    ) -> renrakucho_registry::Patient {
        use renrakucho_core::{
            BirthDate, CareLevel, KanaName, PatientName, PatientProfile, Phone, Sex,
        };
        let today = time::OffsetDateTime::now_utc().date();
        renrakucho_registry::register_patient(
            &self.db,
            &self.keyring().await,
            // As the authorizer would allow the registering facility's staff; tests of the
            // authorizer itself sign in over HTTP.
            &renrakucho_authz::Permitted::unchecked(staff.id, staff.facility_id),
            &renrakucho_store::audit::Origin::default(),
            renrakucho_registry::NewPatient {
                name: PatientName::parse(name).expect("a name"),
                kana: KanaName::parse(kana).expect("a reading"),
                profile: PatientProfile {
                    birth_date: BirthDate::parse("1940-01-15", today).expect("a date"),
                    sex: Sex::Female,
                    care_level: CareLevel::Care2,
                    address: None,
                    phone: Some(Phone::parse("090-0000-9999").expect("a phone")),
                    primary_doctor: None,
                },
            },
        )
        .await
        .expect("registering a patient")
    }

    /// An active facility, registered as the operator would.
    pub async fn seed_facility(&self, code: &str, kind: FacilityKind) -> Facility {
        admin_commands::create_facility(
            &self.db,
            &FacilityCode::parse(code).expect("a valid code"),
            &FacilityName::parse(&format!("{code} 施設")).expect("a valid name"),
            kind,
        )
        .await
        .expect("seeding a facility")
    }

    /// An active staff account with [`FIXTURE_PASSWORD`].
    pub async fn seed_staff(
        &self,
        facility: &Facility,
        login: &str,
        role: StaffRole,
        profession: Profession,
    ) -> StaffAccount {
        let password = Password::new_secret(FIXTURE_PASSWORD.into()).expect("password");
        let account = admin_commands::create_staff(
            &self.db,
            &self.hasher,
            facility,
            StaffToIssue {
                login_id: LoginId::parse(login).expect("login"),
                name: DisplayName::parse("試験 太郎").expect("name"),
                role,
                profession,
                password: &password,
                password_must_change: false,
            },
        )
        .await
        .expect("seeding staff");
        self.enrol_second_factor(
            &facility.code,
            account.facility_id,
            account.id,
            &account.login_id,
        )
        .await;
        account
    }

    /// Gives a fixture account an authenticator (as if set up and confirmed long ago) whose
    /// codes [`TestApp::sign_in_with`] sends.
    pub async fn enrol_second_factor(
        &self,
        facility_code: &str,
        facility: renrakucho_core::FacilityId,
        id: renrakucho_core::StaffId,
        login: &str,
    ) {
        self.enrol(
            fixture_key(facility_code, login),
            renrakucho_identity::Principal::Staff { id, facility },
        )
        .await;
    }

    /// Gives a fixture operator an authenticator, as [`TestApp::enrol_second_factor`] does a
    /// staff member (its codes: `one_time_code("", login)`).
    pub async fn enrol_operator_second_factor(&self, id: renrakucho_core::OperatorId, login: &str) {
        self.enrol(
            fixture_key("", login),
            renrakucho_identity::Principal::Operator { id },
        )
        .await;
    }

    async fn enrol(&self, key: String, account: renrakucho_identity::Principal) {
        use renrakucho_identity::Principal;
        use renrakucho_store::second_factors::{self, Holder};
        use renrakucho_store::Scope;
        let (scope, holder) = match account {
            Principal::Staff { id, facility } => (
                Scope::Staff {
                    facility,
                    staff: id,
                },
                Holder::Staff(id),
            ),
            Principal::Operator { id } => (Scope::Platform, Holder::Operator(id)),
        };
        let secret = TotpSecret::generate();
        let keyring = self.keyring().await;
        let mut tx = self.db.begin(scope).await.expect("a transaction");
        let binding = renrakucho_identity::secret_binding(account);
        let enc = keyring
            .encrypt(&mut tx, &binding, secret.as_bytes())
            .await
            .expect("encrypting the secret");
        let recovery_codes = renrakucho_identity::totp::new_recovery_codes();
        let hashes: Vec<String> = recovery_codes
            .iter()
            .map(|c| renrakucho_identity::totp::recovery_code_hash(c))
            .collect();
        assert!(second_factors::begin_totp(&mut tx, holder, &enc)
            .await
            .unwrap());
        assert!(second_factors::confirm_totp(&mut tx, holder, 0, &hashes)
            .await
            .unwrap()
            .is_some());
        tx.commit().await.expect("committing");
        self.authenticators.0.lock().unwrap().insert(
            key,
            Authenticator {
                secret,
                last_step: 0,
                recovery_codes,
            },
        );
    }

    /// The fixture authenticator of `facility_code`/`login`, if it has one.
    pub fn authenticator(&self, facility_code: &str, login: &str) -> Option<TotpSecret> {
        self.authenticators
            .0
            .lock()
            .unwrap()
            .get(&fixture_key(facility_code, login))
            .map(|a| a.secret.clone())
    }

    /// One of the fixture account's recovery codes not given out before (each is good once).
    pub fn recovery_code(&self, facility_code: &str, login: &str) -> Option<String> {
        self.authenticators
            .0
            .lock()
            .unwrap()
            .get_mut(&fixture_key(facility_code, login))
            .and_then(|a| a.recovery_codes.pop())
    }

    /// A code of the fixture authenticator of `facility_code`/`login` that the server has not
    /// seen ([`OneTimeCodes::code`]).
    pub async fn one_time_code(&self, facility_code: &str, login: &str) -> Option<String> {
        self.authenticators.code(facility_code, login).await
    }

    /// The fixture authenticators, to sign in from elsewhere (a browser).
    pub fn one_time_codes(&self) -> OneTimeCodes {
        self.authenticators.clone()
    }

    /// An active operator with [`FIXTURE_PASSWORD`] and an authenticator.
    pub async fn seed_operator(&self, login: &str) -> Operator {
        let password = Password::new_secret(FIXTURE_PASSWORD.into()).expect("password");
        let operator = admin_commands::create_operator(
            &self.db,
            &self.hasher,
            &LoginId::parse(login).expect("login"),
            &DisplayName::parse("運用 花子").expect("name"),
            &password,
            false,
        )
        .await
        .expect("seeding an operator");
        self.enrol_operator_second_factor(operator.id, login).await;
        operator
    }

    /// POST /api/v1/auth/sign-in with this app's client (its cookies).
    pub async fn sign_in(
        &self,
        facility_code: Option<&str>,
        login: &str,
        password: &str,
    ) -> reqwest::Response {
        self.sign_in_with(&self.client, facility_code, login, password)
            .await
    }

    /// POST /api/v1/auth/sign-in with `client`; for an account with a fixture authenticator
    /// ([`TestApp::enrol_second_factor`]), with a fresh code from it in the same request.
    pub async fn sign_in_with(
        &self,
        client: &reqwest::Client,
        facility_code: Option<&str>,
        login: &str,
        password: &str,
    ) -> reqwest::Response {
        let code = self
            .one_time_code(facility_code.unwrap_or_default(), login)
            .await;
        client
            .post(self.url("/api/v1/auth/sign-in"))
            .json(&json!({ "facility_code": facility_code, "login_id": login,
                           "password": password, "one_time_code": code }))
            .send()
            .await
            .expect("sign-in request")
    }

    /// A new client signed in as `login` of `facility` (fixture password).
    pub async fn client_for(&self, facility: &Facility, login: &str) -> reqwest::Client {
        let client = new_client();
        let response = self
            .sign_in_with(&client, Some(&facility.code), login, FIXTURE_PASSWORD)
            .await;
        assert_eq!(
            response.status(),
            200,
            "signing in {login} of {}",
            facility.code
        );
        client
    }

    /// The CSRF token of the form on the portal page at `path`, as `client` sees it (the
    /// page sets the matching cookie in the client).
    pub async fn form_token(&self, client: &reqwest::Client, path: &str) -> String {
        let page = client
            .get(self.url(path))
            .send()
            .await
            .expect("a page")
            .text()
            .await
            .expect("a page body");
        let marker = r#"name="authenticity_token" value=""#;
        let start = page
            .find(marker)
            .unwrap_or_else(|| panic!("no form token on {path}"))
            + marker.len();
        let end = page[start..].find('"').expect("the token ends") + start;
        page[start..end].to_string()
    }

    pub async fn me(&self) -> reqwest::Response {
        self.client
            .get(self.url("/api/v1/me"))
            .send()
            .await
            .expect("me request")
    }

    pub async fn sign_out(&self) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/auth/sign-out"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("sign-out request")
    }

    /// The JSON error body's `error.code`.
    pub async fn error_code(response: reqwest::Response) -> String {
        let body: Value = response.json().await.expect("a JSON error body");
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
