use crate::{may, Authorized, Permitted};
use renrakucho_core::{KanaName, PatientId, PatientName, PatientProfile};
use renrakucho_keyring::blind_index::normalize_name;
use renrakucho_keyring::{Binding, KeyOwner, Keyring, OwnerKeys};
use renrakucho_store::audit::Origin;
use renrakucho_store::patients::{self, NewStoredPatient, StoredPatient};
use renrakucho_store::{Database, ScopedTx};
use serde_json::json;
use time::OffsetDateTime;

use crate::unreadable::{self, Listed};
use crate::{CareError, StaffActor};

const TABLE: &str = "patients";

/// A patient to register.
#[derive(Clone)]
pub struct NewPatient {
    pub name: PatientName,
    pub kana: KanaName,
    pub profile: PatientProfile,
}

renrakucho_core::redacted_debug!(NewPatient);

/// A patient, decrypted for someone allowed to read them.
#[derive(Clone, serde::Serialize)]
pub struct Patient {
    pub id: PatientId,
    pub registering_facility: renrakucho_core::FacilityId,
    pub name: PatientName,
    pub kana: KanaName,
    pub profile: PatientProfile,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

renrakucho_core::redacted_debug!(Patient {
    id,
    registering_facility
});

/// A line of a patient list or search result.
#[derive(Clone, serde::Serialize)]
pub struct PatientSummary {
    pub id: PatientId,
    pub name: PatientName,
    pub kana: KanaName,
}

renrakucho_core::redacted_debug!(PatientSummary { id });

/// Where a patient's field is stored, at the revision the database counts for the row (the
/// associated data names it, so a field put back from an earlier revision does not decrypt).
pub(crate) fn binding(id: PatientId, column: &'static str, revision: i64) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(id),
        table: TABLE,
        column,
        row: id.as_uuid(),
        version: crate::bound_version(revision),
    }
}

async fn record(
    tx: &mut ScopedTx,
    who: StaffActor,
    origin: &Origin,
    action: &'static str,
    patient: Option<PatientId>,
    details: serde_json::Value,
) -> Result<(), CareError> {
    crate::audit::record(
        tx,
        who,
        origin,
        action,
        patient.map(|p| ("patient", p.as_uuid())),
        details,
    )
    .await
}

pub(crate) fn text<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, CareError> {
    serde_json::from_slice(bytes).map_err(|e| CareError::corrupt(what, e))
}

pub(crate) fn json_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain values serialise")
}

pub(crate) async fn decrypt_name(
    keys: &OwnerKeys,
    tx: &mut ScopedTx,
    stored: &StoredPatient,
) -> Result<(PatientName, KanaName), CareError> {
    let name = keys
        .decrypt(
            tx,
            &binding(stored.id, "name_enc", stored.revision),
            &stored.name_enc,
        )
        .await?;
    let kana = keys
        .decrypt(
            tx,
            &binding(stored.id, "kana_enc", stored.revision),
            &stored.kana_enc,
        )
        .await?;
    Ok((text(&name, "name")?, text(&kana, "kana")?))
}

/// A stored patient's name, reading and profile, decrypted with keys the caller already holds
/// (the notebook's export names the patient at the head of its copy this way, in its own
/// transaction).
pub async fn decrypt_identity(
    keys: &OwnerKeys,
    tx: &mut ScopedTx,
    stored: &StoredPatient,
) -> Result<(PatientName, KanaName, PatientProfile), CareError> {
    let (name, kana) = decrypt_name(keys, tx, stored).await?;
    let profile: PatientProfile = text(
        &keys
            .decrypt(
                tx,
                &binding(stored.id, "profile_enc", stored.revision),
                &stored.profile_enc,
            )
            .await?,
        "profile",
    )?;
    Ok((name, kana, profile))
}

