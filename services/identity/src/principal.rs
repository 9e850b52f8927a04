use renrakucho_core::{FacilityId, OperatorId, StaffId};
use serde::{Deserialize, Serialize};

/// The key under which the signed-in principal is kept in the server-side session.
pub const SESSION_KEY: &str = "renrakucho.principal";

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    Staff { id: StaffId, facility: FacilityId },
    Operator { id: OperatorId },
}

/// What the session stores: the principal and when they signed in, for the absolute lifetime
/// (the idle timeout is the session's expiry, renewed on each request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub principal: Principal,
    /// Unix seconds.
    pub signed_in_at: i64,
    /// Unix seconds of the last request that renewed the session (renewed at most once a
    /// minute, so an active session does not write on every request).
    pub last_seen_at: i64,
    /// The account's password version when this session signed in (or changed the password):
    /// once the account's has moved on, the session has ended. Sessions from before versions
    /// were kept read as 0, the version every account started with.
    #[serde(default)]
    pub password_version: i32,
    /// Unix seconds when the person last gave their password in this session (sign-in, a
    /// change, a re-authentication); 0 for sessions from before it was kept.
    #[serde(default)]
    pub authenticated_at: i64,
    /// Signed in through the facility's OpenID provider: the provider authenticated the
    /// person (its own factors), so no local password change or second factor is asked for.
    #[serde(default)]
    pub via_provider: bool,
}

/// A person whose credentials were just verified: who, and under which password version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub password_version: i32,
}
