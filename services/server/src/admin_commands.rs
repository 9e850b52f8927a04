//! Administrative operations run from the command line (`renrakucho admin …`, `demo`), each in
//! one transaction with its audit record.

use renrakucho_core::{
    DisplayName, FacilityCode, FacilityKind, FacilityName, FacilityStatus, LoginId, Password,
    Profession, StaffRole,
};
use renrakucho_identity::PasswordHasher;
use renrakucho_store::audit::{self, Actor, AuditEvent, Origin, Outcome};
use renrakucho_store::facilities::{self, Facility, NewFacility};
use renrakucho_store::staff::{self, NewStaff, StaffAccount};
use renrakucho_store::{operators, Database, Scope, StoreError};
use serde_json::json;

/// Creates a platform operator account; `must_change`: the password was chosen for the
/// operator, who changes it at the first sign-in.
pub async fn create_operator(
    db: &Database,
    hasher: &PasswordHasher,
    login_id: &LoginId,
    name: &DisplayName,
    password: &Password,
    must_change: bool,
) -> Result<operators::Operator, StoreError> {
    let hash = hasher.hash(password);
    let mut tx = db.begin(Scope::Platform).await?;
    let operator = operators::insert(&mut tx, login_id, name, &hash, must_change).await?;
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "operator.create",
            outcome: Outcome::Success,
            target: Some(("operator", operator.id.as_uuid())),
            origin: &Origin::default(),
            details: json!({ "login_id": operator.login_id, "via": "cli" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(operator)
}

/// Registers an active facility (the operator's approval, 第6条1), in platform scope.
pub async fn create_facility(
    db: &Database,
    code: &FacilityCode,
    name: &FacilityName,
    kind: FacilityKind,
) -> Result<Facility, StoreError> {
    let mut tx = db.begin(Scope::Platform).await?;
    let facility = facilities::insert(
        &mut tx,
        &NewFacility {
            code: code.clone(),
            name: name.clone(),
            kind,
            status: FacilityStatus::Active,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "facility.create",
            outcome: Outcome::Success,
            target: Some(("facility", facility.id.as_uuid())),
            origin: &Origin::default(),
            details: json!({ "code": facility.code, "kind": kind.as_str(), "via": "cli" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(facility)
}

/// A staff account to issue (第6条3).
pub struct StaffToIssue<'a> {
    pub login_id: LoginId,
    pub name: DisplayName,
    pub role: StaffRole,
    pub profession: Profession,
    pub password: &'a Password,
    /// The password was chosen for the person, who changes it at the first sign-in.
    pub password_must_change: bool,
}

/// Issues a staff account in `facility`, in that facility's scope.
pub async fn create_staff(
    db: &Database,
    hasher: &PasswordHasher,
    facility: &Facility,
    issue: StaffToIssue<'_>,
) -> Result<StaffAccount, StoreError> {
    let hash = hasher.hash(issue.password);
    create_staff_hashed(
        db,
        facility,
        NewStaff {
            login_id: issue.login_id,
            display_name: issue.name,
            role: issue.role,
            profession: issue.profession,
            password_hash: hash,
            password_must_change: issue.password_must_change,
        },
    )
    .await
}

/// Issues a staff account whose password was hashed already: the city-scale generator hashes
/// its one demo password once for ten thousand accounts.
pub(crate) async fn create_staff_hashed(
    db: &Database,
    facility: &Facility,
    new: NewStaff,
) -> Result<StaffAccount, StoreError> {
    let mut tx = db.begin(Scope::Facility(facility.id)).await?;
    let account = staff::insert(&mut tx, &new).await?;
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "staff.create",
            outcome: Outcome::Success,
            target: Some(("staff", account.id.as_uuid())),
            origin: &Origin::default(),
            details: json!({ "login_id": account.login_id, "role": account.role.as_str(), "via": "cli" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(account)
}

/// Removes the second factor of a staff member (`facility` given) or of an operator, for
/// someone who lost their authenticator and their recovery codes: on the server, by whoever
/// runs the platform (for a facility admin, whose own admin cannot reset them; for an operator,
/// whom no one else can). The person sets up a new one at their next sign-in. `NotFound` for an
/// unknown facility or login ID; false when there was none to remove.
pub async fn reset_second_factor(
    db: &Database,
    facility: Option<&FacilityCode>,
    login_id: &LoginId,
) -> Result<bool, StoreError> {
    use renrakucho_identity::{reset_facility_account_second_factor, ResetBy, SecondFactorError};
    use renrakucho_store::second_factors::{self, Holder};
    if let Some(code) = facility {
        let origin = Origin::default();
        return match reset_facility_account_second_factor(
            db,
            ResetBy::Server,
            code,
            login_id,
            &origin,
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(SecondFactorError::NotEnrolled) => Ok(false),
            Err(SecondFactorError::NotFound) => Err(StoreError::NotFound),
            Err(SecondFactorError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Misconfigured(e.to_string())),
        };
    }
    let mut tx = db.begin(Scope::Platform).await?;
    let operator = operators::find_credentials(&mut tx, login_id)
        .await?
        .ok_or(StoreError::NotFound)?
        .operator;
    if second_factors::reset(&mut tx, Holder::Operator(operator.id))
        .await?
        .is_none()
    {
        return Ok(false);
    }
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "account.second_factor",
            outcome: Outcome::Success,
            target: Some(("operator", operator.id.as_uuid())),
            origin: &Origin::default(),
            details: json!({ "event": "reset", "method": "all", "via": "cli" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Links `login_id` (an operator) to `subject` of the operators' own provider at `issuer`,
/// audited in the platform's chain. `NotFound` for an unknown operator, `Conflict` for a
/// subject or an operator already linked.
pub async fn link_operator_identity(
    db: &Database,
    login_id: &LoginId,
    issuer: &str,
    subject: &str,
) -> Result<(), StoreError> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 255 {
        return Err(StoreError::Rule {
            constraint: "operator_identities_subject_check".into(),
        });
    }
    let mut tx = db.begin(Scope::Platform).await?;
    let operator = operators::find_credentials(&mut tx, login_id)
        .await?
        .ok_or(StoreError::NotFound)?
        .operator;
    let link =
        renrakucho_store::identity_providers::link_operator(&mut tx, operator.id, issuer, subject)
            .await?;
    audit::record(
        &mut tx,
        AuditEvent {
            actor: Actor::System,
            action: "account.provider_link",
            outcome: Outcome::Success,
            target: Some(("operator", operator.id.as_uuid())),
            origin: &Origin::default(),
            details: json!({ "event": "linked", "issuer": issuer, "link": link, "via": "cli" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
