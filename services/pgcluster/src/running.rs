//! Reaching a private cluster that another process of ours runs, without touching it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::directory::take_lock;
use crate::error::io;
use crate::password::{read_password, Password};
use crate::{ClusterError, PASSWORD_FILE};

/// A cluster that another process of ours started and runs (it holds the directory's lock):
/// what it takes to connect to it without touching its lifecycle. For commands that read a live
/// installation (`renrakucho audit verify`) while its server keeps serving.
#[derive(Debug)]
pub struct RunningCluster {
    socket_dir: PathBuf,
    password: Password,
}

impl RunningCluster {
    /// The cluster kept in `dir` when another process runs it; `None` when nobody does (or it
    /// was never created).
    pub fn find(dir: &Path) -> Result<Option<Self>, ClusterError> {
        let password_file = dir.join(PASSWORD_FILE);
        if !password_file.exists() {
            return Ok(None);
        }
        let dir = fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
        match take_lock(&dir) {
            // Nobody runs it: the lock is let go again at once.
            Ok(_lock) => Ok(None),
            Err(ClusterError::InUse { .. }) => {
                let password = read_password(&password_file)?.ok_or_else(|| {
                    ClusterError::BadPasswordFile {
                        path: password_file.clone(),
                    }
                })?;
                Ok(Some(Self {
                    socket_dir: dir.join("pgdata"),
                    password,
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// The directory holding the socket; connect with it as the host.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The password of [`SUPERUSER`].
    pub fn superuser_password(&self) -> &str {
        &self.password.0
    }
}
