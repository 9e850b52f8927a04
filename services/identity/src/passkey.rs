//! Passkeys (WebAuthn, ADR 0033): a staff member registers several, and uses one either as the
//! sign-in's second step after the password or alone (passwordless, after naming the facility).
//! Passkeys require user verification (the authenticator's PIN or biometrics), so one counts
//! as two factors. Each ceremony's state waits in the server-side session between its two
//! requests and is taken out when the answer comes, so a challenge is answered once.
//!
//! The relying party is the network's public address: its host is the RP ID and its origin
//! the only one accepted. Without a public URL a development server is at
//! `http://127.0.0.1:PORT`, an address no browser accepts as an RP ID; passkeys there work at
//! `http://localhost:PORT`.

use std::sync::Arc;
use std::time::Duration;

use renrakucho_core::{FacilityCode, StaffStatus};
use renrakucho_store::account_notices::{self, NoticeEvent};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::passkeys::{self, StoredPasskey, MAX_PER_ACCOUNT};
use renrakucho_store::second_factors::{self, Holder};
use renrakucho_store::{facilities, identity_providers, operators, staff, Scope, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::second_factor::{
    account_state, holder, own_scope, throttle_key as second_factor_throttle_key,
    PendingSecondFactor,
};
use crate::sign_in::record;
use crate::{totp, Authenticated, Authenticator, Principal, SignInError};

/// Session keys of the ceremonies under way.
pub const REGISTRATION_KEY: &str = "renrakucho.passkey_registration";
pub const SECOND_STEP_KEY: &str = "renrakucho.passkey_second_step";
pub const SIGN_IN_KEY: &str = "renrakucho.passkey_sign_in";

/// How long a ceremony waits for the browser's answer.
pub const CEREMONY_FOR: Duration = Duration::from_secs(300);

/// The relying party: this network, as the browser sees it.
pub(crate) fn relying_party(public_url: &Url) -> Option<Webauthn> {
    let mut origin = public_url.clone();
    origin.set_path("");
    origin.set_query(None);
    let host = origin.host_str()?.to_owned();
    let loopback = matches!(host.as_str(), "127.0.0.1" | "[::1]" | "localhost");
    let rp_id = if loopback {
        origin.set_host(Some("localhost")).ok()?;
        "localhost".to_owned()
    } else if origin.domain().is_some() {
        host
    } else {
        tracing::warn!("passkeys need a public URL with a domain name, not an IP address");
        return None;
    };
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name("連絡帳 Renrakucho").build())
        .map_err(
            |e| tracing::warn!(error = %e, "passkeys are off: the public URL does not suit them"),
        )
        .ok()
}

/// Why a passkey change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// This server has no relying party (its public URL is an IP address), or the account is
    /// an operator's.
    #[error("passkeys are not available here")]
    NotAvailable,
    #[error("the name must be 1 to 60 characters")]
    InvalidName,
    #[error("at most ten passkeys per account")]
    TooMany,
    /// The account signs in through its facility's identity provider: a passkey would let it
    /// in without the provider (and so past the provider's removal of the person).
    #[error("the account signs in through the facility's identity provider")]
    ProviderLinked,
    #[error("this passkey is already registered")]
    AlreadyRegistered,
    /// No registration under way in this session, or it waited too long.
    #[error("registration was not started")]
    NotStarted,
    /// The browser's answer did not verify (wrong origin, challenge, signature, no user
    /// verification, or not a credential at all).
    #[error("the passkey was not accepted")]
    Refused,
    #[error("no such passkey")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registration under way, kept in the session until the browser answers.
#[derive(Serialize, Deserialize)]
pub struct PendingRegistration {
    state: PasskeyRegistration,
    principal: Principal,
    name: String,
    started_at: i64,
}

/// The second step of a sign-in by passkey, kept in the session.
#[derive(Serialize, Deserialize)]
pub struct PendingSecondStep {
    state: PasskeyAuthentication,
    pending: PendingSecondFactor,
    started_at: i64,
}

/// A passwordless sign-in under way, at the facility whose code was given (looked up when the
/// answer comes: an unknown code fails then, like a wrong passkey).
#[derive(Serialize, Deserialize)]
pub struct PendingSignIn {
    state: DiscoverableAuthentication,
    facility_code: String,
    started_at: i64,
}

/// What a person sees of one of their passkeys.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeySummary {
    pub id: uuid::Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
}

