//! Authorization on patient data, the application's half of the two layers (row-level
//! security is the other): may this role, in this facility, do this to this patient?
//!
//! What each role may do is `policies/policy.csv`; the model is `policies/model.conf`. Which
//! facility may see which patient is a grouping relation (`g, facility, patient`) that the
//! server keeps current from the database, link by link, rather than reloading it.

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, StringAdapter};
use renrakucho_core::{FacilityId, PatientId, Profession};
use tokio::sync::RwLock;

const MODEL: &str = include_str!("../../../policies/model.conf");
const POLICY: &str = include_str!("../../../policies/policy.csv");

/// Who asks: a profession, or the facility's administrator for administrative acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Profession(Profession),
    FacilityAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Profession(p) => p.as_str(),
            Role::FacilityAdmin => "facility_admin",
        }
    }
}

/// What is asked for (see `policies/policy.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    PatientRead,
    PatientRegister,
    PatientUpdate,
    ConsentRead,
    ConsentRecord,
    ConsentWithdraw,
    CareTeamRead,
    CareTeamInvite,
    CareTeamAccept,
    CareTeamLeave,
    CareTeamRemove,
    NotebookRead,
    NotebookWrite,
    DeletionRecord,
    EmergencyOpen,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::PatientRead,
        Action::PatientRegister,
        Action::PatientUpdate,
        Action::ConsentRead,
        Action::ConsentRecord,
        Action::ConsentWithdraw,
        Action::CareTeamRead,
        Action::CareTeamInvite,
        Action::CareTeamAccept,
        Action::CareTeamLeave,
        Action::CareTeamRemove,
        Action::NotebookRead,
        Action::NotebookWrite,
        Action::DeletionRecord,
        Action::EmergencyOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::PatientRead => "patient.read",
            Action::PatientRegister => "patient.register",
            Action::PatientUpdate => "patient.update",
            Action::ConsentRead => "consent.read",
            Action::ConsentRecord => "consent.record",
            Action::ConsentWithdraw => "consent.withdraw",
            Action::CareTeamRead => "care_team.read",
            Action::CareTeamInvite => "care_team.invite",
            Action::CareTeamAccept => "care_team.accept",
            Action::CareTeamLeave => "care_team.leave",
            Action::CareTeamRemove => "care_team.remove",
            Action::NotebookRead => "notebook.read",
            Action::NotebookWrite => "notebook.write",
            Action::DeletionRecord => "deletion.record",
            Action::EmergencyOpen => "emergency.open",
        }
    }
}

/// Authorization failures of the machinery itself (a decision of "no" is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("authorization: {0}")]
    Casbin(#[from] casbin::Error),
}

fn facility_key(f: FacilityId) -> String {
    format!("facility:{f}")
}

fn patient_key(p: PatientId) -> String {
    format!("patient:{p}")
}

/// A facility → patient link: `g, facility, care_team, patient` (the patient is the domain).
fn link(facility: FacilityId, patient: PatientId) -> Vec<String> {
    vec![
        facility_key(facility),
        CARE_TEAM.to_string(),
        patient_key(patient),
    ]
}

const CARE_TEAM: &str = "care_team";

