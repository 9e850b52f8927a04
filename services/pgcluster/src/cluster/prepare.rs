//! Making the cluster on first use, and securing one that is not as we want it: the
//! superuser's password (set by `initdb`, or in single-user mode) and our `pg_hba.conf`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use super::LocalCluster;
use crate::directory::{write_private, TemporaryFile};
use crate::error::io;
use crate::{ClusterError, PASSWORD_FILE, PG_HBA, SUPERUSER};

impl LocalCluster {
    /// Makes the cluster on first use, or secures one that is not yet as we want it. The order
    /// survives a crash at any step: the password is set (initdb, single-user mode) before it
    /// is written to the password file, and `pg_hba.conf` is written last, so a start that
    /// finds the file missing, or `pg_hba.conf` not ours, sets the password again.
    pub(super) fn prepare(&self, new_password: bool) -> Result<(), ClusterError> {
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
}
