//! The authorizer's copy of the relations: loaded at start, replaced one patient at a time,
//! and emergency links dropped when their time comes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use casbin::{Enforcer, MgmtApi};
use renrakucho_core::{FacilityId, PatientId};

use super::{held_rule, Authorizer, AuthzError};
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
        let mut enforcer = self.enforcer.write().await;
        for (patient, links) in &by_patient {
            self.replace_held(&mut enforcer, *patient, links).await?;
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
        let mut enforcer = self.enforcer.write().await;
        self.replace_held(&mut enforcer, patient, links).await
    }

    /// Removes the rules held for `patient`, one by one (each a lookup, not a scan of every
    /// rule), and adds those of `links` still in force. Under the enforcer's write lock.
    async fn replace_held(
        &self,
        enforcer: &mut Enforcer,
        patient: PatientId,
        links: &[Link],
    ) -> Result<(), AuthzError> {
        let old = self
            .held
            .lock()
            .expect("held relations lock")
            .remove(&patient)
            .unwrap_or_default();
        for pair in old {
            enforcer
                .remove_grouping_policy(held_rule(patient, pair))
                .await?;
        }
        let mut live: Vec<(FacilityId, Relation)> = self
            .current(patient, links)
            .map(|l| (l.facility, l.relation))
            .collect();
        live.sort_unstable();
        live.dedup();
        if live.is_empty() {
            return Ok(());
        }
        enforcer
            .add_grouping_policies(live.iter().map(|p| held_rule(patient, *p)).collect())
            .await?;
        self.held
            .lock()
            .expect("held relations lock")
            .insert(patient, live);
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
        if due.is_empty() {
            return Ok(());
        }
        let mut enforcer = self.enforcer.write().await;
        for (facility, patient) in due {
            let pair = (facility, Relation::Emergency);
            enforcer
                .remove_grouping_policy(held_rule(patient, pair))
                .await?;
            let mut held = self.held.lock().expect("held relations lock");
            if let Some(pairs) = held.get_mut(&patient) {
                pairs.retain(|p| *p != pair);
                if pairs.is_empty() {
                    held.remove(&patient);
                }
            }
        }
        Ok(())
    }
}
