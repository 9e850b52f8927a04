//! The server's own keys, kept in the database where only the owner reads them
//! (`private.server_keys`): the context key, with which the server vouches for each tenant
//! context it opens, and the session key, with which it seals session records. The web role
//! can read neither, so SQL run as that role can neither forge a context nor a session
//! (docs/adr/0013-database-boundary.md).

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;
use zeroize::Zeroize;

use crate::StoreError;

/// A 256-bit HMAC key. Never printed, wiped when dropped.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl Drop for ServerKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(**redacted**)")
    }
}

impl ServerKey {
    /// HMAC-SHA-256 over the parts, concatenated.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of the parts (compared in constant time).
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(tag).is_ok()
    }

    fn pads(&self) -> ([u8; 64], [u8; 64]) {
        let mut inner = [0x36u8; 64];
        let mut outer = [0x5cu8; 64];
        for (i, b) in self.0.iter().enumerate() {
            inner[i] ^= b;
            outer[i] ^= b;
        }
        (inner, outer)
    }
}

/// The keys a server process needs, read at start through the owner's connection.
#[derive(Clone, Debug)]
pub struct ServerKeys {
    pub(crate) context: ServerKey,
    pub(crate) session: ServerKey,
}

impl ServerKeys {
    /// Reads the keys, creating them on the first start. Several processes starting at once
    /// agree on one set (the first insert wins).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn load_or_create(owner: &PgConnectOptions) -> Result<Self, StoreError> {
        let mut conn = owner.connect().await?;
        for purpose in ["context", "session"] {
            let mut key = ServerKey([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(&mut key.0);
            let (inner, outer) = key.pads();
            sqlx::query!(
                "INSERT INTO private.server_keys (purpose, key, inner_pad, outer_pad)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (purpose) DO NOTHING",
                purpose,
                &key.0[..],
                &inner[..],
                &outer[..]
            )
            .execute(&mut conn)
            .await?;
        }
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query!("SELECT purpose, key FROM private.server_keys")
                .fetch_all(&mut conn)
                .await?
                .into_iter()
                .map(|r| (r.purpose, r.key))
                .collect();
        conn.close().await?;
        let find = |purpose: &str| -> Result<ServerKey, StoreError> {
            let mut bytes = rows
                .iter()
                .find(|(p, _)| p == purpose)
                .map(|(_, k)| k.clone())
                .ok_or_else(|| {
                    StoreError::Misconfigured(format!("the server's {purpose} key is missing"))
                })?;
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                StoreError::Misconfigured(format!("the server's {purpose} key is not 32 bytes"))
            })?;
            bytes.zeroize();
            Ok(ServerKey(key))
        };
        Ok(Self {
            context: find("context")?,
            session: find("session")?,
        })
    }
}

/// The label of the MAC the server gives `renrakucho_enter` (the database makes its own, `ctx2`,
/// for the transaction).
const ENTER_LABEL: &[u8; 4] = b"ctx1";

/// The MAC `renrakucho_enter` accepts: over the backend's process ID, the connection's current
/// chain value, the facility and the staff member (zeros for none), exactly as the function
/// builds it in SQL (`int4send`, `int8send`, `uuid_send`: big-endian and the UUID's bytes).
pub(crate) fn enter_mac(
    key: &ServerKey,
    pid: i32,
    chain: i64,
    facility: Uuid,
    staff: Option<Uuid>,
) -> [u8; 32] {
    key.mac(&[
        ENTER_LABEL,
        &pid.to_be_bytes(),
        &chain.to_be_bytes(),
        facility.as_bytes(),
        staff.unwrap_or(Uuid::nil()).as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_precomputed_pads_give_the_same_mac_as_the_hmac_crate() {
        use sha2::Digest;
        let key = ServerKey([7u8; 32]);
        let (inner, outer) = key.pads();
        let message = b"ctx2 message";
        let inner_hash = Sha256::new()
            .chain_update(inner)
            .chain_update(message)
            .finalize();
        let by_pads = Sha256::new()
            .chain_update(outer)
            .chain_update(inner_hash)
            .finalize();
        assert_eq!(by_pads.as_slice(), &key.mac(&[message])[..]);
        assert!(key.verify(&[b"ctx2 ", b"message"], &by_pads));
        assert!(!key.verify(&[b"ctx2 message!"], &by_pads));
    }

    #[test]
    fn keys_never_print() {
        let key = ServerKey([0xab; 32]);
        assert!(!format!("{key:?}").contains("ab"));
    }
}
