//! The authorizer's copy of the relations: loaded at start, replaced one patient at a time,
//! and emergency links dropped when their time comes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use renrakucho_core::{FacilityId, PatientId};

use super::{Authorizer, AuthzError};
use crate::clock::millis;
use crate::{Link, Relation};

/// When emergency links run out: the schedule, and the current expiry of each link (a link
/// renewed later keeps its new expiry when the old instant passes).
#[derive(Default)]
pub(super) struct Expiries {
    schedule: BTreeMap<i64, Vec<(FacilityId, PatientId)>>,
    current: HashMap<(FacilityId, PatientId), i64>,
}

impl Authorizer {
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
        for (patient, links) in &by_patient {
            self.replace_held(*patient, links);
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
        self.replace_held(patient, links);
        Ok(())
    }

    /// Replaces the patient's entry in the relation graph with the links of `links` still in
    /// force (under the graph's lock throughout, so two replacements of one patient cannot
    /// interleave): decisions wait for this one entry's change only.
    fn replace_held(&self, patient: PatientId, links: &[Link]) {
        let mut relations = self.relations.write();
        let live: Vec<(FacilityId, Relation)> = self
            .current(patient, links)
            .map(|l| (l.facility, l.relation))
            .collect();
        relations.replace(patient, live);
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
    pub(super) async fn drop_expired(&self) -> Result<(), AuthzError> {
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
        let mut relations = self.relations.write();
        for (facility, patient) in due {
            relations.remove(patient, (facility, Relation::Emergency));
        }
        Ok(())
    }
}
