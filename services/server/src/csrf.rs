//! CSRF protection of the portal's forms: axum_csrf (a token in an encrypted cookie, its HMAC
//! in every form), bound to the signed-in session (a random value kept in the session record,
//! on the server, and repeated in every form). The key and salt come from one deployment
//! secret, so that every server process accepts the forms any of them rendered.
//!
//! Why the binding: a page on a sibling site can set cookies for this one ("cookie tossing").
//! With the victim's session cookie, the attacker's own CSRF cookie and the attacker's own form
//! token verify as far as axum_csrf can tell; the binding is the victim's session's, which the
//! attacker never sees. Over HTTPS the cookies are named `__Host-…`, which a sibling cannot set.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponseParts, ResponseParts};
use axum_csrf::{CsrfConfig, Key, SameSite};
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::config::{ConfigError, Settings};
use crate::state::AppState;

impl FromRef<AppState> for CsrfConfig {
    fn from_ref(state: &AppState) -> Self {
        state.csrf.clone()
    }
}

/// The name of the form field carrying the token.
pub const FIELD: &str = "authenticity_token";

/// Where the session keeps its binding.
const BINDING_KEY: &str = "csrf_binding";

/// The portal's form token: axum_csrf's, plus the session's binding once someone is signed
/// in (the form carries `<axum_csrf token>.<binding>`). Before sign-in there is no session
/// (ADR 0013 §5), and the sign-in form is protected by axum_csrf alone.
#[derive(Clone)]
pub struct CsrfToken {
    inner: axum_csrf::CsrfToken,
    binding: Option<String>,
}

/// The session's binding, made when first asked for (sessions started before bindings
/// existed get one at their next page).
async fn binding(session: &Session) -> Result<Option<String>, tower_sessions::session::Error> {
    if !crate::session::is_signed_in(session).await? {
        return Ok(None);
    }
    if let Some(existing) = session.get::<String>(BINDING_KEY).await? {
        return Ok(Some(existing));
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let fresh = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    session.insert(BINDING_KEY, &fresh).await?;
    Ok(Some(fresh))
}

impl FromRequestParts<AppState> for CsrfToken {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let inner = axum_csrf::CsrfToken::from_request_parts(parts, state)
            .await
            .map_err(|_| crate::error::ApiError::internal())?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| crate::error::ApiError::internal())?;
        let binding = binding(&session).await?;
        Ok(Self { inner, binding })
    }
}

impl CsrfToken {
    /// The value for the form's hidden field.
    pub fn authenticity_token(&self) -> Result<String, axum_csrf::CsrfError> {
        let token = self.inner.authenticity_token()?;
        Ok(match &self.binding {
            Some(binding) => format!("{token}.{binding}"),
            None => token,
        })
    }

    /// Whether a form's field verifies: axum_csrf's token for this browser's cookie, and the
    /// binding of this session (compared in constant time).
    pub fn verify(&self, given: &str) -> Result<(), axum_csrf::CsrfError> {
        let (token, bound) = match given.rsplit_once('.') {
            Some((token, bound)) => (token, Some(bound)),
            None => (given, None),
        };
        self.inner.verify(token)?;
        match (&self.binding, bound) {
            (None, None) => Ok(()),
            (Some(expected), Some(bound))
                if bool::from(expected.as_bytes().ct_eq(bound.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(axum_csrf::CsrfError::Verify),
        }
    }
}

impl IntoResponseParts for CsrfToken {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.inner.into_response_parts(res)
    }
}

fn secret_from_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(ConfigError(format!(
                    "{} is readable by others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| ConfigError(format!("{}: not base64", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ConfigError(format!("{}: {e}", dir.display())))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            file.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(&secret)
                    .as_bytes(),
            )
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            Ok(secret)
        }
        Err(e) => Err(ConfigError(format!("{}: {e}", path.display()))),
    }
}

/// The CSRF configuration for these settings.
pub fn config(settings: &Settings) -> Result<CsrfConfig, ConfigError> {
    let secret = match &settings.csrf_secret {
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s.expose().trim())
            .map_err(|_| ConfigError("RENRAKUCHO_CSRF_SECRET: not base64".into()))?,
        None => secret_from_file(&settings.data_dir().join("csrf.secret"))?,
    };
    if secret.len() < 32 {
        return Err(ConfigError(
            "RENRAKUCHO_CSRF_SECRET: at least 32 bytes (base64 of 32 random bytes)".into(),
        ));
    }
    let key = Sha512::new()
        .chain_update(b"renrakucho csrf cookie key\0")
        .chain_update(&secret)
        .finalize();
    let salt = Sha256::new()
        .chain_update(b"renrakucho csrf salt\0")
        .chain_update(&secret)
        .finalize();
    let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    Ok(CsrfConfig::default()
        .with_key(Some(Key::from(&key)))
        .with_salt(salt)
        .with_cookie_name("renrakucho_csrf")
        .with_prefix_with_host(settings.secure_cookies())
        .with_cookie_path("/")
        .with_cookie_same_site(SameSite::Strict)
        .with_http_only(true)
        .with_secure(settings.secure_cookies())
        .with_lifetime(time::Duration::hours(12)))
}
