//! Sign-in through a facility's own OpenID Connect provider (issue 15, ADR 0032): the
//! facility admin's configuration and its test, the sign-in's two halves (the redirect to the
//! provider and the person's return), and the links from the provider's subjects to accounts.
//! Every sign-in, link, approval and failure is audited in the facility's chain.

pub mod protocol;
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
    Reauthenticated { next: Option<String> },
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

impl Authenticator {
    /// The facility's provider settings, for its admin.
    pub async fn provider_settings(
        &self,
        admin: Principal,
    ) -> Result<Option<ProviderView>, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let stored = identity_providers::get(&mut tx).await?;
        tx.commit().await?;
        Ok(stored.map(view).transpose()?)
    }

    /// Creates or replaces the facility's provider settings. A change disables sign-in through
    /// the provider until a test passes again; `revision` (the one the admin edited; none for a
    /// new provider) guards against overwriting a change made meanwhile.
    pub async fn save_provider_settings(
        &self,
        admin: Principal,
        input: ProviderInput,
        revision: Option<i32>,
        origin: &Origin,
    ) -> Result<ProviderView, ProviderAdminError> {
        let valid = input
            .validate(self.providers.allows_private())
            .map_err(ProviderAdminError::Invalid)?;
        let scopes = valid.scopes.clone();
        let settings = ProviderSettings {
            issuer: &valid.issuer,
            client_id: &valid.client_id,
            scopes: &scopes,
            login_claim: valid.login_claim.as_str(),
            allowed_domains: &valid.allowed_domains,
            account_policy: valid.account_policy.as_str(),
        };
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let existing = identity_providers::get(&mut tx).await?;
        let event = match existing {
            None => {
                let Some(secret) = &valid.client_secret else {
                    return Err(ProviderAdminError::Invalid(InvalidValue::new(
                        "client_secret",
                        "クライアントシークレットを入力してください / the client secret is required",
                    )));
                };
                let facility = match admin {
                    Principal::Staff { facility, .. } => facility,
                    Principal::Operator { .. } => return Err(StoreError::Forbidden.into()),
                };
                let id = uuid::Uuid::now_v7();
                let sealed = self
                    .keyring
                    .encrypt(&mut tx, &secret_binding(facility, id), secret.as_bytes())
                    .await?;
                identity_providers::insert(&mut tx, id, &settings, &sealed).await?;
                "created"
            }
            Some(existing) => {
                let Some(revision) = revision else {
                    return Err(ProviderAdminError::Invalid(InvalidValue::new(
                        "revision",
                        "変更する設定の版（revision）を指定してください / give the revision of the settings you changed",
                    )));
                };
                if revision != existing.revision {
                    return Err(ProviderAdminError::ChangedMeanwhile);
                }
                // The stored secret is never sent to another provider or for another client.
                let moved =
                    existing.issuer != valid.issuer || existing.client_id != valid.client_id;
                if moved && valid.client_secret.is_none() {
                    return Err(ProviderAdminError::Invalid(InvalidValue::new(
                        "client_secret",
                        "発行者またはクライアントIDを変えるときは、クライアントシークレットも入力してください / \
                         a new issuer or client ID needs its client secret",
                    )));
                }
                let sealed = match &valid.client_secret {
                    Some(secret) => Some(
                        self.keyring
                            .encrypt(
                                &mut tx,
                                &secret_binding(existing.facility_id, existing.id),
                                secret.as_bytes(),
                            )
                            .await?,
                    ),
                    None => None,
                };
                match identity_providers::update(
                    &mut tx,
                    existing.revision,
                    &settings,
                    sealed.as_deref(),
                )
                .await
                {
                    Err(StoreError::Conflict { .. }) => {
                        return Err(ProviderAdminError::ChangedMeanwhile)
                    }
                    other => other?,
                }
                "changed"
            }
        };
        admin_event(
            &mut tx,
            admin,
            origin,
            "identity_provider.configure",
            Outcome::Success,
            None,
            json!({
                "event": event,
                "issuer": valid.issuer,
                "secret_changed": valid.client_secret.is_some(),
                "account_policy": valid.account_policy.as_str(),
            }),
        )
        .await?;
        let saved = identity_providers::get(&mut tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(view(saved)?)
    }

    /// Turns sign-in through the provider on (only after a passed test of the current
    /// settings) or off.
    pub async fn enable_provider(
        &self,
        admin: Principal,
        enabled: bool,
        origin: &Origin,
    ) -> Result<ProviderView, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let existing = identity_providers::get(&mut tx)
            .await?
            .ok_or(ProviderAdminError::NotFound)?;
        if enabled && existing.tested_revision != Some(existing.revision) {
            return Err(ProviderAdminError::NotTested);
        }
        identity_providers::set_enabled(&mut tx, enabled).await?;
        // Sessions signed in through it end with it (the linked accounts' versions move on).
        let ended = if enabled {
            0
        } else {
            identity_providers::end_linked_sessions(&mut tx, admin_staff(admin)?).await?
        };
        admin_event(
            &mut tx,
            admin,
            origin,
            "identity_provider.configure",
            Outcome::Success,
            None,
            json!({ "event": if enabled { "enabled" } else { "disabled" }, "sessions_ended_of": ended }),
        )
        .await?;
        let saved = identity_providers::get(&mut tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(view(saved)?)
    }

    /// Removes the facility's provider: its staff sign in with passwords again.
    pub async fn remove_provider(
        &self,
        admin: Principal,
        origin: &Origin,
    ) -> Result<(), ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let ended = identity_providers::end_linked_sessions(&mut tx, admin_staff(admin)?).await?;
        match identity_providers::delete(&mut tx).await {
            Err(StoreError::NotFound) => return Err(ProviderAdminError::NotFound),
            other => other?,
        }
        admin_event(
            &mut tx,
            admin,
            origin,
            "identity_provider.configure",
            Outcome::Success,
            None,
            json!({ "event": "removed", "sessions_ended_of": ended }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Links `subject` of the facility's provider to `member` of the admin's facility (looked
    /// up in the admin's scope, where another facility's staff do not exist). Never another
    /// administrator: whoever holds that subject would sign in as them without their password
    /// and second factor.
    pub async fn link_identity(
        &self,
        admin: Principal,
        member: StaffId,
        subject: &str,
        origin: &Origin,
    ) -> Result<identity_providers::ExternalIdentity, ProviderAdminError> {
        let subject = subject.trim();
        if subject.is_empty()
            || subject.chars().count() > 255
            || subject.chars().any(char::is_control)
        {
            return Err(ProviderAdminError::Invalid(InvalidValue::new(
                "subject",
                "サブジェクト（sub）は1〜255文字です / the subject is 1 to 255 characters",
            )));
        }
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let issuer = identity_providers::get(&mut tx)
            .await?
            .ok_or(ProviderAdminError::NotFound)?
            .issuer;
        let account = staff::get(&mut tx, member).await?;
        let own = matches!(admin, Principal::Staff { id, .. } if id == member);
        if account.role == StaffRole::FacilityAdmin && !own {
            return Err(ProviderAdminError::AnotherAdministrator);
        }
        let link = match identity_providers::link(&mut tx, member, &issuer, subject, "admin", None)
            .await
        {
            Err(StoreError::Conflict { .. }) => return Err(ProviderAdminError::AlreadyLinked),
            other => other?,
        };
        admin_event(
            &mut tx,
            admin,
            origin,
            "account.provider_link",
            Outcome::Success,
            Some(("staff", member.as_uuid())),
            json!({ "event": "linked", "issuer": issuer, "link": link.id }),
        )
        .await?;
        tx.commit().await?;
        Ok(link)
    }

    /// Every link of the admin's facility.
    pub async fn identity_links(
        &self,
        admin: Principal,
    ) -> Result<Vec<identity_providers::ExternalIdentity>, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let links = identity_providers::links(&mut tx).await?;
        tx.commit().await?;
        Ok(links)
    }

    /// Removes link `link` of `member`.
    pub async fn unlink_identity(
        &self,
        admin: Principal,
        member: StaffId,
        link: uuid::Uuid,
        origin: &Origin,
    ) -> Result<(), ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        identity_providers::unlink(&mut tx, member, link).await?;
        admin_event(
            &mut tx,
            admin,
            origin,
            "account.provider_link",
            Outcome::Success,
            Some(("staff", member.as_uuid())),
            json!({ "event": "unlinked", "link": link }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every account of the admin's facility (for choosing whom to link).
    pub async fn facility_accounts(
        &self,
        admin: Principal,
    ) -> Result<Vec<staff::StaffAccount>, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let accounts = staff::list(&mut tx).await?;
        tx.commit().await?;
        Ok(accounts)
    }

    /// The accounts of the admin's facility that wait for approval.
    pub async fn pending_accounts(
        &self,
        admin: Principal,
    ) -> Result<Vec<staff::StaffAccount>, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let accounts = staff::list(&mut tx).await?;
        tx.commit().await?;
        Ok(accounts
            .into_iter()
            .filter(|a| a.status == StaffStatus::Pending)
            .collect())
    }

    /// The facility admin approves a just-in-time account (status `pending`): it may sign in
    /// from now on, with `profession` as the admin says.
    pub async fn approve_account(
        &self,
        admin: Principal,
        member: StaffId,
        profession: Profession,
        origin: &Origin,
    ) -> Result<(), ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let account = staff::get(&mut tx, member).await?;
        if account.status != StaffStatus::Pending {
            return Err(StoreError::NotFound.into());
        }
        staff::approve(&mut tx, member, profession).await?;
        admin_event(
            &mut tx,
            admin,
            origin,
            "account.approve",
            Outcome::Success,
            Some(("staff", member.as_uuid())),
            json!({ "profession": profession.as_str() }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The first half of a sign-in through the facility's provider: where to send the person,
    /// and what to keep until they come back.
    pub async fn begin_provider_sign_in(
        &self,
        facility_code: &str,
        redirect: &Url,
        origin: &Origin,
    ) -> Result<(Url, PendingProviderSignIn), ProviderSignInError> {
        if facility_code.trim().is_empty() {
            return self.begin_operator_sign_in(redirect, origin).await;
        }
        let code =
            FacilityCode::parse(facility_code.trim()).map_err(ProviderSignInError::Invalid)?;
        let Some((facility, status)) = facilities::for_sign_in(&self.db, &code).await? else {
            return Err(ProviderSignInError::NoProvider);
        };
        let mut tx = self.db.begin(Scope::Facility(facility)).await?;
        let Some(stored) = identity_providers::get(&mut tx)
            .await?
            .filter(|p| p.enabled)
        else {
            tx.commit().await?;
            return Err(ProviderSignInError::NoProvider);
        };
        if !status.allows_sign_in() {
            let reason = "facility_not_active";
            sign_in_event(
                &mut tx,
                Actor::Anonymous,
                Outcome::Denied,
                None,
                origin,
                reason,
            )
            .await?;
            tx.commit().await?;
            return Err(ProviderSignInError::FacilityNotActive);
        }
        let client = self.client_settings(&mut tx, &stored).await?;
        // No connection is held while the provider answers.
        tx.commit().await?;
        match self.providers.authorization(&client, redirect, false).await {
            Ok((url, handshake)) => Ok((
                url,
                PendingProviderSignIn {
                    facility: Some(facility),
                    purpose: ProviderPurpose::SignIn,
                    handshake,
                    started_at: now(),
                    next: None,
                },
            )),
            Err(e) => {
                tracing::warn!(error = %e, "identity provider unavailable");
                let mut tx = self.db.begin(Scope::Facility(facility)).await?;
                let reason = "provider_unavailable";
                sign_in_event(
                    &mut tx,
                    Actor::Anonymous,
                    Outcome::Denied,
                    None,
                    origin,
                    reason,
                )
                .await?;
                tx.commit().await?;
                Err(ProviderSignInError::Unavailable)
            }
        }
    }

    /// The first half of the admin's test of the provider settings as they are now.
    pub async fn begin_provider_test(
        &self,
        admin: Principal,
        redirect: &Url,
        origin: &Origin,
    ) -> Result<(Url, PendingProviderSignIn), ProviderSignInError> {
        let (Principal::Staff { id, facility }, Ok(scope)) = (admin, admin_scope(admin)) else {
            return Err(StoreError::Forbidden.into());
        };
        let mut tx = self.db.begin(scope).await?;
        let Some(stored) = identity_providers::get(&mut tx).await? else {
            return Err(ProviderSignInError::NotConfigured);
        };
        let client = self.client_settings(&mut tx, &stored).await?;
        tx.commit().await?;
        match self.providers.authorization(&client, redirect, false).await {
            Ok((url, handshake)) => Ok((
                url,
                PendingProviderSignIn {
                    facility: Some(facility),
                    purpose: ProviderPurpose::Test {
                        admin: id,
                        revision: stored.revision,
                    },
                    handshake,
                    started_at: now(),
                    next: None,
                },
            )),
            Err(e) => {
                tracing::warn!(error = %e, "identity provider unavailable for a test");
                let mut tx = self.db.begin(scope).await?;
                admin_event(
                    &mut tx,
                    admin,
                    origin,
                    "identity_provider.test",
                    Outcome::Denied,
                    None,
                    json!({ "reason": "provider_unavailable" }),
                )
                .await?;
                tx.commit().await?;
                Err(ProviderSignInError::Unavailable)
            }
        }
    }

    /// The second half: the person is back from the provider with `callback`. `pending` is
    /// what the session kept (already taken out of it). `after_logout` is where the provider's
    /// logout should return the person.
    pub async fn complete_provider_sign_in(
        &self,
        pending: Option<PendingProviderSignIn>,
        callback: ProviderCallback,
        redirect: &Url,
        after_logout: &Url,
        origin: &Origin,
    ) -> Result<ProviderOutcome, ProviderSignInError> {
        let Some(pending) = pending else {
            // No sign-in waits in this session: a replayed or forged return.
            self.record_platform(origin, "provider_state_unknown", None)
                .await?;
            return Err(ProviderSignInError::Expired);
        };
        let (scope, actor) = match (pending.facility, pending.purpose) {
            (_, ProviderPurpose::Reauthenticate { account }) => {
                (account_scope(account), admin_actor(account))
            }
            (None, _) => (Scope::Platform, Actor::Anonymous),
            (Some(facility), ProviderPurpose::SignIn) => {
                (Scope::Facility(facility), Actor::Anonymous)
            }
            (Some(facility), ProviderPurpose::Test { admin, .. }) => (
                Scope::Staff {
                    facility,
                    staff: admin,
                },
                Actor::Staff(admin),
            ),
        };
        let mut tx = self.db.begin(scope).await?;
        let refuse = |reason: &'static str| (reason, ProviderSignInError::Refused(reason));
        let checked = (|| {
            let state_ok = callback.state.as_deref().is_some_and(|s| {
                bool::from(s.as_bytes().ct_eq(pending.handshake.state.as_bytes()))
            });
            if !state_ok || now() - pending.started_at > PENDING_FOR_SECS {
                return Err(("state_mismatch", ProviderSignInError::Expired));
            }
            if callback.error.is_some() {
                return Err(("provider_refused", ProviderSignInError::Denied));
            }
            callback.code.clone().ok_or_else(|| refuse("no_code"))
        })();
        let code = match checked {
            Ok(code) => code,
            Err((reason, error)) => {
                self.provider_refusal(tx, pending.purpose, actor, origin, reason)
                    .await?;
                return Err(error);
            }
        };
        if let ProviderPurpose::Reauthenticate { account } = pending.purpose {
            tx.commit().await?;
            return self
                .complete_reauthentication(
                    &pending,
                    account,
                    &code,
                    callback.iss.as_deref(),
                    redirect,
                    origin,
                )
                .await;
        }
        let Some(facility) = pending.facility else {
            tx.commit().await?;
            return self
                .complete_operator_sign_in(
                    &pending,
                    &code,
                    callback.iss.as_deref(),
                    redirect,
                    after_logout,
                    origin,
                )
                .await;
        };
        let stored = identity_providers::get(&mut tx)
            .await?
            .filter(|p| p.enabled || matches!(pending.purpose, ProviderPurpose::Test { .. }));
        let Some(stored) = stored else {
            self.provider_refusal(tx, pending.purpose, actor, origin, "no_provider")
                .await?;
            return Err(ProviderSignInError::NoProvider);
        };
        if callback
            .iss
            .as_deref()
            .is_some_and(|iss| iss.trim_end_matches('/') != stored.issuer.trim_end_matches('/'))
        {
            self.provider_refusal(tx, pending.purpose, actor, origin, "wrong_issuer")
                .await?;
            return Err(ProviderSignInError::Refused("wrong_issuer"));
        }
        let client = self.client_settings(&mut tx, &stored).await?;
        // The provider is slow next to the database: no connection is held meanwhile.
        tx.commit().await?;
        let exchanged = self
            .providers
            .exchange(&client, redirect, &pending.handshake, &code)
            .await;
        let mut tx = self.db.begin(scope).await?;
        let identity = match exchanged {
            Ok(identity) => identity,
            Err(e) => {
                let (reason, error) = protocol_refusal(&e);
                tracing::warn!(error = %e, "a return from the identity provider was refused");
                self.provider_refusal(tx, pending.purpose, actor, origin, reason)
                    .await?;
                return Err(error);
            }
        };
        let login_claim: LoginClaim = stored.login_claim.parse().map_err(|_| {
            StoreError::Misconfigured(format!("login_claim: {}", stored.login_claim))
        })?;
        let login_value = match login_claim {
            LoginClaim::Email => identity.email.clone(),
            LoginClaim::PreferredUsername => identity.preferred_username.clone(),
        };
        let linked =
            identity_providers::linked_account(&mut tx, &stored.issuer, &identity.subject).await?;
        if let ProviderPurpose::Test { revision, .. } = pending.purpose {
            if !identity_providers::mark_tested(&mut tx, revision).await? {
                self.provider_refusal(tx, pending.purpose, actor, origin, "changed_meanwhile")
                    .await?;
                return Err(ProviderSignInError::ChangedMeanwhile);
            }
            audit::record(
                &mut tx,
                AuditEvent {
                    actor,
                    action: "identity_provider.test",
                    outcome: Outcome::Success,
                    target: None,
                    origin,
                    details: json!({ "revision": revision, "linked": linked.is_some() }),
                },
            )
            .await?;
            tx.commit().await?;
            return Ok(ProviderOutcome::Tested {
                subject: identity.subject,
                login_value,
                linked: linked.is_some(),
            });
        }
        // A facility that may not sign in makes no accounts and lets nobody in.
        let place = facilities::get(&mut tx, facility).await?;
        if !place.status.allows_sign_in() {
            let reason = "facility_not_active";
            sign_in_event(&mut tx, actor, Outcome::Denied, linked, origin, reason).await?;
            tx.commit().await?;
            return Err(ProviderSignInError::FacilityNotActive);
        }
        if !domain_allowed(&stored, login_claim, &identity) {
            sign_in_event(
                &mut tx,
                actor,
                Outcome::Denied,
                linked,
                origin,
                "domain_not_allowed",
            )
            .await?;
            tx.commit().await?;
            return Err(ProviderSignInError::DomainNotAllowed);
        }
        let Some(member) = linked else {
            if stored.account_policy != AccountPolicy::JustInTime.as_str() {
                sign_in_event(&mut tx, actor, Outcome::Denied, None, origin, "not_linked").await?;
                tx.commit().await?;
                return Err(ProviderSignInError::NotLinked);
            }
            if identity_providers::pending_count(&mut tx).await? >= MAX_WAITING {
                let reason = "too_many_waiting";
                sign_in_event(&mut tx, actor, Outcome::Denied, None, origin, reason).await?;
                tx.commit().await?;
                return Err(ProviderSignInError::TooManyWaiting);
            }
            let made = self
                .create_pending_account(&mut tx, &stored, &identity, login_value.as_deref(), origin)
                .await?;
            if made {
                tx.commit().await?;
            } else {
                // The same person's first sign-in in another tab made the account meanwhile:
                // this one's is dropped, and the answer is the same.
                drop(tx);
                let mut tx = self.db.begin(scope).await?;
                let reason = "awaiting_approval";
                sign_in_event(&mut tx, actor, Outcome::Denied, None, origin, reason).await?;
                tx.commit().await?;
            }
            return Ok(ProviderOutcome::AwaitingApproval);
        };
        let account = staff::get(&mut tx, member).await?;
        let staff_actor = Actor::Staff(member);
        let refusal = match account.status {
            StaffStatus::Active => None,
            StaffStatus::Pending => Some("awaiting_approval"),
            StaffStatus::Suspended | StaffStatus::Disabled => Some("account_not_active"),
        };
        if let Some(reason) = refusal {
            sign_in_event(
                &mut tx,
                staff_actor,
                Outcome::Denied,
                Some(member),
                origin,
                reason,
            )
            .await?;
            tx.commit().await?;
            return match account.status {
                StaffStatus::Pending => Ok(ProviderOutcome::AwaitingApproval),
                _ => Err(ProviderSignInError::AccountNotActive),
            };
        }
        sign_in_event(
            &mut tx,
            staff_actor,
            Outcome::Success,
            Some(member),
            origin,
            "oidc",
        )
        .await?;
        tx.commit().await?;
        let logout_url = self
            .providers
            .logout_url(&stored.issuer, &stored.client_id, after_logout)
            .await
            .map(|u| u.to_string());
        Ok(ProviderOutcome::SignedIn {
            authenticated: Authenticated {
                principal: Principal::Staff {
                    id: member,
                    facility,
                },
                password_version: account.password_version,
            },
            logout_url,
        })
    }

    /// The operators' own provider (`RENRAKUCHO_OPERATOR_OIDC_*`), if the network has one.
    pub fn with_operator_provider(mut self, provider: Option<protocol::ClientSettings>) -> Self {
        self.operator_provider = provider;
        self
    }

    /// The first half of an operator's sign-in through the operators' own provider.
    async fn begin_operator_sign_in(
        &self,
        redirect: &Url,
        origin: &Origin,
    ) -> Result<(Url, PendingProviderSignIn), ProviderSignInError> {
        let Some(settings) = &self.operator_provider else {
            return Err(ProviderSignInError::NoProvider);
        };
        match self
            .providers
            .authorization(settings, redirect, false)
            .await
        {
            Ok((url, handshake)) => Ok((
                url,
                PendingProviderSignIn {
                    facility: None,
                    purpose: ProviderPurpose::SignIn,
                    handshake,
                    started_at: now(),
                    next: None,
                },
            )),
            Err(e) => {
                tracing::warn!(error = %e, "the operators' identity provider is unavailable");
                let mut tx = self.db.begin(Scope::Platform).await?;
                sign_in_event(
                    &mut tx,
                    Actor::Anonymous,
                    Outcome::Denied,
                    None,
                    origin,
                    "provider_unavailable",
                )
                .await?;
                tx.commit().await?;
                Err(ProviderSignInError::Unavailable)
            }
        }
    }

    /// The second half for an operator: the subject looked up in `operator_identities`, in the
    /// platform's scope; every outcome in the platform's chain.
    async fn complete_operator_sign_in(
        &self,
        pending: &PendingProviderSignIn,
        code: &str,
        iss: Option<&str>,
        redirect: &Url,
        after_logout: &Url,
        origin: &Origin,
    ) -> Result<ProviderOutcome, ProviderSignInError> {
        let refuse = |reason: &'static str| async move {
            let mut tx = self.db.begin(Scope::Platform).await?;
            sign_in_event(
                &mut tx,
                Actor::Anonymous,
                Outcome::Denied,
                None,
                origin,
                reason,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        let Some(settings) = &self.operator_provider else {
            refuse("no_provider").await?;
            return Err(ProviderSignInError::NoProvider);
        };
        if iss.is_some_and(|iss| iss.trim_end_matches('/') != settings.issuer.trim_end_matches('/'))
        {
            refuse("wrong_issuer").await?;
            return Err(ProviderSignInError::Refused("wrong_issuer"));
        }
        let identity = match self
            .providers
            .exchange(settings, redirect, &pending.handshake, code)
            .await
        {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(error = %e, "a return from the operators' provider was refused");
                let (reason, error) = protocol_refusal(&e);
                refuse(reason).await?;
                return Err(error);
            }
        };
        let mut tx = self.db.begin(Scope::Platform).await?;
        let Some(id) =
            identity_providers::linked_operator(&mut tx, &settings.issuer, &identity.subject)
                .await?
        else {
            sign_in_event(
                &mut tx,
                Actor::Anonymous,
                Outcome::Denied,
                None,
                origin,
                "not_linked",
            )
            .await?;
            tx.commit().await?;
            return Err(ProviderSignInError::NotLinked);
        };
        let operator = renrakucho_store::operators::get(&mut tx, id).await?;
        let actor = Actor::Operator(id);
        let target = Some(("operator", id.as_uuid()));
        let (outcome, reason) = if operator.status == StaffStatus::Active {
            (Outcome::Success, "oidc")
        } else {
            (Outcome::Denied, "account_not_active")
        };
        audit::record(
            &mut tx,
            AuditEvent {
                actor,
                action: "auth.sign_in",
                outcome,
                target,
                origin,
                details: json!({ "method": "oidc", "reason": reason }),
            },
        )
        .await?;
        tx.commit().await?;
        if outcome != Outcome::Success {
            return Err(ProviderSignInError::AccountNotActive);
        }
        let logout_url = self
            .providers
            .logout_url(&settings.issuer, &settings.client_id, after_logout)
            .await
            .map(|u| u.to_string());
        Ok(ProviderOutcome::SignedIn {
            authenticated: Authenticated {
                principal: Principal::Operator { id },
                password_version: operator.password_version,
            },
            logout_url,
        })
    }

    /// The first half of a re-authentication through the provider `account` signs in with: the
    /// provider is asked to have the person sign in again now. `next`: a local path to return
    /// to. Only for a session signed in through the provider (`via_provider`); any other is
    /// refused, audited (its proof is the password).
    pub async fn begin_provider_reauthentication(
        &self,
        account: Principal,
        via_provider: bool,
        next: Option<String>,
        redirect: &Url,
        origin: &Origin,
    ) -> Result<(Url, PendingProviderSignIn), ProviderSignInError> {
        if !via_provider {
            let reason = "not_signed_in_through_provider";
            self.reauthentication_event(account, Outcome::Denied, reason, origin)
                .await?;
            return Err(ProviderSignInError::NoProvider);
        }
        let (settings, facility) = self.settings_for(account).await?;
        match self
            .providers
            .authorization(&settings, redirect, true)
            .await
        {
            Ok((url, handshake)) => Ok((
                url,
                PendingProviderSignIn {
                    facility,
                    purpose: ProviderPurpose::Reauthenticate { account },
                    handshake,
                    started_at: now(),
                    next,
                },
            )),
            Err(e) => {
                tracing::warn!(error = %e, "identity provider unavailable for a re-authentication");
                self.reauthentication_event(
                    account,
                    Outcome::Denied,
                    "provider_unavailable",
                    origin,
                )
                .await?;
                Err(ProviderSignInError::Unavailable)
            }
        }
    }

    /// The provider `account` signs in with (its facility's, enabled; or the operators'), and
    /// the facility.
    async fn settings_for(
        &self,
        account: Principal,
    ) -> Result<(protocol::ClientSettings, Option<FacilityId>), ProviderSignInError> {
        match account {
            Principal::Staff { facility, .. } => {
                let mut tx = self.db.begin(account_scope(account)).await?;
                let stored = identity_providers::get(&mut tx)
                    .await?
                    .filter(|p| p.enabled)
                    .ok_or(ProviderSignInError::NoProvider)?;
                let settings = self.client_settings(&mut tx, &stored).await?;
                tx.commit().await?;
                Ok((settings, Some(facility)))
            }
            Principal::Operator { .. } => self
                .operator_provider
                .clone()
                .map(|s| (s, None))
                .ok_or(ProviderSignInError::NoProvider),
        }
    }

    /// The second half of a re-authentication: the provider's answer must be a sign-in made
    /// after the request began, by the subject linked to `account`.
    async fn complete_reauthentication(
        &self,
        pending: &PendingProviderSignIn,
        account: Principal,
        code: &str,
        iss: Option<&str>,
        redirect: &Url,
        origin: &Origin,
    ) -> Result<ProviderOutcome, ProviderSignInError> {
        let (settings, _) = self.settings_for(account).await?;
        let refuse = |reason: &'static str, error: ProviderSignInError| async move {
            self.reauthentication_event(account, Outcome::Denied, reason, origin)
                .await?;
            Err::<ProviderOutcome, _>(error)
        };
        if iss.is_some_and(|iss| iss.trim_end_matches('/') != settings.issuer.trim_end_matches('/'))
        {
            return refuse("wrong_issuer", ProviderSignInError::Refused("wrong_issuer")).await;
        }
        let identity = match self
            .providers
            .exchange(&settings, redirect, &pending.handshake, code)
            .await
        {
            Ok(identity) => identity,
            Err(e) => {
                let (reason, error) = protocol_refusal(&e);
                return refuse(reason, error).await;
            }
        };
        // A provider that answered from a session of its own, not a sign-in just now.
        if identity
            .auth_time
            .is_none_or(|t| t < pending.started_at - 60)
        {
            return refuse("not_fresh", ProviderSignInError::Refused("not_fresh")).await;
        }
        let mut tx = self.db.begin(account_scope(account)).await?;
        let same = match account {
            Principal::Staff { id, .. } => {
                identity_providers::linked_account(&mut tx, &settings.issuer, &identity.subject)
                    .await?
                    == Some(id)
            }
            Principal::Operator { id } => {
                tx.commit().await?;
                tx = self.db.begin(Scope::Platform).await?;
                identity_providers::linked_operator(&mut tx, &settings.issuer, &identity.subject)
                    .await?
                    == Some(id)
            }
        };
        tx.commit().await?;
        if !same {
            return refuse(
                "another_person",
                ProviderSignInError::Refused("another_person"),
            )
            .await;
        }
        self.reauthentication_event(account, Outcome::Success, "oidc", origin)
            .await?;
        Ok(ProviderOutcome::Reauthenticated {
            next: pending.next.clone(),
        })
    }

    /// One `auth.reauthenticate` record, method `oidc`, in `account`'s chain.
    async fn reauthentication_event(
        &self,
        account: Principal,
        outcome: Outcome,
        reason: &str,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin(account_scope(account)).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor: admin_actor(account),
                action: "auth.reauthenticate",
                outcome,
                target: None,
                origin,
                details: json!({ "method": "oidc", "reason": reason }),
            },
        )
        .await?;
        tx.commit().await
    }

    /// The provider's settings with its secret decrypted, for one exchange.
    async fn client_settings(
        &self,
        tx: &mut ScopedTx,
        stored: &StoredProvider,
    ) -> Result<protocol::ClientSettings, KeyringError> {
        let secret = self
            .keyring
            .decrypt(
                tx,
                &secret_binding(stored.facility_id, stored.id),
                &stored.client_secret_enc,
            )
            .await?;
        Ok(protocol::ClientSettings {
            issuer: stored.issuer.clone(),
            client_id: stored.client_id.clone(),
            client_secret: Zeroizing::new(String::from_utf8_lossy(&secret).into_owned()),
            scopes: stored.scopes.clone(),
        })
    }

    /// Records a refused return from the provider: a sign-in's in `auth.sign_in`, a test's in
    /// `identity_provider.test`.
    async fn provider_refusal(
        &self,
        mut tx: ScopedTx,
        purpose: ProviderPurpose,
        actor: Actor,
        origin: &Origin,
        reason: &str,
    ) -> Result<(), StoreError> {
        match purpose {
            ProviderPurpose::SignIn => {
                sign_in_event(&mut tx, actor, Outcome::Denied, None, origin, reason).await?
            }
            ProviderPurpose::Reauthenticate { .. } => {
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor,
                        action: "auth.reauthenticate",
                        outcome: Outcome::Denied,
                        target: None,
                        origin,
                        details: json!({ "method": "oidc", "reason": reason }),
                    },
                )
                .await?
            }
            ProviderPurpose::Test { .. } => {
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor,
                        action: "identity_provider.test",
                        outcome: Outcome::Denied,
                        target: None,
                        origin,
                        details: json!({ "reason": reason }),
                    },
                )
                .await?
            }
        }
        tx.commit().await
    }

    /// A just-in-time account for a subject seen for the first time: `pending` until the admin
    /// approves it, linked to the subject, with a password nobody knows (the admin may reset
    /// it later for break-glass sign-in).
    async fn create_pending_account(
        &self,
        tx: &mut ScopedTx,
        stored: &StoredProvider,
        identity: &VerifiedIdentity,
        login_value: Option<&str>,
        origin: &Origin,
    ) -> Result<bool, ProviderSignInError> {
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let unknown = Password::new_secret(hex(&random)).map_err(ProviderSignInError::Invalid)?;
        let hasher = self.hasher.clone();
        let hash = tokio::task::spawn_blocking(move || hasher.hash(&unknown))
            .await
            .map_err(|_| StoreError::Misconfigured("password hashing stopped".into()))?;
        let display = identity
            .name
            .as_deref()
            .or(login_value)
            .and_then(|n| DisplayName::parse(n).ok())
            .unwrap_or_else(|| DisplayName::parse("未設定").expect("a valid name"));
        let base = login_base(login_value, &identity.subject);
        // A login ID taken already gets a number (`tanaka-2`, …).
        let mut made = None;
        for attempt in 1..=20 {
            let login_id = if attempt == 1 {
                base.clone()
            } else {
                format!("{}-{attempt}", &base[..base.len().min(28)])
            };
            let new = staff::NewStaff {
                login_id: LoginId::parse(&login_id).map_err(ProviderSignInError::Invalid)?,
                display_name: display.clone(),
                role: StaffRole::Staff,
                profession: Profession::Other,
                password_hash: hash.clone(),
                password_must_change: false,
            };
            made = staff::insert_pending(tx, &new).await?;
            if made.is_some() {
                break;
            }
        }
        let account = made.ok_or_else(|| StoreError::Conflict {
            constraint: "staff_accounts_facility_id_login_id_key".into(),
        })?;
        let claimed = identity_providers::ClaimedEmail {
            email: identity.email.as_deref(),
            verified: identity.email_verified,
        };
        let linked = identity_providers::link(
            tx,
            account.id,
            &stored.issuer,
            &identity.subject,
            "just_in_time",
            Some(claimed),
        )
        .await;
        match linked {
            // Linked meanwhile by the same person's other sign-in: the caller drops this one.
            Err(StoreError::Conflict { .. }) => return Ok(false),
            other => other?,
        };
        audit::record(
            tx,
            AuditEvent {
                actor: Actor::System,
                action: "account.provider_link",
                outcome: Outcome::Success,
                target: Some(("staff", account.id.as_uuid())),
                origin,
                details: json!({ "event": "just_in_time", "issuer": stored.issuer }),
            },
        )
        .await?;
        sign_in_event(
            tx,
            Actor::Staff(account.id),
            Outcome::Denied,
            Some(account.id),
            origin,
            "awaiting_approval",
        )
        .await?;
        Ok(true)
    }
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

/// A login ID proposed from the login claim (an address's local part), else from the subject.
fn login_base(login_value: Option<&str>, subject: &str) -> String {
    let raw = login_value
        .map(|v| v.split('@').next().unwrap_or(v))
        .unwrap_or(subject);
    let mut id: String = raw
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(28)
        .collect();
    if id.len() < 3 {
        id = format!("oidc-{id}");
    }
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_ids_come_from_the_claim() {
        assert_eq!(
            login_base(Some("Hanako.Sato@example.jp"), "x"),
            "hanako.sato"
        );
        assert_eq!(login_base(None, "248289761001"), "248289761001");
        assert_eq!(login_base(Some("あ@example.jp"), "x"), "oidc-");
        assert!(LoginId::parse(&login_base(Some("a"), "x")).is_ok());
    }
}
