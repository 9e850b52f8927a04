//! The installed PostgreSQL server binaries (found, or installed on a fresh machine), and the
//! system user they run as.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::io;
use crate::{ClusterError, SUPERUSER};

/// The installed server binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub bin_dir: PathBuf,
}

impl Binaries {
    /// Looks for `initdb`, `pg_ctl` and `postgres` together: on PATH, in `pg_config --bindir`,
    /// then the newest `/usr/lib/postgresql/<version>/bin` (Debian keeps them off PATH).
    pub fn find() -> Result<Self, ClusterError> {
        let complete = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if dir.join("initdb").is_file() {
                    // Follow a symlinked initdb to the directory that holds its siblings.
                    let real = fs::canonicalize(dir.join("initdb")).ok();
                    candidates.push(dir.clone());
                    if let Some(parent) = real.as_deref().and_then(Path::parent) {
                        candidates.push(parent.to_path_buf());
                    }
                }
            }
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
                candidates.push(PathBuf::from(dir));
            }
        }
        if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versions.into_iter().map(|(_, p)| p));
        }
        candidates
            .into_iter()
            .find(|d| complete(d))
            .map(|bin_dir| Self { bin_dir })
            .ok_or(ClusterError::BinariesNotFound)
    }

    /// Like [`Binaries::find`]; when nothing is found and we are root on a Debian/Ubuntu
    /// machine, installs the `postgresql` package first (the zero-configuration promise: the
    /// run command works on a fresh machine). As an ordinary user it only names the fix.
    pub fn find_or_install() -> Result<Self, ClusterError> {
        match Self::find() {
            Err(ClusterError::BinariesNotFound)
                if nix::unistd::geteuid().is_root() && Path::new("/usr/bin/apt-get").exists() =>
            {
                tracing::warn!("PostgreSQL server binaries not found: installing the postgresql package with apt-get");
                let quiet = |c: &mut Command| {
                    c.env("DEBIAN_FRONTEND", "noninteractive")
                        .stdout(Stdio::null())
                        .status()
                };
                let updated = quiet(Command::new("apt-get").arg("update"))
                    .map_err(io("running apt-get update"))?;
                let installed =
                    quiet(Command::new("apt-get").args(["install", "-y", "postgresql"]))
                        .map_err(io("running apt-get install postgresql"))?;
                if !(updated.success() && installed.success()) {
                    return Err(ClusterError::InstallFailed);
                }
                Self::find()
            }
            other => other,
        }
    }

    pub(crate) fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Who runs the PostgreSQL processes: ourselves, or the `postgres` user when we are root.
#[derive(Debug, Clone)]
pub(crate) enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    pub(crate) fn detect() -> Result<Self, ClusterError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Self::Me);
        }
        let user = nix::unistd::User::from_name(SUPERUSER)
            .ok()
            .flatten()
            .ok_or(ClusterError::NoPostgresUser)?;
        Ok(Self::Postgres {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    pub(crate) fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::Postgres { .. } => {
                let mut c = Command::new("runuser");
                c.args(["-u", SUPERUSER, "--"]).arg(program);
                c
            }
        }
    }
}
