//! Sign-in through a facility's own OpenID Connect provider (issue 15, ADR 0032): the
//! facility admin's configuration and its test, the sign-in's two halves (the redirect to the
//! provider and the person's return), and the links from the provider's subjects to accounts.
//! Every sign-in, link, approval and failure is audited in the facility's chain.

mod admin;
mod federated;
mod operators;
pub mod protocol;
mod reauthentication;
mod settings;

use rand::RngCore;
use renrakucho_core::{
    AccountPolicy, DisplayName, FacilityCode, FacilityId, InvalidValue, LoginClaim, LoginId,
    Password, Profession, StaffId, StaffRole, StaffStatus,
};
use renrakucho_keyring::{Binding, KeyOwner, KeyringError};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::identity_providers::{self, ProviderSettings, StoredProvider};
use renrakucho_store::{facilities, staff, Scope, ScopedTx, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use url::Url;
use zeroize::Zeroizing;

pub use protocol::{Handshake, ProtocolError, ProviderClient, VerifiedIdentity};
pub use settings::{ProviderInput, ValidSettings};

use crate::{Authenticated, Authenticator, Principal};

/// Where the session keeps a sign-in on its way through the provider.
pub const PENDING_PROVIDER_KEY: &str = "renrakucho.provider_sign_in";
/// A person who has not come back from the provider within this long starts again.
const PENDING_FOR_SECS: i64 = 10 * 60;
/// At most this many just-in-time accounts wait for approval in a facility: beyond it, first
/// sign-ins are refused (audited) rather than filling the list the admin must read.
const MAX_WAITING: i64 = 20;

/// What the person's trip to the provider is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderPurpose {
    SignIn,
    /// The facility admin's test of the settings at `revision`, before enabling them.
    Test {
        admin: StaffId,
        revision: i32,
    },
    /// A signed-in person gives proof again, through the provider they signed in with, before
    /// an act that asks for it (break-glass, erasure, factor changes).
    Reauthenticate {
        account: Principal,
    },
}

/// A sign-in on its way through the provider, kept server-side in the session until the
/// person comes back; taken out then, so a `state` works once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingProviderSignIn {
    /// The facility whose provider it is; none: the operators' own provider.
    pub facility: Option<FacilityId>,
    pub purpose: ProviderPurpose,
    pub handshake: Handshake,
    /// Unix seconds.
    pub started_at: i64,
    /// Where the person goes afterwards (a local path), for a re-authentication.
    #[serde(default)]
    pub next: Option<String>,
}

/// The query the provider sends the person back with.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProviderCallback {
    pub state: Option<String>,
    pub code: Option<String>,
    /// RFC 9207: the issuer that answers (guards against a mix-up of providers).
    pub iss: Option<String>,
    /// The provider refused (e.g. `access_denied`).
    pub error: Option<String>,
}

/// How a return from the provider ended.
#[derive(Debug)]
pub enum ProviderOutcome {
    /// Signed in; `logout_url` is the provider's RP-initiated logout, when it offers one.
    SignedIn {
        authenticated: Authenticated,
        logout_url: Option<String>,
    },
    /// A just-in-time account waits for the facility admin's approval (made now, or before).
    AwaitingApproval,
    /// The person proved again to be who the session is, through the provider, just now.
    Reauthenticated {
        account: Principal,
        next: Option<String>,
    },
    /// The admin's test passed: the provider answered with a valid ID token for `subject`.
    Tested {
        subject: String,
        login_value: Option<String>,
        linked: bool,
    },
}

/// Why a sign-in through a provider was refused. None tells another facility's secrets.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSignInError {
    #[error("{0}")]
    Invalid(InvalidValue),
    /// The facility has no enabled provider (or no such facility): the password form it is.
    #[error("no identity provider for this facility")]
    NoProvider,
    /// The provider cannot be reached or does not answer properly.
    #[error("identity provider unavailable")]
    Unavailable,
    /// Unknown, replayed or too old `state`: the sign-in starts again.
    #[error("sign-in expired or already used")]
    Expired,
    /// The provider's answer failed validation (the reason is audited).
    #[error("answer of the identity provider refused: {0}")]
    Refused(&'static str),
    /// The person or the provider declined.
    #[error("the identity provider refused the sign-in")]
    Denied,
    /// The subject has no account here and the facility links accounts itself.
    #[error("no account linked to this identity")]
    NotLinked,
    #[error("e-mail domain not allowed")]
    DomainNotAllowed,
    #[error("account suspended or disabled")]
    AccountNotActive,
    #[error("facility not active")]
    FacilityNotActive,
    /// The test was of settings changed since.
    #[error("settings changed during the test")]
    ChangedMeanwhile,
    /// The admin's test needs settings to test.
    #[error("no identity provider configured")]
    NotConfigured,
    /// Too many just-in-time accounts wait for approval already: no more are made.
    #[error("too many accounts waiting for approval")]
    TooManyWaiting,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// A facility's provider as its admin sees it (the secret never leaves).
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_set: bool,
    pub scopes: Vec<String>,
    pub login_claim: LoginClaim,
    pub allowed_domains: Vec<String>,
    pub account_policy: AccountPolicy,
    pub enabled: bool,
    pub revision: i32,
    /// A test sign-in passed under the current settings.
    pub tested: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub tested_at: Option<time::OffsetDateTime>,
}

