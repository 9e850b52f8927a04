//! The operators' own provider (`RENRAKUCHO_OPERATOR_OIDC_*`): an operator's sign-in through
//! it, the subject looked up in `operator_identities`, every outcome in the platform's chain.

use super::*;

impl Authenticator {
    /// The operators' own provider (`RENRAKUCHO_OPERATOR_OIDC_*`), if the network has one.
    pub fn with_operator_provider(mut self, provider: Option<protocol::ClientSettings>) -> Self {
        self.operator_provider = provider;
        self
    }

    /// The first half of an operator's sign-in through the operators' own provider.
    pub(super) async fn begin_operator_sign_in(
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
    pub(super) async fn complete_operator_sign_in(
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
        if iss.is_some_and(|iss| iss != settings.issuer) {
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
}
