//! Against real clusters: each test makes its own in a fresh directory under the system's
//! temporary directory (not under a home directory: as root, the `postgres` user must be able
//! to traverse it).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::*;
use crate::binaries::RunAs;
use crate::password::{Password, PASSWORD_LEN};

/// A fresh, short path (the socket path must stay under 107 bytes).
fn fresh_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!("rk-pgc-{}-{name}-{nanos:x}", std::process::id()))
}

/// Stops whatever PostgreSQL still runs in the directory and removes it, even when a test
/// fails half-way.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let (Ok(binaries), Ok(run_as)) = (Binaries::find(), RunAs::detect()) {
            let _ = run_as
                .command(&binaries.tool("pg_ctl"))
                .current_dir("/")
                .arg("stop")
                .arg("-D")
                .arg(self.0.join("pgdata"))
                .args(["-m", "immediate", "-w", "-s"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn psql_program() -> PathBuf {
    let beside = Binaries::find().unwrap().tool("psql");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("psql")
    }
}

/// `psql` as the superuser over the socket in `dir`, with `password` or none at all (no
/// prompt, no ~/.pgpass, no service file).
fn psql(dir: &Path, password: Option<&str>) -> Output {
    let mut command = Command::new(psql_program());
    command
        .args(["-X", "-w", "-At", "-h"])
        .arg(dir.join("pgdata"))
        .args([
            "-p",
            &SOCKET_PORT.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
        ])
        .args(["-c", "SELECT current_user"])
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env("PGPASSFILE", "/dev/null")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command.output().expect("running psql")
}

fn assert_password_required(dir: &Path, password: &str) {
    let without = psql(dir, None);
    assert!(
        !without.status.success(),
        "connected without a password: {}",
        String::from_utf8_lossy(&without.stdout)
    );
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("password"), "{stderr}");
    let wrong = psql(dir, Some("not-the-password"));
    assert!(!wrong.status.success(), "connected with a wrong password");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let with = psql(dir, Some(password));
    assert!(
        with.status.success(),
        "the password was refused: {}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with.stdout).trim(), SUPERUSER);
}

/// What must hold of every started cluster.
fn assert_secured(cluster: &LocalCluster) {
    let dir = cluster.dir();
    let hba = fs::read_to_string(dir.join("pgdata/pg_hba.conf")).unwrap();
    assert_eq!(hba, PG_HBA);
    for line in hba.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let kind = line.split_whitespace().next().unwrap();
        assert_eq!(kind, "local", "a non-socket line in pg_hba.conf: {line}");
        assert!(line.ends_with("scram-sha-256"), "{line}");
    }
    assert!(!hba.contains("trust"), "{hba}");
    assert!(!hba.contains("host"), "{hba}");

    let password = cluster.superuser_password();
    assert_eq!(password.len(), PASSWORD_LEN);
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    let password_file = dir.join(PASSWORD_FILE);
    assert_eq!(mode(&password_file), 0o600);
    assert_eq!(
        fs::metadata(&password_file).unwrap().uid(),
        nix::unistd::geteuid().as_raw(),
        "the password file must be ours, not the server's"
    );
    assert_eq!(fs::read_to_string(&password_file).unwrap().trim(), password);

    let log = dir.join("postgresql.log");
    assert_eq!(mode(&log), 0o600);
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains(password), "the log holds the password");

    let root = nix::unistd::geteuid().is_root();
    assert_eq!(mode(dir), if root { 0o711 } else { 0o700 });
    if let RunAs::Postgres { uid, .. } = RunAs::detect().unwrap() {
        assert_eq!(
            fs::metadata(&log).unwrap().uid(),
            uid,
            "postgres writes the log"
        );
    }
    assert!(
        !dir.join(".initdb-pwfile").exists(),
        "the pwfile was left behind"
    );

    let debug = format!("{cluster:?}");
    assert!(!debug.contains(password), "{debug}");
    assert!(debug.contains("**redacted**"), "{debug}");

    assert_password_required(dir, password);
}

/// A cluster made the way earlier versions did: `initdb --auth=trust`, no password, a log
/// readable by all, the directory with the usual mode. Left running when asked.
fn make_old_cluster(dir: &Path, leave_running: bool) {
    let binaries = Binaries::find().unwrap();
    let run_as = RunAs::detect().unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let pgdata = dir.join("pgdata");
    fs::create_dir(&pgdata).unwrap();
    fs::set_permissions(&pgdata, fs::Permissions::from_mode(0o700)).unwrap();
    let log = dir.join("postgresql.log");
    fs::write(&log, "").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    if let RunAs::Postgres { uid, gid } = run_as {
        std::os::unix::fs::chown(&pgdata, Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(&log, Some(uid), Some(gid)).unwrap();
    }
    let status = run_as
        .command(&binaries.tool("initdb"))
        .current_dir(dir)
        .arg("-D")
        .arg(&pgdata)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "initdb --auth=trust failed");
    // As earlier versions left it: initdb's pg_hba.conf, trusting everyone.
    let hba = fs::read_to_string(pgdata.join("pg_hba.conf")).unwrap();
    assert!(hba.contains("trust"));
    if leave_running {
        let status = run_as
            .command(&binaries.tool("pg_ctl"))
            .current_dir(dir)
            .arg("start")
            .arg("-D")
            .arg(&pgdata)
            .args(["-w", "-t", "60", "-s", "-l"])
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-h '' -k '{}' -p {SOCKET_PORT} -c unix_socket_permissions=0700",
                pgdata.display()
            ))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
        // The old way really let anyone on the socket in.
        let open = psql(dir, None);
        assert!(
            open.status.success(),
            "{}",
            String::from_utf8_lossy(&open.stderr)
        );
    }
}

