//! The PostgreSQL server process: started (or adopted when left running), watched so that it
//! stops when our process goes away, and stopped.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::LocalCluster;
use crate::error::io;
use crate::{ClusterError, SOCKET_PORT};

impl LocalCluster {
    pub(super) fn is_running(&self) -> Result<bool, ClusterError> {
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

    pub(super) fn start_server(&self) -> Result<(), ClusterError> {
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
    pub(super) fn spawn_watchdog(&self, remove_dir: bool) -> Result<(), ClusterError> {
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

    pub(super) fn pg_ctl_stop(&self) -> Result<(), ClusterError> {
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
}
