//! The authorizer's copy of the relations: loaded at start, replaced one patient at a time,
//! and emergency links dropped when their time comes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use renrakucho_core::{FacilityId, PatientId};

use super::graph::RelationGraph;
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
    /// Loads every patient's links at once (at start, or after a lost connection, from the
    /// database), replacing everything known: a patient absent from `links` has no relation
    /// any more (erased, or its last link removed while the announcements were missed). The
    /// graph is swapped whole under its lock, so no decision sees half of a reload.
    pub async fn load(
        &self,
        links: impl IntoIterator<Item = (PatientId, Link)>,
    ) -> Result<(), AuthzError> {
        let mut by_patient: HashMap<PatientId, Vec<Link>> = HashMap::new();
        for (patient, link) in links {
            by_patient.entry(patient).or_default().push(link);
        }
        let mut relations = self.relations.write();
        *self.expiries.lock().expect("expiry schedule lock") = Expiries::default();
        let mut graph = RelationGraph::default();
        for (patient, links) in &by_patient {
            let live = self
                .current(*patient, links)
                .map(|l| (l.facility, l.relation))
                .collect();
            graph.replace(*patient, live);
        }
        *relations = graph;
        Ok(())
    }

    /// Replaces everything known about `patient` (after a change announced by any server
    /// process). An empty list removes the patient (erased, or no longer visible to anyone).
    /// The graph's lock is held throughout, so two replacements of one patient cannot
    /// interleave; decisions wait for this one entry's change only.
    pub async fn replace_patient(
        &self,
        patient: PatientId,
        links: &[Link],
    ) -> Result<(), AuthzError> {
        let mut relations = self.relations.write();
        let live = self
            .current(patient, links)
            .map(|l| (l.facility, l.relation))
            .collect();
        relations.replace(patient, live);
        Ok(())
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

    /// Removes the emergency links whose time has come. Takes the graph's lock before the
    /// schedule's, as a replacement does, so that a link renewed meanwhile is not removed; takes
    /// neither for long when nothing is due (a stale entry of a renewed or replaced link).
    pub(super) async fn drop_expired(&self) -> Result<(), AuthzError> {
        let now = self.clock.now_millis();
        {
            let expiries = self.expiries.lock().expect("expiry schedule lock");
            if expiries.schedule.range(..=now).next().is_none() {
                let next = expiries.schedule.keys().next().copied().unwrap_or(i64::MAX);
                self.next_expiry.store(next, Ordering::Release);
                return Ok(());
            }
        }
        let mut relations = self.relations.write();
        let mut expiries = self.expiries.lock().expect("expiry schedule lock");
        let later = expiries.schedule.split_off(&(now + 1));
        let due_now = std::mem::replace(&mut expiries.schedule, later);
        for (_, pairs) in due_now {
            for pair in pairs {
                if expiries.current.get(&pair).is_some_and(|at| *at <= now) {
                    expiries.current.remove(&pair);
                    let (facility, patient) = pair;
                    relations.remove(patient, (facility, Relation::Emergency));
                }
            }
        }
        let next = expiries.schedule.keys().next().copied().unwrap_or(i64::MAX);
        self.next_expiry.store(next, Ordering::Release);
        Ok(())
    }
}