#[test]
fn a_new_cluster_asks_every_role_for_a_password() {
    let dir = fresh_dir("new");
    let _cleanup = Cleanup(dir.clone());
    let cluster = LocalCluster::start_ephemeral(&dir).unwrap();
    assert_secured(&cluster);
    let password = cluster.superuser_password().to_string();
    cluster.stop().unwrap();

    // The next start keeps the password.
    let cluster = LocalCluster::start(&dir).unwrap();
    assert_eq!(cluster.superuser_password(), password);
    assert_secured(&cluster);
    cluster.stop().unwrap();
}

#[test]
fn a_cluster_that_trusted_its_socket_gets_a_password_at_start() {
    let dir = fresh_dir("old");
    let _cleanup = Cleanup(dir.clone());
    make_old_cluster(&dir, false);
    assert!(!dir.join(PASSWORD_FILE).exists());

    let cluster = LocalCluster::start(&dir).unwrap();
    assert_secured(&cluster);
    let password = cluster.superuser_password().to_string();
    cluster.stop().unwrap();

    let cluster = LocalCluster::start(&dir).unwrap();
    assert_eq!(cluster.superuser_password(), password, "upgraded once only");
    assert_secured(&cluster);
    cluster.stop().unwrap();
}

#[test]
fn a_trusting_cluster_left_running_is_stopped_secured_and_started() {
    let dir = fresh_dir("run");
    let _cleanup = Cleanup(dir.clone());
    make_old_cluster(&dir, true);

    let cluster = LocalCluster::start(&dir).unwrap();
    assert_secured(&cluster);
    cluster.stop().unwrap();
}

#[test]
fn the_password_file_must_be_private_and_can_be_reset() {
    let dir = fresh_dir("pwf");
    let _cleanup = Cleanup(dir.clone());
    let cluster = LocalCluster::start(&dir).unwrap();
    let first = cluster.superuser_password().to_string();
    cluster.stop().unwrap();
    let password_file = dir.join(PASSWORD_FILE);

    for exposed in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&password_file, fs::Permissions::from_mode(exposed)).unwrap();
        let error = LocalCluster::start(&dir).unwrap_err();
        assert!(
            matches!(&error, ClusterError::PasswordFileExposed { path, mode }
                if path == &password_file && *mode == exposed),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("chmod 600 {}", password_file.display())),
            "{message}"
        );
        assert!(!message.contains(&first), "{message}");
        assert!(!format!("{error:?}").contains(&first));
        // Refused before anything started.
        assert!(!psql(&dir, Some(&first)).status.success());
    }
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).unwrap();

    // A file that is not a password we could have written is refused, naming no content.
    fs::write(&password_file, "it's a secret\n").unwrap();
    let error = LocalCluster::start(&dir).unwrap_err();
    assert!(
        matches!(error, ClusterError::BadPasswordFile { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("secret"), "{error}");

    // Removing the file sets a new password at the next start (single-user mode).
    fs::remove_file(&password_file).unwrap();
    let cluster = LocalCluster::start(&dir).unwrap();
    let second = cluster.superuser_password().to_string();
    assert_ne!(second, first);
    assert_secured(&cluster);
    assert!(!psql(&dir, Some(&first)).status.success());
    cluster.stop().unwrap();
}

#[test]
fn a_readable_log_is_made_private_at_start() {
    let dir = fresh_dir("log");
    let _cleanup = Cleanup(dir.clone());
    let cluster = LocalCluster::start(&dir).unwrap();
    cluster.stop().unwrap();
    let log = dir.join("postgresql.log");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = LocalCluster::start(&dir).unwrap();
    assert_eq!(mode(&log), 0o600);
    assert_secured(&cluster);
    cluster.stop().unwrap();
}

#[test]
fn a_password_parses_only_as_letters_and_digits_and_never_prints() {
    assert_eq!(Password::parse(" abcXYZ123 \n").unwrap().0, "abcXYZ123");
    for bad in [
        "",
        "\n",
        "a'b",
        "a b",
        "a\nb",
        "パスワード",
        &"a".repeat(257),
    ] {
        assert!(Password::parse(bad).is_none(), "{bad:?}");
    }
    let generated = Password::generate();
    assert_eq!(generated.0.len(), PASSWORD_LEN);
    assert_ne!(generated.0, Password::generate().0);
    assert_eq!(format!("{generated:?}"), "**redacted**");
}
