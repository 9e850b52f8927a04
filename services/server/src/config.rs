//! Configuration: defaults, then an optional TOML file, then `RENRAKUCHO_…` environment
//! variables (and `DATABASE_URL`). Anything invalid stops the program with exit code 2 and a
//! message naming the variable and the problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use renrakucho_identity::{PasswordParams, PasswordRules, ThrottleConfig};
use serde::{Deserialize, Serialize};

/// A secret string (a connection URL with a password): never printed.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

/// Every setting, flat, so each maps to one environment variable: `listen` is
/// `RENRAKUCHO_LISTEN`, `session_idle_timeout` is `RENRAKUCHO_SESSION_IDLE_TIMEOUT`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The owner's connection (runs migrations). Unset: a private PostgreSQL cluster is
    /// started in `data_dir`. Also read from `DATABASE_URL`.
    pub database_url: Option<Secret>,
    /// The runtime role's connection, required with `database_url`.
    pub runtime_database_url: Option<Secret>,
    /// Where the private cluster (and, later, the local master key) live.
    pub data_dir: Option<PathBuf>,
    /// The URL people use to reach the server (e.g. `https://renrakucho.example.jp`). Decides
    /// whether cookies are `Secure`: they are, unless this is plain HTTP on a loopback address.
    pub public_url: Option<url::Url>,
    /// The reverse proxies (addresses or networks, comma-separated) whose `X-Forwarded-For`
    /// names the client: sign-in throttling and the audit log use that address then. Unset:
    /// the TCP peer is the client, and `X-Forwarded-For` is ignored.
    pub trusted_proxies: Option<String>,
    /// Sign-out after this long without a request (第23条).
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// Sign-out this long after sign-in, however active.
    #[serde(with = "humantime_serde")]
    pub session_max_lifetime: Duration,
    /// Break-glass access and erasure ask for the password again when it was last given
    /// longer ago than this (default 10 minutes).
    #[serde(with = "humantime_serde")]
    pub reauthenticate_within: Duration,
    pub signin_account_burst: u32,
    #[serde(with = "humantime_serde")]
    pub signin_account_period: Duration,
    pub signin_address_burst: u32,
    #[serde(with = "humantime_serde")]
    pub signin_address_period: Duration,
    /// argon2id memory cost in KiB (default 19456, OWASP's recommendation).
    pub password_memory_kib: u32,
    pub password_iterations: u32,
    /// The shortest new password accepted (default 12; never less).
    pub password_min_chars: usize,
    /// A password older than this must be changed at the next sign-in (default: never).
    #[serde(with = "humantime_serde")]
    pub password_max_age: Option<Duration>,
    /// Staff who are not facility admins must set up a second factor (an authenticator app)
    /// too (default true, the network's policy; facility admins always must).
    pub staff_second_factor: bool,
    /// The operators' own OpenID provider (ADR 0032): its issuer URL, client ID and client
    /// secret, all three or none. Operators link to its subjects with `renrakucho admin
    /// link-operator-identity`; their password sign-in stays as it is.
    pub operator_oidc_issuer: Option<String>,
    pub operator_oidc_client_id: Option<String>,
    pub operator_oidc_client_secret: Option<Secret>,
    /// Lets OpenID providers be on loopback or private addresses, and plain HTTP on loopback
    /// (development and tests only; default false: HTTPS on public addresses only, so a
    /// facility admin's settings cannot make the server fetch from inside its network).
    pub oidc_allow_private_providers: bool,
    /// Connections the runtime pool may open.
    pub database_max_connections: u32,
    /// Who holds the master key that wraps every data key: `local` (a key file in
    /// `master_key_dir`, generated on first run, or `master_key`) or `aws-kms`.
    pub key_provider: KeyProvider,
    /// The local master keys' directory (default `<data_dir>/keys`).
    pub master_key_dir: Option<PathBuf>,
    /// A local master key given directly, base64 of 32 bytes, instead of the directory.
    pub master_key: Option<Secret>,
    /// Earlier local master keys (base64, comma-separated) that still unwrap data keys until
    /// `renrakucho keys rotate-master` has re-wrapped them.
    pub previous_master_keys: Option<Secret>,
    /// The AWS KMS key (ID, ARN or alias) with `key_provider = "aws-kms"`.
    pub aws_kms_key_id: Option<String>,
    /// Another KMS endpoint (a VPC endpoint, an emulator).
    pub aws_kms_endpoint: Option<String>,
    pub aws_region: Option<String>,
    /// At most this many unwrapped data keys are kept in memory…
    pub key_cache_capacity: u64,
    /// …each for at most this long.
    #[serde(with = "humantime_serde")]
    pub key_cache_max_age: Duration,
    /// The longest a local master key epoch lives (default 24 h): this often, and soon after
    /// every erasure, a new master key is generated, every data key re-wrapped under it and the
    /// older master keys destroyed. An erased patient's data key left in the WAL, in dead tuples
    /// or in a backup becomes unreadable when its epoch is destroyed; a backup is readable for at
    /// most this long after the next rotation (docs/adr/0015-erasure-reaches-the-disk.md).
    #[serde(with = "humantime_serde")]
    pub master_key_epoch: Duration,
    /// How often each server process checks whether an epoch is due (default 1 min; an
    /// erasure in this process starts the check at once).
    #[serde(with = "humantime_serde")]
    pub master_key_epoch_check: Duration,
    /// Where daily digests are sent from: `smtp://host:port` (plain, for a local relay),
    /// `smtp://user:password@host:587` (STARTTLS) or `smtps://…` (TLS). Unset: no e-mail.
    pub smtp_url: Option<Secret>,
    /// The digest's sender address.
    pub mail_from: String,
    /// The secret behind the portal's CSRF tokens (base64, at least 32 bytes). Several server
    /// processes behind one address need the same one; unset, it is generated on first run
    /// into `<data_dir>/csrf.secret` (mode 0600).
    pub csrf_secret: Option<Secret>,
    /// Where encrypted files are kept: `local` (a directory, `files_dir`) or `s3`.
    pub file_store: FileStoreKind,
    /// The S3 bucket, region and (for S3-compatible services) endpoint with `file_store = s3`;
    /// credentials from the usual AWS environment.
    pub s3_bucket: Option<String>,
    pub s3_region: Option<String>,
    pub s3_endpoint: Option<String>,
    /// Where encrypted files (consent scans, attachments) are kept (default `<data_dir>/files`).
    pub files_dir: Option<PathBuf>,
    /// The largest file accepted, in bytes (default 20 MiB).
    pub upload_limit_bytes: u64,
    /// How long an emergency (break-glass) grant opens a notebook (default 24 h, at most 72 h).
    #[serde(with = "humantime_serde")]
    pub emergency_access_duration: Duration,
    /// How long a request may take to be answered before it is stopped with a 503 (default
    /// 60 s, 1 s to 10 min): bounds what a slow or stalled client holds. Live event streams
    /// and downloads go on after their answer starts.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// Where encrypted files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileStoreKind {
    Local,
    S3,
}

