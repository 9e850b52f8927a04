//! The decisions against the policy file, the capabilities, and the expiry of emergency links.

use std::sync::{Arc, Mutex};

use renrakucho_core::{FacilityId, PatientId, Profession};
use time::OffsetDateTime;

use super::*;
use crate::{may, Asker, Clock, Decision, Link, Relation};

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
    for line in authz.enforcer.get_policy() {
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

/// What the enforcer holds: its relations as (facility, relation, patient) keys, sorted.
async fn rules_held(authz: &Authorizer) -> Vec<Vec<String>> {
    let relations = authz.relations.read();
    let mut rules: Vec<Vec<String>> = relations
        .patients()
        .flat_map(|p| {
            relations
                .of(p)
                .iter()
                .map(move |(f, r)| vec![facility_key(*f), r.as_str().to_string(), patient_key(p)])
        })
        .collect();
    rules.sort();
    assert!(
        authz.enforcer.get_grouping_policy().is_empty(),
        "no second copy in the enforcer's rules"
    );
    rules
}

#[tokio::test]
async fn replacing_a_patient_removes_exactly_its_rules_and_leaves_the_others() {
    let now = Arc::new(Mutex::new(OffsetDateTime::now_utc()));
    let clock = {
        let now = now.clone();
        Clock::new(move || *now.lock().unwrap())
    };
    let authz = Authorizer::with_clock(clock).await.unwrap();
    let (clinic, nurses, hospital) = (FacilityId::new(), FacilityId::new(), FacilityId::new());
    let (first, second) = (PatientId::new(), PatientId::new());
    let soon = *now.lock().unwrap() + time::Duration::minutes(30);
    let emergency = Link {
        facility: hospital,
        relation: Relation::Emergency,
        expires_at: Some(soon),
    };
    authz
        .load([
            (first, link(clinic, Relation::Sharing)),
            (first, link(nurses, Relation::Sharing)),
            (first, emergency),
            (second, link(clinic, Relation::Sharing)),
            // Listed twice: held once.
            (second, link(nurses, Relation::Invited)),
            (second, link(nurses, Relation::Invited)),
        ])
        .await
        .unwrap();
    assert_eq!(rules_held(&authz).await.len(), 5);
    let doctor = [Role::Profession(Profession::Doctor)];
    let reads = |facility, patient| authz.allowed(&doctor, facility, patient, Action::NotebookRead);

    // The nurses leave the first patient's team: only that rule goes.
    authz
        .replace_patient(first, &[link(clinic, Relation::Sharing), emergency])
        .await
        .unwrap();
    assert!(!reads(nurses, first).await.unwrap());
    assert!(reads(clinic, first).await.unwrap());
    assert!(reads(clinic, second).await.unwrap());
    assert_eq!(rules_held(&authz).await.len(), 4);

    // The emergency link ends by itself; replacing the patient afterwards still works.
    *now.lock().unwrap() = soon;
    assert!(!reads(hospital, first).await.unwrap());
    assert_eq!(rules_held(&authz).await.len(), 3);
    authz.replace_patient(first, &[]).await.unwrap();
    assert!(!reads(clinic, first).await.unwrap());
    let left = rules_held(&authz).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|r| r[2] == patient_key(second)));
    assert!(reads(clinic, second).await.unwrap());
}

#[tokio::test]
async fn a_reload_replaces_everything_and_forgets_the_patients_it_no_longer_lists() {
    let authz = Authorizer::new().await.unwrap();
    let (clinic, nurses) = (FacilityId::new(), FacilityId::new());
    let (kept, erased) = (PatientId::new(), PatientId::new());
    authz
        .load([
            (kept, link(clinic, Relation::Sharing)),
            (erased, link(nurses, Relation::Sharing)),
        ])
        .await
        .unwrap();
    let doctor = [Role::Profession(Profession::Doctor)];
    let reads = |facility, patient| authz.allowed(&doctor, facility, patient, Action::NotebookRead);
    assert!(reads(nurses, erased).await.unwrap());
    // Erased while the announcements were missed: the next reload no longer lists it.
    authz
        .load([(kept, link(clinic, Relation::Sharing))])
        .await
        .unwrap();
    assert!(!reads(nurses, erased).await.unwrap());
    assert!(reads(clinic, kept).await.unwrap());
    assert_eq!(rules_held(&authz).await.len(), 1);
}
