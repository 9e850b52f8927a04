//! The rules written out: the relations a facility holds, what each role may do through which
//! relation (Casbin), and what the database lets a facility do (row-level security).

use super::*;

/// A facility's relation to a patient, as the test sets it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relation {
    Registering,
    ActiveMember,
    InvitedNotAccepted,
    FormerMember,
    Unrelated,
    /// Unrelated, with an open emergency grant.
    Emergency,
    /// Asked for support in an open request (possible only with consent on file).
    Support,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Consent {
    /// On file, never withdrawn.
    Active,
    /// Withdrawn, nothing recorded since.
    Withdrawn,
    /// Withdrawn, then renewed by the registering facility (ADR 0014).
    Renewed,
    /// Never recorded.
    None,
}

/// The relations (policies/model.conf) a facility holds: the rule, written out.
fn held(relation: Relation, consent: Consent) -> &'static [&'static str] {
    use Consent::*;
    match (relation, consent) {
        (Relation::Registering, Active | Renewed) => {
            &["registering", "sharing", "consented", "collecting"]
        }
        (Relation::Registering, Withdrawn) => &["registering", "sharing", "withdrawn"],
        (Relation::Registering, None) => &["registering", "sharing", "collecting"],
        (Relation::ActiveMember, Active | Renewed) => {
            &["member", "sharing", "consented", "collecting"]
        }
        (Relation::ActiveMember, Withdrawn) => &["member", "withdrawn"],
        (Relation::ActiveMember, None) => &["member", "collecting"],
        (Relation::InvitedNotAccepted, _) => &["invited"],
        (Relation::FormerMember | Relation::Unrelated, _) => &[],
        (Relation::Emergency, _) => &["emergency"],
        (Relation::Support, Active) => &["support"],
        (Relation::Support, _) => &[],
    }
}

/// What each role may do and through which relation: `policies/policy.csv`, restated
/// independently so that a change to either shows up here.
fn grants(role: Role) -> Vec<(Action, &'static str)> {
    use Action::*;
    let clinical = vec![
        (PatientRegister, "anyone"),
        (PatientRead, "sharing"),
        (PatientRead, "emergency"),
        (PatientUpdate, "registering"),
        (PatientCardReissue, "registering"),
        (ConsentRead, "sharing"),
        (ConsentRecord, "collecting"),
        (ConsentRenew, "registering"),
        (ConsentWithdraw, "sharing"),
        (ConsentChanges, "registering"),
        (ConsentChanges, "member"),
        (CareTeamRead, "sharing"),
        (CareTeamRead, "emergency"),
        (CareTeamInvite, "sharing"),
        (NotebookRead, "sharing"),
        (NotebookRead, "emergency"),
        (NotebookWrite, "sharing"),
        (DeletionRecord, "sharing"),
        (EmergencyOpen, "anyone"),
        (SupportRequest, "consented"),
        (SupportAnswer, "support"),
    ];
    match role {
        Role::Profession(Profession::Doctor) | Role::Profession(Profession::Nurse) => clinical,
        Role::Profession(Profession::Dentist) => clinical
            .into_iter()
            .filter(|(a, _)| {
                !matches!(
                    a,
                    PatientRegister
                        | PatientUpdate
                        | PatientCardReissue
                        | ConsentRecord
                        | ConsentRenew
                        | ConsentWithdraw
                )
            })
            .collect(),
        Role::Profession(Profession::Pharmacist) => vec![
            (PatientRead, "sharing"),
            (ConsentRead, "sharing"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (NotebookRead, "sharing"),
            (NotebookWrite, "sharing"),
            (DeletionRecord, "sharing"),
            (SupportRequest, "consented"),
            (SupportAnswer, "support"),
        ],
        Role::Profession(Profession::CareManager) => vec![
            (PatientRegister, "anyone"),
            (PatientRead, "sharing"),
            (PatientUpdate, "registering"),
            (PatientCardReissue, "registering"),
            (ConsentRead, "sharing"),
            (ConsentRecord, "collecting"),
            (ConsentRenew, "registering"),
            (ConsentWithdraw, "sharing"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (CareTeamInvite, "sharing"),
            (NotebookRead, "sharing"),
            (NotebookWrite, "sharing"),
            (DeletionRecord, "sharing"),
            (SupportRequest, "consented"),
            (SupportAnswer, "support"),
        ],
        Role::Profession(Profession::CareWorker) | Role::Profession(Profession::Therapist) => vec![
            (PatientRead, "sharing"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (NotebookRead, "sharing"),
            (NotebookWrite, "sharing"),
        ],
        Role::Profession(Profession::Clerk) => vec![
            (PatientRegister, "anyone"),
            (PatientRead, "sharing"),
            (PatientUpdate, "registering"),
            (PatientCardReissue, "registering"),
            (ConsentRead, "sharing"),
            (ConsentRecord, "collecting"),
            (ConsentRenew, "registering"),
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
        ],
        Role::Profession(Profession::Other) => vec![],
        Role::FacilityAdmin => vec![
            (ConsentChanges, "registering"),
            (ConsentChanges, "member"),
            (CareTeamRead, "sharing"),
            (CareTeamInvite, "sharing"),
            (CareTeamAccept, "invited"),
            (CareTeamLeave, "member"),
            (CareTeamRemove, "registering"),
            (PatientCardReissue, "registering"),
        ],
        Role::CareTeamAcceptor => vec![(CareTeamAccept, "invited")],
    }
}

/// What the database lets a facility in `relation` do, whatever the person's role: the row-level
/// security rules, written out.
pub(super) fn database_allows(relation: Relation, consent: Consent, action: Action) -> bool {
    use Action::*;
    let rel = held(relation, consent);
    let has = |r: &str| rel.contains(&r);
    match action {
        PatientRegister | EmergencyOpen => true,
        PatientRead | NotebookRead => has("sharing") || has("emergency"),
        PatientUpdate | PatientCardReissue => has("registering"),
        // A facility that sees the patient in an emergency does not see consents; where none
        // was ever recorded there is nothing to hide, and the database cannot show otherwise.
        ConsentRead | ConsentWithdraw => {
            has("sharing") || (consent == Consent::None && has("emergency"))
        }
        CareTeamInvite | NotebookWrite | DeletionRecord => has("sharing"),
        SupportRequest => has("consented"),
        SupportAnswer => has("support"),
        // Recording needs `collecting`; while the consent is withdrawn only a renewal (with a
        // scan, by the registering facility) goes in.
        ConsentRecord => has("collecting"),
        ConsentRenew => has("registering") || has("collecting"),
        // Every facility of the team reads the changes; with none recorded there is nothing to
        // hide, and the database cannot show otherwise.
        ConsentChanges => consent == Consent::None || has("registering") || has("member"),
        CareTeamRead => has("sharing") || has("emergency"),
        CareTeamAccept => has("invited"),
        CareTeamLeave => has("member"),
        CareTeamRemove => has("registering"),
    }
}

/// Casbin's expected decision: some relation the facility holds (or none needed) carries a
/// grant of the role for the action.
pub(super) fn casbin_allows(
    role: Role,
    relation: Relation,
    consent: Consent,
    action: Action,
) -> bool {
    let rel = held(relation, consent);
    grants(role)
        .iter()
        .any(|(a, via)| *a == action && (*via == "anyone" || rel.contains(via)))
}
