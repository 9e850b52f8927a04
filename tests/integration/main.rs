//! Integration tests against a real PostgreSQL, as the production runtime role.
//! One test binary: the private cluster starts once for all of them.

mod api;
mod audit;
mod boundary;
mod break_glass;
mod browser;
mod cancellation;
mod catalog;
mod consent_renewal;
mod csrf;
mod deadlines;
mod edges;
mod erasure_disk;
mod input_hygiene;
mod isolation;
mod keyring;
mod kms;
mod load;
mod notebook_http;
mod oidc;
mod passwords;
mod patients;
mod platform_alerts;
mod reauthentication;
mod remembered;
mod schema;
mod second_factor;
mod sessions;
mod sharing;
mod sharing_http;
mod sign_in;
mod state_machines;
mod support;
mod unreadable;
mod uploads;
mod versions;
