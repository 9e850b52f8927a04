//! The real `renrakucho` binary: configuration errors (exit 2, naming the variable), the
//! zero-configuration server with its private PostgreSQL (one server per data directory, a
//! clean stop on SIGTERM), `serve --demo`, and `audit verify` against a test database.
//!
//! Every child process is stopped when its test ends, passed or failed (`Server`'s `Drop`,
//! `kill_on_drop` for short commands), and its scratch directory is removed.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use renrakucho_testkit::TestDatabase;

mod common;
use common::{describe, renrakucho, run, text, Scratch};
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const LISTENING: &str = "Renrakucho is listening on http://";

/// Polls `done` until it holds or `limit` passes; true if it held.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Processes (other than this one) whose command line mentions `dir` or whose working
/// directory is inside it: the postmaster, its backends, pg_ctl, the cluster's watchdog.
fn processes_using(dir: &Path) -> Vec<String> {
    let me = std::process::id();
    let needle = text(dir);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == me {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let in_dir =
                std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
            (cmdline.contains(&needle) || in_dir).then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

/// A `renrakucho serve` over a fresh data directory. Dropping it stops the server (SIGTERM,
/// then SIGKILL), waits for its PostgreSQL to go and removes the directory.
struct Server {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
    scratch: Scratch,
}

impl Server {
    async fn start(args: &[&str]) -> Self {
        let scratch = Scratch::new("serve");
        let stderr = std::fs::File::create(scratch.path.join("stderr.log")).unwrap();
        let mut child = renrakucho(
            &scratch.path,
            args,
            &[
                ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
                ("RENRAKUCHO_LISTEN", "127.0.0.1:0".to_string()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("starting renrakucho serve");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut server = Self {
            child,
            stdout,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            scratch,
        };
        let line = server.next_line().await;
        let addr = line
            .strip_prefix(LISTENING)
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
        server.addr = addr;
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.scratch.path.join("stderr.log")).unwrap_or_default()
    }

    async fn next_line(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "no line on renrakucho's stdout ({other:?}); stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// SIGTERM, then the exit status (within a minute).
    async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("the server is running");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("sending SIGTERM");
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no exit within a minute of SIGTERM; stderr:\n{}",
                    self.stderr()
                )
            })
            .expect("waiting for the server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = self.child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.start_kill();
        }
        // If the server died without stopping PostgreSQL, the cluster's watchdog does; wait
        // for that before the directory is removed.
        let pidfile = self.scratch.pgdata().join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pidfile.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs the binary with `args` and `envs` and checks it refuses to start: exit code 2, and
/// every one of `mentions` in its message.
async fn assert_config_error(args: &[&str], envs: &[(&str, &str)], mentions: &[&str]) {
    let scratch = Scratch::new("config");
    // Should the configuration be accepted after all, the server stays inside the scratch
    // directory (and is killed when `run` gives up or the test ends).
    let mut all_envs = vec![("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir()))];
    all_envs.extend(envs.iter().map(|(k, v)| (*k, v.to_string())));
    let output = run(renrakucho(&scratch.path, args, &all_envs)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?} {envs:?}: {}",
        describe(&output)
    );
    for mention in mentions {
        assert!(
            stderr.contains(mention),
            "{args:?} {envs:?}: the message does not mention {mention:?}: {stderr}"
        );
    }
    assert!(
        output.stdout.is_empty(),
        "{args:?} {envs:?}: {}",
        describe(&output)
    );
    assert!(!scratch.data_dir().exists(), "a data directory was created");
}

#[tokio::test]
async fn invalid_environment_settings_exit_2_naming_the_variable() {
    assert_config_error(
        &[],
        &[("RENRAKUCHO_LISTEN", "nonsense")],
        &["RENRAKUCHO_LISTEN"],
    )
    .await;
    assert_config_error(
        &["serve"],
        &[("RENRAKUCHO_SESSION_IDLE_TIMEOUT", "abc")],
        &["RENRAKUCHO_SESSION_IDLE_TIMEOUT", "abc"],
    )
    .await;
    assert_config_error(
        &[],
        &[("RENRAKUCHO_LISTN", "127.0.0.1:8080")],
        &["RENRAKUCHO_LISTN", "not a setting"],
    )
    .await;
    assert_config_error(
        &["audit", "verify"],
        &[("RENRAKUCHO_SIGNIN_ACCOUNT_BURST", "0")],
        &["RENRAKUCHO_SIGNIN_ACCOUNT_BURST"],
    )
    .await;
}

#[tokio::test]
async fn database_url_without_a_runtime_url_exits_2() {
    assert_config_error(
        &[],
        &[(
            "DATABASE_URL",
            "postgres://owner:secret@localhost:5432/renrakucho",
        )],
        &["RENRAKUCHO_RUNTIME_DATABASE_URL", "DATABASE_URL"],
    )
    .await;
}

/// A runtime URL alone would otherwise be ignored for a private cluster of the server's own: the
/// operator meant an external database and would silently get another one.
#[tokio::test]
async fn a_runtime_url_without_database_url_exits_2_instead_of_starting_a_private_cluster() {
    assert_config_error(
        &[],
        &[(
            "RENRAKUCHO_RUNTIME_DATABASE_URL",
            "postgres://renrakucho_app:secret@localhost:5432/renrakucho",
        )],
        &["DATABASE_URL", "RENRAKUCHO_RUNTIME_DATABASE_URL"],
    )
    .await;
}

#[tokio::test]
async fn a_missing_or_invalid_configuration_file_exits_2() {
    let scratch = Scratch::new("toml");
    let missing = scratch.path.join("missing.toml");
    assert_config_error(
        &["--config", &text(&missing)],
        &[],
        &[&text(&missing), "does not exist"],
    )
    .await;

    let bad = scratch.path.join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\nsession_idle_timeout = \"abc\"\n",
    )
    .unwrap();
    assert_config_error(
        &["--config", &text(&bad)],
        &[],
        &["session_idle_timeout", "configuration file"],
    )
    .await;
    // The same file named by RENRAKUCHO_CONFIG.
    assert_config_error(
        &["audit", "verify"],
        &[("RENRAKUCHO_CONFIG", &text(&bad))],
        &["session_idle_timeout", "configuration file"],
    )
    .await;

    let misspelt = scratch.path.join("misspelt.toml");
    std::fs::write(&misspelt, "lissen = \"127.0.0.1:0\"\n").unwrap();
    assert_config_error(
        &["--config", &text(&misspelt)],
        &[],
        &["lissen", "not a setting"],
    )
    .await;
}

#[tokio::test]
async fn zero_config_serve_owns_its_data_directory_and_stops_cleanly_on_sigterm() {
    let mut server = Server::start(&["serve"]).await;
    let client = reqwest::Client::new();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "stderr:\n{}", server.stderr());
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    // A second server on the same data directory is refused and leaves the first alone.
    let second = run(renrakucho(
        &server.scratch.path,
        &["serve"],
        &[
            ("RENRAKUCHO_DATA_DIR", text(&server.scratch.data_dir())),
            ("RENRAKUCHO_LISTEN", "127.0.0.1:0".to_string()),
        ],
    ))
    .await;
    assert!(!second.status.success(), "{}", describe(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already using the data directory"),
        "{}",
        describe(&second)
    );
    let still = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(still.status(), 200);

    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    let pidfile = server.scratch.pgdata().join("postmaster.pid");
    assert!(
        eventually(Duration::from_secs(10), || !pidfile.exists()).await,
        "PostgreSQL is still running: {} exists",
        pidfile.display()
    );
    let data_dir = server.scratch.data_dir();
    assert!(
        eventually(Duration::from_secs(10), || processes_using(&data_dir)
            .is_empty())
        .await,
        "processes left behind: {:?}",
        processes_using(&data_dir)
    );
}

#[tokio::test]
async fn serve_demo_prints_the_demo_sign_in_and_it_works() {
    let mut server = Server::start(&["serve", "--demo"]).await;
    let line = server.next_line().await;
    assert!(
        line.starts_with(
            "Demo sign-in: facility code IZ-CLINIC, login ID sato, password renrakucho-demo"
        ),
        "{line}"
    );

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let signed_in = client
        .post(server.url("/api/v1/auth/sign-in"))
        .json(&json!({
            "facility_code": "IZ-CLINIC", "login_id": "sato", "password": "renrakucho-demo"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200, "stderr:\n{}", server.stderr());
    let who: Value = client
        .get(server.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["login_id"], "sato");
    assert_eq!(who["facility"]["code"], "IZ-CLINIC");

    // The audit log of the running installation, verified while it keeps serving (the
    // command reads its private cluster through a login of its own, dropped afterwards).
    let env = [("RENRAKUCHO_DATA_DIR", text(&server.scratch.data_dir()))];
    for _ in 0..2 {
        let verified = run(renrakucho(&server.scratch.path, &["audit", "verify"], &env)).await;
        assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));
        assert!(
            String::from_utf8_lossy(&verified.stdout).contains("Audit log intact"),
            "{}",
            describe(&verified)
        );
        assert!(
            !String::from_utf8_lossy(&verified.stderr).contains("could not drop"),
            "{}",
            describe(&verified)
        );
    }
    let still = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(still.status(), 200, "the server kept serving");
    let who = client.get(server.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(who.status(), 200, "and its sessions");

    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

#[tokio::test]
async fn audit_verify_reports_an_intact_log_and_names_an_edited_record() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("audit");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        // The demo's patients need a master key: keep it in the scratch directory.
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);

    let demo = run(command(&["demo"])).await;
    assert!(demo.status.success(), "{}", describe(&demo));
    assert!(String::from_utf8_lossy(&demo.stdout).contains("Demo network seeded."));

    let mut su = db.superuser_options().connect().await.unwrap();
    let (records, facilities): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(records > 0);
    // The demo's patients are there, encrypted: no name is readable in the database.
    let names: Vec<Vec<u8>> = sqlx::query_scalar("SELECT name_enc || kana_enc FROM patients")
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert_eq!(names.len(), 4);
    for stored in &names {
        assert!(!stored.windows("阿部".len()).any(|w| w == "阿部".as_bytes()));
        assert!(!stored.windows("アベ".len()).any(|w| w == "アベ".as_bytes()));
    }

    let intact = run(command(&["audit", "verify"])).await;
    assert_eq!(intact.status.code(), Some(0), "{}", describe(&intact));
    let stdout = String::from_utf8_lossy(&intact.stdout);
    assert!(
        stdout.contains(&format!(
            "Audit log intact: {records} records in {} chains.",
            facilities + 1
        )),
        "{}",
        describe(&intact)
    );

    // Someone with full database access edits one record of the clinic's chain.
    let (id, facility): (i64, uuid::Uuid) = sqlx::query_as(
        "UPDATE audit_log SET details = details || '{\"login_id\": \"mallory\"}'::jsonb
          WHERE facility_id = (SELECT id FROM facilities WHERE code = 'IZ-CLINIC') AND seq = 2
          RETURNING id, facility_id",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    // And removes a later one of the same chain: both are reported, not only the first.
    let removed: i64 = sqlx::query_scalar(
        "DELETE FROM audit_log WHERE facility_id = $1 AND seq = 3 RETURNING seq",
    )
    .bind(facility)
    .fetch_one(&mut su)
    .await
    .unwrap();
    su.close().await.unwrap();

    let broken = run(command(&["audit", "verify"])).await;
    assert_eq!(
        broken.status.code(),
        Some(3),
        "tampered: exit 3 {}",
        describe(&broken)
    );
    let stdout = String::from_utf8_lossy(&broken.stdout);
    let expected = format!("BROKEN: facility {facility} chain: record #2 (id {id}) was altered");
    assert!(
        stdout.contains(&expected),
        "expected {expected:?}: {}",
        describe(&broken)
    );
    let expected = format!("record #{removed} was removed or altered");
    assert!(
        stdout.contains(&expected),
        "expected {expected:?}: {}",
        describe(&broken)
    );
    assert_eq!(
        stdout.matches("BROKEN:").count(),
        2,
        "{}",
        describe(&broken)
    );
    assert!(!stdout.contains("intact"), "{}", describe(&broken));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("2 broken links in 1 of"),
        "{}",
        describe(&broken)
    );

    // Could not run at all (the database is not there): exit 1, not 3.
    let unreachable = [
        (
            "DATABASE_URL",
            "postgres://renrakucho_owner@127.0.0.1:1/nowhere".to_string(),
        ),
        (
            "RENRAKUCHO_RUNTIME_DATABASE_URL",
            "postgres://renrakucho_runtime@127.0.0.1:1/nowhere".to_string(),
        ),
    ];
    let failed = run(renrakucho(
        &scratch.path,
        &["audit", "verify"],
        &unreachable,
    ))
    .await;
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
}

/// Lines of `keys status`: (master key ID, data keys, current?).
fn key_status(output: &Output) -> Vec<(String, u64, bool)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (id, rest) = line.split_once(": ")?;
            if id == "Current master key" {
                return None;
            }
            let current = id.ends_with(" (current)");
            let id = id.trim_end_matches(" (current)").to_string();
            let count = rest.split_whitespace().next()?.parse().ok()?;
            Some((id, count, current))
        })
        .collect()
}

