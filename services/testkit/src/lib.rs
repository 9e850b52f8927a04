//! Test harness: a real PostgreSQL, a database per test cloned from a migrated template, and
//! the server running in-process on a free port.
//!
//! The PostgreSQL is `DATABASE_URL` when set (a role that may create roles and databases), or
//! else a private cluster started once per test process and removed when the process ends.
//! The application's pool connects as the runtime role, exactly as in production.
//!
//! The byte-level fixtures ([`photos`], [`PNG_1X1`]) need none of that: without the default
//! `harness` feature they are all there is, for crates below the server.

#[cfg(feature = "harness")]
pub mod acting;
#[cfg(feature = "harness")]
mod app;
#[cfg(feature = "harness")]
mod database;
#[cfg(feature = "harness")]
mod kms;
#[cfg(feature = "harness")]
pub mod load;
#[cfg(feature = "harness")]
pub mod oidc;
pub mod photos;
#[cfg(feature = "harness")]
mod smtp;

#[cfg(feature = "harness")]
pub use app::{
    new_client, spawn_app, spawn_app_with, test_settings, OneTimeCodes, TestApp, FIXTURE_PASSWORD,
};
#[cfg(feature = "harness")]
pub use database::{TestDatabase, RUNTIME_PASSWORD};
#[cfg(feature = "harness")]
pub use kms::{KmsEmulator, KMS_ACCESS_KEY, KMS_REGION, KMS_SECRET_KEY};
#[cfg(feature = "harness")]
pub use oidc::{OidcAccount, OidcClientConfig, OidcProvider};
#[cfg(feature = "harness")]
pub use smtp::SmtpSink;

/// A small real PNG (1×1, white): a consent scan or a photo in tests.
pub const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xff, 0xff, 0x3f,
    0x00, 0x05, 0xfe, 0x02, 0xfe, 0xdc, 0xcc, 0x59, 0xe7, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];
