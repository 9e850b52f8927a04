//! AWS KMS as the master key provider: data keys are wrapped with `Encrypt` and unwrapped with
//! `Decrypt` under an encryption context naming the owner and version, so KMS itself refuses a
//! wrapped key presented for anything else (and records each use in CloudTrail).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls;
use zeroize::Zeroizing;

use super::{KeyBytes, MasterKeyProvider, WrapContext};
use crate::KeyringError;

const ID_PREFIX: &str = "aws-kms:";

/// Where the KMS key is and how to reach it. Credentials come from the usual AWS chain
/// (environment, profile, instance or task role).
#[derive(Debug, Clone, Default)]
pub struct AwsKmsSettings {
    /// Key ID, ARN or alias; the key's ARN is what gets stored. With an alias
    /// (`alias/renrakucho`), the server makes a new key for every master key epoch and moves
    /// the alias to it (docs/adr/0015-erasure-reaches-the-disk.md).
    pub key_id: String,
    pub region: Option<String>,
    /// A different endpoint (a VPC endpoint, or a local emulator in tests).
    pub endpoint: Option<String>,
}

/// The KMS provider. Clones share the current key: a rotation seen by one is seen by all.
#[derive(Debug, Clone)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    /// The key as configured: an ID, an ARN or an alias.
    configured: String,
    /// The ARN the configured key named when last resolved: what new data keys are wrapped
    /// under (never the alias itself, so the stored ID is the key that was used).
    current: Arc<RwLock<String>>,
}

/// How long KMS keeps a key scheduled for deletion (the shortest it allows), during which it
/// is disabled and can decrypt nothing.
pub const KMS_DELETION_WINDOW_DAYS: i32 = 7;

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

fn http_client() -> aws_sdk_kms::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl AwsKms {
    /// Connects with the default AWS credential chain.
    pub async fn connect(settings: &AwsKmsSettings) -> Result<Self, KeyringError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(timeouts());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self::with_client(aws_sdk_kms::Client::new(&config), &settings.key_id).await
    }

    /// Uses a client built elsewhere (e.g. with explicit credentials), resolving the key's
    /// ARN once, so that the stored master key ID is stable whatever alias was configured.
    pub async fn with_client(
        client: aws_sdk_kms::Client,
        key_id: &str,
    ) -> Result<Self, KeyringError> {
        let arn = resolve(&client, key_id).await?;
        Ok(Self {
            client,
            configured: key_id.to_string(),
            current: Arc::new(RwLock::new(arn)),
        })
    }

    /// The alias the key was configured by (`alias/…`, also as an alias ARN), if any: the
    /// server can start a new master key epoch only by moving an alias.
    pub fn alias(&self) -> Option<&str> {
        let configured = self.configured.as_str();
        if configured.starts_with("alias/") {
            return Some(configured);
        }
        configured
            .strip_prefix("arn:")
            .and_then(|_| configured.find(":alias/"))
            .map(|at| &configured[at + 1..])
    }

    fn current_arn(&self) -> String {
        self.current.read().expect("KMS current key lock").clone()
    }

    /// Starts a new master key epoch: creates a KMS key and moves the alias to it, so every
    /// server process (which re-resolves the alias at its checks) wraps under it from then on.
    /// Returns its stored ID. Needs `kms:CreateKey` and `kms:UpdateAlias`.
    pub async fn create_epoch_key(&self) -> Result<String, KeyringError> {
        let alias = self.alias().ok_or_else(|| {
            KeyringError::MasterKey(format!(
                "the KMS key {} is not configured by an alias; master key epochs move an alias \
                 (RENRAKUCHO_AWS_KMS_KEY_ID=alias/…)",
                self.configured
            ))
        })?;
        let created = self
            .client
            .create_key()
            .description(
                "Renrakucho master key epoch (wraps data keys; destroyed by the next epoch)",
            )
            .send()
            .await
            .map_err(classify)?;
        let metadata = created.key_metadata().ok_or_else(|| {
            KeyringError::ProviderRefused("KMS created a key without metadata".into())
        })?;
        let arn = metadata
            .arn()
            .ok_or_else(|| {
                KeyringError::ProviderRefused("KMS created a key without an ARN".into())
            })?
            .to_string();
        self.client
            .update_alias()
            .alias_name(alias)
            .target_key_id(metadata.key_id())
            .send()
            .await
            .map_err(classify)?;
        *self.current.write().expect("KMS current key lock") = arn;
        Ok(self.current_key_id())
    }

    /// Destroys an epoch's KMS key: disabled at once (it decrypts nothing from then on) and
    /// scheduled for deletion after the shortest window KMS allows. The current key is
    /// refused. False when KMS no longer knows the key. Needs `kms:DisableKey` and
    /// `kms:ScheduleKeyDeletion`.
    pub async fn destroy_epoch_key(&self, id: &str) -> Result<bool, KeyringError> {
        let arn = id
            .strip_prefix(ID_PREFIX)
            .ok_or_else(|| KeyringError::MasterKey(format!("{id} is not a KMS master key")))?;
        if arn == self.current_arn() {
            return Err(KeyringError::MasterKey(format!(
                "{id} is the current master key"
            )));
        }
        // The key's own ID (the ARN's last part) is what every KMS implementation takes.
        let key = arn.rsplit('/').next().unwrap_or(arn);
        let gone = |code: Option<&str>| code == Some("NotFoundException");
        // Already pending deletion: disabling again is refused, and that is fine.
        let settled = |code: Option<&str>| code == Some("KMSInvalidStateException");
        match self.client.disable_key().key_id(key).send().await {
            Ok(_) => {}
            Err(e) if gone(e.code()) => return Ok(false),
            Err(e) if settled(e.code()) => {}
            Err(e) => return Err(classify(e)),
        }
        match self
            .client
            .schedule_key_deletion()
            .key_id(key)
            .pending_window_in_days(KMS_DELETION_WINDOW_DAYS)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if gone(e.code()) => Ok(false),
            Err(e) if settled(e.code()) => Ok(true),
            Err(e) => Err(classify(e)),
        }
    }

    /// A client configuration for an explicit endpoint and static credentials.
    pub fn client_for(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                access_key,
                secret_key,
                None,
                None,
                "renrakucho-static",
            ))
            .http_client(http_client())
            .timeout_config(timeouts())
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    fn context(context: &WrapContext) -> HashMap<String, String> {
        HashMap::from([
            (
                "renrakucho:owner_kind".to_string(),
                context.owner_kind.to_string(),
            ),
            (
                "renrakucho:owner_id".to_string(),
                context.owner_id.to_string(),
            ),
            (
                "renrakucho:version".to_string(),
                context.version.to_string(),
            ),
        ])
    }
}