#[tokio::test]
async fn a_master_key_epoch_from_the_command_line_destroys_every_older_key() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("epochs");
    let key_dir = scratch.path.join("keys");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_MASTER_KEY_DIR", text(&key_dir)),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);
    let status = run(command(&["keys", "status"])).await;
    assert!(status.status.success(), "{}", describe(&status));
    let (old, _, _) = key_status(&status)[0].clone();
    let old_file = key_dir.join(format!("{}.key", old.trim_start_matches("local:")));
    assert!(old_file.exists());

    let rotated = run(command(&["keys", "rotate-epoch"])).await;
    assert!(rotated.status.success(), "{}", describe(&rotated));
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        out.contains("New master key epoch local:")
            && out.contains("1 data keys re-wrapped, 1 older master keys destroyed"),
        "{out}"
    );
    let after = key_status(&run(command(&["keys", "status"])).await);
    assert_eq!(after.len(), 1, "{after:?}");
    let (new, count, current) = after[0].clone();
    assert!(new != old && count == 1 && current, "{after:?}");
    assert!(!old_file.exists(), "the old epoch's key file is destroyed");
    let files: Vec<_> = std::fs::read_dir(&key_dir).unwrap().collect();
    assert_eq!(files.len(), 2, "the new key and `current`, nothing else");

    // A key given in the environment is not the server's to replace: a usage error.
    let given = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        (
            "RENRAKUCHO_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string(),
        ),
    ];
    let refused = run(renrakucho(&scratch.path, &["keys", "rotate-epoch"], &given)).await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("keys the server can replace"),
        "{}",
        describe(&refused)
    );
}

