//! The Renrakucho server: HTTP API and portal pages over the storage, identity and domain
//! crates, and the `renrakucho` command line. `main.rs` only calls [`cli::main`].

pub mod access;
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod csrf;
pub mod demo;
pub mod digest;
pub mod error;
pub mod events;
pub mod export;
pub mod input;
pub mod keys;
pub mod mail;
pub mod routes;
pub mod session;
pub mod setup;
pub mod state;

pub use app::Application;
pub use config::Settings;
