use std::time::Duration;

use renrakucho_core::{FacilityCode, InvalidValue, LoginId, Password, StaffRole, StaffStatus};
use renrakucho_keyring::{Keyring, KeyringError};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::{facilities, operators, staff, Database, Scope, ScopedTx, StoreError};
use serde_json::json;

use crate::second_factor::PendingSecondFactor;
use crate::{Authenticated, PasswordHasher, PasswordRules, Principal, SignInThrottle};

/// A sign-in attempt as typed. No facility code: a platform operator's sign-in.
pub struct SignInRequest {
    pub facility_code: Option<String>,
    pub login_id: String,
    pub password: Password,
    /// The second factor's code (TOTP or recovery code) in the same request; without it, an
    /// account that has one gets [`SignInOutcome::SecondFactorNeeded`].
    pub one_time_code: Option<String>,
    pub origin: Origin,
}

/// The password and the one-time code never show in a debug print.
impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest")
            .field("facility_code", &self.facility_code)
            .field("login_id", &self.login_id)
            .field("password", &self.password)
            .field(
                "one_time_code",
                &self.one_time_code.as_ref().map(|_| "**redacted**"),
            )
            .field("origin", &self.origin)
            .finish()
    }
}

/// What a sign-in with the right password leads to.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in.
    SignedIn(Authenticated),
    /// The password was right and the account has a second factor: its code completes the
    /// sign-in ([`Authenticator::complete_second_factor`]).
    SecondFactorNeeded(PendingSecondFactor),
}

/// Why a sign-in was refused. Unknown facility, unknown login ID and wrong password are one
/// variant, so the response never tells which part was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("{0}")]
    Invalid(InvalidValue),
    #[error("wrong facility code, login ID or password")]
    BadCredentials,
    #[error("account suspended or disabled")]
    AccountNotActive,
    #[error("facility not active")]
    FacilityNotActive,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    /// The second factor's code was wrong, already used, or the wait for it ran out.
    #[error("wrong or used one-time code")]
    WrongSecondFactor,
    /// The passkey's answer did not verify, is not registered in the facility named, or the
    /// wait for it ran out.
    #[error("the passkey was not accepted")]
    WrongPasskey,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// Checks credentials and records every attempt, successful or not, in the audit log.
#[derive(Clone)]
pub struct Authenticator {
    pub(crate) db: Database,
    pub(crate) hasher: PasswordHasher,
    pub(crate) throttle: SignInThrottle,
    pub(crate) rules: PasswordRules,
    /// A password older than this must be changed (none: passwords do not expire).
    pub(crate) max_age: Option<Duration>,
    /// Decrypts the authenticators' secrets (under each facility's key).
    pub(crate) keyring: Keyring,
    /// Staff who are not facility admins need a second factor too (the network's policy;
    /// admins always do).
    pub(crate) staff_second_factor: bool,
    /// Talks to the facilities' OpenID providers (discovery and keys cached per issuer).
    pub(crate) providers: crate::oidc::ProviderClient,
    /// The operators' own provider (none: operators sign in with passwords only).
    pub(crate) operator_provider: Option<crate::oidc::protocol::ClientSettings>,
    /// The relying party for passkeys (none: passkeys are off, see [`Authenticator::with_passkeys`]).
    pub(crate) webauthn: Option<std::sync::Arc<webauthn_rs::Webauthn>>,
}

impl Authenticator {
    /// Under the default password rules, passwords not expiring: see
    /// [`Authenticator::with_password_policy`].
    pub fn new(
        db: Database,
        hasher: PasswordHasher,
        throttle: SignInThrottle,
        keyring: Keyring,
    ) -> Self {
        Self {
            db,
            hasher,
            throttle,
            rules: PasswordRules::default(),
            max_age: None,
            keyring,
            staff_second_factor: true,
            providers: crate::oidc::ProviderClient::new(false),
            operator_provider: None,
            webauthn: None,
        }
    }