#[tokio::test]
async fn master_key_rotation_and_retirement_from_the_command_line() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("keys");
    let key_dir = scratch.path.join("keys");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_MASTER_KEY_DIR", text(&key_dir)),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);

    // The first start creates the key directory, its first master key and the network's
    // blind-index key.
    let status = run(command(&["keys", "status"])).await;
    assert!(status.status.success(), "{}", describe(&status));
    let before = key_status(&status);
    assert_eq!(before.len(), 1, "{}", describe(&status));
    let (old, count, current) = before[0].clone();
    assert!(
        old.starts_with("local:") && current && count == 1,
        "{before:?}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_dir), 0o700);
    let key_file = key_dir.join(format!("{}.key", old.trim_start_matches("local:")));
    assert_eq!(mode(&key_file), 0o600);

    let rotated = run(command(&["keys", "rotate-master", "--batch", "1"])).await;
    assert!(rotated.status.success(), "{}", describe(&rotated));
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(out.contains("Re-wrapped 1 data keys under local:"), "{out}");

    let after = key_status(&run(command(&["keys", "status"])).await);
    assert_eq!(after.len(), 1, "{after:?}");
    let (new, count, current) = after[0].clone();
    assert!(new != old && count == 1 && current, "{after:?}");

    // The current key cannot be retired; the old one can, and everything still starts.
    let bad = run(command(&["keys", "reencrypt", "someone"])).await;
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    let refused = run(command(&["keys", "retire-master", &new])).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is the current master key"));
    let retired = run(command(&["keys", "retire-master", &old])).await;
    assert!(retired.status.success(), "{}", describe(&retired));
    assert!(!key_file.exists());
    let status = run(command(&["keys", "status"])).await;
    assert!(status.status.success(), "{}", describe(&status));

    // A key file others can read stops everything, with the fix in the message.
    let new_file = key_dir.join(format!("{}.key", new.trim_start_matches("local:")));
    std::fs::set_permissions(&new_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = run(command(&["keys", "status"])).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("accessible to other users") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_kms_stops_the_server_with_a_clear_error() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("kms-down");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_LISTEN", "127.0.0.1:0".to_string()),
        ("RENRAKUCHO_KEY_PROVIDER", "aws-kms".to_string()),
        ("RENRAKUCHO_AWS_KMS_KEY_ID", "alias/renrakucho".to_string()),
        (
            "RENRAKUCHO_AWS_KMS_ENDPOINT",
            format!("http://127.0.0.1:{closed_port}"),
        ),
        ("RENRAKUCHO_AWS_REGION", "ap-northeast-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
    ];
    let served = run(renrakucho(&scratch.path, &["serve"], &envs)).await;
    assert_eq!(served.status.code(), Some(1), "{}", describe(&served));
    let stderr = String::from_utf8_lossy(&served.stderr);
    assert!(
        stderr.contains("the master key provider is unavailable"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&served.stdout).contains(LISTENING));

    // Without a key ID the configuration itself is refused.
    let envs = [("RENRAKUCHO_KEY_PROVIDER", "aws-kms".to_string())];
    let refused = run(renrakucho(&scratch.path, &["serve"], &envs)).await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("RENRAKUCHO_AWS_KMS_KEY_ID"));
}

