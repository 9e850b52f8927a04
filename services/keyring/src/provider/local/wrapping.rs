//! Wrapping and unwrapping data keys under the local master keys (AES-256-GCM, bound to the
//! owner and version of the data key).

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use aes_gcm::Aes256Gcm;
use async_trait::async_trait;
use rand::RngCore;
use zeroize::Zeroizing;

use super::{fail, LocalMasterKeys, State, CURRENT_FILE};
use crate::provider::{KeyBytes, MasterKeyProvider, WrapContext};
use crate::KeyringError;

const WRAP_DOMAIN: &[u8] = b"renrakucho.dek.v1";
const WRAPPED_LEN: usize = 12 + 32 + 16;

pub(super) fn cipher(key: &[u8; 32]) -> Arc<Aes256Gcm> {
    Arc::new(Aes256Gcm::new(&(*key).into()))
}

fn wrap_aad(context: &WrapContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + 40);
    aad.extend_from_slice(WRAP_DOMAIN);
    aad.extend_from_slice(context.owner_kind.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.owner_id.as_bytes());
    aad.extend_from_slice(&context.version.to_be_bytes());
    aad
}

#[async_trait]
impl MasterKeyProvider for LocalMasterKeys {
    fn current_key_id(&self) -> String {
        self.state
            .read()
            .expect("master key state lock")
            .current
            .clone()
    }

    fn holds(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    async fn wrap(&self, key: &[u8; 32], context: &WrapContext) -> Result<Vec<u8>, KeyringError> {
        // A rotation run by another process may have made a new key current (and an old one
        // may be about to be retired): new data keys always go under the directory's current
        // key. Wrapping is rare (a new key per patient), so reading one small file is cheap.
        if let Some(dir) = &self.dir {
            let on_disk = fs::read_to_string(dir.join(CURRENT_FILE))
                .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            if on_disk.trim() != self.current_key_id() {
                self.refresh().await?;
            }
        }
        let id = self.current_key_id();
        let master = self
            .key(&id)
            .ok_or_else(|| KeyringError::UnknownMasterKey(id.clone()))?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key);
        let tag = master
            .encrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &wrap_aad(context),
                (&mut out[12..]).into(),
            )
            .map_err(|_| fail("wrapping a data key failed"))?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &WrapContext,
    ) -> Result<KeyBytes, KeyringError> {
        let master = self
            .key(key_id)
            .ok_or_else(|| KeyringError::UnknownMasterKey(key_id.to_string()))?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(KeyringError::ProviderRefused(
                "the wrapped data key has the wrong length".into(),
            ));
        }
        let nonce: [u8; 12] = wrapped[..12].try_into().expect("12 bytes");
        let tag = Tag::<Aes256Gcm>::try_from(&wrapped[44..]).expect("16 bytes");
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&wrapped[12..44]);
        master
            .decrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &wrap_aad(context),
                key.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| {
                KeyringError::ProviderRefused(
                    "the wrapped data key was altered or belongs to another owner".into(),
                )
            })?;
        Ok(key)
    }

    async fn refresh(&self) -> Result<(), KeyringError> {
        if let Some(dir) = &self.dir {
            // Gone with its last key (moved to KMS): nothing is held any more.
            let state = if dir.exists() {
                Self::load(dir)?
            } else {
                State {
                    current: String::new(),
                    keys: HashMap::new(),
                }
            };
            *self.state.write().expect("master key state lock") = state;
        }
        Ok(())
    }
}
