//! Capabilities: values that prove the authorizer allowed an act. Only this crate makes them
//! (private fields, no public constructor), and every care function that reads or changes
//! patient data asks for the one its act needs: a handler that forgot to ask the authorizer,
//! or asked about another act or another patient, does not compile (ADR 0020).
//!
//! ```compile_fail
//! use renrakucho_authz::{may, Authorized};
//! use renrakucho_core::{FacilityId, PatientId, StaffId};
//! // Private fields: a capability cannot be written out by hand.
//! fn forge(staff: StaffId, facility: FacilityId, patient: PatientId) -> Authorized<may::NotebookRead> {
//!     Authorized { staff, facility, patient, act: std::marker::PhantomData }
//! }
//! ```
//!
//! ```compile_fail
//! use renrakucho_authz::{may, Authorized};
//! // A capability for one act is not one for another.
//! fn widen(read: Authorized<may::NotebookRead>) -> Authorized<may::NotebookWrite> {
//!     read
//! }
//! ```

use std::marker::PhantomData;

use renrakucho_core::{FacilityId, PatientId, StaffId};

use crate::{Action, Role};

mod sealed {
    pub trait Sealed {}
}

/// What an act needs from the policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// This one action.
    One(Action),
    /// Any one of these actions; a refusal names the last (the one that is asked about).
    AnyOf(&'static [Action]),
    /// Every one of these actions (asking for support: reading the notebook and asking).
    AllOf(&'static [Action]),
}

/// An act the policies allow or refuse; the marker types are in [`may`].
pub trait Permission: sealed::Sealed + Send + Sync + 'static {
    /// What the authorizer is asked.
    const NEEDS: Needs;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $name:ident => $needs:expr;)*) => {
        /// The acts, named as the capabilities read: `Authorized<may::NotebookRead>`.
        pub mod may {
            #[allow(unused_imports)]
            use crate::Action::*;
            $(
                $(#[$doc])*
                #[derive(Debug, Clone, Copy, PartialEq, Eq)]
                pub enum $name {}
                impl super::sealed::Sealed for $name {}
                impl super::Permission for $name {
                    const NEEDS: super::Needs = $needs;
                }
            )*
        }
    };
}

permissions! {
    /// Register a new patient (before there is one: [`Permitted`](super::Permitted)).
    PatientRegister => super::Needs::One(PatientRegister);
    /// Read a patient's registration, or list the facility's patients.
    PatientRead => super::Needs::One(PatientRead);
    /// Change a patient's registration.
    PatientUpdate => super::Needs::One(PatientUpdate);
    /// Reissue a patient's emergency card.
    PatientCardReissue => super::Needs::One(PatientCardReissue);
    /// Read a patient's consents and their scans.
    ConsentRead => super::Needs::One(ConsentRead);
    /// Record a consent: a first one, or — while the consent is withdrawn — a renewal
    /// (ADR 0014).
    ConsentRecord => super::Needs::AnyOf(&[ConsentRecord, ConsentRenew]);
    /// Withdraw a patient's consent.
    ConsentWithdraw => super::Needs::One(ConsentWithdraw);
    /// See a patient's care team.
    CareTeamRead => super::Needs::One(CareTeamRead);
    /// Invite a facility into the care team.
    CareTeamInvite => super::Needs::One(CareTeamInvite);
    /// Answer the facility's invitation (accept or decline).
    CareTeamAccept => super::Needs::One(CareTeamAccept);
    /// Take the facility out of the care team.
    CareTeamLeave => super::Needs::One(CareTeamLeave);
    /// Remove another facility from the care team.
    CareTeamRemove => super::Needs::One(CareTeamRemove);
    /// Read the notebook (timeline, entries, attachments, search, export, read receipts).
    NotebookRead => super::Needs::One(NotebookRead);
    /// Open a file of the notebook: the care team reading the notebook, or a facility asked
    /// for support reading the files its request names (row-level security decides which).
    AttachmentRead => super::Needs::AnyOf(&[SupportAnswer, NotebookRead]);
    /// Write in the notebook (post, edit, withdraw, attach).
    NotebookWrite => super::Needs::One(NotebookWrite);
    /// Record the patient's request to be deleted.
    DeletionRecord => super::Needs::One(DeletionRecord);
    /// Open emergency (break-glass) access (before the patient is identified:
    /// [`Permitted`](super::Permitted)).
    EmergencyOpen => super::Needs::One(EmergencyOpen);
    /// Ask another facility for support on a patient: reading the notebook and asking.
    SupportRequest => super::Needs::AllOf(&[NotebookRead, SupportRequest]);
    /// Answer a support request the facility was asked.
    SupportAnswer => super::Needs::One(SupportAnswer);
}

