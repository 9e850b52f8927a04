//! Proof given again through the provider a session signed in with (`prompt=login`,
//! `max_age=0`): what acts that ask for a recent password accept from such a session.

use super::*;

impl Authenticator {
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
        let (settings, facility, _) = self.settings_for(account).await?;
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

    /// The provider `account` signs in with (its facility's, enabled, as stored too; or the
    /// operators'), and the facility.
    pub(super) async fn settings_for(
        &self,
        account: Principal,
    ) -> Result<
        (
            protocol::ClientSettings,
            Option<FacilityId>,
            Option<StoredProvider>,
        ),
        ProviderSignInError,
    > {
        match account {
            Principal::Staff { facility, .. } => {
                let mut tx = self.db.begin(account_scope(account)).await?;
                let stored = identity_providers::get(&mut tx)
                    .await?
                    .filter(|p| p.enabled)
                    .ok_or(ProviderSignInError::NoProvider)?;
                let settings = self.client_settings(&mut tx, &stored).await?;
                tx.commit().await?;
                Ok((settings, Some(facility), Some(stored)))
            }
            Principal::Operator { .. } => self
                .operator_provider
                .clone()
                .map(|s| (s, None, None))
                .ok_or(ProviderSignInError::NoProvider),
        }
    }

    /// The second half of a re-authentication: the provider's answer must be a sign-in made
    /// after the request began, by the subject linked to `account`.
    pub(super) async fn complete_reauthentication(
        &self,
        pending: &PendingProviderSignIn,
        account: Principal,
        code: &str,
        iss: Option<&str>,
        redirect: &Url,
        origin: &Origin,
    ) -> Result<ProviderOutcome, ProviderSignInError> {
        let (settings, _, stored) = self.settings_for(account).await?;
        let refuse = |reason: &'static str, error: ProviderSignInError| async move {
            self.reauthentication_event(account, Outcome::Denied, reason, origin)
                .await?;
            Err::<ProviderOutcome, _>(error)
        };
        if iss.is_some_and(|iss| iss != settings.issuer) {
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
        // The facility's rule on addresses holds here as at every sign-in.
        if let Some(stored) = &stored {
            let claim: LoginClaim = stored.login_claim.parse().map_err(|_| {
                StoreError::Misconfigured(format!("login_claim: {}", stored.login_claim))
            })?;
            if !domain_allowed(stored, claim, &identity) {
                return refuse("domain_not_allowed", ProviderSignInError::DomainNotAllowed).await;
            }
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
            account,
            next: pending.next.clone(),
        })
    }

    /// One `auth.reauthenticate` record, method `oidc`, in `account`'s chain.
    pub(super) async fn reauthentication_event(
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
}
