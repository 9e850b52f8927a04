//! A private PostgreSQL cluster for the zero-configuration server and for tests.
//!
//! The cluster lives in a directory of ours and listens on a Unix socket in that directory only
//! (no TCP port), so it never clashes with a PostgreSQL the machine already runs. `initdb` and
//! `postgres` refuse to run as root; when we are root they run as the `postgres` system user,
//! which then owns the cluster's files.
//!
//! One process at a time: [`LocalCluster::start`] takes an exclusive lock on the directory and a
//! second server on the same directory fails with [`ClusterError::InUse`] instead of touching a
//! running cluster. A watchdog stops the cluster when our process goes away, even on `kill -9`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The role `initdb` creates as the cluster's superuser.
pub const SUPERUSER: &str = "postgres";
/// The port number only names the socket file; nothing listens on TCP.
pub const SOCKET_PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes by the kernel.
const MAX_SOCKET_PATH: usize = 107;

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

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

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

    fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Who runs the PostgreSQL processes: ourselves, or the `postgres` user when we are root.
#[derive(Debug, Clone)]
enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Result<Self, ClusterError> {
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

    fn command(&self, program: &Path) -> Command {
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

/// A running private cluster. Stop it with [`LocalCluster::stop`]; if the process dies
/// instead, the watchdog stops PostgreSQL within a second.
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    pgdata: PathBuf,
    binaries: Binaries,
    run_as: RunAs,
    _lock: File,
}

impl LocalCluster {
    /// Starts (creating on first use) the cluster kept in `dir`. Blocking: call it from
    /// `spawn_blocking` in async code.
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
        if let RunAs::Postgres { .. } = run_as {
            check_traversable(&dir)?;
        }
        let cluster = Self {
            dir,
            pgdata,
            binaries,
            run_as,
            _lock: lock,
        };
        cluster.init_if_needed()?;
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

    fn log_file(&self) -> PathBuf {
        self.dir.join("postgresql.log")
    }

    fn init_if_needed(&self) -> Result<(), ClusterError> {
        if self.pgdata.join("PG_VERSION").is_file() {
            return Ok(());
        }
        if self.pgdata.exists() {
            // A half-made cluster from an interrupted first run: start over.
            fs::remove_dir_all(&self.pgdata).map_err(io("removing an incomplete cluster"))?;
        }
        fs::create_dir(&self.pgdata).map_err(io("creating the cluster directory"))?;
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io("restricting the cluster directory"))?;
        self.give_to_runner(&self.pgdata)?;
        self.touch_log()?;
        tracing::info!(dir = %self.pgdata.display(), "creating a private PostgreSQL cluster");
        let status = self
            .run_as
            .command(&self.binaries.tool("initdb"))
            .current_dir(&self.dir)
            .arg("-D")
            .arg(&self.pgdata)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ])
            .stdout(self.log_handle()?)
            .stderr(self.log_handle()?)
            .status()
            .map_err(io("running initdb"))?;
        if !status.success() {
            return Err(ClusterError::CommandFailed {
                what: "initdb",
                status: status.to_string(),
                log: self.log_file(),
            });
        }
        Ok(())
    }

    fn start_server(&self) -> Result<(), ClusterError> {
        let running = self
            .run_as
            .command(&self.binaries.tool("pg_ctl"))
            .current_dir(&self.dir)
            .arg("status")
            .arg("-D")
            .arg(&self.pgdata)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(io("running pg_ctl status"))?
            .success();
        if running {
            // Left behind by a previous server of ours that was killed before its watchdog
            // ran; we hold the directory lock, so it is ours to adopt.
            tracing::warn!("adopting a PostgreSQL left running by a previous server");
            return Ok(());
        }
        self.touch_log()?;
        // `-h ''`: no TCP at all; `-k`: the socket lives in the cluster directory only.
        let options = format!(
            "-h '' -k '{}' -p {SOCKET_PORT} -c unix_socket_permissions=0700",
            self.pgdata.display()
        );
        let status = self
            .run_as
            .command(&self.binaries.tool("pg_ctl"))
            .current_dir(&self.dir)
            .arg("start")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-w", "-t", "60", "-s", "-l"])
            .arg(self.log_file())
            .arg("-o")
            .arg(options)
            .stdout(Stdio::null())
            .stderr(self.log_handle()?)
            .status()
            .map_err(io("running pg_ctl start"))?;
        if !status.success() {
            return Err(ClusterError::CommandFailed {
                what: "pg_ctl start",
                status: status.to_string(),
                log: self.log_file(),
            });
        }
        tracing::info!(socket_dir = %self.pgdata.display(), "private PostgreSQL started");
        Ok(())
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// A detached shell that waits for our process to end, then asks the postmaster to stop
    /// (SIGINT: fast shutdown) — only if the postmaster is still the one we started, so it
    /// never stops a cluster a later server started in the same directory.
    fn spawn_watchdog(&self, remove_dir: bool) -> Result<(), ClusterError> {
        let Some(pm) = self.postmaster_pid() else {
            return Ok(());
        };
        let me = std::process::id();
        let pidfile = self.pgdata.join("postmaster.pid");
        let mut script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
             if [ \"$(head -n1 '{pidfile}' 2>/dev/null)\" = \"{pm}\" ]; then kill -INT {pm}; \
             while kill -0 {pm} 2>/dev/null; do sleep 0.2; done; fi",
            pidfile = pidfile.display()
        );
        if remove_dir {
            script.push_str(&format!("; rm -rf '{}'", self.dir.display()));
        }
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io("starting the cluster watchdog"))?;
        Ok(())
    }

    /// Stops PostgreSQL (fast shutdown: open transactions roll back, committed data is safe).
    pub fn stop(self) -> Result<(), ClusterError> {
        let status = self
            .run_as
            .command(&self.binaries.tool("pg_ctl"))
            .current_dir(&self.dir)
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-s"])
            .stdout(Stdio::null())
            .stderr(self.log_handle()?)
            .status()
            .map_err(io("running pg_ctl stop"))?;
        if !status.success() {
            return Err(ClusterError::CommandFailed {
                what: "pg_ctl stop",
                status: status.to_string(),
                log: self.log_file(),
            });
        }
        tracing::info!("private PostgreSQL stopped");
        Ok(())
    }

    fn touch_log(&self) -> Result<(), ClusterError> {
        let log = self.log_file();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io("creating the PostgreSQL log"))?;
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

/// Takes the directory's lock, or names the process that holds it.
fn take_lock(dir: &Path) -> Result<File, ClusterError> {
    let path = dir.join("renrakucho.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io("writing the lock file"))?;
            file.rewind().map_err(io("writing the lock file"))?;
            write!(file, "{}", std::process::id()).map_err(io("writing the lock file"))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(ClusterError::InUse {
                dir: dir.to_path_buf(),
                pid: pid.trim().to_string(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io("locking the data directory")(e)),
    }
}

/// The `postgres` user must be able to walk down to the directory.
fn check_traversable(dir: &Path) -> Result<(), ClusterError> {
    for ancestor in dir.ancestors().skip(1) {
        let meta =
            fs::metadata(ancestor).map_err(io(format!("inspecting {}", ancestor.display())))?;
        if meta.mode() & 0o001 == 0 {
            return Err(ClusterError::Unreachable {
                dir: dir.to_path_buf(),
            });
        }
    }
    let meta = fs::metadata(dir).map_err(io(format!("inspecting {}", dir.display())))?;
    if meta.mode() & 0o001 == 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() | 0o711)).map_err(io(
            format!("opening {} to the postgres user", dir.display()),
        ))?;
    }
    Ok(())
}
