//! Capabilities for tests that call the care functions directly, without the authorizer:
//! the tests that prove row-level security holds on its own (isolation, sharing, erasure,
//! keyring). The authorizer's own decisions are tested over HTTP, where the server asks it.
//! Built on `renrakucho-authz`'s `unchecked` feature, which no production crate enables.

use renrakucho_authz::{Authorized, Permission, Permitted};
use renrakucho_core::{PatientId, Profession};
use renrakucho_notebook::Author;
use renrakucho_registry::StaffActor;

/// `who` allowed `P` on `patient`, as if the authorizer had said so.
pub fn allowed<P: Permission>(who: StaffActor, patient: PatientId) -> Authorized<P> {
    Authorized::unchecked(who.staff, who.facility, patient)
}

/// `who` allowed `P` before a patient is chosen, as if the authorizer had said so.
pub fn permitted<P: Permission>(who: StaffActor) -> Permitted<P> {
    Permitted::unchecked(who.staff, who.facility)
}

/// A person who writes in notebooks, as the care team sees them.
#[derive(Debug, Clone)]
pub struct Writer {
    pub actor: StaffActor,
    pub name: String,
    pub profession: Profession,
    pub facility_admin: bool,
}

impl Writer {
    /// The writer as the author of `P` on `patient`.
    pub fn on<P: Permission>(&self, patient: PatientId) -> Author<P> {
        Author::new(
            allowed(self.actor, patient),
            self.name.clone(),
            self.profession,
            self.facility_admin,
        )
    }
}
