//! What can go wrong with the private cluster, and the helper that names an I/O failure.

use std::path::PathBuf;

/// Why the private cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH, via \
         `pg_config --bindir`, or under /usr/lib/postgresql/*/bin. Install them \
         (Debian/Ubuntu: `sudo apt-get install -y postgresql`) or set DATABASE_URL to use an \
         existing server."
    )]
    BinariesNotFound,
    #[error(
        "PostgreSQL server binaries were not found and `apt-get install -y postgresql` failed; \
         install them yourself or set DATABASE_URL to use an existing server"
    )]
    InstallFailed,
    #[error(
        "another Renrakucho server is already using the data directory {dir} (process {pid}); \
         stop it first or choose another directory with RENRAKUCHO_DATA_DIR"
    )]
    InUse { dir: PathBuf, pid: String },
    #[error("running as root, but there is no `postgres` system user to run PostgreSQL as (create it, or run as an ordinary user)")]
    NoPostgresUser,
    #[error(
        "the `postgres` system user cannot reach {dir}: a parent directory is closed to other \
         users. Choose a data directory under a path every user may traverse (e.g. /var/lib/renrakucho) \
         with RENRAKUCHO_DATA_DIR"
    )]
    Unreachable { dir: PathBuf },
    #[error("the data directory path {dir} is too long for a Unix socket (at most {max} bytes with the socket name); choose a shorter RENRAKUCHO_DATA_DIR")]
    PathTooLong { dir: PathBuf, max: usize },
    #[error("the data directory path {0} contains a quote or a newline; choose a plain path")]
    UnsafePath(PathBuf),
    #[error(
        "{path} holds the private PostgreSQL's superuser password but other users may read it \
         (mode {mode:o}); run `chmod 600 {path}` and check who may have copied it"
    )]
    PasswordFileExposed { path: PathBuf, mode: u32 },
    #[error(
        "{path} does not hold a usable password (one line of letters and digits); remove it \
         and a new password is set at the next start"
    )]
    BadPasswordFile { path: PathBuf },
    #[error("{what} failed ({status}); see {log}")]
    CommandFailed {
        what: &'static str,
        status: String,
        log: PathBuf,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}