/// A change to a facility's provider, and whose sessions it ended: the server forgets those
/// accounts at once (each other process when the database announces the change).
#[derive(Debug, Clone)]
pub struct ProviderChange {
    /// The settings after the change (none: removed).
    pub view: Option<ProviderView>,
    pub sessions_ended: Vec<StaffId>,
}

/// Why an admin's change of the provider was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProviderAdminError {
    #[error("{0}")]
    Invalid(InvalidValue),
    #[error("no identity provider configured")]
    NotFound,
    /// Enabling needs a passed test of the current settings.
    #[error("not tested")]
    NotTested,
    /// The settings changed since the admin read them.
    #[error("changed meanwhile")]
    ChangedMeanwhile,
    /// That subject is linked to another account here, or the account to another subject.
    #[error("already linked")]
    AlreadyLinked,
    /// Another administrator's account is linked on the server only, never by an admin.
    #[error("another administrator")]
    AnotherAdministrator,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// The client secret's associated data: the facility's key, this table, column and row.
fn secret_binding(facility: FacilityId, row: uuid::Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Facility(facility),
        table: "identity_providers",
        column: "client_secret_enc",
        row,
        version: Binding::WRITTEN_ONCE,
    }
}

fn view(p: StoredProvider) -> Result<ProviderView, StoreError> {
    let decode = |field: &str, value: &str| StoreError::Misconfigured(format!("{field}: {value}"));
    Ok(ProviderView {
        login_claim: p
            .login_claim
            .parse()
            .map_err(|_| decode("login_claim", &p.login_claim))?,
        account_policy: p
            .account_policy
            .parse()
            .map_err(|_| decode("account_policy", &p.account_policy))?,
        tested: p.tested_revision == Some(p.revision),
        issuer: p.issuer,
        client_id: p.client_id,
        client_secret_set: true,
        scopes: p.scopes,
        allowed_domains: p.allowed_domains,
        enabled: p.enabled,
        revision: p.revision,
        tested_at: p.tested_at,
    })
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn admin_scope(admin: Principal) -> Result<Scope, StoreError> {
    match admin {
        Principal::Staff { id, facility } => Ok(Scope::Staff {
            facility,
            staff: id,
        }),
        Principal::Operator { .. } => Err(StoreError::Forbidden),
    }
}

/// The scope of `account`'s own transactions.
fn account_scope(account: Principal) -> Scope {
    match account {
        Principal::Staff { id, facility } => Scope::Staff {
            facility,
            staff: id,
        },
        Principal::Operator { .. } => Scope::Platform,
    }
}

fn admin_staff(admin: Principal) -> Result<StaffId, StoreError> {
    match admin {
        Principal::Staff { id, .. } => Ok(id),
        Principal::Operator { .. } => Err(StoreError::Forbidden),
    }
}

fn admin_actor(admin: Principal) -> Actor {
    match admin {
        Principal::Staff { id, .. } => Actor::Staff(id),
        Principal::Operator { id } => Actor::Operator(id),
    }
}

async fn admin_event(
    tx: &mut ScopedTx,
    admin: Principal,
    origin: &Origin,
    action: &'static str,
    outcome: Outcome,
    target: Option<(&'static str, uuid::Uuid)>,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    audit::record(
        tx,
        AuditEvent {
            actor: admin_actor(admin),
            action,
            outcome,
            target,
            origin,
            details,
        },
    )
    .await
}

/// One record of a sign-in through a provider (`auth.sign_in`, method `oidc`).
async fn sign_in_event(
    tx: &mut ScopedTx,
    actor: Actor,
    outcome: Outcome,
    target: Option<StaffId>,
    origin: &Origin,
    reason: &str,
) -> Result<(), StoreError> {
    audit::record(
        tx,
        AuditEvent {
            actor,
            action: "auth.sign_in",
            outcome,
            target: target.map(|id| ("staff", id.as_uuid())),
            origin,
            details: json!({ "method": "oidc", "reason": reason }),
        },
    )
    .await
}

/// The audit reason and the error of a failed exchange with a provider.
fn protocol_refusal(e: &ProtocolError) -> (&'static str, ProviderSignInError) {
    match e {
        ProtocolError::Unavailable(_) => ("provider_unavailable", ProviderSignInError::Unavailable),
        ProtocolError::TokenRefused(reason) => (*reason, ProviderSignInError::Refused(reason)),
        ProtocolError::CodeRefused(_) => {
            ("code_refused", ProviderSignInError::Refused("code_refused"))
        }
    }
}

/// With the e-mail login claim and a list of domains, the address must be verified by the
/// provider and in one of them.
fn domain_allowed(stored: &StoredProvider, claim: LoginClaim, identity: &VerifiedIdentity) -> bool {
    if stored.allowed_domains.is_empty() || claim != LoginClaim::Email {
        return true;
    }
    let Some(email) = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
    else {
        return false;
    };
    let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
    domain.is_some_and(|d| stored.allowed_domains.contains(&d))
}