/// `renrakucho keys bind-versions` as the README documents it (ADR 0016): on a network whose
/// database still reads values of the earlier format, it walks every patient with its progress
/// bar, finds nothing left in that format and records that such values are refused from now
/// on; a second run has nothing to do.
#[tokio::test]
async fn binding_values_to_their_version_from_the_command_line() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("bind-versions");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);
    let demo = run(command(&["demo"])).await;
    assert!(demo.status.success(), "{}", describe(&demo));

    // As an upgraded database starts: format 1 still read until the command completes (set
    // past the guard that keeps the refusal for good).
    let mut su = db.superuser_options().connect().await.unwrap();
    sqlx::raw_sql(
        "BEGIN;
         SET LOCAL session_replication_role = replica;
         UPDATE private.value_binding SET legacy_readable = true, completed_at = NULL;
         COMMIT;",
    )
    .execute(&mut su)
    .await
    .unwrap();

    let bound = run(command(&["keys", "bind-versions", "--batch", "2"])).await;
    assert!(bound.status.success(), "{}", describe(&bound));
    let out = String::from_utf8_lossy(&bound.stdout);
    assert!(
        out.contains("No value of the earlier format is left"),
        "{}",
        describe(&bound)
    );
    let (readable, completed): (bool, bool) = sqlx::query_as(
        "SELECT legacy_readable, completed_at IS NOT NULL FROM private.value_binding",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        (readable, completed),
        (false, true),
        "format 1 refused for good"
    );

    let again = run(command(&["keys", "bind-versions"])).await;
    assert!(again.status.success(), "{}", describe(&again));
}

