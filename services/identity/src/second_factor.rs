//! The second factor of sign-in (ADR 0031), for staff and operators alike: the sign-in's second
//! step, enrolling and confirming an authenticator, recovery codes, removal by the person and
//! reset by a staff member's facility admin (第9条). Every change is audited in the chain of the
//! account's scope (the facility's, or the platform's), in the transaction that makes it.

use std::time::Duration;

use renrakucho_core::StaffStatus;
use renrakucho_keyring::{Binding, KeyOwner, KeyringError};
use renrakucho_store::account_notices::{self, NoticeEvent};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::second_factors::{self, Holder, SecondFactor};
use renrakucho_store::{operators, staff, Scope, ScopedTx, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::sign_in::record;
use crate::totp::{self, TotpSecret};
use crate::{Authenticated, Authenticator, Principal, SignInError};

/// The session key under which a sign-in waits for its second factor.
pub const PENDING_KEY: &str = "renrakucho.pending_second_factor";

/// How long a right password waits for the second factor's code.
pub const PENDING_FOR: Duration = Duration::from_secs(300);

/// A sign-in whose password was right, waiting for the second factor: kept in the session
/// (server side), never a signed-in session itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSecondFactor {
    pub principal: Principal,
    pub password_version: i32,
    /// Unix seconds when the password was verified.
    pub password_verified_at: i64,
}

impl PendingSecondFactor {
    pub(crate) fn new(who: Authenticated) -> Self {
        Self {
            principal: who.principal,
            password_version: who.password_version,
            password_verified_at: unix_now() as i64,
        }
    }

    pub(crate) fn expired(&self) -> bool {
        unix_now() as i64 - self.password_verified_at > PENDING_FOR.as_secs() as i64
    }
}

/// Why a change of second factor was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    #[error("an authenticator is already enrolled")]
    AlreadyEnrolled,
    #[error("no authenticator is enrolled")]
    NotEnrolled,
    #[error("enrolment was not started")]
    NotStarted,
    #[error("wrong code")]
    WrongCode,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error("no such account")]
    NotFound,
    /// A facility admin's second factor is reset on the server, not by another admin.
    #[error("an administrator's second factor is reset on the server")]
    AdministratorsOnTheServer,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// An authenticator being enrolled: its secret, to show once as a QR code and as text.
#[derive(Debug)]
pub struct Enrolment {
    pub secret: TotpSecret,
}

/// A confirmed authenticator: the recovery codes to show once, and the account's new password
/// version (its other sessions have ended; the confirming one goes on under it).
#[derive(Debug)]
pub struct Confirmed {
    pub recovery_codes: Vec<String>,
    pub password_version: i32,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Where an account's authenticator secret is bound: a staff member's under their facility's
/// key, an operator's under the platform's; their row; written once per enrolment.
pub fn secret_binding(account: Principal) -> Binding<'static> {
    match account {
        Principal::Staff { id, facility } => Binding {
            owner: KeyOwner::Facility(facility),
            table: "staff_accounts",
            column: "totp_secret_enc",
            row: id.as_uuid(),
            version: Binding::WRITTEN_ONCE,
        },
        Principal::Operator { id } => Binding {
            owner: KeyOwner::Platform,
            table: "platform_operators",
            column: "totp_secret_enc",
            row: id.as_uuid(),
            version: Binding::WRITTEN_ONCE,
        },
    }
}

pub(crate) fn holder(account: Principal) -> Holder {
    match account {
        Principal::Staff { id, .. } => Holder::Staff(id),
        Principal::Operator { id } => Holder::Operator(id),
    }
}

/// The scope an account's own changes run in (and whose chain records them).
pub(crate) fn own_scope(account: Principal) -> Scope {
    match account {
        Principal::Staff { id, facility } => Scope::Staff {
            facility,
            staff: id,
        },
        Principal::Operator { .. } => Scope::Platform,
    }
}

fn actor(account: Principal) -> Actor {
    match account {
        Principal::Staff { id, .. } => Actor::Staff(id),
        Principal::Operator { id } => Actor::Operator(id),
    }
}

fn target(account: Principal) -> Option<(&'static str, uuid::Uuid)> {
    Some(match account {
        Principal::Staff { id, .. } => ("staff", id.as_uuid()),
        Principal::Operator { id } => ("operator", id.as_uuid()),
    })
}

