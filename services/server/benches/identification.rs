//! Emergency identification (ADR 0018): a real card number with the wrong date of birth next to
//! a number that names no card, in the same run, on the same database, through the care
//! function the API calls (keyed hashes, `emergency_identify`, the constant-time comparison,
//! the failure recorded and audited). The two must cost the same: the ratio of their means is
//! what docs/performance.md reports.
//!
//! Each call is timed alone, the two kinds alternating within every sample; between calls
//! (untimed) the failures are removed as the database owner, so that neither the facility nor
//! the card locks and every call takes the path it would take the first time.
//!
//! `cargo bench -p renrakucho-server --bench identification`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use renrakucho_core::{BirthDate, CardNumber, FacilityKind, Profession, StaffRole};
use renrakucho_registry::{CareError, EmergencyReason, EmergencyRequest, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_testkit::spawn_app;
use sqlx::postgres::PgPoolOptions;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, keyring, who, card) = rt.block_on(async {
        let app = spawn_app().await;
        let clinic = app.seed_facility("BENCH-ID-C", FacilityKind::Clinic).await;
        let hospital = app
            .seed_facility("BENCH-ID-H", FacilityKind::Hospital)
            .await;
        let doctor = app
            .seed_staff(
                &clinic,
                "doctor",
                StaffRole::FacilityAdmin,
                Profession::Doctor,
            )
            .await;
        let er = app
            .seed_staff(&hospital, "doctor", StaffRole::Staff, Profession::Doctor)
            .await;
        let keyring = app.keyring().await;
        let mut card = None;
        // Some patients, so that the lookup is an index probe among many.
        for n in 0..200 {
            let patient = app
                .seed_patient(&doctor, &format!("性能 照子{n}"), "セイノウ テルコ")
                .await;
            let who = StaffActor {
                staff: doctor.id,
                facility: doctor.facility_id,
            };
            let c = renrakucho_registry::patient_card(
                &app.db,
                &keyring,
                &renrakucho_testkit::acting::allowed(who, patient.id),
                &Origin::default(),
            )
            .await
            .unwrap();
            card = Some(c.number);
        }
        let who = StaffActor {
            staff: er.id,
            facility: er.facility_id,
        };
        (
            app,
            keyring,
            who,
            CardNumber::parse(&card.unwrap()).unwrap(),
        )
    });
    let owner = rt.block_on(async {
        PgPoolOptions::new()
            .max_connections(1)
            .connect_with(app.database.superuser_options())
            .await
            .unwrap()
    });
    rt.block_on(async {
        sqlx::query("ANALYZE").execute(&owner).await.unwrap();
    });
    let today = time::OffsetDateTime::now_utc().date();
    let request = |card: CardNumber, birth: &str| EmergencyRequest {
        card,
        birth_date: BirthDate::parse(birth, today).unwrap(),
        reason: EmergencyReason::parse("救急搬送時に既往歴を確認するため").unwrap(),
        duration: time::Duration::HOUR,
    };
    let unknown = CardNumber::from_random([0x5a; renrakucho_core::card::CARD_RANDOM_BYTES]);
    let origin = Origin::default();

    let mut group = c.benchmark_group("identification");
    group.sample_size(100);
    group.measurement_time(Duration::from_secs(20));
    // Each sample alternates the two kinds of call and times only its own, so that both see
    // the same load (the machine is shared) and the same table state; the failures table is
    // emptied (untimed) after every call.
    let cases = [
        ("wrong_birth_date", card.clone(), unknown.clone()),
        ("unknown_card", unknown.clone(), card.clone()),
    ];
    for (name, timed, other) in cases {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (db, keyring, owner, origin) = (
                    app.db.clone(),
                    keyring.clone(),
                    owner.clone(),
                    origin.clone(),
                );
                let timed = request(timed.clone(), "1941-03-03");
                let other = request(other.clone(), "1941-03-03");
                async move {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        for (make, measured) in [(&other, false), (&timed, true)] {
                            let started = Instant::now();
                            let outcome = renrakucho_registry::open_emergency(
                                &db,
                                &keyring,
                                &renrakucho_testkit::acting::permitted(who),
                                &origin,
                                make.clone(),
                            )
                            .await;
                            if measured {
                                spent += started.elapsed();
                            }
                            assert!(
                                matches!(outcome, Err(CareError::NotIdentified)),
                                "{outcome:?}"
                            );
                            sqlx::query("TRUNCATE emergency_identification_failures")
                                .execute(&owner)
                                .await
                                .unwrap();
                        }
                    }
                    spent
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