/// The enforcer of one server process.
pub struct Authorizer {
    enforcer: RwLock<Enforcer>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// The model and role permissions from `policies/`, with no facility → patient links yet.
    pub async fn new() -> Result<Self, AuthzError> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, StringAdapter::new(POLICY)).await?;
        // The links live in PostgreSQL; the enforcer holds a copy and never writes back.
        enforcer.enable_auto_save(false);
        Ok(Self {
            enforcer: RwLock::new(enforcer),
        })
    }

    /// May `role` in `facility` do `action` to `patient`?
    pub async fn allowed(
        &self,
        role: Role,
        facility: FacilityId,
        patient: PatientId,
        action: Action,
    ) -> Result<bool, AuthzError> {
        let enforcer = self.enforcer.read().await;
        Ok(enforcer.enforce((
            role.as_str(),
            facility_key(facility).as_str(),
            patient_key(patient).as_str(),
            action.as_str(),
        ))?)
    }

    /// Whether the role may do the action at all, to any patient its facility may see (for
    /// acts before a patient exists, such as registering one).
    pub async fn role_may(&self, role: Role, action: Action) -> bool {
        let enforcer = self.enforcer.read().await;
        enforcer.has_policy(vec![role.as_str().to_string(), action.as_str().to_string()])
    }

    /// Loads many facility → patient links at once (at start, from the database).
    pub async fn grant_all(
        &self,
        links: impl IntoIterator<Item = (FacilityId, PatientId)>,
    ) -> Result<(), AuthzError> {
        let rules: Vec<Vec<String>> = links.into_iter().map(|(f, p)| link(f, p)).collect();
        if rules.is_empty() {
            return Ok(());
        }
        self.enforcer
            .write()
            .await
            .add_grouping_policies(rules)
            .await?;
        Ok(())
    }

    /// Replaces everything known about who may see `patient` (after a change announced by any
    /// server process).
    pub async fn replace_patient(
        &self,
        patient: PatientId,
        facilities: impl IntoIterator<Item = FacilityId>,
    ) -> Result<(), AuthzError> {
        let rules: Vec<Vec<String>> = facilities.into_iter().map(|f| link(f, patient)).collect();
        let mut enforcer = self.enforcer.write().await;
        enforcer
            .remove_filtered_grouping_policy(2, vec![patient_key(patient)])
            .await?;
        if !rules.is_empty() {
            enforcer.add_grouping_policies(rules).await?;
        }
        Ok(())
    }

    /// The facility may now see the patient (registration, an accepted invitation with
    /// consent on file).
    pub async fn grant(&self, facility: FacilityId, patient: PatientId) -> Result<(), AuthzError> {
        self.enforcer
            .write()
            .await
            .add_grouping_policy(link(facility, patient))
            .await?;
        Ok(())
    }

    /// The facility may no longer see the patient (it left or was removed, consent withdrawn).
    pub async fn revoke(&self, facility: FacilityId, patient: PatientId) -> Result<(), AuthzError> {
        self.enforcer
            .write()
            .await
            .remove_grouping_policy(link(facility, patient))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn decisions_follow_the_policy_file_and_the_relation() {
        let authz = Authorizer::new().await.unwrap();
        let (clinic, pharmacy) = (FacilityId::new(), FacilityId::new());
        let patient = PatientId::new();
        authz.grant(clinic, patient).await.unwrap();
        let doctor = Role::Profession(Profession::Doctor);
        let clerk = Role::Profession(Profession::Clerk);

        assert!(authz
            .allowed(doctor, clinic, patient, Action::NotebookWrite)
            .await
            .unwrap());
        assert!(!authz
            .allowed(clerk, clinic, patient, Action::NotebookRead)
            .await
            .unwrap());
        assert!(!authz
            .allowed(doctor, pharmacy, patient, Action::NotebookRead)
            .await
            .unwrap());

        authz.grant(pharmacy, patient).await.unwrap();
        let pharmacist = Role::Profession(Profession::Pharmacist);
        assert!(authz
            .allowed(pharmacist, pharmacy, patient, Action::NotebookRead)
            .await
            .unwrap());
        assert!(!authz
            .allowed(pharmacist, pharmacy, patient, Action::ConsentRecord)
            .await
            .unwrap());

        authz.revoke(pharmacy, patient).await.unwrap();
        assert!(!authz
            .allowed(pharmacist, pharmacy, patient, Action::NotebookRead)
            .await
            .unwrap());
        assert!(authz
            .allowed(doctor, clinic, patient, Action::NotebookRead)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn every_action_is_in_the_policy_file_and_nobody_else_is() {
        let authz = Authorizer::new().await.unwrap();
        for action in Action::ALL {
            let someone = Profession::ALL
                .iter()
                .map(|p| Role::Profession(*p))
                .chain([Role::FacilityAdmin]);
            let mut granted = false;
            for role in someone {
                granted |= authz.role_may(role, *action).await;
            }
            assert!(granted, "{} is granted to no role", action.as_str());
        }
        // Profession::Other and the platform operator have no line at all.
        for action in Action::ALL {
            assert!(
                !authz
                    .role_may(Role::Profession(Profession::Other), *action)
                    .await
            );
        }
        let enforcer = authz.enforcer.read().await;
        assert!(enforcer
            .get_policy()
            .iter()
            .all(|p| p[0] != "platform_operator" && p[0] != "operator"));
    }
}
