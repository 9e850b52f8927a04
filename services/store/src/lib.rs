//! PostgreSQL storage for Renrakucho.
//!
//! Every query on tenant data runs inside a [`ScopedTx`], opened by [`Database::begin`] with a
//! [`Scope`]. A facility scope runs as the web role, its tenant context established in the same
//! round trip as `BEGIN` by `renrakucho_enter`, which accepts it only with this server's MAC
//! (docs/adr/0013-database-boundary.md); privileged scopes run in pools of their own roles. A
//! pooled connection never carries one request's transaction or settings into the next. The
//! pools are private to this crate, so there is no other way to reach the data.
//!
//! SQL lives here, one module per aggregate ([`facilities`], [`staff`], [`operators`],
//! [`data_keys`], [`audit`]); migrations are embedded from `../../migrations` and run by the binary.

pub mod account_notices;
pub mod announcements;
pub mod attachments;
pub mod audit;
mod bootstrap;
pub mod bulk;
pub mod care_team;
pub mod consents;
pub mod data_keys;
mod database;
pub mod deletions;
pub mod emergency;
pub mod encrypted;
pub mod epochs;
mod error;
pub mod facilities;
pub mod identity_providers;
mod keys;
pub mod notebook;
pub mod notifications;
pub mod operators;
pub mod passkeys;
pub mod patients;
pub mod platform_alerts;
mod pool;
mod scope;
pub mod second_factors;
pub mod sessions;
pub mod staff;
pub mod stored_objects;
pub mod support;

pub use bootstrap::{
    check_runtime_role, create_runtime_login, harden_database, migrator, provision_cluster,
    run_migrations, RoleNames, RuntimeRoleProblem, PRIVILEGED_ROLES, RUNTIME_GROUP,
};
pub use database::{Connections, Database, Readiness};
pub use error::StoreError;
pub use keys::ServerKeys;
pub use scope::{Scope, ScopedTx, WebConnection};

/// Re-exported so callers can build connection options without naming sqlx versions.
pub use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
