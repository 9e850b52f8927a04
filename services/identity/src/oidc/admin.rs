//! The facility admin's side: the provider's settings (saved, enabled, removed), the links
//! from its subjects to staff accounts, and the approval of just-in-time accounts.

use super::*;

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
    ) -> Result<ProviderChange, ProviderAdminError> {
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
        let mut sessions_ended = Vec::new();
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
                // A change disables the provider: its sessions end as when it is disabled.
                sessions_ended =
                    identity_providers::end_linked_sessions(&mut tx, admin_staff(admin)?).await?;
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
                "sessions_ended_of": sessions_ended.len(),
            }),
        )
        .await?;
        let saved = identity_providers::get(&mut tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(ProviderChange {
            view: Some(view(saved)?),
            sessions_ended,
        })
    }

    /// Turns sign-in through the provider on (only after a passed test of the current
    /// settings) or off.
    pub async fn enable_provider(
        &self,
        admin: Principal,
        enabled: bool,
        origin: &Origin,
    ) -> Result<ProviderChange, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let existing = identity_providers::get(&mut tx)
            .await?
            .ok_or(ProviderAdminError::NotFound)?;
        if enabled && existing.tested_revision != Some(existing.revision) {
            return Err(ProviderAdminError::NotTested);
        }
        identity_providers::set_enabled(&mut tx, enabled).await?;
        // Sessions signed in through it end with it (the linked accounts' versions move on).
        let sessions_ended = if enabled {
            Vec::new()
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
            json!({
                "event": if enabled { "enabled" } else { "disabled" },
                "sessions_ended_of": sessions_ended.len(),
            }),
        )
        .await?;
        let saved = identity_providers::get(&mut tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(ProviderChange {
            view: Some(view(saved)?),
            sessions_ended,
        })
    }

    /// Removes the facility's provider: its staff sign in with passwords again.
    pub async fn remove_provider(
        &self,
        admin: Principal,
        origin: &Origin,
    ) -> Result<ProviderChange, ProviderAdminError> {
        let mut tx = self.db.begin(admin_scope(admin)?).await?;
        let sessions_ended =
            identity_providers::end_linked_sessions(&mut tx, admin_staff(admin)?).await?;
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
            json!({ "event": "removed", "sessions_ended_of": sessions_ended.len() }),
        )
        .await?;
        tx.commit().await?;
        Ok(ProviderChange {
            view: None,
            sessions_ended,
        })
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
}
