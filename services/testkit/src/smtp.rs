//! A real SMTP peer for the e-mail tests: aiosmtpd (PyPI `aiosmtpd`) on a free loopback port,
//! storing every message it receives in a maildir; stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running mail sink.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>`
    pub url: String,
    maildir: tempfile::TempDir,
    _process: Child,
}

const MISSING: &str = "the e-mail tests need aiosmtpd: `pip install aiosmtpd` (.ci/run does)";

impl SmtpSink {
    /// Starts `python3 -m aiosmtpd` and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let maildir = tempfile::tempdir().expect("a maildir");
        let mut process = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(MISSING);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = process.try_wait() {
                panic!("the SMTP sink exited ({status}): {MISSING}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{MISSING}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            url: format!("smtp://127.0.0.1:{port}"),
            maildir,
            _process: process,
        }
    }

    /// Every message received so far, raw (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let dir: PathBuf = self.maildir.path().join("box").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }
}