/// Registers a patient in the actor's facility: fields encrypted with a new key of the
/// patient's own, name terms for search, audited.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn register_patient(
    db: &Database,
    keyring: &Keyring,
    allowed: &Permitted<may::PatientRegister>,
    origin: &Origin,
    new: NewPatient,
) -> Result<Patient, CareError> {
    let who = StaffActor::from(allowed);
    let id = PatientId::new();
    let mut tx = db.begin(who.scope()).await?;
    let keys = keyring.owner_keys(&mut tx, KeyOwner::Patient(id)).await?;
    let first = patients::FIRST_REVISION;
    let name_enc = keys.encrypt(&binding(id, "name_enc", first), &json_bytes(&new.name))?;
    let kana_enc = keys.encrypt(&binding(id, "kana_enc", first), &json_bytes(&new.kana))?;
    let profile_enc = keys.encrypt(
        &binding(id, "profile_enc", first),
        &json_bytes(&new.profile),
    )?;
    patients::insert(
        &mut tx,
        &NewStoredPatient {
            id,
            registered_by: who.staff,
            name_enc: &name_enc,
            kana_enc: &kana_enc,
            profile_enc: &profile_enc,
        },
    )
    .await?;
    // The registering membership: the database derives the facility's access from it.
    renrakucho_store::care_team::add_registering(&mut tx, id).await?;
    let mut terms = keyring.name_terms(&mut tx, new.name.as_str()).await?;
    terms.extend(keyring.name_terms(&mut tx, new.kana.as_str()).await?);
    patients::set_terms(&mut tx, id, &terms).await?;
    // The card a facility outside the team types in an emergency (ADR 0018).
    crate::emergency::issue_card(
        &mut tx,
        keyring,
        id,
        new.profile.birth_date,
        Some(who.staff),
    )
    .await?;
    record(
        &mut tx,
        who,
        origin,
        "patient.register",
        Some(id),
        json!({}),
    )
    .await?;
    let stored = patients::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Patient {
        id,
        registering_facility: who.facility,
        name: new.name,
        kana: new.kana,
        profile: new.profile,
        registered_at: stored.created_at,
    })
}

/// One patient, decrypted; the read is audited.
#[tracing::instrument(level = "debug", skip_all, fields(id = %allowed.patient()))]
pub async fn patient(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::PatientRead>,
    origin: &Origin,
) -> Result<Patient, CareError> {
    let who = StaffActor::from(allowed);
    let id = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, id).await?;
    let keys = keyring.owner_keys(&mut tx, KeyOwner::Patient(id)).await?;
    let decrypted = async {
        let (name, kana) = decrypt_name(&keys, &mut tx, &stored).await?;
        let profile = keys
            .decrypt(
                &mut tx,
                &binding(id, "profile_enc", stored.revision),
                &stored.profile_enc,
            )
            .await?;
        Ok::<_, CareError>((name, kana, profile))
    }
    .await;
    let (name, kana, profile) = match decrypted {
        Ok(fields) => fields,
        Err(e) => {
            let target = Some(("patient", id.as_uuid()));
            return Err(unreadable::refuse(tx, who, origin, "patient.read", target, e).await);
        }
    };
    record(&mut tx, who, origin, "patient.read", Some(id), json!({})).await?;
    tx.commit().await?;
    Ok(Patient {
        id,
        registering_facility: stored.registering_facility,
        name,
        kana,
        profile: text(&profile, "profile")?,
        registered_at: stored.created_at,
    })
}

