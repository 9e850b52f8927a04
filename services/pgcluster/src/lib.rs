//! A private PostgreSQL cluster for the zero-configuration server and for tests.
//!
//! The cluster lives in a directory of ours and listens on a Unix socket in that directory only
//! (no TCP port), so it never clashes with a PostgreSQL the machine already runs. `initdb` and
//! `postgres` refuse to run as root; when we are root they run as the `postgres` system user,
//! which then owns the cluster's files.
//!
//! Reaching the socket is not enough to get in: every role logs in with a password (SCRAM), so
//! another program running as our user or as `postgres` cannot connect as superuser. The
//! superuser's password is generated when the cluster is made and kept in [`PASSWORD_FILE`] in
//! the cluster's directory (mode 0600, ours: the server never reads it). A cluster made by an
//! earlier version, which trusted the socket, gets a password and our `pg_hba.conf` at its next
//! start.
//!
//! One process at a time: [`LocalCluster::start`] takes an exclusive lock on the directory and a
//! second server on the same directory fails with [`ClusterError::InUse`] instead of touching a
//! running cluster. A watchdog stops the cluster when our process goes away, even on `kill -9`.

mod binaries;
mod cluster;
mod directory;
mod error;
mod password;
mod running;

pub use binaries::Binaries;
pub use cluster::LocalCluster;
pub use error::ClusterError;
pub use running::RunningCluster;

/// The role `initdb` creates as the cluster's superuser.
pub const SUPERUSER: &str = "postgres";
/// The port number only names the socket file; nothing listens on TCP.
pub const SOCKET_PORT: u16 = 5432;
/// The file in the cluster's directory holding the superuser's password (one line, mode 0600,
/// owned by the user running Renrakucho).
pub const PASSWORD_FILE: &str = "superuser.password";
/// Our `pg_hba.conf`, written over the one `initdb` makes (and over a trusting one left by an
/// earlier version).
const PG_HBA: &str = "\
# Written by Renrakucho; replaced at every start if it differs.
# The cluster listens on a Unix socket only (no TCP), so only `local` lines. Every role
# logs in with a password: whoever can reach the socket (a program running as the same system
# user, or as `postgres`) must not get in as superuser on that alone. The superuser's password
# is in the cluster's directory, next to pgdata, readable by Renrakucho's user only.
local all all scram-sha-256
";

#[cfg(test)]
mod tests;
