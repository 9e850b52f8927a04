//! What the JSON API and the portal share of HTTP: the application's state, the signed-in
//! person (sessions), where a request came from, the one error type and its JSON shape, the
//! input gate, the authorization every handler asks before touching patient data, the live
//! event stream, and the layers every request passes (request IDs, logging, security headers).

pub mod access;
pub mod error;
pub mod events;
pub mod input;
pub mod middleware;
pub mod origin;
pub mod principals;
pub mod session;
pub mod state;

pub use state::AppState;
