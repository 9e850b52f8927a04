//! Who writes in the notebook: a staff member as the care team sees them, with the capability
//! for what they do on one patient.

use renrakucho_core::{PatientId, Profession};
use renrakucho_registry::{Authorized, StaffActor};

/// Who writes: the staff member, as the care team will see them, with the capability for
/// what they do (`P`) on one patient.
#[derive(Clone)]
pub struct Author<P: renrakucho_authz::Permission> {
    allowed: Authorized<P>,
    pub(crate) actor: StaffActor,
    pub(crate) name: String,
    pub(crate) profession: Profession,
    /// The facility's administrator may edit and withdraw its staff's entries.
    pub(crate) facility_admin: bool,
}

impl<P: renrakucho_authz::Permission> Author<P> {
    /// The person as an author, allowed `P` on the capability's patient.
    pub fn new(
        allowed: Authorized<P>,
        name: String,
        profession: Profession,
        facility_admin: bool,
    ) -> Self {
        Self {
            actor: StaffActor::from(&allowed),
            allowed,
            name,
            profession,
            facility_admin,
        }
    }

    /// The patient the author may act on.
    pub fn patient(&self) -> PatientId {
        self.allowed.patient()
    }

    /// The capability the author holds.
    pub fn allowed(&self) -> &Authorized<P> {
        &self.allowed
    }
}

// The author's name is shown to the care team, never printed in logs.
impl<P: renrakucho_authz::Permission> std::fmt::Debug for Author<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Author")
            .field("allowed", &self.allowed)
            .field("profession", &self.profession)
            .field("facility_admin", &self.facility_admin)
            .finish_non_exhaustive()
    }
}
