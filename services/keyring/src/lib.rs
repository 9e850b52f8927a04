//! Envelope encryption of patient data.
//!
//! Every value about a patient is encrypted with that patient's own data key (AES-256-GCM)
//! before it reaches PostgreSQL; a facility's private data uses the facility's key. Data keys
//! are stored only wrapped by a master key held by a [`provider`] (a local key file, or AWS
//! KMS), so a dump, a backup or a replica of the database reveals nothing. Destroying a
//! patient's key ([`Keyring::destroy`]) makes everything ever written for them unreadable.
//!
//! The format of a stored value is in [`envelope`]; its associated data binds it to its owner,
//! table, column, row and version (what makes it the current value of its row). Names are searched through a [`blind_index`].

pub mod blind_index;
pub mod envelope;
mod epochs;
mod error;
mod keyring;
pub mod provider;

pub use envelope::{Binding, Header, KeyOwner, OVERHEAD};
pub use epochs::{EpochKeys, EpochPolicy, EpochReason, EpochReport};
pub use error::{KeyringError, Problem};
pub use keyring::{
    open_with_data_key, BindProgress, BindReport, CacheClock, CacheSettings, Keyring, OwnerKeys,
    ReencryptReport, RewrapReport,
};
pub use provider::{
    AwsKms, AwsKmsSettings, LocalMasterKeys, MasterKeyProvider, MasterKeys,
    KMS_DELETION_WINDOW_DAYS,
};
