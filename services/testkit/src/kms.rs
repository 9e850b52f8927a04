//! A real AWS KMS peer for the key-provider tests: moto's server (PyPI `moto[server]`), started
//! on a free loopback port and stopped when dropped.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Credentials moto accepts (it checks their shape, not their value).
pub const KMS_ACCESS_KEY: &str = "testing";
pub const KMS_SECRET_KEY: &str = "testing";
pub const KMS_REGION: &str = "ap-northeast-1";

/// A running KMS emulator.
pub struct KmsEmulator {
    pub endpoint: String,
    _process: Child,
}

impl KmsEmulator {
    /// Starts `python3 -m moto.server` and waits until it answers.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut process = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 is needed to run the KMS emulator");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = process.try_wait() {
                panic!(
                    "the KMS emulator exited ({status}): install it with \
                     `pip install 'moto[server]'` (.ci/run does)"
                );
            }
            if client
                .get(format!("{endpoint}/moto-api/"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the KMS emulator did not start: install it with `pip install 'moto[server]'` \
                 (.ci/run does)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // moto loads a service's backend at its first request, which takes seconds on a busy
        // machine: load KMS's now (an unsigned ListKeys; its answer does not matter), so that
        // the first real request does not meet the client's timeout.
        let _ = client
            .post(format!("{endpoint}/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "TrentService.ListKeys")
            // moto picks the service from the credential scope (it checks no signature).
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={KMS_ACCESS_KEY}/20260101/{KMS_REGION}/kms/\
                     aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .body("{}")
            .timeout(Duration::from_secs(120))
            .send()
            .await;
        Self {
            endpoint,
            _process: process,
        }
    }
}