/// The subcommands a `--help` lists (clap's "Commands:" section), without `help` itself.
fn listed_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The README's table of subcommands is what the binary accepts: every command it shows runs
/// its `--help` with every option the row names, and every subcommand the binary has (and
/// each of `admin`, `keys` and `audit`) has a row.
#[tokio::test]
async fn the_readmes_subcommands_are_the_binarys() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("reading README.md");
    let scratch = Scratch::new("readme-commands");
    let rows: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `renrakucho "))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(
        rows.len() >= 10,
        "the README's table of subcommands: {rows:?}"
    );

    let mut documented = std::collections::BTreeSet::new();
    for row in &rows {
        let words: Vec<&str> = row
            .split_whitespace()
            .take_while(|w| {
                !w.starts_with('-') && !w.starts_with('[') && !w.chars().all(|c| !c.is_lowercase())
            })
            .collect();
        documented.insert(words.join(" "));
        let mut args = words.clone();
        args.push("--help");
        let help = run(renrakucho(&scratch.path, &args, &[])).await;
        assert!(
            help.status.success(),
            "`renrakucho {row}`: {}",
            describe(&help)
        );
        let help = String::from_utf8_lossy(&help.stdout);
        for option in row.split(|c: char| c.is_whitespace() || c == '[' || c == ']') {
            if option.starts_with("--") {
                assert!(
                    help.contains(option),
                    "`renrakucho {row}`: the binary has no option {option}:\n{help}"
                );
            }
        }
    }

    let top = run(renrakucho(&scratch.path, &["--help"], &[])).await;
    let top = String::from_utf8_lossy(&top.stdout).to_string();
    for command in listed_subcommands(&top) {
        // `serve` is the README's first command, documented above the table.
        if command == "serve" {
            assert!(
                readme.contains("renrakucho serve"),
                "the README shows `serve`"
            );
            continue;
        }
        let help = run(renrakucho(&scratch.path, &[&command, "--help"], &[])).await;
        let nested = listed_subcommands(&String::from_utf8_lossy(&help.stdout));
        if nested.is_empty() {
            assert!(
                documented.contains(&command),
                "`renrakucho {command}` has no row in the README's table"
            );
        }
        for sub in nested {
            let full = format!("{command} {sub}");
            assert!(
                documented.contains(&full),
                "`renrakucho {full}` has no row in the README's table"
            );
        }
    }
}
