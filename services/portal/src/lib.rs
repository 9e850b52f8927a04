//! The web portal (server-rendered, Japanese first): its pages and forms, every route declared
//! in [`routes`] behind the CSRF check ([`csrf`]), the templates and static files. It calls the
//! same authorization and domain functions as the JSON API and parses input with the API's
//! request shapes (`renrakucho_api`), so the two differ only in how they show results.

pub mod account;
pub mod context;
pub mod csrf;
pub mod input;
pub mod notebook_pages;
pub mod pages;
pub mod passkey;
pub mod provider;
pub mod routes;
pub mod second_factor;
pub mod staff_pages;

pub use routes::{error_page, page_not_found, routes, timed_out, FormKind, Portal, Write};
