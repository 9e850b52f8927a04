//! The registry: patients (対象者) registered by a facility, their consent (同意書), their care
//! team, emergency access and deletion requests, and the facility admin's and the platform
//! operators' views of them. Personal fields are encrypted with the patient's own key and names
//! are found through the blind index. Every read and change is audited in the transaction that
//! does it. No HTTP and no authorization policy here: the server asks the authorizer first, and
//! the database's row-level security has the last word.
//!
//! It is the lower of the care layer's two crates: the notebook (`renrakucho-notebook`) builds
//! on it and shares its error ([`CareError`]), its actor ([`StaffActor`]) and the building blocks
//! in [`audit`], [`unreadable`] and [`uploads`] (docs/adr/0023-registry-and-notebook-crates.md).

mod admin;
mod alerts;
pub mod audit;
mod care_team;
mod consent;
mod deletion;
mod emergency;
mod operations;
mod patients;
pub mod unreadable;
pub mod uploads;

pub use admin::{facility_audit, facility_staff, set_may_accept_invitations};
pub use care_team::{
    accept_invitation, access_rows, care_team_of, decline_invitation, directory, invite, leave,
    pending_invitations, relations_to, remove_member, Invitation, TeamMember,
};
pub use consent::{
    consent_scan, consents_of, record_consent, withdraw_consent, Consent, ConsentForm,
    ConsentScope, NewScan, Signer,
};
pub use deletion::{request_deletion, Erasure};
pub use emergency::{
    emergency_grants, end_emergency, ensure_cards, identification_status, open_emergency,
    patient_card, reissue_card, review_emergency, CardAttempt, EmergencyGrant, EmergencyReason,
    EmergencyRequest, IdentificationStatus, PatientCard, IDENTIFICATION_LIMIT,
};
pub use operations::{acknowledge_platform_alert, platform_alerts};
pub use patients::{
    decrypt_identity, find_patients, patient, register_patient, update_patient, NewPatient,
    Patient, PatientSummary,
};
pub use unreadable::{Listed, Unreadable, ALERT_KIND as UNREADABLE_ALERT};
pub use uploads::{
    sweep_orphaned_files, DECODES_PER_PERSON, DECODE_TIME_LIMIT, GLOBAL_DECODES, ORPHAN_GRACE,
};

use renrakucho_core::{FacilityId, InvalidValue, StaffId};
use renrakucho_files::media::MediaError;
use renrakucho_files::FileError;
use renrakucho_keyring::KeyringError;
use renrakucho_store::StoreError;

/// The version an encrypted value's associated data names, from the column that holds it (an
/// entry's version, a patient's revision; both start at 1). A negative number, which the
/// database's checks never store, names no version a value was written for.
pub fn bound_version(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(u64::MAX)
}

pub use renrakucho_authz::{may, Authorized, Permitted};

/// Who acts: a staff member, in their facility. The functions that read or change a patient's
/// data take a capability instead ([`Authorized`], [`Permitted`]), which only the authorizer
/// makes; a bare `StaffActor` reaches only the person's own things (preferences, their
/// facility's lists, which row-level security bounds and the server filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffActor {
    pub staff: StaffId,
    pub facility: FacilityId,
}

impl<P: renrakucho_authz::Permission> From<&Authorized<P>> for StaffActor {
    fn from(allowed: &Authorized<P>) -> Self {
        Self {
            staff: allowed.staff(),
            facility: allowed.facility(),
        }
    }
}

impl<P: renrakucho_authz::Permission> From<&Permitted<P>> for StaffActor {
    fn from(allowed: &Permitted<P>) -> Self {
        Self {
            staff: allowed.staff(),
            facility: allowed.facility(),
        }
    }
}

impl StaffActor {
    /// The scope of a transaction acting for this person: their facility's rows, and audit
    /// records in their name only.
    pub fn scope(&self) -> renrakucho_store::Scope {
        renrakucho_store::Scope::Staff {
            facility: self.facility,
            staff: self.staff,
        }
    }
}

/// What can go wrong in the care layer: the registry's and the notebook's functions alike (the
/// notebook's failures are all of these kinds, and the server maps this one type to HTTP).
#[derive(Debug, thiserror::Error)]
pub enum CareError {
    /// No such patient (or consent, grant, invitation), or not one this facility may see:
    /// never told apart.
    #[error("not found")]
    NotFound,
    /// An emergency identification that named no patient: an unknown card number, a wrong date
    /// of birth and a locked card are one answer.
    #[error("not identified")]
    NotIdentified,
    /// The facility failed too many identifications within the hour.
    #[error("locked until {until}")]
    Locked { until: time::OffsetDateTime },
    /// The request is well-formed but cannot be done in the current state; the message says
    /// why in words a person understands (Japanese, then English).
    #[error("{0}")]
    Conflict(String),
    /// The person may not do this to something their facility may see (the message says why).
    #[error("{0}")]
    Forbidden(String),
    /// A value from outside is not acceptable.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Files(#[from] FileError),
    #[error(transparent)]
    Store(StoreError),
    /// A stored record that does not parse (written by an incompatible version).
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

impl CareError {
    /// A stored value that does not decode. The message keeps the field and the kind of fault
    /// only: a parser's own message may quote the decrypted text, which must not reach a log.
    pub fn corrupt<E>(what: impl std::fmt::Display, _cause: E) -> Self {
        CareError::Corrupt(format!(
            "{what} does not decode ({})",
            std::any::type_name::<E>()
        ))
    }
}

impl From<StoreError> for CareError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound | StoreError::MissingReference { .. } => CareError::NotFound,
            e => CareError::Store(e),
        }
    }
}

/// An upload refused by the cleaning (`media::process`): a 422 on `file` (renamed by
/// [`uploads::clean`] for other fields).
impl From<MediaError> for CareError {
    fn from(e: MediaError) -> Self {
        CareError::Invalid(InvalidValue::new("file", e.to_string()))
    }
}
