//! Authorization in the server: the authorizer (Casbin) loaded from the database's relation
//! rows at start and kept in step, one patient at a time, as any server process's changes are
//! announced on `renrakucho_access_changes`; and the one check every handler makes before it
//! touches patient data.

use std::sync::Arc;
use std::time::Duration;

use renrakucho_authz::{
    Action, Asker, Authorized, Authorizer, Decision, Link, Permission, Permitted, Relation, Role,
};
use renrakucho_core::{PatientId, StaffRole};
use renrakucho_identity::Principal;
use renrakucho_registry::StaffActor;
use renrakucho_store::announcements::{self, Announcements};
use renrakucho_store::care_team::AccessRow;
use renrakucho_store::Database;

use crate::error::ApiError;
use crate::session::SignedIn;
use crate::state::AppState;

fn link(row: &AccessRow) -> Option<Link> {
    let relation = Relation::parse(&row.relation)?;
    Some(Link {
        facility: row.facility,
        relation,
        expires_at: row.expires_at,
    })
}

/// An authorizer loaded with every current relation.
pub async fn load(db: &Database) -> Result<Arc<Authorizer>, anyhow::Error> {
    let authz = Authorizer::new().await?;
    reload(db, &authz).await?;
    Ok(Arc::new(authz))
}

async fn reload(db: &Database, authz: &Authorizer) -> Result<(), anyhow::Error> {
    let rows = renrakucho_registry::access_rows(db, None).await?;
    authz
        .load(rows.iter().filter_map(|r| Some((r.patient, link(r)?))))
        .await?;
    Ok(())
}

/// Reloads one patient's relations (an empty list when the patient was erased).
pub async fn refresh(
    db: &Database,
    authz: &Authorizer,
    patient: PatientId,
) -> Result<(), anyhow::Error> {
    let rows = renrakucho_registry::access_rows(db, Some(patient)).await?;
    let links: Vec<Link> = rows.iter().filter_map(link).collect();
    authz.replace_patient(patient, &links).await?;
    Ok(())
}

