//! AWS KMS as the master key provider: data keys are wrapped with `Encrypt` and unwrapped with
//! `Decrypt` under an encryption context naming the owner and version, so KMS itself refuses a
//! wrapped key presented for anything else (and records each use in CloudTrail).

use std::collections::HashMap;
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
    /// Key ID or ARN (an alias works for wrapping; the key's ARN is what gets stored).
    pub key_id: String,
    pub region: Option<String>,
    /// A different endpoint (a VPC endpoint, or a local emulator in tests).
    pub endpoint: Option<String>,
}

/// The KMS provider.
#[derive(Debug, Clone)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    key_id: String,
}

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
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(classify)?;
        let arn = described
            .key_metadata()
            .and_then(|m| m.arn())
            .ok_or_else(|| KeyringError::ProviderRefused(format!("KMS key {key_id} has no ARN")))?
            .to_string();
        Ok(Self {
            client,
            key_id: arn,
        })
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
        format!("{ID_PREFIX}{}", self.key_id)
    }

    fn holds(&self, key_id: &str) -> bool {
        key_id.starts_with(ID_PREFIX)
    }

    async fn wrap(&self, key: &[u8; 32], context: &WrapContext) -> Result<Vec<u8>, KeyringError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
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
}