/// Who asks: a staff member of a facility with their roles (from their session). A claim,
/// not a proof; the authorizer turns it into a capability or refuses.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub staff: StaffId,
    pub facility: FacilityId,
    pub roles: &'a [Role],
}

/// Proof that the authorizer allowed `P` to this staff member, in their facility, on this
/// patient, when it was made. Made only by [`Authorizer::authorize`](crate::Authorizer::authorize).
pub struct Authorized<P: Permission> {
    staff: StaffId,
    facility: FacilityId,
    patient: PatientId,
    act: PhantomData<fn() -> P>,
}

/// Proof that the authorizer allows `P` to this staff member through some relation: for acts
/// before a patient is chosen (registering one, asking for emergency access, listing the
/// facility's patients). Made only by [`Authorizer::permit`](crate::Authorizer::permit).
pub struct Permitted<P: Permission> {
    staff: StaffId,
    facility: FacilityId,
    act: PhantomData<fn() -> P>,
}

impl<P: Permission> Authorized<P> {
    pub(crate) fn new(asker: &Asker<'_>, patient: PatientId) -> Self {
        Self {
            staff: asker.staff,
            facility: asker.facility,
            patient,
            act: PhantomData,
        }
    }

    /// The staff member allowed.
    pub fn staff(&self) -> StaffId {
        self.staff
    }

    /// Their facility.
    pub fn facility(&self) -> FacilityId {
        self.facility
    }

    /// The patient the act is allowed on.
    pub fn patient(&self) -> PatientId {
        self.patient
    }

    /// A capability made without asking the authorizer, for tests of the other layer
    /// (row-level security must hold on its own) and benchmarks. Only with the crate's
    /// `unchecked` feature, which no production crate enables (a test of the server's
    /// sources checks that none names it).
    #[cfg(feature = "unchecked")]
    pub fn unchecked(staff: StaffId, facility: FacilityId, patient: PatientId) -> Self {
        Self {
            staff,
            facility,
            patient,
            act: PhantomData,
        }
    }
}

impl<P: Permission> Permitted<P> {
    pub(crate) fn new(asker: &Asker<'_>) -> Self {
        Self {
            staff: asker.staff,
            facility: asker.facility,
            act: PhantomData,
        }
    }

    /// The staff member allowed.
    pub fn staff(&self) -> StaffId {
        self.staff
    }

    /// Their facility.
    pub fn facility(&self) -> FacilityId {
        self.facility
    }

    /// See [`Authorized::unchecked`].
    #[cfg(feature = "unchecked")]
    pub fn unchecked(staff: StaffId, facility: FacilityId) -> Self {
        Self {
            staff,
            facility,
            act: PhantomData,
        }
    }
}

// Cloning a proof grants nothing new; Debug shows IDs only (no patient data here).
impl<P: Permission> Clone for Authorized<P> {
    fn clone(&self) -> Self {
        Self { ..*self }
    }
}

impl<P: Permission> Clone for Permitted<P> {
    fn clone(&self) -> Self {
        Self { ..*self }
    }
}

impl<P: Permission> std::fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("act", &std::any::type_name::<P>())
            .field("staff", &self.staff)
            .field("facility", &self.facility)
            .field("patient", &self.patient)
            .finish()
    }
}

impl<P: Permission> std::fmt::Debug for Permitted<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permitted")
            .field("act", &std::any::type_name::<P>())
            .field("staff", &self.staff)
            .field("facility", &self.facility)
            .finish()
    }
}

/// The answer of the authorizer to a request for a capability.
#[derive(Debug)]
pub enum Decision<C> {
    Allowed(C),
    /// Refused; the action named is the first one the person lacked (for the audit record).
    Refused(Action),
}