/// An account's second factors.
#[derive(Debug, Clone)]
pub struct Factors {
    /// An authenticator app is set up.
    pub app: bool,
    pub passkeys: Vec<PasskeySummary>,
}

/// A passkey just registered: the account's new password version (its other sessions ended)
/// and, when it is the account's first factor, its recovery codes (shown once).
#[derive(Debug)]
pub struct Registered {
    pub password_version: i32,
    pub recovery_codes: Option<Vec<String>>,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn expired(started_at: i64) -> bool {
    unix_now() - started_at > CEREMONY_FOR.as_secs() as i64
}

/// The reason a WebAuthn check failed, for the audit record (never shown: the person hears
/// one message).
fn refusal(e: &WebauthnError) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

fn decode_passkey(stored: &StoredPasskey) -> Result<Passkey, StoreError> {
    serde_json::from_value(stored.passkey.clone())
        .map_err(|e| StoreError::Misconfigured(format!("staff_passkeys {}: {e}", stored.id)))
}

fn encode_passkey(passkey: &Passkey) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(passkey)
        .map_err(|e| StoreError::Misconfigured(format!("a passkey does not serialise: {e}")))
}

/// The options the browser's script passes to `navigator.credentials`.
fn options_json(options: &impl Serialize) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(options)
        .map_err(|e| StoreError::Misconfigured(format!("WebAuthn options do not serialise: {e}")))
}

impl Authenticator {
    /// Passkeys with the relying party at `public_url` (none suits an IP address other than
    /// loopback: passkeys are then off, and the pages do not offer them).
    pub fn with_passkeys(mut self, public_url: &Url) -> Self {
        self.webauthn = relying_party(public_url).map(Arc::new);
        self
    }

