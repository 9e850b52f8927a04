//! The real `renrakucho` binary: configuration errors (exit 2, naming the variable), the
//! zero-configuration server with its private PostgreSQL (one server per data directory, a
//! clean stop on SIGTERM), `serve --demo`, and `audit verify` against a test database.
//!
//! Every child process is stopped when its test ends, passed or failed (`Server`'s `Drop`,
//! `kill_on_drop` for short commands), and its scratch directory is removed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use renrakucho_testkit::TestDatabase;

mod common;
use common::{describe, renrakucho, run, text, Scratch, LISTENING};
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

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

/// `renrakucho admin reset-second-factor`, as the README shows it: a facility admin's and an
/// operator's second factor removed (audited, the person's notice written), then nothing left
/// to remove, and an unknown account refused.
#[tokio::test]
async fn reset_second_factor_removes_it_for_a_staff_member_and_an_operator() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("reset-second-factor");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);
    let demo = run(command(&["demo"])).await;
    assert!(demo.status.success(), "{}", describe(&demo));

    // Both have an authenticator (what the value is does not matter to its removal).
    let mut su = db.superuser_options().connect().await.unwrap();
    for table in ["staff_accounts", "platform_operators"] {
        sqlx::query(&format!(
            "UPDATE {table} SET totp_secret_enc = decode(repeat('ab', 70), 'hex'),
                    totp_confirmed_at = now(), recovery_code_hashes = '{{x}}'
              WHERE login_id IN ('sato', 'operator')"
        ))
        .execute(&mut su)
        .await
        .unwrap();
    }

    for (args, whose) in [
        (
            vec![
                "admin",
                "reset-second-factor",
                "--facility",
                "IZ-CLINIC",
                "--login-id",
                "sato",
            ],
            "sato of IZ-CLINIC",
        ),
        (
            vec!["admin", "reset-second-factor", "--login-id", "operator"],
            "operator operator",
        ),
    ] {
        let reset = run(command(&args)).await;
        assert!(reset.status.success(), "{}", describe(&reset));
        assert!(
            String::from_utf8_lossy(&reset.stdout)
                .contains(&format!("The second factor of {whose} was removed")),
            "{}",
            describe(&reset)
        );
        let again = run(command(&args)).await;
        assert!(again.status.success(), "{}", describe(&again));
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("has no second factor"),
            "{}",
            describe(&again)
        );
    }
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM staff_accounts WHERE totp_secret_enc IS NOT NULL
                    OR cardinality(recovery_code_hashes) > 0)
              + (SELECT count(*) FROM platform_operators WHERE totp_secret_enc IS NOT NULL
                    OR cardinality(recovery_code_hashes) > 0)",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let (resets, notices): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM audit_log
                  WHERE action = 'account.second_factor' AND details->>'via' = 'cli'),
                (SELECT count(*) FROM account_notices WHERE event = 'second_factor_reset')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        (resets, notices),
        (2, 1),
        "both audited; the staff member is told"
    );

    let unknown = run(command(&[
        "admin",
        "reset-second-factor",
        "--facility",
        "IZ-CLINIC",
        "--login-id",
        "nobody",
    ]))
    .await;
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such account"));
}

/// `renrakucho admin link-operator-identity`, as the README shows it: with the operators'
/// provider configured, the demo's operator is linked to a subject (audited), a second link is
/// refused, and without the provider's settings the command names them.
#[tokio::test]
async fn link_operator_identity_links_an_operator_to_the_operators_provider() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("link-operator-identity");
    let base = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let mut envs = base.to_vec();
    envs.extend([
        (
            "RENRAKUCHO_OPERATOR_OIDC_ISSUER",
            "https://login.example.jp".to_string(),
        ),
        (
            "RENRAKUCHO_OPERATOR_OIDC_CLIENT_ID",
            "renrakucho".to_string(),
        ),
        (
            "RENRAKUCHO_OPERATOR_OIDC_CLIENT_SECRET",
            "a-secret".to_string(),
        ),
    ]);
    let demo = run(renrakucho(&scratch.path, &["demo"], &base)).await;
    assert!(demo.status.success(), "{}", describe(&demo));
    let args = [
        "admin",
        "link-operator-identity",
        "--login-id",
        "operator",
        "--subject",
        "ops-sub",
    ];
    let linked = run(renrakucho(&scratch.path, &args, &envs)).await;
    assert!(linked.status.success(), "{}", describe(&linked));
    assert!(
        String::from_utf8_lossy(&linked.stdout).contains("Operator operator is linked"),
        "{}",
        describe(&linked)
    );
    let again = run(renrakucho(&scratch.path, &args, &envs)).await;
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already linked"));

    let unconfigured = run(renrakucho(&scratch.path, &args, &base)).await;
    assert_eq!(
        unconfigured.status.code(),
        Some(1),
        "{}",
        describe(&unconfigured)
    );
    assert!(
        String::from_utf8_lossy(&unconfigured.stderr).contains("RENRAKUCHO_OPERATOR_OIDC_ISSUER"),
        "{}",
        describe(&unconfigured)
    );

    let mut su = db.superuser_options().connect().await.unwrap();
    let (links, audited): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM operator_identities WHERE subject = 'ops-sub'
                    AND issuer = 'https://login.example.jp'),
                (SELECT count(*) FROM audit_log WHERE action = 'account.provider_link'
                    AND details->>'via' = 'cli')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((links, audited), (1, 1));
}
