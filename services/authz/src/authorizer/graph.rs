//! The relations as Casbin's role manager: the matcher's `g(facility, relation, patient)` asks
//! this graph. Each patient holds its few facilities and their relations in one compact slice,
//! instead of Casbin's rules of three strings each (in the model and again in the default role
//! manager's graph): at a city's 50,000 patients that copy was most of a server's memory
//! (docs/performance.md, ADR 0029).

use std::collections::HashMap;

use casbin::{MatchingFn, RoleManager};
use renrakucho_core::{FacilityId, PatientId};
use uuid::Uuid;

use crate::Relation;

const FACILITY: &str = "facility:";
const PATIENT: &str = "patient:";

/// A facility as the enforcer is asked about it.
pub(super) fn facility_key(f: FacilityId) -> String {
    format!("{FACILITY}{f}")
}

/// A patient (the domain of its relations) as the enforcer is asked about it.
pub(super) fn patient_key(p: PatientId) -> String {
    format!("{PATIENT}{p}")
}

fn parse_facility(name: &str) -> Option<FacilityId> {
    let id = name.strip_prefix(FACILITY)?;
    Uuid::parse_str(id).ok().map(FacilityId::from_uuid)
}

fn parse_patient(domain: Option<&str>) -> Option<PatientId> {
    let id = domain?.strip_prefix(PATIENT)?;
    Uuid::parse_str(id).ok().map(PatientId::from_uuid)
}

/// Every patient's relations: (facility, relation) pairs, sorted, each once.
#[derive(Default)]
pub(super) struct RelationGraph {
    by_patient: HashMap<PatientId, Box<[(FacilityId, Relation)]>>,
}

impl RelationGraph {
    /// Replaces the patient's relations with `pairs` (none: the patient is forgotten).
    pub(super) fn replace(&mut self, patient: PatientId, mut pairs: Vec<(FacilityId, Relation)>) {
        pairs.sort_unstable();
        pairs.dedup();
        if pairs.is_empty() {
            self.by_patient.remove(&patient);
        } else {
            self.by_patient.insert(patient, pairs.into_boxed_slice());
        }
    }

    /// Removes one relation of one facility to the patient, if held.
    pub(super) fn remove(&mut self, patient: PatientId, pair: (FacilityId, Relation)) {
        if let Some(pairs) = self.by_patient.get(&patient) {
            if pairs.contains(&pair) {
                let left: Vec<_> = pairs.iter().copied().filter(|p| *p != pair).collect();
                self.replace(patient, left);
            }
        }
    }

    /// Whether `facility` holds `relation` to `patient`.
    pub(super) fn holds(
        &self,
        facility: FacilityId,
        relation: Relation,
        patient: PatientId,
    ) -> bool {
        self.by_patient
            .get(&patient)
            .is_some_and(|pairs| pairs.binary_search(&(facility, relation)).is_ok())
    }

    /// The patient's relations, sorted (empty when none are held).
    pub(super) fn of(&self, patient: PatientId) -> &[(FacilityId, Relation)] {
        self.by_patient.get(&patient).map_or(&[], |p| p)
    }

    /// The patients with relations held.
    #[cfg(test)]
    pub(super) fn patients(&self) -> impl Iterator<Item = PatientId> + '_ {
        self.by_patient.keys().copied()
    }

    /// How many relations are held in all.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_patient.values().map(|p| p.len()).sum()
    }
}

/// Casbin's side. The enforcer only ever asks `has_link` (the matcher's `g`); links are added
/// and removed through [`RelationGraph::replace`], never through the enforcer's grouping rules,
/// so that no second copy of the relations exists. The other methods keep the trait's meaning
/// for a caller that uses them.
impl RoleManager for RelationGraph {
    fn clear(&mut self) {
        self.by_patient.clear();
    }

    fn add_link(&mut self, name1: &str, name2: &str, domain: Option<&str>) {
        if let (Some(facility), Some(relation), Some(patient)) = (
            parse_facility(name1),
            Relation::parse(name2),
            parse_patient(domain),
        ) {
            let mut pairs = self.of(patient).to_vec();
            pairs.push((facility, relation));
            self.replace(patient, pairs);
        }
    }

