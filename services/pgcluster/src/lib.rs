//! A private PostgreSQL cluster for the zero-configuration server and for tests.
//!
//! The cluster lives in a directory of ours and listens on a Unix socket in that directory only
//! (no TCP port), so it never clashes with a PostgreSQL the machine already runs. `initdb` and
//! `postgres` refuse to run as root; when we are root they run as the `postgres` system user,
//! which then owns the cluster's files.
//!
//! Reaching the socket is not enough to get in: every role logs in with a password (SCRAM), so
//! another program running as our user or as `postgres` cannot connect as superuser. The
//! superuser's password is generated when the cluster is made and kept in [`PASSWORD_FILE`] in
//! the cluster's directory (mode 0600, ours: the server never reads it). A cluster made by an
//! earlier version, which trusted the socket, gets a password and our `pg_hba.conf` at its next
//! start.
//!
//! One process at a time: [`LocalCluster::start`] takes an exclusive lock on the directory and a
//! second server on the same directory fails with [`ClusterError::InUse`] instead of touching a
//! running cluster. A watchdog stops the cluster when our process goes away, even on `kill -9`.

mod running;

pub use running::RunningCluster;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The role `initdb` creates as the cluster's superuser.
pub const SUPERUSER: &str = "postgres";
/// The port number only names the socket file; nothing listens on TCP.
pub const SOCKET_PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes by the kernel.
const MAX_SOCKET_PATH: usize = 107;
/// The file in the cluster's directory holding the superuser's password (one line, mode 0600,
/// owned by the user running Renrakucho).
pub const PASSWORD_FILE: &str = "superuser.password";
/// Length of a generated password: letters and digits, about 190 bits.
const PASSWORD_LEN: usize = 32;
/// Our `pg_hba.conf`, written over the one `initdb` makes (and over a trusting one left by an
/// earlier version).
const PG_HBA: &str = "\
# Written by Renrakucho; replaced at every start if it differs.
# The cluster listens on a Unix socket only (no TCP), so only `local` lines. Every role
# logs in with a password: whoever can reach the socket (a program running as the same system
# user, or as `postgres`) must not get in as superuser on that alone. The superuser's password
# is in the cluster's directory, next to pgdata, readable by Renrakucho's user only.
local all all scram-sha-256
";

/// A password, kept out of `Debug` output and logs.
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**redacted**")
    }
}

impl Password {
    fn generate() -> Self {
        use rand::Rng;
        let text = rand::rngs::OsRng
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(PASSWORD_LEN)
            .map(char::from)
            .collect();
        Self(text)
    }

