//! Who asks and what for: the roles a person holds, and the actions of the policy file.

use renrakucho_core::Profession;

/// A role a person holds: their profession, and where it applies the facility's
/// administration and the acceptance of invitations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Profession(Profession),
    FacilityAdmin,
    /// Staff the facility admin lets accept care-team invitations for the facility.
    CareTeamAcceptor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Profession(p) => p.as_str(),
            Role::FacilityAdmin => "facility_admin",
            Role::CareTeamAcceptor => "care_team_acceptor",
        }
    }

    /// Every role, for tests and documentation.
    pub fn all() -> Vec<Role> {
        Profession::ALL
            .iter()
            .map(|p| Role::Profession(*p))
            .chain([Role::FacilityAdmin, Role::CareTeamAcceptor])
            .collect()
    }
}

/// What is asked for (see `policies/policy.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    PatientRegister,
    PatientRead,
    PatientUpdate,
    PatientCardReissue,
    ConsentRead,
    ConsentRecord,
    ConsentRenew,
    ConsentWithdraw,
    ConsentChanges,
    CareTeamRead,
    CareTeamInvite,
    CareTeamAccept,
    CareTeamLeave,
    CareTeamRemove,
    NotebookRead,
    NotebookWrite,
    DeletionRecord,
    EmergencyOpen,
    SupportRequest,
    SupportAnswer,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::PatientRegister,
        Action::PatientRead,
        Action::PatientUpdate,
        Action::PatientCardReissue,
        Action::ConsentRead,
        Action::ConsentRecord,
        Action::ConsentRenew,
        Action::ConsentWithdraw,
        Action::ConsentChanges,
        Action::CareTeamRead,
        Action::CareTeamInvite,
        Action::CareTeamAccept,
        Action::CareTeamLeave,
        Action::CareTeamRemove,
        Action::NotebookRead,
        Action::NotebookWrite,
        Action::DeletionRecord,
        Action::EmergencyOpen,
        Action::SupportRequest,
        Action::SupportAnswer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::PatientRegister => "patient.register",
            Action::PatientRead => "patient.read",
            Action::PatientUpdate => "patient.update",
            Action::PatientCardReissue => "patient.card_reissue",
            Action::ConsentRead => "consent.read",
            Action::ConsentRecord => "consent.record",
            Action::ConsentRenew => "consent.renew",
            Action::ConsentWithdraw => "consent.withdraw",
            Action::ConsentChanges => "consent.changes",
            Action::CareTeamRead => "care_team.read",
            Action::CareTeamInvite => "care_team.invite",
            Action::CareTeamAccept => "care_team.accept",
            Action::CareTeamLeave => "care_team.leave",
            Action::CareTeamRemove => "care_team.remove",
            Action::NotebookRead => "notebook.read",
            Action::NotebookWrite => "notebook.write",
            Action::DeletionRecord => "deletion.record",
            Action::EmergencyOpen => "emergency.open",
            Action::SupportRequest => "support.request",
            Action::SupportAnswer => "support.answer",
        }
    }
}
