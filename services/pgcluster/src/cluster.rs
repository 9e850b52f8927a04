//! The private cluster of one server: where it lives, how it starts, and the files it shares
//! with the user PostgreSQL runs as. Making and securing it is in [`prepare`]; the server
//! process (start, watchdog, stop) in [`server`].

mod prepare;
mod server;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::binaries::{Binaries, RunAs};
use crate::directory::{restrict_dir, take_lock};
use crate::error::io;
use crate::password::{read_password, Password};
use crate::{ClusterError, PASSWORD_FILE, SOCKET_PORT};

/// Unix socket paths are limited to 107 bytes by the kernel.
const MAX_SOCKET_PATH: usize = 107;

/// A running private cluster. Stop it with [`LocalCluster::stop`]; if the process dies
/// instead, the watchdog stops PostgreSQL within a second. Its `Debug` output leaves out the
/// password.
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    pgdata: PathBuf,
    binaries: Binaries,
    run_as: RunAs,
    password: Password,
    _lock: File,
}

impl LocalCluster {
    /// Starts (creating on first use) the cluster kept in `dir`. Blocking: call it from
    /// `spawn_blocking` in async code.
    ///
    /// A cluster made by an earlier version (trusting its socket, no [`PASSWORD_FILE`]) is
    /// secured first: stopped if it was left running, given a new superuser password in
    /// single-user mode, and our `pg_hba.conf`. Refuses a password file others may read.
    pub fn start(dir: &Path) -> Result<Self, ClusterError> {
        let binaries = Binaries::find_or_install()?;
        let run_as = RunAs::detect()?;
        let dir_str = dir.to_string_lossy();
        if dir_str.contains(['\'', '"', '\n', '\\']) {
            return Err(ClusterError::UnsafePath(dir.to_path_buf()));
        }
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
        let pgdata = dir.join("pgdata");
        let socket_len = pgdata
            .join(format!(".s.PGSQL.{SOCKET_PORT}"))
            .as_os_str()
            .len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(ClusterError::PathTooLong {
                dir,
                max: MAX_SOCKET_PATH,
            });
        }
        let lock = take_lock(&dir)?;
        restrict_dir(&dir, &run_as)?;
        let password_file = dir.join(PASSWORD_FILE);
        let stored = read_password(&password_file)?;
        let new_password = stored.is_none();
        let cluster = Self {
            dir,
            pgdata,
            binaries,
            run_as,
            password: stored.unwrap_or_else(Password::generate),
            _lock: lock,
        };
        cluster.touch_log()?;
        cluster.prepare(new_password)?;
        cluster.start_server()?;
        cluster.spawn_watchdog(false)?;
        Ok(cluster)
    }

    /// Like [`LocalCluster::start`], in a fresh directory that the watchdog deletes once our
    /// process has exited: one throw-away cluster per test run.
    pub fn start_ephemeral(dir: &Path) -> Result<Self, ClusterError> {
        let cluster = Self::start(dir)?;
        cluster.spawn_watchdog(true)?;
        Ok(cluster)
    }

    /// The directory holding the socket; connect with it as the host.
    pub fn socket_dir(&self) -> &Path {
        &self.pgdata
    }

    /// The directory given to [`LocalCluster::start`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The password of [`SUPERUSER`](crate::SUPERUSER): the cluster asks every role for one,
    /// even on its socket.
    pub fn superuser_password(&self) -> &str {
        &self.password.0
    }

    fn password_file(&self) -> PathBuf {
        self.dir.join(PASSWORD_FILE)
    }

    fn hba_file(&self) -> PathBuf {
        self.pgdata.join("pg_hba.conf")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("postgresql.log")
    }

    /// Creates the log (mode 0600: it may hold statements and role names), or makes an existing
    /// one private again.
    fn touch_log(&self) -> Result<(), ClusterError> {
        let log = self.log_file();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log)
            .map_err(io("creating the PostgreSQL log"))?;
        let mode = file
            .metadata()
            .map_err(io(format!("inspecting {}", log.display())))?
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                log = %log.display(),
                mode = format!("{:o}", mode & 0o777),
                "the PostgreSQL log was readable by other users: restricting it to mode 0600"
            );
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io(format!("restricting {}", log.display())))?;
        }
        self.give_to_runner(&log)
    }

    fn log_handle(&self) -> Result<File, ClusterError> {
        OpenOptions::new()
            .append(true)
            .open(self.log_file())
            .map_err(io("opening the PostgreSQL log"))
    }

    fn give_to_runner(&self, path: &Path) -> Result<(), ClusterError> {
        if let RunAs::Postgres { uid, gid } = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io(format!(
                "handing {} to the postgres user",
                path.display()
            )))?;
        }
        Ok(())
    }
}
