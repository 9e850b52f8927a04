//! Authorization on patient data, the application's half of the two layers (row-level
//! security is the other): may this person, in this facility, do this to this patient?
//!
//! What each role may do, and through which relation of its facility to the patient, is
//! `policies/policy.csv`; the model is `policies/model.conf`. The relations themselves
//! (`g, facility, relation, patient`) are a copy of the database's `patient_access` table,
//! which the row-level security policies read too: the server loads it at start and replaces
//! one patient's links whenever any server process announces a change. Emergency links carry
//! their expiry and stop counting at that instant, without waiting for anyone to remove them.

mod capability;

pub use capability::{may, Asker, Authorized, Decision, Needs, Permission, Permitted};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, StringAdapter};
use renrakucho_core::{FacilityId, PatientId, Profession};
use time::OffsetDateTime;
use tokio::sync::RwLock;

const MODEL: &str = include_str!("../../../policies/model.conf");
const POLICY: &str = include_str!("../../../policies/policy.csv");

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

/// A relation of a facility to a patient (see `policies/model.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    Registering,
    Member,
    Invited,
    Sharing,
    Consented,
    Emergency,
    Support,
    /// An active facility of the care team while the consent is not withdrawn: may record one.
    Collecting,
    /// An active facility of the care team while the consent is withdrawn (renewal is due).
    Withdrawn,
}

impl Relation {
    pub const ALL: &'static [Relation] = &[
        Relation::Registering,
        Relation::Member,
        Relation::Invited,
        Relation::Sharing,
        Relation::Consented,
        Relation::Emergency,
        Relation::Support,
        Relation::Collecting,
        Relation::Withdrawn,
    ];

    /// The spelling in the policy file and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Registering => "registering",
            Relation::Member => "member",
            Relation::Invited => "invited",
            Relation::Sharing => "sharing",
            Relation::Consented => "consented",
            Relation::Emergency => "emergency",
            Relation::Support => "support",
            Relation::Collecting => "collecting",
            Relation::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// One relation of one facility to a patient; emergency links carry their expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub facility: FacilityId,
    pub relation: Relation,
    pub expires_at: Option<OffsetDateTime>,
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

fn rule(patient: PatientId, link: &Link) -> Vec<String> {
    vec![
        facility_key(link.facility),
        link.relation.as_str().to_string(),
        patient_key(patient),
    ]
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Where the authorizer reads the time, by which emergency links run out: the system clock, or
/// (in tests) a clock of the test's own, so that an expiry is seen without waiting for it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// `OffsetDateTime::now_utc`.
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    fn now_millis(&self) -> i64 {
        millis((self.0)())
    }
}

/// When emergency links run out: the schedule, and the current expiry of each link (a link
/// renewed later keeps its new expiry when the old instant passes).
#[derive(Default)]
struct Expiries {
    schedule: BTreeMap<i64, Vec<(FacilityId, PatientId)>>,
    current: HashMap<(FacilityId, PatientId), i64>,
}

/// The enforcer of one server process.
pub struct Authorizer {
    enforcer: RwLock<Enforcer>,
    expiries: Mutex<Expiries>,
    /// The earliest scheduled expiry in milliseconds (i64::MAX when none): checked on every
    /// decision without a lock.
    next_expiry: AtomicI64,
    clock: Clock,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// The model and role permissions from `policies/`, with no relations yet.
    pub async fn new() -> Result<Self, AuthzError> {
        Self::with_clock(Clock::system()).await
    }