/// Follows announced changes until the task is stopped. After a lost connection it reloads
/// everything, since notifications sent meanwhile are gone.
pub async fn follow(db: Database, authz: Arc<Authorizer>) {
    loop {
        match Announcements::listen(&db, announcements::ACCESS_CHANGES).await {
            Ok(mut listener) => {
                // Changes made between the start-up load and LISTEN would otherwise be missed.
                if let Err(e) = reload(&db, &authz).await {
                    tracing::error!(error = %e, "reloading access failed");
                }
                loop {
                    match listener.recv().await {
                        Ok(payload) => match payload["patient"].as_str().unwrap_or("").parse() {
                            Ok(id) => {
                                if let Err(e) = refresh(&db, &authz, PatientId::from_uuid(id)).await
                                {
                                    tracing::error!(error = %e, "refreshing a patient's access failed");
                                }
                            }
                            Err(_) => tracing::warn!("ignoring a malformed access notification"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "access notifications interrupted");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for access changes"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The roles a signed-in staff member holds.
pub fn roles(signed_in: &SignedIn) -> Vec<Role> {
    let mut roles = Vec::with_capacity(3);
    if let Some(p) = signed_in.who.profession {
        roles.push(Role::Profession(p));
    }
    if signed_in.who.role == Some(StaffRole::FacilityAdmin) {
        roles.push(Role::FacilityAdmin);
    }
    if signed_in.who.may_accept_invitations {
        roles.push(Role::CareTeamAcceptor);
    }
    roles
}

/// The staff member acting, or 403 for a platform operator (who never touches patient data).
pub fn staff(signed_in: &SignedIn) -> Result<StaffActor, ApiError> {
    match signed_in.principal {
        Principal::Staff { id, facility } => Ok(StaffActor {
            staff: id,
            facility,
        }),
        Principal::Operator { .. } => Err(ApiError::forbidden(
            "運用者は患者情報を扱えません / platform operators have no access to patient data",
        )),
    }
}

/// The check before touching a patient's data: the staff member's roles must allow `P`
/// through their facility's relation to the patient; the answer is the capability the care
/// functions ask for. A facility that has nothing to do with the patient gets the same 404 as
/// for a patient that does not exist; one that sees the patient but whose person may not do
/// this gets 403.
pub async fn authorize<P: Permission>(
    state: &AppState,
    signed_in: &SignedIn,
    patient: PatientId,
) -> Result<Authorized<P>, ApiError> {
    let actor = staff(signed_in)?;
    let roles = roles(signed_in);
    let asker = Asker {
        staff: actor.staff,
        facility: actor.facility,
        roles: &roles,
    };
    let decision = state
        .authz
        .authorize::<P>(&asker, patient)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "authorization failed");
            ApiError::internal()
        })?;
    let action = match decision {
        Decision::Allowed(allowed) => return Ok(allowed),
        Decision::Refused(action) => action,
    };
    // Whether the facility knows of the patient: it sees them, or (for answering an
    // invitation only) it holds the invitation. An invited facility asking for the patient's
    // data gets the same 404 as anyone else: the invitation names the patient, nothing more.
    let everyone = Role::all();
    let sees = state
        .authz
        .allowed(&everyone, actor.facility, patient, Action::PatientRead)
        .await
        .unwrap_or(false)
        || (action == Action::CareTeamAccept
            && state
                .authz
                .allowed(&everyone, actor.facility, patient, Action::CareTeamAccept)
                .await
                .unwrap_or(false))
        // A care-team facility that lost sight of the patient with the consent still knows
        // them: a renewal it may not record is refused, not hidden.
        || (action == Action::ConsentRenew
            && state
                .authz
                .allowed(&everyone, actor.facility, patient, Action::ConsentChanges)
                .await
                .unwrap_or(false));
    tracing::info!(action = action.as_str(), "authorization denied");
    record_refusal(state, signed_in, actor, patient, action).await;
    if sees {
        Err(ApiError::forbidden(
            "この操作を行う権限がありません / you are not allowed to do this",
        ))
    } else {
        Err(ApiError::not_found())
    }
}

/// A quiet check for a part of a page shown only where it is allowed (the care team beside
/// the notebook): the capability, or `None` without a refusal recorded, since nobody asked.
pub async fn check<P: Permission>(
    state: &AppState,
    signed_in: &SignedIn,
    patient: PatientId,
) -> Option<Authorized<P>> {
    let actor = staff(signed_in).ok()?;
    let roles = roles(signed_in);
    let asker = Asker {
        staff: actor.staff,
        facility: actor.facility,
        roles: &roles,
    };
    match state.authz.authorize::<P>(&asker, patient).await {
        Ok(Decision::Allowed(allowed)) => Some(allowed),
        Ok(Decision::Refused(_)) => None,
        Err(e) => {
            tracing::error!(error = %e, "authorization failed");
            None
        }
    }
}

/// The check for acts before a patient is chosen (registering one, asking for emergency
/// access, listing the facility's patients or its unread entries): `P` through some relation.
pub async fn permit<P: Permission>(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<Permitted<P>, ApiError> {
    let actor = staff(signed_in)?;
    let roles = roles(signed_in);
    let asker = Asker {
        staff: actor.staff,
        facility: actor.facility,
        roles: &roles,
    };
    state.authz.permit::<P>(&asker).await.ok_or_else(|| {
        ApiError::forbidden("この操作を行う権限がありません / you are not allowed to do this")
    })
}

/// The check before writing as the staff member (an entry, a read receipt, a support request
/// or its answer): the capability for `P` on `patient`, with the name and profession the care
/// team sees.
pub async fn author<P: Permission>(
    state: &AppState,
    signed_in: &SignedIn,
    patient: PatientId,
) -> Result<renrakucho_notebook::Author<P>, ApiError> {
    let allowed = authorize::<P>(state, signed_in, patient).await?;
    Ok(as_author(signed_in, allowed))
}

/// The staff member as an author, with a capability already obtained.
pub fn as_author<P: Permission>(
    signed_in: &SignedIn,
    allowed: Authorized<P>,
) -> renrakucho_notebook::Author<P> {
    renrakucho_notebook::Author::new(
        allowed,
        signed_in.who.display_name.clone(),
        signed_in
            .who
            .profession
            .unwrap_or(renrakucho_core::Profession::Other),
        signed_in.who.role == Some(StaffRole::FacilityAdmin),
    )
}

/// Keeps only the items whose content is the notebook's where the person may read that
/// notebook (`notebook.read`): unread counts by priority and entry notifications tell what the
/// notebook holds, and a role without `notebook.read` (a clerk) must not learn it there either.
/// `about` names the patient of an item that tells notebook content, `None` for other items.
pub async fn notebook_items<T>(
    state: &AppState,
    signed_in: &SignedIn,
    items: Vec<T>,
    about: impl Fn(&T) -> Option<PatientId>,
) -> Vec<T> {
    let Ok(actor) = staff(signed_in) else {
        return Vec::new();
    };
    let roles = roles(signed_in);
    let mut decided = std::collections::HashMap::new();
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        let Some(patient) = about(&item) else {
            kept.push(item);
            continue;
        };
        let allowed = match decided.get(&patient) {
            Some(allowed) => *allowed,
            None => {
                let allowed = state
                    .authz
                    .allowed(&roles, actor.facility, patient, Action::NotebookRead)
                    .await
                    .unwrap_or(false);
                decided.insert(patient, allowed);
                allowed
            }
        };
        if allowed {
            kept.push(item);
        }
    }
    kept
}

/// Whether a notification tells notebook content (an entry, a reply, a mention).
pub fn tells_the_notebook(n: &renrakucho_notebook::Notification) -> Option<PatientId> {
    matches!(n.kind, "entry" | "reply" | "mention").then_some(n.patient)
}

/// Writes the refusal into the acting facility's audit chain. The patient ID is the one the
/// request named (the facility's own chain, so nothing is revealed); whether such a patient
/// exists is not recorded. A failure to write is logged and the refusal still stands.
async fn record_refusal(
    state: &AppState,
    signed_in: &SignedIn,
    actor: StaffActor,
    patient: PatientId,
    action: Action,
) {
    use renrakucho_store::audit::{self, Actor, AuditEvent, Outcome};
    let written = async {
        let mut tx = state.db.begin(actor.scope()).await?;
        audit::record(
            &mut tx,
            AuditEvent {
                actor: Actor::Staff(actor.staff),
                action: "access.refused",
                outcome: Outcome::Denied,
                target: Some(("patient", patient.as_uuid())),
                origin: &signed_in.origin,
                details: serde_json::json!({ "action": action.as_str() }),
            },
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "the refusal could not be audited");
    }
}

/// Who may read the reason given for an emergency grant: those who may read the patient's
/// notebook now (the opener's colleagues only while the grant is open), and the care team's
/// facility administrators, who review the grants.
#[derive(Clone)]
pub struct EmergencyReasonReader {
    authz: Arc<Authorizer>,
    roles: Vec<Role>,
    facility: Option<renrakucho_core::FacilityId>,
    admin: bool,
}

impl EmergencyReasonReader {
    pub fn new(state: &AppState, signed_in: &SignedIn) -> Self {
        Self {
            authz: state.authz.clone(),
            roles: roles(signed_in),
            facility: staff(signed_in).ok().map(|a| a.facility),
            admin: signed_in.who.role == Some(StaffRole::FacilityAdmin),
        }
    }

    /// Whether the reason of a grant on `patient` (opened by this facility: `ours`) is shown.
    pub fn may_read(
        &self,
        patient: PatientId,
        ours: bool,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let reader = self.clone();
        async move {
            let Some(facility) = reader.facility else {
                return false;
            };
            if !ours && reader.admin {
                return true;
            }
            reader
                .authz
                .allowed(&reader.roles, facility, patient, Action::NotebookRead)
                .await
                .unwrap_or(false)
        }
    }
}

/// The check before ending one of the facility's emergency grants early: those who may open
/// one, and the facility's administrators.
pub async fn authorize_emergency_end(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<StaffActor, ApiError> {
    if signed_in.who.role == Some(StaffRole::FacilityAdmin) {
        return staff(signed_in);
    }
    let allowed = permit::<renrakucho_authz::may::EmergencyOpen>(state, signed_in).await?;
    Ok(StaffActor::from(&allowed))
}

/// After a change of who may see `patient` made by this request: this process's authorizer
/// follows at once (the others on the database's announcement), so the person's next request
/// already sees the change.
pub async fn changed(state: &AppState, patient: PatientId) {
    if let Err(e) = refresh(&state.db, &state.authz, patient).await {
        tracing::warn!(error = %e, "refreshing a patient's access failed");
    }
}
