//! The secret behind the portal's CSRF tokens: `RENRAKUCHO_CSRF_SECRET`, or a file in the data
//! directory generated on first run, so that every server process behind one address (given the
//! same secret) accepts the forms any of them rendered.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;

use crate::config::{ConfigError, Settings};

/// The CSRF secret for these settings (at least 32 bytes).
pub fn load(settings: &Settings) -> Result<Vec<u8>, ConfigError> {
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
    Ok(secret)
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