/// Patients whose name or reading (whole, family or given name) matches `query` after
/// normalisation; an empty query lists the newest. A patient whose name fails its integrity
/// check is listed as unreadable. Audited with the number found and the unreadable IDs, never
/// the query (it is a name).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_patients(
    db: &Database,
    keyring: &Keyring,
    allowed: &Permitted<may::PatientRead>,
    origin: &Origin,
    query: &str,
    limit: i64,
) -> Result<Vec<Listed<PatientSummary>>, CareError> {
    let who = StaffActor::from(allowed);
    let mut tx = db.begin(who.scope()).await?;
    let normalized = normalize_name(query);
    let stored = if normalized.is_empty() {
        patients::list(&mut tx, limit).await?
    } else {
        let term = keyring.name_terms(&mut tx, &normalized).await?;
        match term.first() {
            Some(term) => patients::find_by_term(&mut tx, term, limit).await?,
            None => Vec::new(),
        }
    };
    let owners: Vec<KeyOwner> = stored.iter().map(|s| KeyOwner::Patient(s.id)).collect();
    keyring.preload_newest(&mut tx, &owners).await?;
    let mut found = Vec::with_capacity(stored.len());
    for s in &stored {
        let keys = keyring.owner_keys(&mut tx, KeyOwner::Patient(s.id)).await?;
        let summary = decrypt_name(&keys, &mut tx, s)
            .await
            .map(|(name, kana)| PatientSummary {
                id: s.id,
                name,
                kana,
            });
        found.push(unreadable::item(&mut tx, s.id.as_uuid(), summary).await?);
    }
    record(
        &mut tx,
        who,
        origin,
        "patient.search",
        None,
        json!({
            "found": found.len(),
            "by_name": !normalized.is_empty(),
            "unreadable": unreadable::ids(&found),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(found)
}

/// Corrects the registration (the registering facility): every field replaced, name terms
/// renewed, audited with the names of the fields that changed (never their values).
#[tracing::instrument(level = "debug", skip_all, fields(id = %allowed.patient()))]
pub async fn update_patient(
    db: &Database,
    keyring: &Keyring,
    allowed: &Authorized<may::PatientUpdate>,
    origin: &Origin,
    new: NewPatient,
) -> Result<Patient, CareError> {
    let who = StaffActor::from(allowed);
    let id = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    let stored = patients::get(&mut tx, id).await?;
    if stored.registering_facility != who.facility {
        return Err(CareError::NotFound);
    }
    let keys = keyring.owner_keys(&mut tx, KeyOwner::Patient(id)).await?;
    let (old_name, old_kana) = decrypt_name(&keys, &mut tx, &stored).await?;
    let old_profile: PatientProfile = text(
        &keys
            .decrypt(
                &mut tx,
                &binding(id, "profile_enc", stored.revision),
                &stored.profile_enc,
            )
            .await?,
        "profile",
    )?;
    let mut changed = Vec::new();
    if old_name != new.name {
        changed.push("name");
    }
    if old_kana != new.kana {
        changed.push("kana");
    }
    if old_profile != new.profile {
        changed.push("profile");
    }
    // Bound to the next revision, which the database counts when the row changes; a correction
    // saved meanwhile leaves the row at another one, and this one is refused.
    let next = stored.revision + 1;
    let name_enc = keys.encrypt(&binding(id, "name_enc", next), &json_bytes(&new.name))?;
    let kana_enc = keys.encrypt(&binding(id, "kana_enc", next), &json_bytes(&new.kana))?;
    let profile_enc = keys.encrypt(&binding(id, "profile_enc", next), &json_bytes(&new.profile))?;
    patients::update(&mut tx, id, stored.revision, &name_enc, &kana_enc, &profile_enc)
        .await
        .map_err(|e| match e {
            renrakucho_store::StoreError::Conflict { constraint } if constraint == "patients_revision" => {
                CareError::Conflict(
                    "ほかの人が先に登録内容を修正しました。読み込み直してください / someone else corrected the registration first; reload it".into(),
                )
            }
            e => e.into(),
        })?;
    let mut terms = keyring.name_terms(&mut tx, new.name.as_str()).await?;
    terms.extend(keyring.name_terms(&mut tx, new.kana.as_str()).await?);
    patients::set_terms(&mut tx, id, &terms).await?;
    if old_profile.birth_date != new.profile.birth_date {
        crate::emergency::card_birth_changed(&mut tx, keyring, id, new.profile.birth_date).await?;
    }
    record(
        &mut tx,
        who,
        origin,
        "patient.update",
        Some(id),
        json!({ "changed": changed }),
    )
    .await?;
    tx.commit().await?;
    Ok(Patient {
        id,
        registering_facility: who.facility,
        name: new.name,
        kana: new.kana,
        profile: new.profile,
        registered_at: stored.created_at,
    })
}
