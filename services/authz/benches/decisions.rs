//! Casbin decisions with 100, 1,000 and 10,000 facilities' care-team relations loaded (five
//! patients per facility, each shared with two other facilities: 50,000 patients and 300,000
//! relation links at the largest). The cost of a decision, and of replacing one patient's
//! relations, must not grow with the network. For each size it also prints how much the
//! process's resident set grew while the relations were loaded (the authorizer's copy of them).
//!
//! `cargo bench -p renrakucho-authz --bench decisions`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};
use renrakucho_authz::{Action, Authorizer, Link, Relation, Role};
use renrakucho_core::{FacilityId, PatientId, Profession};

const PATIENTS_PER_FACILITY: usize = 5;

struct Network {
    authz: Authorizer,
    /// (facility, patient) pairs that are linked, to ask about.
    links: Vec<(FacilityId, PatientId)>,
    facilities: Vec<FacilityId>,
}

fn network(rt: &tokio::runtime::Runtime, facilities: usize) -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ids: Vec<FacilityId> = (0..facilities).map(|_| FacilityId::new()).collect();
    let mut links = Vec::new();
    let mut relations = Vec::new();
    let link = |facility, relation| Link {
        facility,
        relation,
        expires_at: None,
    };
    for registering in &ids {
        for _ in 0..PATIENTS_PER_FACILITY {
            let patient = PatientId::new();
            links.push((*registering, patient));
            relations.push((patient, link(*registering, Relation::Registering)));
            relations.push((patient, link(*registering, Relation::Sharing)));
            for _ in 0..2 {
                let member = ids[rng.gen_range(0..ids.len())];
                links.push((member, patient));
                relations.push((patient, link(member, Relation::Member)));
                relations.push((patient, link(member, Relation::Sharing)));
            }
        }
    }
    let held = relations.len();
    let before = resident_kib();
    let authz = rt.block_on(async {
        let authz = Authorizer::new().await.unwrap();
        authz.load(relations).await.unwrap();
        authz
    });
    let grown = resident_kib().saturating_sub(before);
    println!(
        "relations of {facilities} facilities: {held} links, resident set +{:.1} MiB ({} bytes a link)",
        grown as f64 / 1024.0,
        grown * 1024 / held.max(1) as u64
    );
    Network {
        authz,
        links,
        facilities: ids,
    }
}

/// The process's resident set in KiB (Linux: `VmRSS` of /proc/self/status).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("decision");
    for size in [100, 1_000, 10_000] {
        let net = network(&rt, size);
        let doctor = [Role::Profession(Profession::Doctor)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        group.bench_with_input(BenchmarkId::new("allowed", size), &size, |b, _| {
            b.iter(|| {
                let (f, p) = net.links[rng.gen_range(0..net.links.len())];
                let ok = rt
                    .block_on(net.authz.allowed(&doctor, f, p, Action::NotebookRead))
                    .unwrap();
                assert!(ok);
            })
        });
        group.bench_with_input(BenchmarkId::new("denied", size), &size, |b, _| {
            b.iter(|| {
                // A facility asking about a patient it does not care for.
                let (_, p) = net.links[rng.gen_range(0..net.links.len())];
                let f = net.facilities[rng.gen_range(0..net.facilities.len())];
                std::hint::black_box(
                    rt.block_on(net.authz.allowed(&doctor, f, p, Action::NotebookRead))
                        .unwrap(),
                );
            })
        });
    }
    group.finish();

    // One patient's relations replaced (a care-team change announced): must not grow with the
    // network either, since every decision waits on the write lock meanwhile.
    let mut group = c.benchmark_group("replace_patient");
    for size in [100, 1_000, 10_000] {
        let net = network(&rt, size);
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        group.bench_with_input(BenchmarkId::new("team_of_three", size), &size, |b, _| {
            b.iter(|| {
                let (registering, patient) = net.links[rng.gen_range(0..net.links.len())];
                let member = net.facilities[rng.gen_range(0..net.facilities.len())];
                let team = [
                    Link {
                        facility: registering,
                        relation: Relation::Sharing,
                        expires_at: None,
                    },
                    Link {
                        facility: member,
                        relation: Relation::Invited,
                        expires_at: None,
                    },
                ];
                rt.block_on(net.authz.replace_patient(patient, &team))
                    .unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
