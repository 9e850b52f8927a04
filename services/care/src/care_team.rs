//! Consent (同意書, 第12条) and the care team: who may see a patient. Every change is audited
//! and announced (NOTIFY) in its transaction, so every server process updates its authorizer.

use renrakucho_core::{FacilityId, PatientId};
use renrakucho_keyring::{Binding, KeyOwner, Keyring};
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::care_team::{self, MemberStatus, Membership};
use renrakucho_store::consents::{self, NewConsent};
use renrakucho_store::{patients, Database, Scope, ScopedTx};
use serde_json::json;
use time::Date;
use uuid::Uuid;

use crate::{CareError, StaffActor};

/// Who signed the consent form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    /// The patient.
    Patient,
    /// A family member, when the patient is a minor or cannot consent (第12条).
    Family { name: String, relation: String },
}

/// A signed consent form to record.
#[derive(Debug, Clone)]
pub struct ConsentForm {
    pub signer: Signer,
    pub signed_on: Date,
}

async fn record(
    tx: &mut ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    patient: PatientId,
    details: serde_json::Value,
) -> Result<(), CareError> {
    audit::record(
        tx,
        AuditEvent {
            actor: Actor::Staff(who.staff),
            action,
            outcome: Outcome::Success,
            target: Some(("patient", patient.as_uuid())),
            origin,
            details,
        },
    )
    .await?;
    Ok(())
}

/// Records a signed consent: from then on, active care-team members see the patient.
pub async fn record_consent(
    db: &Database,
    keyring: &Keyring,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    form: ConsentForm,
) -> Result<(), CareError> {
    let mut tx = db.begin(Scope::Facility(who.facility)).await?;
    let stored = patients::get(&mut tx, patient).await?;
    let id = Uuid::now_v7();
    let details = serde_json::to_vec(&form.signer).expect("a signer serialises");
    let details_enc = keyring
        .encrypt(
            &mut tx,
            &Binding {
                owner: KeyOwner::Patient(patient),
                table: "consents",
                column: "details_enc",
                row: id,
            },
            &details,
        )
        .await?;
    let signer = match form.signer {
        Signer::Patient => "patient",
        Signer::Family { .. } => "family",
    };
    consents::insert(
        &mut tx,
        &NewConsent {
            id,
            patient,
            registering_facility: stored.registering_facility,
            signer,
            details_enc: &details_enc,
            signed_on: form.signed_on,
            recorded_by: who.staff,
        },
    )
    .await?;
    care_team::notify_access_changed(&mut tx, patient).await?;
    record(
        &mut tx,
        who,
        origin,
        "consent.record",
        patient,
        json!({ "signer": signer }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Withdraws the consent: every facility but the registering one loses access at once.
pub async fn withdraw_consent(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
) -> Result<(), CareError> {
    let mut tx = db.begin(Scope::Facility(who.facility)).await?;
    patients::get(&mut tx, patient).await?;
    let withdrawn = consents::withdraw_all(&mut tx, patient, who.staff).await?;
    if withdrawn == 0 {
        return Err(CareError::NotFound);
    }
    care_team::notify_access_changed(&mut tx, patient).await?;
    record(
        &mut tx,
        who,
        origin,
        "consent.withdraw",
        patient,
        json!({ "consents": withdrawn }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Invites another facility into the patient's care team (by the registering facility or an
/// active member). Consent already on file is reused: no new form (第12条 ただし書き).
pub async fn invite(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    facility: FacilityId,
) -> Result<(), CareError> {
    let mut tx = db.begin(Scope::Facility(who.facility)).await?;
    let stored = patients::get(&mut tx, patient).await?;
    care_team::invite(
        &mut tx,
        patient,
        stored.registering_facility,
        facility,
        who.staff,
    )
    .await?;
    record(
        &mut tx,
        who,
        origin,
        "care_team.invite",
        patient,
        json!({ "facility": facility.as_uuid() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn change_own(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    from: MemberStatus,
    to: MemberStatus,
    action: &'static str,
) -> Result<(), CareError> {
    let mut tx = db.begin(Scope::Facility(who.facility)).await?;
    care_team::set_own_status(&mut tx, patient, from, to).await?;
    care_team::notify_access_changed(&mut tx, patient).await?;
    record(&mut tx, who, origin, action, patient, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The invited facility accepts (its administrator, or staff it allows).
pub async fn accept_invitation(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
) -> Result<(), CareError> {
    change_own(
        db,
        who,
        origin,
        patient,
        MemberStatus::Invited,
        MemberStatus::Active,
        "care_team.accept",
    )
    .await
}

/// The facility leaves the care team.
pub async fn leave(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
) -> Result<(), CareError> {
    change_own(
        db,
        who,
        origin,
        patient,
        MemberStatus::Active,
        MemberStatus::Left,
        "care_team.leave",
    )
    .await
}

/// The registering facility removes a member.
pub async fn remove_member(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    patient: PatientId,
    facility: FacilityId,
) -> Result<(), CareError> {
    let mut tx = db.begin(Scope::Facility(who.facility)).await?;
    let stored = patients::get(&mut tx, patient).await?;
    if stored.registering_facility != who.facility {
        return Err(CareError::NotFound);
    }
    care_team::set_status(
        &mut tx,
        patient,
        facility,
        MemberStatus::Active,
        MemberStatus::Removed,
    )
    .await?;
    care_team::notify_access_changed(&mut tx, patient).await?;
    record(
        &mut tx,
        who,
        origin,
        "care_team.remove",
        patient,
        json!({ "facility": facility.as_uuid() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The care team as the actor's facility sees it.
pub async fn care_team_of(
    db: &Database,
    who: StaffActor,
    patient: PatientId,
) -> Result<Vec<Membership>, CareError> {
    let mut tx = db.begin(Scope::Facility(who.facility)).await?;
    let members = care_team::of_patient(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(members)
}

/// Who may see which patient (all patients, or one), for the authorizer.
pub async fn access_links(
    db: &Database,
    patient: Option<PatientId>,
) -> Result<Vec<(FacilityId, PatientId)>, CareError> {
    let mut tx = db.begin(Scope::AccessSync).await?;
    let links = care_team::access_links(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(links)
}