/// What a second-factor change needs of an account, read in `tx`.
pub(crate) struct AccountState {
    pub(crate) status: StaffStatus,
    pub(crate) password_version: i32,
    /// A staff member who administers their facility.
    pub(crate) administrator: bool,
}

/// `account`'s state, read in `tx`; `None` when it is not there (or not in this scope).
pub(crate) async fn account_state(
    tx: &mut ScopedTx,
    account: Principal,
) -> Result<Option<AccountState>, StoreError> {
    let found = match account {
        Principal::Staff { id, .. } => staff::get(tx, id).await.map(|a| AccountState {
            status: a.status,
            password_version: a.password_version,
            administrator: a.role == renrakucho_core::StaffRole::FacilityAdmin,
        }),
        Principal::Operator { id } => operators::get(tx, id).await.map(|o| AccountState {
            status: o.status,
            password_version: o.password_version,
            administrator: false,
        }),
    };
    match found {
        Ok(state) => Ok(Some(state)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The throttle's key for an account's one-time codes: sign-in and set-up alike.
pub(crate) fn throttle_key(account: Principal) -> String {
    match account {
        Principal::Staff { id, .. } => format!("second-factor/{id}"),
        Principal::Operator { id } => format!("second-factor/operator/{id}"),
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl Authenticator {
    /// Records the sign-in's first step: the password was right, the code comes next.
    pub(crate) async fn record_password_step(
        &self,
        tx: &mut ScopedTx,
        actor: Actor,
        target: Option<(&'static str, uuid::Uuid)>,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        audit::record(
            tx,
            AuditEvent {
                actor,
                action: "auth.sign_in_step",
                outcome: Outcome::Success,
                target,
                origin,
                details: json!({ "step": "password", "next": "second_factor" }),
            },
        )
        .await
    }

    /// The second step of a sign-in: `code` (TOTP or recovery code) for the sign-in `pending`
    /// in this session. Throttled like the password; a refusal is audited and changes nothing.
    #[tracing::instrument(skip_all)]
    pub async fn complete_second_factor(
        &self,
        pending: PendingSecondFactor,
        code: &str,
        origin: &Origin,
    ) -> Result<Authenticated, SignInError> {
        let account = pending.principal;
        let scope = match account {
            Principal::Staff { facility, .. } => Scope::Facility(facility),
            Principal::Operator { .. } => Scope::Platform,
        };
        let mut tx = self.db.begin(scope).await?;
        let Some(state) = account_state(&mut tx, account).await? else {
            return Err(SignInError::WrongSecondFactor);
        };
        let password_version = state.password_version;
        let refusal = if pending.expired() {
            Some("second_factor_timed_out")
        } else if state.status != StaffStatus::Active {
            Some("account_not_active")
        } else if password_version != pending.password_version {
            Some("password_changed")
        } else {
            None
        };
        if let Some(reason) = refusal {
            record(
                &mut tx,
                actor(account),
                Outcome::Denied,
                target(account),
                origin,
                reason,
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::WrongSecondFactor);
        }
        self.finish_with_second_factor(
            tx,
            Authenticated {
                principal: account,
                password_version,
            },
            code,
            origin,
        )
        .await
    }

    /// Checks `code` against the account's second factor in `tx` (the account's scope, the
    /// password already verified) and records the outcome: signed in, or refused.
    pub(crate) async fn finish_with_second_factor(
        &self,
        mut tx: ScopedTx,
        who: Authenticated,
        code: &str,
        origin: &Origin,
    ) -> Result<Authenticated, SignInError> {
        let account = who.principal;
        // Codes are guessed against this key, whichever way they come (with the password or
        // after it): one budget per account.
        if let Err(t) = self
            .throttle
            .attempt(&throttle_key(account), origin.client_addr)
        {
            if t.first_in_window {
                let details = json!({ "reason": "throttled", "step": "second_factor" });
                audit::record(
                    &mut tx,
                    AuditEvent {
                        actor: actor(account),
                        action: "auth.sign_in",
                        outcome: Outcome::Denied,
                        target: target(account),
                        origin,
                        details,
                    },
                )
                .await?;
                tx.commit().await?;
            }
            return Err(SignInError::Throttled {
                retry_after: t.retry_after,
            });
        }
        let factor = second_factors::get(&mut tx, holder(account)).await?;
        let outcome = self.use_code(&mut tx, account, &factor, code).await?;
        let (result, reason) = match outcome {
            Ok(method) => (Ok(who), method),
            Err(reason) => (Err(SignInError::WrongSecondFactor), reason),
        };
        let verdict = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Denied
        };
        record(
            &mut tx,
            actor(account),
            verdict,
            target(account),
            origin,
            reason,
        )
        .await?;
        tx.commit().await?;
        result
    }

    /// Uses `code` up if it is good for `factor` (locked in `tx`): the sign-in's method, or the
    /// reason for refusing it (for the audit record only: the person hears one message).
    async fn use_code(
        &self,
        tx: &mut ScopedTx,
        account: Principal,
        factor: &SecondFactor,
        code: &str,
    ) -> Result<Result<&'static str, &'static str>, SignInError> {
        if !factor.any() {
            return Ok(Err("no_second_factor"));
        }
        if totp::is_totp_code(code) {
            let Some(secret_enc) = factor
                .totp_secret_enc
                .as_deref()
                .filter(|_| factor.enabled())
            else {
                return Ok(Err("no_totp"));
            };
            let secret = self.decrypt_secret(tx, account, secret_enc).await?;
            let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            let Some(step) = secret.matching_step(&digits, unix_now()) else {
                return Ok(Err("wrong_totp"));
            };
            if second_factors::use_totp_step(tx, holder(account), step as i64).await? {
                Ok(Ok("password+totp"))
            } else {
                Ok(Err("totp_reused"))
            }
        } else if second_factors::use_recovery_code(
            tx,
            holder(account),
            &totp::recovery_code_hash(code),
        )
        .await?
        {
            Ok(Ok("password+recovery_code"))
        } else {
            Ok(Err("wrong_recovery_code"))
        }
    }

    async fn decrypt_secret(
        &self,
        tx: &mut ScopedTx,
        account: Principal,
        secret_enc: &[u8],
    ) -> Result<TotpSecret, KeyringError> {
        let binding = secret_binding(account);
        let bytes = self.keyring.decrypt(tx, &binding, secret_enc).await?;
        TotpSecret::from_bytes(bytes).ok_or_else(|| {
            KeyringError::Store(StoreError::Misconfigured(format!(
                "{binding}: not a TOTP secret"
            )))
        })
    }

    /// Starts enrolling an authenticator for `account` (replacing an enrolment not confirmed
    /// yet): the new secret, stored encrypted, to be confirmed with a code from it.
    #[tracing::instrument(skip_all)]
    pub async fn begin_totp(
        &self,
        account: Principal,
        origin: &Origin,
    ) -> Result<Enrolment, SecondFactorError> {
        let mut tx = self.db.begin(own_scope(account)).await?;
        let secret = TotpSecret::generate();
        let enc = self
            .keyring
            .encrypt(&mut tx, &secret_binding(account), secret.as_bytes())
            .await?;
        if !second_factors::begin_totp(&mut tx, holder(account), &enc).await? {
            return Err(SecondFactorError::AlreadyEnrolled);
        }
        account_event(&mut tx, account, account, origin, "enrolment_started").await?;
        tx.commit().await?;
        Ok(Enrolment { secret })
    }

    /// The authenticator being set up for `account` and not confirmed yet, to show its QR
    /// code again (the person's own secret; nothing else is read).
    #[tracing::instrument(skip_all)]
    pub async fn pending_totp(
        &self,
        account: Principal,
    ) -> Result<Option<TotpSecret>, SecondFactorError> {
        let mut tx = self.db.begin(own_scope(account)).await?;
        let factor = second_factors::get(&mut tx, holder(account)).await?;
        let secret = match factor.pending(now()) {
            Some(enc) => Some(self.decrypt_secret(&mut tx, account, enc).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(secret)
    }

    /// Confirms the enrolment with a code from the authenticator: from now on sign-in asks for
    /// it. Returns the account's ten recovery codes, shown once.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_totp(
        &self,
        account: Principal,
        code: &str,
        origin: &Origin,
    ) -> Result<Confirmed, SecondFactorError> {
        // Guessing a code here is throttled like at sign-in (and the refusals stay few).
        if let Err(t) = self
            .throttle
            .attempt(&throttle_key(account), origin.client_addr)
        {
            return Err(SecondFactorError::Throttled {
                retry_after: t.retry_after,
            });
        }
        let mut tx = self.db.begin(own_scope(account)).await?;
        let factor = second_factors::get(&mut tx, holder(account)).await?;
        if factor.enabled() {
            return Err(SecondFactorError::AlreadyEnrolled);
        }
        let Some(secret_enc) = factor.pending(now()) else {
            return Err(SecondFactorError::NotStarted);
        };
        let secret = self.decrypt_secret(&mut tx, account, secret_enc).await?;
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(step) = secret.matching_step(&digits, unix_now()) else {
            account_event(&mut tx, account, account, origin, "confirmation_refused").await?;
            tx.commit().await?;
            return Err(SecondFactorError::WrongCode);
        };
        let codes = totp::new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
        let Some(password_version) =
            second_factors::confirm_totp(&mut tx, holder(account), step as i64, &hashes).await?
        else {
            return Err(SecondFactorError::NotStarted);
        };
        account_event(&mut tx, account, account, origin, "added").await?;
        tx.commit().await?;
        Ok(Confirmed {
            recovery_codes: codes,
            password_version,
        })
    }

    /// New recovery codes for `account`, the unused ones no longer good.
    #[tracing::instrument(skip_all)]
    pub async fn new_recovery_codes(
        &self,
        account: Principal,
        origin: &Origin,
    ) -> Result<Vec<String>, SecondFactorError> {
        let mut tx = self.db.begin(own_scope(account)).await?;
        let codes = totp::new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
        if !second_factors::replace_recovery_codes(&mut tx, holder(account), &hashes).await? {
            return Err(SecondFactorError::NotEnrolled);
        }
        account_event(&mut tx, account, account, origin, "recovery_codes_replaced").await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Removes the second factor of `member`, by `by`: the person themselves, or a staff
    /// member's facility admin resetting it (第9条) for someone who lost their authenticator
    /// (`by` and `member` of the same facility: `member` is looked up in `by`'s scope, where
    /// another facility's staff do not exist; never another admin). The member's sessions end
    /// (the new password version is returned, for the remover's own session to go on under);
    /// they enrol again at their next sign-in where a second factor is required.
    #[tracing::instrument(skip_all)]
    pub async fn remove_second_factor(
        &self,
        by: Principal,
        member: Principal,
        origin: &Origin,
    ) -> Result<i32, SecondFactorError> {
        let mut tx = self.db.begin(own_scope(by)).await?;
        let Some(state) = account_state(&mut tx, member).await? else {
            return Err(SecondFactorError::NotFound);
        };
        // One admin may not strip another's factor (whoever has that admin's password would
        // then set up their own): that is the server's `admin reset-second-factor`.
        if by != member && state.administrator {
            return Err(SecondFactorError::AdministratorsOnTheServer);
        }
        // A reset takes every factor (app, passkeys, codes); the person's own removal, the app.
        let removed = if by == member {
            second_factors::remove(&mut tx, holder(member)).await?
        } else {
            second_factors::reset(&mut tx, holder(member)).await?
        };
        let Some(password_version) = removed else {
            return Err(SecondFactorError::NotEnrolled);
        };
        let event = if by == member { "removed" } else { "reset" };
        account_event(&mut tx, by, member, origin, event).await?;
        tx.commit().await?;
        Ok(password_version)
    }
}

/// One audit record of a change to `member`'s second factor, made by `by`; and, for a change
/// a staff member should hear of, an e-mail notice in the same transaction (operators have no
/// notification settings, so no address).
async fn account_event(
    tx: &mut ScopedTx,
    by: Principal,
    member: Principal,
    origin: &Origin,
    event: &str,
) -> Result<(), StoreError> {
    let notice = match event {
        "added" => Some(NoticeEvent::SecondFactorAdded),
        "removed" => Some(NoticeEvent::SecondFactorRemoved),
        "reset" => Some(NoticeEvent::SecondFactorReset),
        "recovery_codes_replaced" => Some(NoticeEvent::RecoveryCodesReplaced),
        _ => None,
    };
    if let (Some(notice), Principal::Staff { id, .. }) = (notice, member) {
        account_notices::record(tx, id, notice).await?;
    }
    let refused = event == "confirmation_refused";
    audit::record(
        tx,
        AuditEvent {
            actor: actor(by),
            action: "account.second_factor",
            outcome: if refused {
                Outcome::Denied
            } else {
                Outcome::Success
            },
            target: target(member),
            origin,
            // A reset takes every factor; the rest concern the app and its codes.
            details: json!({ "event": event, "method": if event == "reset" { "all" } else { "totp" } }),
        },
    )
    .await
}

/// Who resets a facility administrator's second factor from outside the facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetBy {
    /// `renrakucho admin reset-second-factor` on the server.
    Server,
    /// A signed-in platform operator (`DELETE /api/v1/platform/facilities/{code}/staff/…`).
    Operator(renrakucho_core::OperatorId),
}

/// Resets the whole second factor (app, passkeys, recovery codes) of `login_id` at the
/// facility with `facility_code`, for someone who lost it, from outside the facility: on
/// the server for anyone, by an operator for a facility administrator only (other staff
/// are their administrator's, 第9条). The person's sessions end and they are told by e-mail;
/// the facility's chain records it, and an operator's act the platform's chain too.
/// `NotFound` for an unknown facility or login ID (or, for an operator, someone who is not
/// an administrator); `NotEnrolled` when there was nothing to reset.
#[tracing::instrument(skip_all)]
pub async fn reset_facility_account_second_factor(
    db: &renrakucho_store::Database,
    by: ResetBy,
    facility_code: &renrakucho_core::FacilityCode,
    login_id: &renrakucho_core::LoginId,
    origin: &Origin,
) -> Result<Principal, SecondFactorError> {
    let done = reset_in_facility(db, by, facility_code, login_id, origin).await;
    // An operator's refused attempt is theirs to answer for: the platform's chain keeps it.
    if let (ResetBy::Operator(id), Err(e)) = (by, &done) {
        let reason = match e {
            SecondFactorError::NotFound => "no_such_administrator",
            SecondFactorError::NotEnrolled => "no_second_factor",
            _ => return done,
        };
        let mut tx = db.begin(Scope::Platform).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor: Actor::Operator(id),
                action: "account.second_factor",
                outcome: Outcome::Denied,
                target: None,
                origin,
                details: json!({ "event": "reset", "reason": reason,
                                 "facility": facility_code.as_str(), "login_id": login_id.as_str() }),
            },
        )
        .await?;
        tx.commit().await?;
    }
    done
}

async fn reset_in_facility(
    db: &renrakucho_store::Database,
    by: ResetBy,
    facility_code: &renrakucho_core::FacilityCode,
    login_id: &renrakucho_core::LoginId,
    origin: &Origin,
) -> Result<Principal, SecondFactorError> {
    let Some((facility, _)) = renrakucho_store::facilities::for_sign_in(db, facility_code).await?
    else {
        return Err(SecondFactorError::NotFound);
    };
    let mut tx = db.begin(Scope::Facility(facility)).await?;
    let Some(account) = staff::find_credentials(&mut tx, login_id)
        .await?
        .map(|c| c.account)
    else {
        return Err(SecondFactorError::NotFound);
    };
    let administrator = account.role == renrakucho_core::StaffRole::FacilityAdmin;
    if matches!(by, ResetBy::Operator(_)) && !administrator {
        return Err(SecondFactorError::NotFound);
    }
    let member = Principal::Staff {
        id: account.id,
        facility,
    };
    if second_factors::reset(&mut tx, Holder::Staff(account.id))
        .await?
        .is_none()
    {
        return Err(SecondFactorError::NotEnrolled);
    }
    account_notices::record(&mut tx, account.id, NoticeEvent::SecondFactorReset).await?;
    let (actor, via) = match by {
        ResetBy::Server => (Actor::System, "cli"),
        ResetBy::Operator(id) => (Actor::Operator(id), "operator"),
    };
    let details = json!({ "event": "reset", "method": "all", "via": via });
    audit::record(
        &mut tx,
        AuditEvent {
            actor,
            action: "account.second_factor",
            outcome: Outcome::Success,
            target: target(member),
            origin,
            details: details.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    if let ResetBy::Operator(id) = by {
        let mut tx = db.begin(Scope::Platform).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor: Actor::Operator(id),
                action: "account.second_factor",
                outcome: Outcome::Success,
                target: target(member),
                origin,
                details: json!({ "event": "reset", "method": "all", "via": via,
                                 "facility": facility_code.as_str() }),
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(member)
}