/// The ARN of a key ID, ARN or alias.
async fn resolve(client: &aws_sdk_kms::Client, key_id: &str) -> Result<String, KeyringError> {
    let described = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(classify)?;
    Ok(described
        .key_metadata()
        .and_then(|m| m.arn())
        .ok_or_else(|| KeyringError::ProviderRefused(format!("KMS key {key_id} has no ARN")))?
        .to_string())
}

/// Service refusals are the data's problem; anything else (network, timeouts, KMS's own
/// trouble) is unavailability, answered with 503 and retried later.
fn classify<E>(err: SdkError<E>) -> KeyringError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err {
        let code = service.err().code().unwrap_or("unknown");
        let transient = matches!(
            code,
            "KMSInternalException"
                | "DependencyTimeoutException"
                | "ThrottlingException"
                | "LimitExceededException"
        );
        if !transient {
            return KeyringError::ProviderRefused(code.to_string());
        }
    }
    KeyringError::ProviderUnavailable(DisplayErrorContext(&err).to_string())
}

#[async_trait]
impl MasterKeyProvider for AwsKms {
    fn current_key_id(&self) -> String {
        format!("{ID_PREFIX}{}", self.current_arn())
    }

    fn holds(&self, key_id: &str) -> bool {
        key_id.starts_with(ID_PREFIX)
    }

    async fn wrap(&self, key: &[u8; 32], context: &WrapContext) -> Result<Vec<u8>, KeyringError> {
        let out = self
            .client
            .encrypt()
            .key_id(self.current_arn())
            .plaintext(Blob::new(key.to_vec()))
            .set_encryption_context(Some(Self::context(context)))
            .send()
            .await
            .map_err(classify)?;
        out.ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KeyringError::ProviderRefused("KMS returned no ciphertext".into()))
    }

    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &WrapContext,
    ) -> Result<KeyBytes, KeyringError> {
        let out = self
            .client
            .decrypt()
            .key_id(key_id.trim_start_matches(ID_PREFIX))
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(Self::context(context)))
            .send()
            .await
            .map_err(classify)?;
        let plaintext = Zeroizing::new(
            out.plaintext()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
        );
        let key: [u8; 32] = plaintext.as_slice().try_into().map_err(|_| {
            KeyringError::ProviderRefused("KMS returned a data key of the wrong length".into())
        })?;
        Ok(Zeroizing::new(key))
    }

    /// Re-resolves an alias (another process may have started a new epoch).
    async fn refresh(&self) -> Result<(), KeyringError> {
        if self.alias().is_some() {
            let arn = resolve(&self.client, &self.configured).await?;
            *self.current.write().expect("KMS current key lock") = arn;
        }
        Ok(())
    }
}