    /// The model matches names exactly: there is nothing to match by pattern.
    fn matching_fn(&mut self, _role: Option<MatchingFn>, _domain: Option<MatchingFn>) {}

    fn delete_link(
        &mut self,
        name1: &str,
        name2: &str,
        domain: Option<&str>,
    ) -> casbin::Result<()> {
        if let (Some(facility), Some(relation), Some(patient)) = (
            parse_facility(name1),
            Relation::parse(name2),
            parse_patient(domain),
        ) {
            self.remove(patient, (facility, relation));
        }
        Ok(())
    }

    fn has_link(&self, name1: &str, name2: &str, domain: Option<&str>) -> bool {
        match (
            parse_facility(name1),
            Relation::parse(name2),
            parse_patient(domain),
        ) {
            (Some(facility), Some(relation), Some(patient)) => {
                self.holds(facility, relation, patient)
            }
            _ => false,
        }
    }

    fn get_roles(&self, name: &str, domain: Option<&str>) -> Vec<String> {
        let (Some(facility), Some(patient)) = (parse_facility(name), parse_patient(domain)) else {
            return Vec::new();
        };
        self.of(patient)
            .iter()
            .filter(|(f, _)| *f == facility)
            .map(|(_, r)| r.as_str().to_string())
            .collect()
    }

    fn get_users(&self, name: &str, domain: Option<&str>) -> Vec<String> {
        let (Some(relation), Some(patient)) = (Relation::parse(name), parse_patient(domain)) else {
            return Vec::new();
        };
        self.of(patient)
            .iter()
            .filter(|(_, r)| *r == relation)
            .map(|(f, _)| facility_key(*f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_answers_casbin_by_facility_relation_and_patient() {
        let (clinic, nurses) = (FacilityId::new(), FacilityId::new());
        let (first, second) = (PatientId::new(), PatientId::new());
        let mut graph = RelationGraph::default();
        graph.replace(
            first,
            vec![
                (nurses, Relation::Sharing),
                (clinic, Relation::Registering),
                (clinic, Relation::Sharing),
                (clinic, Relation::Sharing),
            ],
        );
        assert_eq!(graph.len(), 3, "held once each");
        let asks = |g: &RelationGraph, f, r: &str, p| {
            g.has_link(&facility_key(f), r, Some(&patient_key(p)))
        };
        assert!(asks(&graph, clinic, "sharing", first));
        assert!(asks(&graph, nurses, "sharing", first));
        assert!(!asks(&graph, nurses, "registering", first));
        assert!(!asks(&graph, clinic, "sharing", second), "another patient");
        assert!(!asks(&graph, clinic, "unknown", first), "no such relation");
        assert!(
            !graph.has_link(&clinic.to_string(), "sharing", Some(&patient_key(first))),
            "a name without its kind is no facility"
        );
        assert!(!graph.has_link(&facility_key(clinic), "sharing", None));
        assert_eq!(
            graph.get_roles(&facility_key(clinic), Some(&patient_key(first))),
            vec!["registering", "sharing"]
        );
        assert_eq!(
            graph.get_users("sharing", Some(&patient_key(first))).len(),
            2
        );

        graph.remove(first, (nurses, Relation::Sharing));
        assert!(!asks(&graph, nurses, "sharing", first));
        graph
            .delete_link(&facility_key(clinic), "sharing", Some(&patient_key(first)))
            .unwrap();
        graph.add_link(&facility_key(nurses), "invited", Some(&patient_key(second)));
        assert_eq!(graph.of(first), &[(clinic, Relation::Registering)]);
        assert_eq!(graph.of(second), &[(nurses, Relation::Invited)]);
        graph.replace(first, Vec::new());
        assert!(graph.of(first).is_empty());
        graph.clear();
        assert_eq!(graph.len(), 0);
    }
}
