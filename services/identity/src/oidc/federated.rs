//! A sign-in through a facility's provider, both halves: the redirect to the provider (or the
//! admin's test of it) and the person's return, with the account it links to, or a
//! just-in-time one.

use super::*;

impl Authenticator {
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
            .is_some_and(|iss| iss != stored.issuer)
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

    /// The provider's settings with its secret decrypted, for one exchange.
    pub(super) async fn client_settings(
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
    pub(super) async fn provider_refusal(
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
    pub(super) async fn create_pending_account(
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
