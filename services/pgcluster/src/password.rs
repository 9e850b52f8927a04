//! The superuser's password: generated, checked, and read back from its file.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::io;
use crate::ClusterError;

/// Length of a generated password: letters and digits, about 190 bits.
pub(crate) const PASSWORD_LEN: usize = 32;

/// A password, kept out of `Debug` output and logs.
pub(crate) struct Password(pub(crate) String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**redacted**")
    }
}

impl Password {
    pub(crate) fn generate() -> Self {
        use rand::Rng;
        let text = rand::rngs::OsRng
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(PASSWORD_LEN)
            .map(char::from)
            .collect();
        Self(text)
    }

    /// Only letters and digits: the password goes into SQL (single-user mode) and a pwfile.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let plain = !text.is_empty()
            && text.len() <= 256
            && text.bytes().all(|b| b.is_ascii_alphanumeric());
        plain.then(|| Self(text.to_string()))
    }
}

/// The stored superuser password, if there is one. Refuses a file others may read, like the
/// master key files: the password opens every database in the cluster.
pub(crate) fn read_password(path: &Path) -> Result<Option<Password>, ClusterError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("inspecting {}", path.display()))(e)),
    };
    if meta.mode() & 0o077 != 0 {
        return Err(ClusterError::PasswordFileExposed {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o777,
        });
    }
    let text = fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    Password::parse(&text)
        .map(Some)
        .ok_or_else(|| ClusterError::BadPasswordFile {
            path: path.to_path_buf(),
        })
}
