//! The `renrakucho` binary's library: the command line ([`cli::main`], all `main.rs` calls),
//! configuration, setting up the database and keys, demo data, the daily digest by e-mail, and
//! [`Application`], which assembles the HTTP application from `renrakucho-api`,
//! `renrakucho-portal` and `renrakucho-http` and serves it.

pub mod admin_commands;
pub mod app;
pub mod city;
pub mod cli;
pub mod config;
pub mod csrf_secret;
pub mod demo;
pub mod digest;
pub mod keys;
pub mod mail;
pub mod notices;
pub mod setup;

pub use app::Application;
pub use config::Settings;