    /// Whether this server offers passkeys.
    pub fn passkeys_available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_deref().ok_or(PasskeyError::NotAvailable)
    }

    /// `account`'s second factors as its own page shows them: the app, and the passkeys.
    #[tracing::instrument(skip_all)]
    pub async fn factors(&self, account: Principal) -> Result<Factors, PasskeyError> {
        let mut tx = self.db.begin(own_scope(account)).await?;
        let app = second_factors::get(&mut tx, holder(account))
            .await?
            .enabled();
        let listed = passkeys::list(&mut tx, holder(account)).await?;
        tx.commit().await?;
        let passkeys = listed
            .into_iter()
            .map(|p| PasskeySummary {
                id: p.id,
                name: p.name,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            })
            .collect();
        Ok(Factors { app, passkeys })
    }

    /// Starts registering a passkey called `name` for `account`: the options for the browser,
    /// and the state to keep in the session for [`Authenticator::finish_passkey_registration`].
    /// The account's passkeys are excluded, so an authenticator that holds one of them refuses
    /// to make another.
    #[tracing::instrument(skip_all)]
    pub async fn begin_passkey_registration(
        &self,
        account: Principal,
        name: &str,
    ) -> Result<(serde_json::Value, PendingRegistration), PasskeyError> {
        let webauthn = self.webauthn()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            return Err(PasskeyError::InvalidName);
        }
        let mut tx = self.db.begin(own_scope(account)).await?;
        let person = registrant(&mut tx, account).await?;
        let existing = passkeys::list(&mut tx, holder(account)).await?;
        tx.commit().await?;
        if person.linked {
            return Err(PasskeyError::ProviderLinked);
        }
        if existing.len() >= MAX_PER_ACCOUNT {
            return Err(PasskeyError::TooMany);
        }
        let exclude = existing
            .iter()
            .map(|p| CredentialID::from(p.credential_id.clone()))
            .collect();
        let (options, state) = webauthn
            .start_passkey_registration(
                account_uuid(account),
                &person.user_name,
                &person.display_name,
                Some(exclude),
            )
            .map_err(|e| StoreError::Misconfigured(format!("WebAuthn registration: {e}")))?;
        // A passkey that can sign in on its own must live on the authenticator (a discoverable
        // credential): the sign-in without a password names no account to ask for.
        let mut options = options_json(&options)?;
        if let Some(selection) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
            selection.insert("residentKey".into(), json!("required"));
            selection.insert("requireResidentKey".into(), json!(true));
        }
        Ok((
            options,
            PendingRegistration {
                state,
                principal: account,
                name: name.to_owned(),
                started_at: unix_now(),
            },
        ))
    }

    /// Completes a registration with the browser's answer (`credential`, JSON): the passkey is
    /// stored, the person's other sessions end, they are told by e-mail, and it is audited. A
    /// refused answer is audited and changes nothing.
    #[tracing::instrument(skip_all)]
    pub async fn finish_passkey_registration(
        &self,
        account: Principal,
        pending: PendingRegistration,
        credential: &str,
        origin: &Origin,
    ) -> Result<Registered, PasskeyError> {
        let webauthn = self.webauthn()?;
        if pending.principal != account || expired(pending.started_at) {
            return Err(PasskeyError::NotStarted);
        }
        let mut tx = self.db.begin(own_scope(account)).await?;
        let verified = serde_json::from_str::<RegisterPublicKeyCredential>(credential)
            .map_err(|_| "not_a_credential".to_owned())
            .and_then(|answer| {
                webauthn
                    .finish_passkey_registration(&answer, &pending.state)
                    .map_err(|e| refusal(&e))
            });
        let passkey = match verified {
            Ok(passkey) => passkey,
            Err(reason) => {
                passkey_event(
                    &mut tx,
                    account,
                    "registration_refused",
                    json!(reason),
                    origin,
                )
                .await?;
                tx.commit().await?;
                return Err(PasskeyError::Refused);
            }
        };
        // The account row locked from here: two registrations (or a removal) are counted one
        // after the other.
        let before = second_factors::get(&mut tx, holder(account)).await?;
        if before.passkey_count as usize >= MAX_PER_ACCOUNT {
            return Err(PasskeyError::TooMany);
        }
        if identity_providers::is_linked(&mut tx, holder(account)).await? {
            return Err(PasskeyError::ProviderLinked);
        }
        let password_version = match passkeys::insert(
            &mut tx,
            holder(account),
            passkey.cred_id().as_ref(),
            &pending.name,
            &encode_passkey(&passkey)?,
        )
        .await
        {
            Ok(version) => version,
            Err(StoreError::Conflict { .. }) => {
                drop(tx);
                let mut tx = self.db.begin(own_scope(account)).await?;
                passkey_event(
                    &mut tx,
                    account,
                    "registration_refused",
                    json!("registered_already"),
                    origin,
                )
                .await?;
                tx.commit().await?;
                return Err(PasskeyError::AlreadyRegistered);
            }
            Err(e) => return Err(e.into()),
        };
        // The account's first factor: recovery codes for the day the passkey is lost.
        let recovery_codes = if before.any() {
            None
        } else {
            let codes = totp::new_recovery_codes();
            let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
            second_factors::replace_recovery_codes(&mut tx, holder(account), &hashes).await?;
            Some(codes)
        };
        notify(&mut tx, account, NoticeEvent::PasskeyAdded).await?;
        passkey_event(&mut tx, account, "added", json!(null), origin).await?;
        tx.commit().await?;
        Ok(Registered {
            password_version,
            recovery_codes,
        })
    }

    /// Removes `account`'s passkey `passkey`: the new password version (their other sessions
    /// end); they are told by e-mail.
    #[tracing::instrument(skip_all)]
    pub async fn remove_passkey(
        &self,
        account: Principal,
        passkey: uuid::Uuid,
        origin: &Origin,
    ) -> Result<i32, PasskeyError> {
        let mut tx = self.db.begin(own_scope(account)).await?;
        // The account row locked first, as registration does: the count stays right.
        second_factors::get(&mut tx, holder(account)).await?;
        let Some(version) = passkeys::delete(&mut tx, holder(account), passkey).await? else {
            return Err(PasskeyError::NotFound);
        };
        notify(&mut tx, account, NoticeEvent::PasskeyRemoved).await?;
        passkey_event(&mut tx, account, "removed", json!(null), origin).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The passkey challenge for a sign-in waiting for its second factor, when the account
    /// has passkeys (none: only a code will do).
    #[tracing::instrument(skip_all)]
    pub async fn begin_passkey_second_step(
        &self,
        pending: PendingSecondFactor,
    ) -> Result<Option<(serde_json::Value, PendingSecondStep)>, SignInError> {
        let Some(webauthn) = self.webauthn.as_deref() else {
            return Ok(None);
        };
        let mut tx = self.db.begin(sign_in_scope(pending.principal)).await?;
        let stored = passkeys::list(&mut tx, holder(pending.principal)).await?;
        tx.commit().await?;
        if stored.is_empty() {
            return Ok(None);
        }
        let keys = stored
            .iter()
            .map(decode_passkey)
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| StoreError::Misconfigured(format!("WebAuthn authentication: {e}")))?;
        Ok(Some((
            options_json(&options)?,
            PendingSecondStep {
                state,
                pending,
                started_at: unix_now(),
            },
        )))
    }

    /// Completes the second step of the sign-in `pending` with a passkey (the browser's
    /// answer, JSON) to the challenge `step` the code page gave (none, or another sign-in's:
    /// refused and audited like a wrong passkey).
    #[tracing::instrument(skip_all)]
    pub async fn complete_passkey_second_step(
        &self,
        pending: PendingSecondFactor,
        step: Option<PendingSecondStep>,
        credential: &str,
        origin: &Origin,
    ) -> Result<Authenticated, SignInError> {
        let Some(webauthn) = self.webauthn.as_deref() else {
            return Err(SignInError::WrongPasskey);
        };
        let account = pending.principal;
        let step = step.filter(|step| step.pending == pending);
        // The same budget as the account's codes: someone with the password cannot flood the
        // chain with refusals.
        if let Err(t) = self
            .throttle
            .attempt(&second_factor_throttle_key(account), origin.client_addr)
        {
            return Err(SignInError::Throttled {
                retry_after: t.retry_after,
            });
        }
        let (actor, target) = actor_and_target(account);
        let mut tx = self.db.begin(sign_in_scope(account)).await?;
        let Some(state) = account_state(&mut tx, account).await? else {
            return Err(SignInError::WrongPasskey);
        };
        let refusal_reason = if step.is_none() {
            Some("no_passkey_challenge".to_owned())
        } else if step.as_ref().is_some_and(|s| expired(s.started_at)) || pending.expired() {
            Some("second_factor_timed_out".to_owned())
        } else if state.status != StaffStatus::Active {
            Some("account_not_active".to_owned())
        } else if state.password_version != pending.password_version {
            Some("password_changed".to_owned())
        } else if identity_providers::is_linked(&mut tx, holder(account)).await? {
            Some("provider_linked".to_owned())
        } else {
            None
        };
        let verified = match (refusal_reason, step) {
            (Some(reason), _) => Err(reason),
            (None, None) => Err("no_passkey_challenge".to_owned()),
            (None, Some(step)) => {
                let checked = serde_json::from_str::<PublicKeyCredential>(credential)
                    .map_err(|_| "not_a_credential".to_owned())
                    .and_then(|answer| {
                        webauthn
                            .finish_passkey_authentication(&answer, &step.state)
                            .map_err(|e| format!("passkey_refused: {}", refusal(&e)))
                    });
                match checked {
                    Ok(result) => {
                        let stored =
                            passkeys::find_by_credential(&mut tx, result.cred_id().as_ref())
                                .await?
                                .filter(|p| p.holder == holder(account));
                        match stored {
                            Some(stored) => note_use(&mut tx, &stored, &result).await.map(Ok)?,
                            None => Err("unknown_passkey".to_owned()),
                        }
                    }
                    Err(reason) => Err(reason),
                }
            }
        };
        match verified {
            Ok(_) => {
                record(
                    &mut tx,
                    actor,
                    Outcome::Success,
                    target,
                    origin,
                    "password+passkey",
                )
                .await?;
                tx.commit().await?;
                Ok(Authenticated {
                    principal: account,
                    password_version: state.password_version,
                })
            }
            Err(reason) => {
                record(&mut tx, actor, Outcome::Denied, target, origin, &reason).await?;
                tx.commit().await?;
                Err(SignInError::WrongPasskey)
            }
        }
    }

    /// Starts a sign-in by passkey alone at the facility with `facility_code`: the options for
    /// the browser and the state to keep. An unknown code gets a challenge all the same (the
    /// answer then fails like a wrong passkey): the page does not tell which codes exist.
    #[tracing::instrument(skip_all)]
    pub async fn begin_passkey_sign_in(
        &self,
        facility_code: &str,
    ) -> Result<(serde_json::Value, PendingSignIn), SignInError> {
        let Some(webauthn) = self.webauthn.as_deref() else {
            return Err(SignInError::WrongPasskey);
        };
        // No facility code: an operator's sign-in, as with the password.
        let code = match facility_code.trim() {
            "" => String::new(),
            given => FacilityCode::parse(given)
                .map_err(SignInError::Invalid)?
                .as_str()
                .to_owned(),
        };
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| StoreError::Misconfigured(format!("WebAuthn authentication: {e}")))?;
        Ok((
            options_json(&options)?,
            PendingSignIn {
                state,
                facility_code: code,
                started_at: unix_now(),
            },
        ))
    }

    /// Completes a sign-in by passkey alone. The passkey is looked for in the facility named
    /// at the start only; the account must be active and the facility open. Every refusal is
    /// audited with its reason; the person hears one message.
    #[tracing::instrument(skip_all)]
    pub async fn finish_passkey_sign_in(
        &self,
        pending: PendingSignIn,
        credential: &str,
        origin: &Origin,
    ) -> Result<Authenticated, SignInError> {
        let Some(webauthn) = self.webauthn.as_deref() else {
            return Err(SignInError::WrongPasskey);
        };
        let answer = serde_json::from_str::<PublicKeyCredential>(credential).ok();
        // Answers are throttled like passwords: per credential (as a password per login ID;
        // colleagues behind one address do not share a budget) and per address. A flood writes
        // one audit record per window, not one each.
        self.record_refusal_summaries().await?;
        let key = format!(
            "passkey/{}/{}",
            pending.facility_code,
            answer.as_ref().map_or("-", |a| a.id.as_str())
        );
        if let Err(t) = self.throttle.attempt(&key, origin.client_addr) {
            if t.first_in_window {
                self.record_platform(origin, "throttled", None).await?;
            }
            return Err(SignInError::Throttled {
                retry_after: t.retry_after,
            });
        }
        // Where the credential is looked for: the facility named (its status checked after the
        // passkey), or the operators when no facility was.
        let (scope, facility_open) = if pending.facility_code.is_empty() {
            (Scope::Platform, true)
        } else {
            let code = FacilityCode::parse(&pending.facility_code).map_err(SignInError::Invalid)?;
            let Some((facility, status)) = facilities::for_sign_in(&self.db, &code).await? else {
                self.record_platform(origin, "unknown_facility", None)
                    .await?;
                return Err(SignInError::WrongPasskey);
            };
            (Scope::Facility(facility), status.allows_sign_in())
        };
        if expired(pending.started_at) {
            self.record_platform(origin, "passkey_timed_out", None)
                .await?;
            return Err(SignInError::WrongPasskey);
        }
        let mut tx = self.db.begin(scope).await?;
        let state = pending.state;
        // The credential must belong to the account its user handle names (the handle is not
        // covered by the signature).
        let found = match &answer {
            Some(answer) => match webauthn.identify_discoverable_authentication(answer) {
                Ok((user, credential_id)) => passkeys::find_by_credential(&mut tx, credential_id)
                    .await?
                    .filter(|p| holder_uuid(p.holder) == user),
                Err(_) => None,
            },
            None => None,
        };
        let (Some(answer), Some(stored)) = (answer, found) else {
            record(
                &mut tx,
                Actor::Anonymous,
                Outcome::Denied,
                None,
                origin,
                "unknown_passkey",
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::WrongPasskey);
        };
        let account = match (stored.holder, scope) {
            (Holder::Staff(id), Scope::Facility(facility)) => Principal::Staff { id, facility },
            (Holder::Operator(id), _) => Principal::Operator { id },
            _ => return Err(SignInError::WrongPasskey),
        };
        let (actor, target) = actor_and_target(account);
        let passkey = decode_passkey(&stored)?;
        let result = match webauthn.finish_discoverable_authentication_v2(&answer, state, &passkey)
        {
            Ok(result) => result,
            Err(e) => {
                let reason = format!("passkey_refused: {}", refusal(&e));
                record(&mut tx, actor, Outcome::Denied, target, origin, &reason).await?;
                tx.commit().await?;
                return Err(SignInError::WrongPasskey);
            }
        };
        let Some(state) = account_state(&mut tx, account).await? else {
            return Err(SignInError::WrongPasskey);
        };
        let refused = if state.status != StaffStatus::Active {
            Some(("account_not_active", SignInError::AccountNotActive))
        } else if identity_providers::is_linked(&mut tx, stored.holder).await? {
            Some(("provider_linked", SignInError::WrongPasskey))
        } else if !facility_open {
            Some(("facility_not_active", SignInError::FacilityNotActive))
        } else {
            None
        };
        if let Some((reason, error)) = refused {
            record(&mut tx, actor, Outcome::Denied, target, origin, reason).await?;
            tx.commit().await?;
            return Err(error);
        }
        note_use(&mut tx, &stored, &result).await?;
        record(&mut tx, actor, Outcome::Success, target, origin, "passkey").await?;
        tx.commit().await?;
        Ok(Authenticated {
            principal: account,
            password_version: state.password_version,
        })
    }
}

