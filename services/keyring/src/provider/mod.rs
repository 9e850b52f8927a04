//! Master key providers: where the key that wraps every data key lives. The database only
//! ever holds data keys wrapped by one of these.

mod aws_kms;
mod local;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::KeyringError;

pub use aws_kms::{AwsKms, AwsKmsSettings, KMS_DELETION_WINDOW_DAYS};
pub use local::LocalMasterKeys;

/// A data key, unwrapped: 32 bytes that are zeroed when dropped.
pub type KeyBytes = Zeroizing<[u8; 32]>;

/// What a wrapped data key belongs to. Providers bind the wrapping to it (as associated data,
/// or as KMS encryption context), so a wrapped key copied to another owner or version does
/// not unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapContext {
    pub owner_kind: &'static str,
    pub owner_id: Uuid,
    pub version: u32,
}

/// A holder of master keys.
#[async_trait]
pub trait MasterKeyProvider: Send + Sync {
    /// The master key new data keys are wrapped under; stored beside each wrapped key.
    fn current_key_id(&self) -> String;

    /// Whether this provider can unwrap keys wrapped under `key_id`.
    fn holds(&self, key_id: &str) -> bool;

    /// Wraps a data key under the current master key.
    async fn wrap(&self, key: &[u8; 32], context: &WrapContext) -> Result<Vec<u8>, KeyringError>;

    /// Unwraps a data key wrapped under `key_id`.
    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &WrapContext,
    ) -> Result<KeyBytes, KeyringError>;

    /// Re-reads keys that may have been added since start (a rotation run by another
    /// process). Called when a stored key names a master key nobody holds.
    async fn refresh(&self) -> Result<(), KeyringError> {
        Ok(())
    }
}

/// The providers of a server: the first wraps new keys, all of them can unwrap (during and
/// after a master-key rotation the previous key stays readable until it is retired).
#[derive(Clone)]
pub struct MasterKeys {
    providers: Vec<Arc<dyn MasterKeyProvider>>,
}

impl MasterKeys {
    pub fn new(current: Arc<dyn MasterKeyProvider>) -> Self {
        Self {
            providers: vec![current],
        }
    }

    /// Adds a provider that can still unwrap keys wrapped before a rotation.
    pub fn with_previous(mut self, previous: Arc<dyn MasterKeyProvider>) -> Self {
        self.providers.push(previous);
        self
    }

    pub fn current(&self) -> &Arc<dyn MasterKeyProvider> {
        &self.providers[0]
    }

    pub fn current_key_id(&self) -> String {
        self.current().current_key_id()
    }

    pub(crate) async fn wrap(
        &self,
        key: &[u8; 32],
        context: &WrapContext,
    ) -> Result<(String, Vec<u8>), KeyringError> {
        let provider = self.current();
        let id = provider.current_key_id();
        let wrapped = provider.wrap(key, context).await?;
        Ok((id, wrapped))
    }

    pub(crate) async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &WrapContext,
    ) -> Result<KeyBytes, KeyringError> {
        if let Some(p) = self.providers.iter().find(|p| p.holds(key_id)) {
            return p.unwrap(key_id, wrapped, context).await;
        }
        for p in &self.providers {
            p.refresh().await?;
        }
        match self.providers.iter().find(|p| p.holds(key_id)) {
            Some(p) => p.unwrap(key_id, wrapped, context).await,
            None => Err(KeyringError::UnknownMasterKey(key_id.to_string())),
        }
    }
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &self.current_key_id())
            .field("providers", &self.providers.len())
            .finish()
    }
}
