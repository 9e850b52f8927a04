//! Test harness: a real PostgreSQL, a database per test cloned from a migrated template, and
//! the server running in-process on a free port.
//!
//! The PostgreSQL is `DATABASE_URL` when set (a role that may create roles and databases), or
//! else a private cluster started once per test process and removed when the process ends.
//! The application's pool connects as the runtime role, exactly as in production.

mod app;
mod database;
mod kms;

pub use app::{new_client, spawn_app, spawn_app_with, test_settings, TestApp, FIXTURE_PASSWORD};
pub use database::{TestDatabase, RUNTIME_PASSWORD};
pub use kms::{KmsEmulator, KMS_ACCESS_KEY, KMS_REGION, KMS_SECRET_KEY};
