//! What the tests of the real `renrakucho` binary share: a scratch directory, the binary with a
//! clean environment, and a command run to its end.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_renrakucho");

/// What `serve` prints once it listens.
pub const LISTENING: &str = "Renrakucho is listening on http://";

/// A directory of its own under /tmp (which the `postgres` user can traverse when the tests
/// run as root), removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(what: &str) -> Self {
        let path = Path::new("/tmp").join(format!(
            "renrakucho-cli-{what}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).expect("creating a scratch directory");
        Self { path }
    }

    /// The server's RENRAKUCHO_DATA_DIR (created by the server itself).
    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    pub fn pgdata(&self) -> PathBuf {
        self.data_dir().join("postgres").join("pgdata")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_string()
}

/// The binary with an empty environment except PATH, HOME (the scratch directory) and
/// `envs`, so no RENRAKUCHO_ variable of the machine running the tests leaks in.
pub fn renrakucho(home: &Path, args: &[&str], envs: &[(&str, String)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs a command that is expected to finish (killed after two minutes if it does not).
pub async fn run(mut command: Command) -> Output {
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("renrakucho did not finish within two minutes")
        .expect("running renrakucho")
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