    /// Only letters and digits: the password goes into SQL (single-user mode) and a pwfile.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let plain = !text.is_empty()
            && text.len() <= 256
            && text.bytes().all(|b| b.is_ascii_alphanumeric());
        plain.then(|| Self(text.to_string()))
    }
}

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

    /// The password of [`SUPERUSER`]: the cluster asks every role for one, even on its socket.
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

    /// Makes the cluster on first use, or secures one that is not yet as we want it. The order
    /// survives a crash at any step: the password is set (initdb, single-user mode) before it
    /// is written to the password file, and `pg_hba.conf` is written last, so a start that
    /// finds the file missing, or `pg_hba.conf` not ours, sets the password again.
    fn prepare(&self, new_password: bool) -> Result<(), ClusterError> {
        let hba_is_ours = fs::read_to_string(self.hba_file()).ok().as_deref() == Some(PG_HBA);
        if !self.pgdata.join("PG_VERSION").is_file() {
            self.init()?;
        } else if new_password || !hba_is_ours {
            if hba_is_ours {
                tracing::warn!(
                    file = %self.password_file().display(),
                    "the private PostgreSQL's password file is missing: setting a new superuser password"
                );
            } else {
                tracing::warn!(
                    "securing a private PostgreSQL made by an earlier version: a superuser \
                     password, and password logins instead of trusting the socket"
                );
            }
            if self.is_running()? {
                // Single-user mode needs the server stopped; we hold the directory lock, so
                // it is ours (left running by a killed server of ours).
                tracing::warn!(
                    "stopping a PostgreSQL left running by a previous server to secure it"
                );
                self.pg_ctl_stop()?;
            }
            self.set_password_single_user()?;
        }
        if new_password {
            write_private(&self.dir, PASSWORD_FILE, &format!("{}\n", self.password.0))?;
        }
        if !hba_is_ours {
            self.write_hba()?;
        }
        Ok(())
    }

    fn init(&self) -> Result<(), ClusterError> {
        if self.pgdata.exists() {
            // A half-made cluster from an interrupted first run: start over.
            fs::remove_dir_all(&self.pgdata).map_err(io("removing an incomplete cluster"))?;
        }
        fs::create_dir(&self.pgdata).map_err(io("creating the cluster directory"))?;
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io("restricting the cluster directory"))?;
        self.give_to_runner(&self.pgdata)?;
        tracing::info!(dir = %self.pgdata.display(), "creating a private PostgreSQL cluster");
        // initdb reads the superuser's password from a file; it must be readable by the user
        // initdb runs as, and lives only as long as initdb runs.
        let pwfile = TemporaryFile::new(self.dir.join(".initdb-pwfile"));
        pwfile.write(&format!("{}\n", self.password.0))?;
        self.give_to_runner(pwfile.path())?;
        let status = self
            .run_as
            .command(&self.binaries.tool("initdb"))
            .current_dir(&self.dir)
            .arg("-D")
            .arg(&self.pgdata)
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", pwfile.path().display()))
            .stdout(self.log_handle()?)
            .stderr(self.log_handle()?)
            .status()
            .map_err(io("running initdb"))?;
        drop(pwfile);
        if !status.success() {
            return Err(ClusterError::CommandFailed {
                what: "initdb",
                status: status.to_string(),
                log: self.log_file(),
            });
        }
        Ok(())
    }

    /// Sets the superuser's password with the server stopped, in single-user mode: works
    /// whatever `pg_hba.conf` says and whatever the old password was.
    fn set_password_single_user(&self) -> Result<(), ClusterError> {
        let mut child = self
            .run_as
            .command(&self.binaries.tool("postgres"))
            .current_dir(&self.dir)
            .arg("--single")
            .arg("-D")
            .arg(&self.pgdata)
            // An error ends the backend with a failure status; the statement (which holds
            // the password) is never written to the log, whatever postgresql.conf says.
            .args([
                "-c",
                "exit_on_error=on",
                "-c",
                "log_min_error_statement=panic",
                "-c",
                "log_statement=none",
                "-c",
                "log_min_duration_statement=-1",
                "-c",
                "password_encryption=scram-sha-256",
                "postgres",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(self.log_handle()?)
            .spawn()
            .map_err(io("running PostgreSQL in single-user mode"))?;
        let statement = format!("ALTER ROLE {SUPERUSER} PASSWORD '{}';\n", self.password.0);
        let written = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(statement.as_bytes());
        let status = child
            .wait()
            .map_err(io("running PostgreSQL in single-user mode"))?;
        written.map_err(io("setting the superuser password in single-user mode"))?;
        if !status.success() {
            return Err(ClusterError::CommandFailed {
                what: "setting the superuser password in single-user mode",
                status: status.to_string(),
                log: self.log_file(),
            });
        }
        Ok(())
    }

    /// Writes our `pg_hba.conf` (atomically, readable by the server only).
    fn write_hba(&self) -> Result<(), ClusterError> {
        let target = self.hba_file();
        let temporary = TemporaryFile::new(self.pgdata.join(".pg_hba.conf.renrakucho"));
        temporary.write(PG_HBA)?;
        self.give_to_runner(temporary.path())?;
        fs::rename(temporary.path(), &target)
            .map_err(io(format!("replacing {}", target.display())))?;
        Ok(())
    }

    fn is_running(&self) -> Result<bool, ClusterError> {
        Ok(self
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
            .success())
    }

    fn start_server(&self) -> Result<(), ClusterError> {
        if self.is_running()? {
            // Left behind by a previous server of ours that was killed before its watchdog
            // ran; we hold the directory lock, so it is ours to adopt.
            tracing::warn!("adopting a PostgreSQL left running by a previous server");
            return Ok(());
        }
        self.touch_log()?;
        // `-h ''`: no TCP at all; `-k`: the socket lives in the cluster directory only.
        // Passwords set later (other roles) are stored as SCRAM, which `pg_hba.conf` asks for.
        let options = format!(
            "-h '' -k '{}' -p {SOCKET_PORT} -c unix_socket_permissions=0700 \
             -c password_encryption=scram-sha-256",
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
        self.pg_ctl_stop()?;
        tracing::info!("private PostgreSQL stopped");
        Ok(())
    }

    fn pg_ctl_stop(&self) -> Result<(), ClusterError> {
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
        Ok(())
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

/// The cluster's directory is ours: nobody else may list or write it. When PostgreSQL runs as
/// the `postgres` user, that user must still walk down to it and through it (mode 0711);
/// otherwise 0700.
fn restrict_dir(dir: &Path, run_as: &RunAs) -> Result<(), ClusterError> {
    let wanted = match run_as {
        RunAs::Me => 0o700,
        RunAs::Postgres { .. } => {
            for ancestor in dir.ancestors().skip(1) {
                let meta = fs::metadata(ancestor)
                    .map_err(io(format!("inspecting {}", ancestor.display())))?;
                if meta.mode() & 0o001 == 0 {
                    return Err(ClusterError::Unreachable {
                        dir: dir.to_path_buf(),
                    });
                }
            }
            0o711
        }
    };
    let mode = fs::metadata(dir)
        .map_err(io(format!("inspecting {}", dir.display())))?
        .mode();
    if mode & 0o7777 != wanted {
        fs::set_permissions(dir, fs::Permissions::from_mode(wanted))
            .map_err(io(format!("restricting {}", dir.display())))?;
    }
    Ok(())
}

/// The stored superuser password, if there is one. Refuses a file others may read, like the
/// master key files: the password opens every database in the cluster.
fn read_password(path: &Path) -> Result<Option<Password>, ClusterError> {
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

/// Writes `contents` to `dir/name` atomically with mode 0600, owned by us.
fn write_private(dir: &Path, name: &str, contents: &str) -> Result<(), ClusterError> {
    let target = dir.join(name);
    let temporary = TemporaryFile::new(dir.join(format!(".{name}.{}", std::process::id())));
    temporary.write(contents)?;
    fs::rename(temporary.path(), &target).map_err(io(format!("writing {}", target.display())))?;
    Ok(())
}

/// A file of mode 0600, removed when dropped (after a rename, there is nothing left to remove).
struct TemporaryFile(PathBuf);

impl TemporaryFile {
    fn new(path: PathBuf) -> Self {
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, contents: &str) -> Result<(), ClusterError> {
        let context = || format!("writing {}", self.0.display());
        // A leftover from an interrupted run: ours (the directory is closed to others).
        let _ = fs::remove_file(&self.0);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.0)
            .map_err(io(context()))?;
        file.write_all(contents.as_bytes()).map_err(io(context()))?;
        file.sync_all().map_err(io(context()))?;
        Ok(())
    }
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests;
