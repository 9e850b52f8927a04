use renrakucho_store::StoreError;
use uuid::Uuid;

/// Why a stored value could not be decrypted. Never carries key material or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the value is truncated")]
    Truncated,
    #[error("unsupported ciphertext format {0}")]
    UnsupportedFormat(u8),
    /// The header names another patient or facility than the row the value was read from:
    /// the value was moved.
    #[error("the value belongs to another owner")]
    WrongOwner,
    #[error("the value names data key version {0}, which does not exist")]
    UnknownKeyVersion(u32),
    /// Crypto-shredded: the owner's key was destroyed, the value can never be read again.
    #[error("the data key was destroyed")]
    KeyDestroyed,
    /// The value is in format 1 (no version bound), and the database says every value was
    /// re-encrypted in format 2 (`renrakucho keys bind-versions`): it was put back from before.
    #[error("the value was written before values were bound to their version, and such values are no longer accepted")]
    UnboundVersion,
    /// Authentication failed: a changed bit, a value moved to another row or column, or an
    /// earlier value put back into its row after the row moved on to a newer version.
    #[error("the value was altered or does not belong here")]
    Tampered,
}

/// Everything that can go wrong in the keyring: one error type for the crate.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// A stored value could not be decrypted; names where it was read from.
    #[error("cannot decrypt {table}.{column} of row {row}: {problem}")]
    Undecryptable {
        table: String,
        column: String,
        row: Uuid,
        problem: Problem,
    },
    /// The key provider (KMS) did not answer. The server answers 503; nothing falls back to
    /// plaintext.
    #[error("the master key provider is unavailable: {0}")]
    ProviderUnavailable(String),
    /// The provider answered but refused (wrong key, wrong context, altered wrapped key).
    #[error("the master key provider refused to unwrap a data key: {0}")]
    ProviderRefused(String),
    /// A data key is wrapped under a master key this server does not hold.
    #[error("master key {0} is not configured on this server")]
    UnknownMasterKey(String),
    /// The owner's keys were destroyed: nothing can be encrypted for it any more.
    #[error("the data keys of this owner were destroyed")]
    OwnerShredded,
    /// The local master key file or directory is unusable (permissions, format).
    #[error("master key: {0}")]
    MasterKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyringError {
    /// True when the failure is the provider's or the database's availability, not the data:
    /// the server answers 503 Service Unavailable.
    pub fn is_unavailable(&self) -> bool {
        match self {
            KeyringError::ProviderUnavailable(_) => true,
            KeyringError::Store(e) => e.is_unavailable(),
            _ => false,
        }
    }
}