/// What registration needs of an account: its name in the authenticator, its display name,
/// and whether it signs in through a provider.
struct Registrant {
    user_name: String,
    display_name: String,
    linked: bool,
}

/// `account`'s [`Registrant`], read in its own scope. One relying party serves the whole
/// network, so the name carries the facility (`login@FACILITY`; `login@operators`): a person
/// with accounts at two facilities tells their passkeys apart in the authenticator's list.
async fn registrant(
    tx: &mut renrakucho_store::ScopedTx,
    account: Principal,
) -> Result<Registrant, StoreError> {
    let (login, display_name, place) = match account {
        Principal::Staff { id, facility } => {
            let person = staff::get(tx, id).await?;
            let code = facilities::get(tx, facility).await?.code;
            (person.login_id, person.display_name, code)
        }
        Principal::Operator { id } => {
            let operator = operators::get(tx, id).await?;
            (operator.login_id, operator.display_name, "operators".into())
        }
    };
    Ok(Registrant {
        user_name: format!("{login}@{place}"),
        display_name,
        linked: identity_providers::is_linked(tx, holder(account)).await?,
    })
}

/// The scope a sign-in of `account` runs in (and whose chain records it).
fn sign_in_scope(account: Principal) -> Scope {
    match account {
        Principal::Staff { facility, .. } => Scope::Facility(facility),
        Principal::Operator { .. } => Scope::Platform,
    }
}