    /// Like [`Authorizer::new`], reading the time from `clock`.
    pub async fn with_clock(clock: Clock) -> Result<Self, AuthzError> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, StringAdapter::new(POLICY)).await?;
        // The relations live in PostgreSQL; the enforcer holds a copy and never writes back.
        enforcer.enable_auto_save(false);
        Ok(Self {
            enforcer: RwLock::new(enforcer),
            expiries: Mutex::new(Expiries::default()),
            next_expiry: AtomicI64::new(i64::MAX),
            clock,
        })
    }

    /// May a person holding `roles`, in `facility`, do `action` to `patient`? Any one role
    /// allowing is enough.
    pub async fn allowed(
        &self,
        roles: &[Role],
        facility: FacilityId,
        patient: PatientId,
        action: Action,
    ) -> Result<bool, AuthzError> {
        if self.clock.now_millis() >= self.next_expiry.load(Ordering::Acquire) {
            self.drop_expired().await?;
        }
        let facility = facility_key(facility);
        let patient = patient_key(patient);
        let enforcer = self.enforcer.read().await;
        for role in roles {
            if enforcer.enforce((
                role.as_str(),
                facility.as_str(),
                patient.as_str(),
                action.as_str(),
            ))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The capability for `P` on `patient`, or the first action the person lacks. The only
    /// way to obtain an [`Authorized`].
    pub async fn authorize<P: Permission>(
        &self,
        asker: &Asker<'_>,
        patient: PatientId,
    ) -> Result<Decision<Authorized<P>>, AuthzError> {
        let allowed = |action| self.allowed(asker.roles, asker.facility, patient, action);
        let refused = match P::NEEDS {
            Needs::One(action) => (!allowed(action).await?).then_some(action),
            Needs::AnyOf(actions) => {
                let mut any = false;
                for action in actions {
                    if allowed(*action).await? {
                        any = true;
                        break;
                    }
                }
                (!any).then(|| actions[actions.len() - 1])
            }
            Needs::AllOf(actions) => {
                let mut lacking = None;
                for action in actions {
                    if !allowed(*action).await? {
                        lacking = Some(*action);
                        break;
                    }
                }
                lacking
            }
        };
        Ok(match refused {
            None => Decision::Allowed(Authorized::new(asker, patient)),
            Some(action) => Decision::Refused(action),
        })
    }

    /// The capability for `P` through some relation, before a patient is chosen (registering
    /// one, asking for emergency access, listing the facility's patients); `None` when none of
    /// the person's roles ever allows it.
    pub async fn permit<P: Permission>(&self, asker: &Asker<'_>) -> Option<Permitted<P>> {
        let permitted = match P::NEEDS {
            Needs::One(action) => self.roles_may(asker.roles, action).await,
            Needs::AnyOf(actions) => {
                let mut any = false;
                for action in actions {
                    any = any || self.roles_may(asker.roles, *action).await;
                }
                any
            }
            Needs::AllOf(actions) => {
                let mut all = true;
                for action in actions {
                    all = all && self.roles_may(asker.roles, *action).await;
                }
                all
            }
        };
        permitted.then(|| Permitted::new(asker))
    }

    /// Whether any of `roles` may do `action` through some relation (to offer an action before
    /// a patient is chosen, or to register one).
    pub async fn roles_may(&self, roles: &[Role], action: Action) -> bool {
        let enforcer = self.enforcer.read().await;
        roles.iter().any(|role| {
            !enforcer
                .get_filtered_policy(
                    0,
                    vec![role.as_str().to_string(), action.as_str().to_string()],
                )
                .is_empty()
        })
    }

    /// Loads many patients' links at once (at start, or after a lost connection, from the
    /// database), replacing what was known about those patients.
    pub async fn load(
        &self,
        links: impl IntoIterator<Item = (PatientId, Link)>,
    ) -> Result<(), AuthzError> {
        let mut by_patient: HashMap<PatientId, Vec<Link>> = HashMap::new();
        for (patient, link) in links {
            by_patient.entry(patient).or_default().push(link);
        }
        let mut enforcer = self.enforcer.write().await;
        let mut rules = Vec::new();
        for (patient, links) in &by_patient {
            enforcer
                .remove_filtered_grouping_policy(2, vec![patient_key(*patient)])
                .await?;
            rules.extend(self.current(*patient, links).map(|l| rule(*patient, l)));
        }
        if !rules.is_empty() {
            enforcer.add_grouping_policies(rules).await?;
        }
        Ok(())
    }

    /// Replaces everything known about `patient` (after a change announced by any server
    /// process). An empty list removes the patient (erased, or no longer visible to anyone).
    pub async fn replace_patient(
        &self,
        patient: PatientId,
        links: &[Link],
    ) -> Result<(), AuthzError> {
        let rules: Vec<Vec<String>> = self
            .current(patient, links)
            .map(|l| rule(patient, l))
            .collect();
        let mut enforcer = self.enforcer.write().await;
        enforcer
            .remove_filtered_grouping_policy(2, vec![patient_key(patient)])
            .await?;
        if !rules.is_empty() {
            enforcer.add_grouping_policies(rules).await?;
        }
        Ok(())
    }

    /// The links still in force, scheduling the expiry of emergency ones.
    fn current<'a>(
        &'a self,
        patient: PatientId,
        links: &'a [Link],
    ) -> impl Iterator<Item = &'a Link> + 'a {
        let now = self.clock.now_millis();
        let mut expiries = self.expiries.lock().expect("expiry schedule lock");
        expiries.current.retain(|(_, p), _| *p != patient);
        let mut live = Vec::with_capacity(links.len());
        for link in links {
            match link.expires_at.map(millis) {
                Some(at) if at <= now => continue,
                Some(at) => {
                    expiries.current.insert((link.facility, patient), at);
                    expiries
                        .schedule
                        .entry(at)
                        .or_default()
                        .push((link.facility, patient));
                }
                None => {}
            }
            live.push(link);
        }
        let next = expiries.schedule.keys().next().copied().unwrap_or(i64::MAX);
        self.next_expiry.store(next, Ordering::Release);
        live.into_iter()
    }

    /// Removes the emergency links whose time has come.
    async fn drop_expired(&self) -> Result<(), AuthzError> {
        let now = self.clock.now_millis();
        let due: Vec<(FacilityId, PatientId)> = {
            let mut expiries = self.expiries.lock().expect("expiry schedule lock");
            let later = expiries.schedule.split_off(&(now + 1));
            let due_now = std::mem::replace(&mut expiries.schedule, later);
            let mut due = Vec::new();
            for (_, pairs) in due_now {
                for pair in pairs {
                    if expiries.current.get(&pair).is_some_and(|at| *at <= now) {
                        expiries.current.remove(&pair);
                        due.push(pair);
                    }
                }
            }
            let next = expiries.schedule.keys().next().copied().unwrap_or(i64::MAX);
            self.next_expiry.store(next, Ordering::Release);
            due
        };
        if due.is_empty() {
            return Ok(());
        }
        let mut enforcer = self.enforcer.write().await;
        for (facility, patient) in due {
            enforcer
                .remove_grouping_policy(vec![
                    facility_key(facility),
                    Relation::Emergency.as_str().to_string(),
                    patient_key(patient),
                ])
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(facility: FacilityId, relation: Relation) -> Link {
        Link {
            facility,
            relation,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn decisions_follow_the_policy_file_and_the_relations() {
        let authz = Authorizer::new().await.unwrap();
        let (clinic, pharmacy) = (FacilityId::new(), FacilityId::new());
        let patient = PatientId::new();
        let registering = [
            link(clinic, Relation::Registering),
            link(clinic, Relation::Sharing),
        ];
        authz.replace_patient(patient, &registering).await.unwrap();
        let doctor = [Role::Profession(Profession::Doctor)];
        let clerk = [Role::Profession(Profession::Clerk)];
        let pharmacist = [Role::Profession(Profession::Pharmacist)];

        assert!(authz
            .allowed(&doctor, clinic, patient, Action::NotebookWrite)
            .await
            .unwrap());
        assert!(!authz
            .allowed(&clerk, clinic, patient, Action::NotebookRead)
            .await
            .unwrap());
        assert!(!authz
            .allowed(&doctor, pharmacy, patient, Action::NotebookRead)
            .await
            .unwrap());

        // The pharmacy joins and consent is on file.
        let mut team = registering.to_vec();
        team.extend([
            link(pharmacy, Relation::Member),
            link(pharmacy, Relation::Sharing),
        ]);
        authz.replace_patient(patient, &team).await.unwrap();
        assert!(authz
            .allowed(&pharmacist, pharmacy, patient, Action::NotebookRead)
            .await
            .unwrap());
        assert!(!authz
            .allowed(&pharmacist, pharmacy, patient, Action::ConsentRecord)
            .await
            .unwrap());
        // Correcting the registration is for the registering facility.
        assert!(!authz
            .allowed(&doctor, pharmacy, patient, Action::PatientUpdate)
            .await
            .unwrap());
        assert!(authz
            .allowed(&doctor, clinic, patient, Action::PatientUpdate)
            .await
            .unwrap());

        authz.replace_patient(patient, &registering).await.unwrap();
        assert!(!authz
            .allowed(&pharmacist, pharmacy, patient, Action::NotebookRead)
            .await
            .unwrap());
        assert!(authz
            .allowed(&doctor, clinic, patient, Action::NotebookRead)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn capabilities_are_made_only_for_what_the_policies_allow() {
        let authz = Authorizer::new().await.unwrap();
        let (clinic, other) = (FacilityId::new(), FacilityId::new());
        let patient = PatientId::new();
        let links = [
            link(clinic, Relation::Registering),
            link(clinic, Relation::Sharing),
        ];
        authz.replace_patient(patient, &links).await.unwrap();
        let (staff, doctor, clerk) = (
            renrakucho_core::StaffId::new(),
            [Role::Profession(Profession::Doctor)],
            [Role::Profession(Profession::Clerk)],
        );
        let asker = |facility, roles: &'static [Role]| Asker {
            staff,
            facility,
            roles,
        };
        let doctor: &'static [Role] = Box::leak(Box::new(doctor));
        let clerk: &'static [Role] = Box::leak(Box::new(clerk));

        match authz
            .authorize::<may::NotebookRead>(&asker(clinic, doctor), patient)
            .await
            .unwrap()
        {
            Decision::Allowed(cap) => {
                assert_eq!(
                    (cap.staff(), cap.facility(), cap.patient()),
                    (staff, clinic, patient)
                );
            }
            Decision::Refused(a) => panic!("the doctor was refused {a:?}"),
        }
        // The clerk may not read the notebook; asking for support needs reading first, and
        // the refusal names what was lacking.
        assert!(matches!(
            authz
                .authorize::<may::NotebookRead>(&asker(clinic, clerk), patient)
                .await
                .unwrap(),
            Decision::Refused(Action::NotebookRead)
        ));
        assert!(matches!(
            authz
                .authorize::<may::SupportRequest>(&asker(clinic, clerk), patient)
                .await
                .unwrap(),
            Decision::Refused(Action::NotebookRead)
        ));
        // Either of two actions: a refusal names the last, the one asked about.
        assert!(matches!(
            authz
                .authorize::<may::ConsentRecord>(&asker(other, doctor), patient)
                .await
                .unwrap(),
            Decision::Refused(Action::ConsentRenew)
        ));
        // Another facility gets nothing on this patient.
        assert!(matches!(
            authz
                .authorize::<may::PatientRead>(&asker(other, doctor), patient)
                .await
                .unwrap(),
            Decision::Refused(Action::PatientRead)
        ));
        // Before a patient is chosen: what some relation allows the role.
        assert!(authz
            .permit::<may::PatientRegister>(&asker(clinic, clerk))
            .await
            .is_some());
        assert!(authz
            .permit::<may::NotebookRead>(&asker(clinic, clerk))
            .await
            .is_none());
        assert!(authz
            .permit::<may::NotebookRead>(&asker(clinic, doctor))
            .await
            .is_some());
    }

    #[tokio::test]
    async fn an_emergency_link_reads_only_and_ends_by_itself() {
        // The authorizer's clock stands still until the test moves it.
        let now = Arc::new(Mutex::new(OffsetDateTime::now_utc()));
        let clock = {
            let now = now.clone();
            Clock::new(move || *now.lock().unwrap())
        };
        let authz = Authorizer::with_clock(clock).await.unwrap();
        let (hospital, patient) = (FacilityId::new(), PatientId::new());
        let soon = *now.lock().unwrap() + time::Duration::minutes(30);
        let grant = [Link {
            facility: hospital,
            relation: Relation::Emergency,
            expires_at: Some(soon),
        }];
        authz.replace_patient(patient, &grant).await.unwrap();
        let doctor = [Role::Profession(Profession::Doctor)];
        let may = |action| authz.allowed(&doctor, hospital, patient, action);
        assert!(may(Action::NotebookRead).await.unwrap());
        assert!(may(Action::PatientRead).await.unwrap());
        assert!(!may(Action::NotebookWrite).await.unwrap());
        assert!(!may(Action::ConsentRead).await.unwrap());
        *now.lock().unwrap() = soon - time::Duration::milliseconds(1);
        assert!(may(Action::NotebookRead).await.unwrap(), "until its expiry");
        *now.lock().unwrap() = soon;
        assert!(!may(Action::NotebookRead).await.unwrap());
        assert!(!may(Action::PatientRead).await.unwrap());

        // A link that has already expired is never loaded.
        let past = [Link {
            facility: hospital,
            relation: Relation::Emergency,
            expires_at: Some(*now.lock().unwrap() - time::Duration::seconds(1)),
        }];
        authz.load([(patient, past[0])]).await.unwrap();
        assert!(!may(Action::NotebookRead).await.unwrap());
    }

    #[tokio::test]
    async fn every_action_is_granted_to_some_role_and_other_to_none() {
        let authz = Authorizer::new().await.unwrap();
        for action in Action::ALL {
            assert!(
                authz.roles_may(&Role::all(), *action).await,
                "{} is granted to no role",
                action.as_str()
            );
            assert!(
                !authz
                    .roles_may(&[Role::Profession(Profession::Other)], *action)
                    .await
            );
        }
        // Every line names a known role, action and relation.
        let enforcer = authz.enforcer.read().await;
        for line in enforcer.get_policy() {
            assert!(
                Role::all().iter().any(|r| r.as_str() == line[0]),
                "{line:?}"
            );
            assert!(
                Action::ALL.iter().any(|a| a.as_str() == line[1]),
                "{line:?}"
            );
            assert!(
                line[2] == "anyone" || Relation::parse(&line[2]).is_some(),
                "{line:?}"
            );
        }
    }
}
