//! A person changes their own password: the current one first (so that a session left open is
//! not enough), then the network's rules, then none of the account's last five passwords.
//! Every attempt is audited in the person's scope, refusals with the rule they broke. Also the
//! re-authentication that break-glass access and erasure ask for.

use std::time::Duration;

use renrakucho_core::{InvalidValue, Password, StaffStatus};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::{facilities, operators, staff, Scope, StoreError};
use serde_json::json;

use crate::{Authenticator, Principal};

/// Why a password change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The new password breaks a rule (the message names it).
    #[error("{0}")]
    Rule(InvalidValue),
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("account suspended or disabled")]
    AccountNotActive,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error("the new password could not be hashed")]
    Hashing,
    /// The password changed in another request while this one was checked.
    #[error("the password changed meanwhile")]
    ChangedMeanwhile,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The account whose password changes, as read in its own scope.
struct Account {
    login_id: String,
    context: Vec<String>,
    active: bool,
    hash: String,
    previous: Vec<String>,
}

/// How many earlier passwords may not come back (the current one aside).
pub const REMEMBERED_PASSWORDS: usize = 5;

impl Authenticator {
    /// Changes `principal`'s password from `current` to `new`, and returns the account's new
    /// password version (every session signed in under an older one has ended; the caller
    /// moves the person's own session to it). The throttle that guards sign-in guards this too
    /// (a stolen session must not become a way to guess the password).
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        principal: Principal,
        current: Password,
        new: String,
        origin: &Origin,
    ) -> Result<i32, PasswordChangeError> {
        let (scope, actor, target) = parties(principal);
        let refusal = |reason: &'static str| AuditEvent {
            actor,
            action: "account.password_change",
            outcome: Outcome::Denied,
            target: Some(target),
            origin,
            details: json!({ "reason": reason }),
        };
        // A refusal is recorded in the person's chain, in a transaction of its own.
        let refuse = |reason: &'static str, error: PasswordChangeError| async move {
            let mut tx = self.db.begin(scope).await?;
            audit::record(&mut tx, refusal(reason)).await?;
            tx.commit().await?;
            Err::<i32, _>(error)
        };
        if let Err(t) = self
            .throttle
            .attempt(&format!("password-change/{}", target.1), origin.client_addr)
        {
            let error = PasswordChangeError::Throttled {
                retry_after: t.retry_after,
            };
            if t.first_in_window {
                return refuse("throttled", error).await;
            }
            return Err(error);
        }
        // Read in a short transaction: the argon2id work below holds no connection.
        let account = self.account(principal, scope).await?;
        if !account.active {
            return refuse("account_not_active", PasswordChangeError::AccountNotActive).await;
        }
        if !self.verify(&current, Some(account.hash.clone())).await {
            return refuse(
                "wrong_current_password",
                PasswordChangeError::WrongCurrentPassword,
            )
            .await;
        }
        // zxcvbn's estimate takes up to a few hundred milliseconds on crafted input: off the
        // async threads, as argon2id.
        let rules = self.rules;
        let (login, context) = (account.login_id.clone(), account.context.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let context: Vec<&str> = context.iter().map(String::as_str).collect();
            rules.check(new, &login, &context)
        })
        .await
        .map_err(|_| PasswordChangeError::Hashing)?;
        let new = match checked {
            Ok(p) => p,
            Err(e) => return refuse("rule", PasswordChangeError::Rule(e)).await,
        };
        if self.reused(&new, &account).await {
            let e = InvalidValue::new(
                "new_password",
                format!(
                    "現在または直近{n}回のパスワードは使えません（再利用の規則） / the current \
                     password and the last {n} ones cannot be used again (the reuse rule)",
                    n = REMEMBERED_PASSWORDS
                ),
            );
            return refuse("reused", PasswordChangeError::Rule(e)).await;
        }
        let hasher = self.hasher.clone();
        let hash = tokio::task::spawn_blocking(move || hasher.hash(&new))
            .await
            .map_err(|_| PasswordChangeError::Hashing)?;
        // Written only over the hash that was checked: a change that committed meanwhile (in
        // another tab) is not overwritten, nor its history.
        let mut tx = self.db.begin(scope).await?;
        let version = match principal {
            Principal::Staff { id, .. } => {
                staff::set_password(&mut tx, id, &account.hash, &hash, false).await?
            }
            Principal::Operator { id } => {
                operators::set_password(&mut tx, id, &account.hash, &hash, false).await?
            }
        };
        let Some(version) = version else {
            drop(tx);
            return refuse("changed_meanwhile", PasswordChangeError::ChangedMeanwhile).await;
        };
        audit::record(
            &mut tx,
            AuditEvent {
                actor,
                action: "account.password_change",
                outcome: Outcome::Success,
                target: Some(target),
                origin,
                details: json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// `principal` gives their password again before an act that asks for it (break-glass
    /// access, erasure). Throttled and audited (`auth.reauthenticate`) like a password change;
    /// a wrong password is [`PasswordChangeError::WrongCurrentPassword`].
    #[tracing::instrument(skip_all)]
    pub async fn reauthenticate(
        &self,
        principal: Principal,
        password: Password,
        origin: &Origin,
    ) -> Result<(), PasswordChangeError> {
        let (scope, actor, target) = parties(principal);
        let event = |outcome: Outcome, reason: Option<&'static str>| AuditEvent {
            actor,
            action: "auth.reauthenticate",
            outcome,
            target: Some(target),
            origin,
            details: reason.map_or(json!({}), |r| json!({ "reason": r })),
        };
        let record = |outcome: Outcome, reason: Option<&'static str>| async move {
            let mut tx = self.db.begin(scope).await?;
            audit::record(&mut tx, event(outcome, reason)).await?;
            tx.commit().await
        };
        if let Err(t) = self
            .throttle
            .attempt(&format!("password-change/{}", target.1), origin.client_addr)
        {
            if t.first_in_window {
                record(Outcome::Denied, Some("throttled")).await?;
            }
            return Err(PasswordChangeError::Throttled {
                retry_after: t.retry_after,
            });
        }
        let account = self.account(principal, scope).await?;
        if !account.active {
            record(Outcome::Denied, Some("account_not_active")).await?;
            return Err(PasswordChangeError::AccountNotActive);
        }
        if !self.verify(&password, Some(account.hash)).await {
            record(Outcome::Denied, Some("wrong_password")).await?;
            return Err(PasswordChangeError::WrongCurrentPassword);
        }
        record(Outcome::Success, None).await?;
        Ok(())
    }

    /// The account of `principal` as a password check needs it, read in a short transaction.
    async fn account(&self, principal: Principal, scope: Scope) -> Result<Account, StoreError> {
        let mut tx = self.db.begin(scope).await?;
        let account = match principal {
            Principal::Staff { id, facility } => {
                let c = staff::credentials(&mut tx, id).await?;
                let place = facilities::get(&mut tx, facility).await?;
                Account {
                    login_id: c.account.login_id,
                    context: vec![c.account.display_name, place.code, place.name],
                    active: c.account.status == StaffStatus::Active,
                    hash: c.password_hash,
                    previous: c.previous_password_hashes,
                }
            }
            Principal::Operator { id } => {
                let c = operators::credentials(&mut tx, id).await?;
                Account {
                    login_id: c.operator.login_id,
                    context: vec![c.operator.display_name],
                    active: c.operator.status == StaffStatus::Active,
                    hash: c.password_hash,
                    previous: c.previous_password_hashes,
                }
            }
        };
        tx.commit().await?;
        Ok(account)
    }

    /// Whether `new` is the account's current password or one of its last five: each stored
    /// hash verified with its own parameters, off the async threads.
    async fn reused(&self, new: &Password, account: &Account) -> bool {
        let hasher = self.hasher.clone();
        let new = new.clone();
        let hashes: Vec<String> = std::iter::once(account.hash.clone())
            .chain(account.previous.iter().take(REMEMBERED_PASSWORDS).cloned())
            .collect();
        tokio::task::spawn_blocking(move || {
            hashes.iter().any(|h| hasher.verify(&new, Some(h.as_str())))
        })
        .await
        .unwrap_or(true)
    }
}

/// The scope a person's own account is read and audited in, the actor and the audit target.
fn parties(principal: Principal) -> (Scope, Actor, (&'static str, uuid::Uuid)) {
    match principal {
        Principal::Staff { id, facility } => (
            Scope::Staff {
                facility,
                staff: id,
            },
            Actor::Staff(id),
            ("staff", id.as_uuid()),
        ),
        Principal::Operator { id } => (
            Scope::Platform,
            Actor::Operator(id),
            ("operator", id.as_uuid()),
        ),
    }
}
