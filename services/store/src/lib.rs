//! PostgreSQL storage for Renrakucho.
//!
//! Every query on tenant data runs inside a [`ScopedTx`], opened by [`Database::begin`] with a
//! [`Scope`]: the tenant context is set with `set_config(…, true)` in the same round trip as
//! `BEGIN`, so it lives exactly as long as the transaction and a pooled connection never
//! carries one request's tenant into the next. The runtime pool is private to this crate, so
//! there is no other way to reach the data.
//!
//! SQL lives here, one module per aggregate ([`facilities`], [`staff`], [`operators`],
//! [`data_keys`], [`audit`]); migrations are embedded from `../../migrations` and run by the binary.

pub mod attachments;
pub mod audit;
mod bootstrap;
pub mod care_team;
pub mod consents;
pub mod data_keys;
mod database;
pub mod deletions;
pub mod emergency;
pub mod encrypted;
mod error;
pub mod facilities;
pub mod notebook;
pub mod notifications;
pub mod operators;
pub mod patients;
mod scope;
pub mod staff;
pub mod support;

pub use bootstrap::{
    check_runtime_role, create_runtime_login, migrator, provision_cluster, run_migrations,
    RoleNames, RuntimeRoleProblem, RUNTIME_GROUP,
};
pub use database::{Database, Readiness};
pub use error::StoreError;
pub use scope::{Scope, ScopedTx};

/// Re-exported so callers can build connection options without naming sqlx versions.
pub use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
