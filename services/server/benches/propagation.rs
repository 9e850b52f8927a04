//! How long one consent change takes to reach every server's authorizer, with four server
//! instances on one database (each with its own pool, its own LISTEN connection and its own
//! Casbin enforcer, as separate processes would have), next to the bare PostgreSQL
//! LISTEN/NOTIFY round trip measured in the same run.
//!
//! Each iteration records a consent (or withdraws it) through the domain, and the clock runs
//! from the commit until all four authorizers give the new answer for the member facility.
//!
//! `cargo bench -p renrakucho-server --bench propagation`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use renrakucho_authz::{Action, Authorizer, Role};
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_registry::{ConsentForm, ConsentScope, Signer, StaffActor};
use renrakucho_server::Application;
use renrakucho_store::audit::Origin;
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::postgres::PgListener;
use sqlx::{ConnectOptions, Executor};

const INSTANCES: usize = 4;

async fn wait_all(
    authz: &[Arc<Authorizer>],
    facility: renrakucho_core::FacilityId,
    patient: renrakucho_core::PatientId,
    expected: bool,
) {
    let pharmacist = [Role::Profession(Profession::Pharmacist)];
    let deadline = Instant::now() + Duration::from_secs(10);
    for a in authz {
        loop {
            if a.allowed(&pharmacist, facility, patient, Action::NotebookRead)
                .await
                .unwrap()
                == expected
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a change did not arrive within 10 s"
            );
            tokio::task::yield_now().await;
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, mut authz, _servers, clinic, pharmacy, patient): (
        TestApp,
        Vec<Arc<Authorizer>>,
        Vec<tokio::sync::oneshot::Sender<()>>,
        _,
        _,
        _,
    ) = rt.block_on(async {
        let app = spawn_app().await;
        let mut authz = vec![app.authz.clone()];
        let mut servers = Vec::new();
        for _ in 1..INSTANCES {
            let server = Application::build(&app.settings, &app.database.connections())
                .await
                .unwrap();
            authz.push(server.authorizer().clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(server.run_until(async {
                let _ = stopped.await;
            }));
            servers.push(stop);
        }
        let clinic_f = app.seed_facility("BENCH-REG", FacilityKind::Clinic).await;
        let clinic = app
            .seed_staff(
                &clinic_f,
                "doctor",
                StaffRole::FacilityAdmin,
                Profession::Doctor,
            )
            .await;
        let pharmacy_f = app.seed_facility("BENCH-PHA", FacilityKind::Pharmacy).await;
        let pharmacy = app
            .seed_staff(
                &pharmacy_f,
                "admin",
                StaffRole::FacilityAdmin,
                Profession::Pharmacist,
            )
            .await;
        let patient = app
            .seed_patient(&clinic, "速度 計子", "ソクド ケイコ")
            .await
            .id;
        let origin = Origin::default();
        let who = StaffActor {
            staff: clinic.id,
            facility: clinic.facility_id,
        };
        renrakucho_registry::invite(
            &app.db,
            &renrakucho_testkit::acting::allowed(who, patient),
            &origin,
            &pharmacy_f.code,
        )
        .await
        .unwrap();
        renrakucho_registry::accept_invitation(
            &app.db,
            &renrakucho_testkit::acting::allowed(
                StaffActor {
                    staff: pharmacy.id,
                    facility: pharmacy.facility_id,
                },
                patient,
            ),
            &origin,
        )
        .await
        .unwrap();
        (app, authz, servers, who, pharmacy_f, patient)
    });
    let keyring = rt.block_on(app.keyring());
    let origin = Origin::default();

    let mut group = c.benchmark_group("propagation");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(20));

    // Baseline: PostgreSQL's own NOTIFY → LISTEN delivery, on the same database.
    let (mut listener, notifier) = rt.block_on(async {
        let mut listener = PgListener::connect_with(&sqlx::PgPool::connect_lazy_with(
            app.database.runtime_options(),
        ))
        .await
        .unwrap();
        listener.listen("bench_baseline").await.unwrap();
        let notifier = app.database.runtime_options().connect().await.unwrap();
        (listener, notifier)
    });
    let notifier = tokio::sync::Mutex::new(notifier);
    group.bench_function("notify_listen_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    notifier
                        .lock()
                        .await
                        .execute("NOTIFY bench_baseline, 'x'")
                        .await
                        .unwrap();
                    listener.recv().await.unwrap();
                    total += start.elapsed();
                }
                total
            })
        })
    });

    let mut on_file = false;
    group.bench_function("consent_change_to_all_4_authorizers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = if on_file {
                        renrakucho_registry::withdraw_consent(
                            &app.db,
                            &renrakucho_testkit::acting::allowed(clinic, patient),
                            &origin,
                        )
                        .await
                        .unwrap();
                        Instant::now()
                    } else {
                        let form = ConsentForm {
                            signer: Signer::Patient,
                            signed_on: time::macros::date!(2026 - 11 - 01),
                            scope: ConsentScope::standard(),
                        };
                        renrakucho_registry::record_consent(
                            &app.db,
                            &keyring,
                            &app.files,
                            &renrakucho_testkit::acting::allowed(clinic, patient),
                            &origin,
                            form,
                            None,
                        )
                        .await
                        .unwrap();
                        Instant::now()
                    };
                    on_file = !on_file;
                    wait_all(&authz, pharmacy.id, patient, on_file).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    // Connections and servers close inside the runtime they belong to.
    rt.block_on(async move {
        authz.clear();
        drop(listener);
        drop(notifier);
        drop(app);
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
