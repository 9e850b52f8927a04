//! Authorization on patient data, the application's half of the two layers (row-level
//! security is the other): may this person, in this facility, do this to this patient?
//!
//! What each role may do, and through which relation of its facility to the patient, is
//! `policies/policy.csv`; the model is `policies/model.conf`. The relations themselves
//! (`g(facility, relation, patient)` in the matcher, answered by the authorizer's relation
//! graph, which is the enforcer's role manager: ADR 0029) are a copy of the database's
//! `patient_access` table, which the row-level security policies read too: the server loads it
//! at start and replaces one patient's links whenever any server process announces a change.
//! Emergency links carry their expiry and stop counting at that instant, without waiting for
//! anyone to remove them.

mod authorizer;
mod capability;
mod clock;
mod relations;
mod roles;

pub use authorizer::{Authorizer, AuthzError};
pub use capability::{may, Asker, Authorized, Decision, Needs, Permission, Permitted};
pub use clock::Clock;
pub use relations::{Link, Relation};
pub use roles::{Action, Role};
