//! The enforcer of one server process: the policies from `policies/`, the decisions, and the
//! capabilities made from them. Keeping its copy of the relations is in [`links`], the copy
//! itself (Casbin's role manager) in [`graph`].

mod graph;
mod links;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, StringAdapter};
use renrakucho_core::{FacilityId, PatientId};

use crate::{Action, Asker, Authorized, Clock, Decision, Needs, Permission, Permitted, Role};
use graph::{facility_key, patient_key, RelationGraph};
use links::Expiries;

const MODEL: &str = include_str!("../../../policies/model.conf");
const POLICY: &str = include_str!("../../../policies/policy.csv");

/// Authorization failures of the machinery itself (a decision of "no" is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("authorization: {0}")]
    Casbin(#[from] casbin::Error),
}

/// The enforcer of one server process.
pub struct Authorizer {
    /// The model and the role permissions; never changed after start.
    enforcer: Enforcer,
    /// The relations, which the enforcer's role manager is: a change replaces one patient's
    /// entry under this lock, held for that moment only.
    relations: Arc<parking_lot::RwLock<RelationGraph>>,
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
        let relations = Arc::new(parking_lot::RwLock::new(RelationGraph::default()));
        enforcer.set_role_manager(relations.clone())?;
        Ok(Self {
            enforcer,
            relations,
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
        for role in roles {
            if self.enforcer.enforce((
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
        roles.iter().any(|role| {
            !self
                .enforcer
                .get_filtered_policy(
                    0,
                    vec![role.as_str().to_string(), action.as_str().to_string()],
                )
                .is_empty()
        })
    }
}