/// Where the master key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyProvider {
    Local,
    AwsKms,
}

impl Default for Settings {
    fn default() -> Self {
        let password = PasswordParams::default();
        let throttle = ThrottleConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            runtime_database_url: None,
            data_dir: None,
            public_url: None,
            trusted_proxies: None,
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_max_lifetime: Duration::from_secs(12 * 60 * 60),
            reauthenticate_within: Duration::from_secs(10 * 60),
            signin_account_burst: throttle.account_burst,
            signin_account_period: Duration::from_secs(throttle.account_period_secs),
            signin_address_burst: throttle.address_burst,
            signin_address_period: Duration::from_secs(throttle.address_period_secs),
            password_memory_kib: password.memory_kib,
            password_iterations: password.iterations,
            password_min_chars: PasswordRules::default().min_chars,
            password_max_age: None,
            staff_second_factor: true,
            operator_oidc_issuer: None,
            operator_oidc_client_id: None,
            operator_oidc_client_secret: None,
            oidc_allow_private_providers: false,
            database_max_connections: 10,
            key_provider: KeyProvider::Local,
            master_key_dir: None,
            master_key: None,
            previous_master_keys: None,
            aws_kms_key_id: None,
            aws_kms_endpoint: None,
            aws_region: None,
            key_cache_capacity: 10_000,
            key_cache_max_age: Duration::from_secs(300),
            master_key_epoch: Duration::from_secs(24 * 60 * 60),
            master_key_epoch_check: Duration::from_secs(60),
            smtp_url: None,
            mail_from: "renrakucho@localhost".into(),
            csrf_secret: None,
            file_store: FileStoreKind::Local,
            s3_bucket: None,
            s3_region: None,
            s3_endpoint: None,
            files_dir: None,
            upload_limit_bytes: 20 * 1024 * 1024,
            emergency_access_duration: Duration::from_secs(24 * 60 * 60),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A configuration problem, worded for the person starting the server.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Environment variables that are not settings.
const NOT_SETTINGS: &[&str] = &["config", "log", "log_format"];

impl Settings {
    /// Loads defaults ← TOML file (`path`, or `RENRAKUCHO_CONFIG`) ← environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let file = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("RENRAKUCHO_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = &file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "the configuration file {} does not exist (given by --config or RENRAKUCHO_CONFIG)",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("RENRAKUCHO_").ignore(NOT_SETTINGS));
        let settings: Settings = figment.extract().map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The operators' own provider, checked: all three settings or none.
    pub fn operator_provider(
        &self,
    ) -> Result<Option<renrakucho_identity::oidc::protocol::ClientSettings>, ConfigError> {
        let (issuer, client_id, secret) = match (
            &self.operator_oidc_issuer,
            &self.operator_oidc_client_id,
            &self.operator_oidc_client_secret,
        ) {
            (None, None, None) => return Ok(None),
            (Some(i), Some(c), Some(s)) => (i, c, s),
            _ => {
                return Err(ConfigError(
                    "RENRAKUCHO_OPERATOR_OIDC_ISSUER, RENRAKUCHO_OPERATOR_OIDC_CLIENT_ID and \
                     RENRAKUCHO_OPERATOR_OIDC_CLIENT_SECRET go together: set all three or none"
                        .into(),
                ))
            }
        };
        let valid = renrakucho_identity::oidc::ProviderInput {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret: Some(secret.expose().to_owned()),
            scopes: vec![],
            login_claim: "preferred_username".into(),
            allowed_domains: vec![],
            account_policy: "pre_linked".into(),
        }
        .validate(self.oidc_allow_private_providers)
        .map_err(|e| ConfigError(format!("RENRAKUCHO_OPERATOR_OIDC_*: {}", e.message)))?;
        Ok(Some(renrakucho_identity::oidc::protocol::ClientSettings {
            issuer: valid.issuer,
            client_id: valid.client_id,
            client_secret: valid.client_secret.ok_or_else(|| {
                ConfigError("RENRAKUCHO_OPERATOR_OIDC_CLIENT_SECRET is empty".into())
            })?,
            scopes: valid.scopes,
        }))
    }

    /// The trusted proxies' networks (an address alone is a network of one).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let Some(list) = &self.trusted_proxies else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "RENRAKUCHO_TRUSTED_PROXIES: {p:?} is not an address or a network \
                             (e.g. 10.0.0.5, 10.0.0.0/24, ::1)"
                        ))
                    })
            })
            .collect()
    }

    /// Every setting checked before anything starts: the first that is wrong, named with the
    /// variable to set and what it takes.
    fn validate(&self) -> Result<(), ConfigError> {
        self.operator_provider()?;
        self.trusted_proxies()?;
        self.check_sessions_and_sign_in()?;
        self.check_database()?;
        self.check_keys()?;
        self.check_mail()?;
        self.check_files()?;
        self.check_access()?;
        Ok(())
    }

    /// Sessions, sign-in throttling and password hashing.
    fn check_sessions_and_sign_in(&self) -> Result<(), ConfigError> {
        if self.session_idle_timeout.is_zero() {
            return Err(must_be_positive("session_idle_timeout"));
        }
        if self.session_max_lifetime < self.session_idle_timeout {
            return Err(ConfigError(
                "RENRAKUCHO_SESSION_MAX_LIFETIME: must not be shorter than RENRAKUCHO_SESSION_IDLE_TIMEOUT"
                    .into(),
            ));
        }
        if self.reauthenticate_within.is_zero() {
            return Err(must_be_positive("reauthenticate_within"));
        }
        if self.signin_account_burst == 0 {
            return Err(must_be_positive("signin_account_burst"));
        }
        if self.signin_address_burst == 0 {
            return Err(must_be_positive("signin_address_burst"));
        }
        if self.password_memory_kib < 8 * 1024 {
            return Err(ConfigError(
                "RENRAKUCHO_PASSWORD_MEMORY_KIB: at least 8192 (8 MiB) is needed for argon2id to resist GPUs".into(),
            ));
        }
        if self.password_iterations == 0 {
            return Err(must_be_positive("password_iterations"));
        }
        let shortest = PasswordRules::default().min_chars;
        if !(shortest..=256).contains(&self.password_min_chars) {
            return Err(ConfigError(format!(
                "RENRAKUCHO_PASSWORD_MIN_CHARS: between {shortest} and 256 (MHLW guideline: at least {shortest})"
            )));
        }
        if self
            .password_max_age
            .is_some_and(|age| age < Duration::from_secs(86_400))
        {
            return Err(ConfigError(
                "RENRAKUCHO_PASSWORD_MAX_AGE: at least a day (e.g. 180d), or unset for passwords that do not expire".into(),
            ));
        }
        Ok(())
    }

    /// The pool, and the owner and runtime connection URLs (both or neither).
    fn check_database(&self) -> Result<(), ConfigError> {
        if self.database_max_connections == 0 {
            return Err(must_be_positive("database_max_connections"));
        }
        if self.database_url.is_some() && self.runtime_database_url.is_none() {
            return Err(ConfigError(
                "RENRAKUCHO_RUNTIME_DATABASE_URL: required when DATABASE_URL is set. DATABASE_URL \
                 is the owner that runs migrations; the server's pool connects as a separate role \
                 that owns nothing and cannot bypass row-level security (`renrakucho migrate \
                 --create-runtime-role` can create it)"
                    .into(),
            ));
        }
        if self.database_url.is_none() && self.runtime_database_url.is_some() {
            return Err(ConfigError(
                "DATABASE_URL: required when RENRAKUCHO_RUNTIME_DATABASE_URL is set. Without \
                 DATABASE_URL the server starts a private PostgreSQL of its own and would ignore \
                 the runtime URL; set DATABASE_URL to the owner of the same database (it runs \
                 the migrations), or unset RENRAKUCHO_RUNTIME_DATABASE_URL"
                    .into(),
            ));
        }
        for (name, url) in [
            ("DATABASE_URL", &self.database_url),
            (
                "RENRAKUCHO_RUNTIME_DATABASE_URL",
                &self.runtime_database_url,
            ),
        ] {
            if let Some(url) = url {
                if url
                    .expose()
                    .parse::<sqlx::postgres::PgConnectOptions>()
                    .is_err()
                {
                    return Err(ConfigError(format!(
                        "{name}: not a PostgreSQL connection URL (postgres://user:password@host:port/database)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The key cache, the master key epochs and the key provider.
    fn check_keys(&self) -> Result<(), ConfigError> {
        if self.key_cache_capacity == 0 {
            return Err(must_be_positive("key_cache_capacity"));
        }
        if self.key_cache_max_age.is_zero() {
            return Err(must_be_positive("key_cache_max_age"));
        }
        if self.master_key_epoch < Duration::from_secs(60)
            || self.master_key_epoch > Duration::from_secs(30 * 24 * 60 * 60)
        {
            return Err(ConfigError(
                "RENRAKUCHO_MASTER_KEY_EPOCH: between 1 minute and 30 days (e.g. 24h); it bounds \
                 how long an erased patient stays readable in backups"
                    .into(),
            ));
        }
        if self.master_key_epoch_check.is_zero()
            || self.master_key_epoch_check > self.master_key_epoch
        {
            return Err(ConfigError(
                "RENRAKUCHO_MASTER_KEY_EPOCH_CHECK: greater than zero and at most \
                 RENRAKUCHO_MASTER_KEY_EPOCH (e.g. 1m)"
                    .into(),
            ));
        }
        if self.key_provider == KeyProvider::AwsKms && self.aws_kms_key_id.is_none() {
            return Err(ConfigError(
                "RENRAKUCHO_AWS_KMS_KEY_ID: required when RENRAKUCHO_KEY_PROVIDER is aws-kms"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The sender address and the SMTP server.
    fn check_mail(&self) -> Result<(), ConfigError> {
        if !self.mail_from.contains('@') || self.mail_from.chars().any(char::is_whitespace) {
            return Err(ConfigError(
                "RENRAKUCHO_MAIL_FROM: an e-mail address (e.g. renrakucho@example.jp)".into(),
            ));
        }
        if let Some(url) = &self.smtp_url {
            if !(url.expose().starts_with("smtp://") || url.expose().starts_with("smtps://")) {
                return Err(ConfigError(
                    "RENRAKUCHO_SMTP_URL: must start with smtp:// or smtps://".into(),
                ));
            }
        }
        Ok(())
    }

    /// Where files are kept and how large an upload may be.
    fn check_files(&self) -> Result<(), ConfigError> {
        if self.file_store == FileStoreKind::S3 && self.s3_bucket.is_none() {
            return Err(ConfigError(
                "RENRAKUCHO_S3_BUCKET: required when RENRAKUCHO_FILE_STORE is s3".into(),
            ));
        }
        if self.upload_limit_bytes == 0 {
            return Err(must_be_positive("upload_limit_bytes"));
        }
        if self.upload_limit_bytes > 100 * 1024 * 1024 {
            return Err(ConfigError(
                "RENRAKUCHO_UPLOAD_LIMIT_BYTES: at most 104857600 (100 MiB); files are encrypted in memory"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Emergency access, the public address and how long a request may take.
    fn check_access(&self) -> Result<(), ConfigError> {
        if self.emergency_access_duration < Duration::from_secs(60)
            || self.emergency_access_duration > Duration::from_secs(72 * 60 * 60)
        {
            return Err(ConfigError(
                "RENRAKUCHO_EMERGENCY_ACCESS_DURATION: between 1 minute and 72 hours (e.g. 24h)"
                    .into(),
            ));
        }
        if let Some(url) = &self.public_url {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError(
                    "RENRAKUCHO_PUBLIC_URL: must start with http:// or https://".into(),
                ));
            }
        }
        if self.request_timeout < Duration::from_secs(1)
            || self.request_timeout > Duration::from_secs(10 * 60)
        {
            return Err(ConfigError(
                "RENRAKUCHO_REQUEST_TIMEOUT: between 1 second and 10 minutes (e.g. 60s); an upload \
                 of the largest file on a slow line must fit in it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Cookies are `Secure` unless the server is reached over plain HTTP on loopback.
    pub fn secure_cookies(&self) -> bool {
        match &self.public_url {
            Some(url) => url.scheme() == "https" || !is_loopback_url(url),
            None => !self.listen.ip().is_loopback(),
        }
    }

    /// The directory for the private cluster: `RENRAKUCHO_DATA_DIR`, else the user's data
    /// directory; as root, `/var/lib/renrakucho` (the `postgres` user cannot enter /root).
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/renrakucho");
        }
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from(".renrakucho"))
            .join("renrakucho")
    }

    /// The file store these settings name.
    pub fn file_store(&self) -> Result<renrakucho_files::FileStore, renrakucho_files::FileError> {
        match self.file_store {
            FileStoreKind::Local => renrakucho_files::FileStore::local(&self.files_dir()),
            FileStoreKind::S3 => renrakucho_files::FileStore::s3(&renrakucho_files::S3Config {
                bucket: self.s3_bucket.clone().unwrap_or_default(),
                region: self
                    .s3_region
                    .clone()
                    .unwrap_or_else(|| "ap-northeast-1".into()),
                endpoint: self.s3_endpoint.clone(),
                access_key_id: None,
                secret_access_key: None,
            }),
        }
    }

    pub fn files_dir(&self) -> PathBuf {
        self.files_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("files"))
    }

    pub fn throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            account_burst: self.signin_account_burst,
            account_period_secs: self.signin_account_period.as_secs().max(1),
            address_burst: self.signin_address_burst,
            address_period_secs: self.signin_address_period.as_secs().max(1),
        }
    }

    /// The rules a new password must meet.
    pub fn password_rules(&self) -> PasswordRules {
        PasswordRules {
            min_chars: self.password_min_chars,
        }
    }

    pub fn password_params(&self) -> PasswordParams {
        PasswordParams {
            memory_kib: self.password_memory_kib,
            iterations: self.password_iterations,
            parallelism: 1,
        }
    }
}

/// The error for a setting that must be greater than zero (`name` is its field name).
fn must_be_positive(name: &str) -> ConfigError {
    ConfigError(format!(
        "RENRAKUCHO_{}: must be greater than zero",
        name.to_uppercase()
    ))
}

fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Turns figment's error into a sentence naming the environment variable (or file key).
fn describe(err: figment::Error) -> ConfigError {
    let messages: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            let kind = match &e.kind {
                figment::error::Kind::UnknownField(field, _) => {
                    format!("`{field}` is not a setting (check the spelling against the README)")
                }
                other => other.to_string(),
            };
            let name = match &e.kind {
                figment::error::Kind::UnknownField(field, _) => field.clone(),
                _ => key.clone(),
            };
            if source.contains("TOML") {
                format!("`{name}` in the configuration file: {kind}")
            } else if name == "database_url" {
                format!("DATABASE_URL: {kind}")
            } else if name.is_empty() {
                kind
            } else {
                format!("RENRAKUCHO_{}: {kind}", name.to_uppercase())
            }
        })
        .collect();
    ConfigError(messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_except_plain_http_on_loopback() {
        let mut s = Settings::default();
        assert!(!s.secure_cookies());
        s.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(s.secure_cookies());
        s.public_url = Some("http://localhost:8080".parse().unwrap());
        assert!(!s.secure_cookies());
        s.public_url = Some("https://renrakucho.example.jp".parse().unwrap());
        assert!(s.secure_cookies());
    }

    #[test]
    fn master_key_epochs_are_bounded() {
        let mut s = Settings::default();
        assert!(s.validate().is_ok());
        s.master_key_epoch = Duration::from_secs(31 * 24 * 60 * 60);
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("RENRAKUCHO_MASTER_KEY_EPOCH:"), "{err}");
        s.master_key_epoch = Duration::from_secs(3600);
        s.master_key_epoch_check = Duration::from_secs(7200);
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("RENRAKUCHO_MASTER_KEY_EPOCH_CHECK"), "{err}");
    }

    #[test]
    fn request_timeouts_are_bounded() {
        let mut s = Settings::default();
        for (timeout, ok) in [
            (500, false),
            (1_000, true),
            (600_000, true),
            (600_001, false),
        ] {
            s.request_timeout = Duration::from_millis(timeout);
            match s.validate() {
                Ok(()) => assert!(ok, "{timeout} ms accepted"),
                Err(e) => {
                    assert!(!ok, "{timeout} ms refused: {e}");
                    assert!(e.to_string().contains("RENRAKUCHO_REQUEST_TIMEOUT:"), "{e}");
                }
            }
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("postgres://u:hunter2@h/db");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