    /// Lets facilities' providers be on loopback or private addresses, over plain HTTP there
    /// (`RENRAKUCHO_OIDC_ALLOW_PRIVATE_PROVIDERS`: development and tests only).
    pub fn with_private_providers(mut self, allowed: bool) -> Self {
        self.providers = crate::oidc::ProviderClient::new(allowed);
        self
    }

    /// Whether staff who are not facility admins must have a second factor (default: yes).
    pub fn with_staff_second_factor(mut self, required: bool) -> Self {
        self.staff_second_factor = required;
        self
    }

    /// Whether a staff member of `role` must enrol a second factor before anything else
    /// (operators always must).
    pub fn second_factor_required(&self, role: StaffRole) -> bool {
        role == StaffRole::FacilityAdmin || self.staff_second_factor
    }

    /// The network's password rules and, if set, the age at which a password must be changed.
    pub fn with_password_policy(mut self, rules: PasswordRules, max_age: Option<Duration>) -> Self {
        self.rules = rules;
        self.max_age = max_age;
        self
    }

    /// The rules a new password must meet here.
    pub fn password_rules(&self) -> PasswordRules {
        self.rules
    }

    /// Whether a person whose password was set at `changed_at` (`must_change`: by someone
    /// else) has to change it before anything else.
    pub fn password_change_required(
        &self,
        must_change: bool,
        changed_at: time::OffsetDateTime,
    ) -> bool {
        // An age beyond the calendar (a setting meant as "never") never expires.
        must_change
            || self.max_age.is_some_and(|age| {
                changed_at
                    .checked_add(time::Duration::try_from(age).unwrap_or(time::Duration::MAX))
                    .is_some_and(|due| due < time::OffsetDateTime::now_utc())
            })
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    pub fn throttle(&self) -> &SignInThrottle {
        &self.throttle
    }

    /// Verifies off the async threads: argon2id takes tens of milliseconds by design.
    pub(crate) async fn verify(&self, password: &Password, stored: Option<String>) -> bool {
        let hasher = self.hasher.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || hasher.verify(&password, stored.as_deref()))
            .await
            .unwrap_or(false)
    }

