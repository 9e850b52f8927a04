//! The care domain: patients (対象者) registered by a facility, their personal fields
//! encrypted with the patient's own key, found by name through the blind index. Every read and
//! change is audited in its own transaction. No HTTP here: handlers call these functions.

mod care_team;
mod patients;

pub use care_team::{
    accept_invitation, access_links, care_team_of, invite, leave, record_consent, remove_member,
    withdraw_consent, ConsentForm, Signer,
};
pub use patients::{find_patients, patient, register_patient, NewPatient, Patient, PatientSummary};

use renrakucho_core::{FacilityId, StaffId};
use renrakucho_keyring::KeyringError;
use renrakucho_store::StoreError;

/// Who acts: a staff member, in their facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffActor {
    pub staff: StaffId,
    pub facility: FacilityId,
}

/// What can go wrong in the care domain.
#[derive(Debug, thiserror::Error)]
pub enum CareError {
    /// No such patient, or not one this facility may see (never told apart).
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Store(StoreError),
    /// A stored record that does not parse (written by an incompatible version).
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

impl From<StoreError> for CareError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CareError::NotFound,
            e => CareError::Store(e),
        }
    }
}
