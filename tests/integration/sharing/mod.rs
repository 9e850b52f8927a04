//! Consent-gated sharing, both layers. For every role × relation of the facility to the patient
//! × consent state × action, Casbin's decision and what the database lets the runtime role do
//! must both match the tables written out here; then the flows (consent withdrawn, members
//! joining, leaving and removed, several server processes) and the database's own guards.
//!
//! Shared here: the places (a facility with its administrator), the consent form, acting as a
//! facility's staff member, and waiting for the running server's authorizer to follow the
//! database; the rules written out, the database's probes, the agreement matrix, the flows and
//! the guards each in a file beside it.

mod key_guards;
mod matrix;
mod membership_guards;
mod probes;
mod rules;
mod server_processes;
mod withdrawal;

use renrakucho_authz::{Action, Role};
use renrakucho_core::{FacilityKind, PatientId, Profession, StaffRole};
use renrakucho_registry::{
    accept_invitation, invite, leave, record_consent, withdraw_consent, ConsentForm, ConsentScope,
    Signer, StaffActor,
};
use renrakucho_store::audit::Origin;
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::PgConnection;

use crate::support::superuser;

struct Place {
    facility: Facility,
    admin: StaffAccount,
}

fn actor(staff: &StaffAccount) -> StaffActor {
    StaffActor {
        staff: staff.id,
        facility: staff.facility_id,
    }
}

async fn place(app: &TestApp, code: &str, kind: FacilityKind) -> Place {
    let facility = app.seed_facility(code, kind).await;
    let admin = app
        .seed_staff(
            &facility,
            "admin",
            StaffRole::FacilityAdmin,
            Profession::Doctor,
        )
        .await;
    Place { facility, admin }
}

fn form(signer: Signer) -> ConsentForm {
    ConsentForm {
        signer,
        signed_on: time::macros::date!(2026 - 11 - 01),
        scope: ConsentScope::standard(),
    }
}

/// Waits (bounded) until the running server's authorizer has applied the announced changes.
async fn settled(app: &TestApp, facility: &Facility, patient: PatientId, expected: bool) {
    let everyone = Role::all();
    crate::support::wait_until("the authorizer following the database", || async {
        app.authz
            .allowed(&everyone, facility.id, patient, Action::PatientRead)
            .await
            .unwrap()
            == expected
    })
    .await;
}
