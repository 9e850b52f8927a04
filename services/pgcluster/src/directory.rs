//! The cluster's directory: its lock (one server at a time), its permissions, and the private
//! files written into it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::binaries::RunAs;
use crate::error::io;
use crate::ClusterError;

/// Takes the directory's lock, or names the process that holds it.
pub(crate) fn take_lock(dir: &Path) -> Result<File, ClusterError> {
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
pub(crate) fn restrict_dir(dir: &Path, run_as: &RunAs) -> Result<(), ClusterError> {
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

/// Writes `contents` to `dir/name` atomically with mode 0600, owned by us.
pub(crate) fn write_private(dir: &Path, name: &str, contents: &str) -> Result<(), ClusterError> {
    let target = dir.join(name);
    let temporary = TemporaryFile::new(dir.join(format!(".{name}.{}", std::process::id())));
    temporary.write(contents)?;
    fs::rename(temporary.path(), &target).map_err(io(format!("writing {}", target.display())))?;
    Ok(())
}

/// A file of mode 0600, removed when dropped (after a rename, there is nothing left to remove).
pub(crate) struct TemporaryFile(PathBuf);

impl TemporaryFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn write(&self, contents: &str) -> Result<(), ClusterError> {
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