/// The user handle a passkey of `account` carries.
fn account_uuid(account: Principal) -> uuid::Uuid {
    match account {
        Principal::Staff { id, .. } => id.as_uuid(),
        Principal::Operator { id } => id.as_uuid(),
    }
}

fn holder_uuid(holder: Holder) -> uuid::Uuid {
    match holder {
        Holder::Staff(id) => id.as_uuid(),
        Holder::Operator(id) => id.as_uuid(),
    }
}

fn actor_and_target(account: Principal) -> (Actor, Option<(&'static str, uuid::Uuid)>) {
    match account {
        Principal::Staff { id, .. } => (Actor::Staff(id), Some(("staff", id.as_uuid()))),
        Principal::Operator { id } => (Actor::Operator(id), Some(("operator", id.as_uuid()))),
    }
}

/// The e-mail notice of a change, for a staff member (operators have no notification
/// settings, so no address).
async fn notify(
    tx: &mut renrakucho_store::ScopedTx,
    account: Principal,
    event: NoticeEvent,
) -> Result<(), StoreError> {
    match account {
        Principal::Staff { id, .. } => account_notices::record(tx, id, event).await,
        Principal::Operator { .. } => Ok(()),
    }
}

/// Notes a sign-in with `stored`, keeping its counter as the authenticator moved it on.
async fn note_use(
    tx: &mut renrakucho_store::ScopedTx,
    stored: &StoredPasskey,
    result: &AuthenticationResult,
) -> Result<(), StoreError> {
    let mut passkey = decode_passkey(stored)?;
    let updated = passkey
        .update_credential(result)
        .filter(|changed| *changed)
        .map(|_| encode_passkey(&passkey))
        .transpose()?;
    passkeys::record_use(tx, stored.holder, stored.id, updated.as_ref()).await
}

/// One audit record of a change to `account`'s passkeys.
async fn passkey_event(
    tx: &mut renrakucho_store::ScopedTx,
    account: Principal,
    event: &str,
    reason: serde_json::Value,
    origin: &Origin,
) -> Result<(), StoreError> {
    let (actor, target) = actor_and_target(account);
    audit::record(
        tx,
        AuditEvent {
            actor,
            action: "account.second_factor",
            outcome: if event == "registration_refused" {
                Outcome::Denied
            } else {
                Outcome::Success
            },
            target,
            origin,
            details: json!({ "event": event, "method": "passkey", "reason": reason }),
        },
    )
    .await
}