    #[tracing::instrument(skip_all, fields(kind = if request.facility_code.is_some() { "staff" } else { "operator" }))]
    pub async fn sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, SignInError> {
        let origin = request.origin.clone();
        let code = match request.facility_code.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => Some(FacilityCode::parse(raw)),
            _ => None,
        };
        let login = LoginId::parse(&request.login_id);
        let (code, login) = match (code.transpose(), login) {
            (Ok(code), Ok(login)) => (code, login),
            (Err(e), _) | (_, Err(e)) => {
                self.record_platform(&origin, "invalid_input", None).await?;
                return Err(SignInError::Invalid(e));
            }
        };
        let throttle_key = format!(
            "{}/{}",
            code.as_ref().map(FacilityCode::as_str).unwrap_or("-"),
            login
        );
        self.record_refusal_summaries().await?;
        if let Err(t) = self.throttle.attempt(&throttle_key, origin.client_addr) {
            // One record per key and window: a flood does not write one per attempt.
            if t.first_in_window {
                let details = json!({ "reason": "throttled", "limited": t.limited });
                self.record_platform_details(&origin, details).await?;
            }
            return Err(SignInError::Throttled {
                retry_after: t.retry_after,
            });
        }
        match code {
            Some(code) => {
                self.staff_sign_in(
                    &code,
                    &login,
                    &request.password,
                    request.one_time_code.as_deref(),
                    &origin,
                )
                .await
            }
            None => {
                self.operator_sign_in(
                    &login,
                    &request.password,
                    request.one_time_code.as_deref(),
                    &origin,
                )
                .await
            }
        }
    }

    async fn staff_sign_in(
        &self,
        code: &FacilityCode,
        login: &LoginId,
        password: &Password,
        one_time_code: Option<&str>,
        origin: &Origin,
    ) -> Result<SignInOutcome, SignInError> {
        let Some((facility, facility_status)) = facilities::for_sign_in(&self.db, code).await?
        else {
            self.verify(password, None).await;
            self.record_platform(origin, "unknown_facility", None)
                .await?;
            return Err(SignInError::BadCredentials);
        };
        let mut tx = self.db.begin(Scope::Facility(facility)).await?;
        let credentials = staff::find_credentials(&mut tx, login).await?;
        let stored = credentials.as_ref().map(|c| c.password_hash.clone());
        let known = credentials.is_some();
        let matches = self.verify(password, stored).await;
        let Some(credentials) = credentials.filter(|_| matches) else {
            let reason = if known {
                "wrong_password"
            } else {
                "unknown_user"
            };
            record(
                &mut tx,
                Actor::Anonymous,
                Outcome::Denied,
                None,
                origin,
                reason,
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::BadCredentials);
        };
        let stored = credentials.password_hash;
        let account = credentials.account;
        let actor = Actor::Staff(account.id);
        let target = Some(("staff", account.id.as_uuid()));
        if account.status != StaffStatus::Active {
            record(
                &mut tx,
                actor,
                Outcome::Denied,
                target,
                origin,
                "account_not_active",
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::AccountNotActive);
        }
        if !facility_status.allows_sign_in() {
            record(
                &mut tx,
                actor,
                Outcome::Denied,
                target,
                origin,
                "facility_not_active",
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::FacilityNotActive);
        }
        if let Some(hash) = self.rehashed(password, &stored).await {
            staff::rehash_password(&mut tx, account.id, &stored, &hash).await?;
        }
        let authenticated = Authenticated {
            principal: Principal::Staff {
                id: account.id,
                facility,
            },
            password_version: account.password_version,
        };
        self.after_password(
            tx,
            authenticated,
            account.second_factor_enabled,
            one_time_code,
            origin,
        )
        .await
    }

    async fn operator_sign_in(
        &self,
        login: &LoginId,
        password: &Password,
        one_time_code: Option<&str>,
        origin: &Origin,
    ) -> Result<SignInOutcome, SignInError> {
        let mut tx = self.db.begin(Scope::Platform).await?;
        let credentials = operators::find_credentials(&mut tx, login).await?;
        let stored = credentials.as_ref().map(|c| c.password_hash.clone());
        let known = credentials.is_some();
        let matches = self.verify(password, stored).await;
        let Some(credentials) = credentials.filter(|_| matches) else {
            let reason = if known {
                "wrong_password"
            } else {
                "unknown_user"
            };
            record(
                &mut tx,
                Actor::Anonymous,
                Outcome::Denied,
                None,
                origin,
                reason,
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::BadCredentials);
        };
        let stored = credentials.password_hash;
        let operator = credentials.operator;
        let actor = Actor::Operator(operator.id);
        let target = Some(("operator", operator.id.as_uuid()));
        if operator.status != StaffStatus::Active {
            record(
                &mut tx,
                actor,
                Outcome::Denied,
                target,
                origin,
                "account_not_active",
            )
            .await?;
            tx.commit().await?;
            return Err(SignInError::AccountNotActive);
        }
        if let Some(hash) = self.rehashed(password, &stored).await {
            operators::rehash_password(&mut tx, operator.id, &stored, &hash).await?;
        }
        let authenticated = Authenticated {
            principal: Principal::Operator { id: operator.id },
            password_version: operator.password_version,
        };
        self.after_password(
            tx,
            authenticated,
            operator.second_factor_enabled,
            one_time_code,
            origin,
        )
        .await
    }

    /// The rest of a sign-in whose password was right, in `tx`: signed in when the account has
    /// no second factor; else its code checked if it came along, or the sign-in left waiting
    /// for it.
    async fn after_password(
        &self,
        mut tx: ScopedTx,
        who: Authenticated,
        second_factor_enabled: bool,
        one_time_code: Option<&str>,
        origin: &Origin,
    ) -> Result<SignInOutcome, SignInError> {
        let (actor, target) = match who.principal {
            Principal::Staff { id, .. } => (Actor::Staff(id), Some(("staff", id.as_uuid()))),
            Principal::Operator { id } => (Actor::Operator(id), Some(("operator", id.as_uuid()))),
        };
        if !second_factor_enabled {
            record(&mut tx, actor, Outcome::Success, target, origin, "password").await?;
            tx.commit().await?;
            return Ok(SignInOutcome::SignedIn(who));
        }
        let Some(code) = one_time_code else {
            self.record_password_step(&mut tx, actor, target, origin)
                .await?;
            tx.commit().await?;
            return Ok(SignInOutcome::SecondFactorNeeded(PendingSecondFactor::new(
                who,
            )));
        };
        self.finish_with_second_factor(tx, who, code, origin)
            .await
            .map(SignInOutcome::SignedIn)
    }

    /// The password hashed anew when `stored` was made under other argon2id settings (they
    /// changed since): the upgrade happens at sign-in, the only time the password is known.
    async fn rehashed(&self, password: &Password, stored: &str) -> Option<String> {
        if !self.hasher.needs_rehash(stored) {
            return None;
        }
        let hasher = self.hasher.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .ok()
    }

    /// Records a sign-out in the chain of the principal's scope.
    pub async fn sign_out(&self, principal: Principal, origin: &Origin) -> Result<(), StoreError> {
        let (scope, actor) = match principal {
            Principal::Staff { id, facility } => (
                Scope::Staff {
                    facility,
                    staff: id,
                },
                Actor::Staff(id),
            ),
            Principal::Operator { id } => (Scope::Platform, Actor::Operator(id)),
        };
        let mut tx = self.db.begin(scope).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor,
                action: "auth.sign_out",
                outcome: Outcome::Success,
                target: None,
                origin,
                details: json!({}),
            },
        )
        .await?;
        tx.commit().await
    }

    /// Records, for each window of throttled attempts that has closed, how many refusals it
    /// counted beyond the first (recorded on its own): one record per key and window. Run at
    /// every sign-in attempt and by the server's housekeeping.
    pub async fn record_refusal_summaries(&self) -> Result<(), StoreError> {
        for summary in self.throttle.closed_windows() {
            let origin = Origin {
                client_addr: summary.address,
                request_id: None,
            };
            let details = json!({
                "reason": "throttled",
                "limited": summary.limited,
                "account": summary.account,
                "more_refusals": summary.refusals,
                "window_secs": summary.window.as_secs(),
            });
            self.record_platform_details(&origin, details).await?;
        }
        Ok(())
    }

    /// A refused attempt that names no facility we know goes to the platform's chain.
    pub(crate) async fn record_platform(
        &self,
        origin: &Origin,
        reason: &str,
        target: Option<(&'static str, uuid::Uuid)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin(Scope::Platform).await?;
        record(
            &mut tx,
            Actor::Anonymous,
            Outcome::Denied,
            target,
            origin,
            reason,
        )
        .await?;
        tx.commit().await
    }

    async fn record_platform_details(
        &self,
        origin: &Origin,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin(Scope::Platform).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor: Actor::Anonymous,
                action: "auth.sign_in",
                outcome: Outcome::Denied,
                target: None,
                origin,
                details,
            },
        )
        .await?;
        tx.commit().await
    }
}

pub(crate) async fn record(
    tx: &mut ScopedTx,
    actor: Actor,
    outcome: Outcome,
    target: Option<(&'static str, uuid::Uuid)>,
    origin: &Origin,
    reason: &str,
) -> Result<(), StoreError> {
    audit::record(
        tx,
        AuditEvent {
            actor,
            action: "auth.sign_in",
            outcome,
            target,
            origin,
            details: json!({ "reason": reason }),
        },
    )
    .await
}
