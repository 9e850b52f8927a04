//! Sign-in refusals (issue 13): a wrong password next to an unknown login ID and an unknown
//! facility code, through the JSON API of a running server, in the same run. The three must cost
//! the same, or their timing tells which login IDs and facilities exist: the ratios of their
//! means to the wrong password's are what docs/performance.md reports. (The integration test
//! `sign_in::unknown_user_and_unknown_facility_run_the_same_verification_as_a_wrong_password`
//! checks, without a clock, that each runs exactly one argon2id verification.)
//!
//! Each call is timed alone, the three kinds taking turns within every sample; after criterion's
//! groups, paired rounds (all three kinds in every round) give the medians and ratios, which load
//! drifting during the run cannot skew. The throttle is set out of reach.
//!
//! `cargo bench -p renrakucho-server --bench sign_in`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::spawn_app_with;
use serde_json::json;

const WRONG_PASSWORD: &str = "not the password at all";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(async {
        let app = spawn_app_with(|s| {
            s.signin_account_burst = 1_000_000;
            s.signin_address_burst = 1_000_000;
        })
        .await;
        let clinic = app.seed_facility("BENCH-SIGN", FacilityKind::Clinic).await;
        app.seed_staff(&clinic, "alice", StaffRole::Staff, Profession::Nurse)
            .await;
        app
    });
    let url = app.url("/api/v1/auth/sign-in");
    let client = reqwest::Client::new();
    let kinds = [
        ("wrong_password", "BENCH-SIGN", "alice"),
        ("unknown_user", "BENCH-SIGN", "nobody"),
        ("unknown_facility", "NO-SUCH-9", "alice"),
    ];
    let attempt = |code: &str, login: &str| {
        let request = client
            .post(&url)
            .json(&json!({ "facility_code": code, "login_id": login, "password": WRONG_PASSWORD }));
        async move {
            let response = request.send().await.expect("a sign-in request");
            assert_eq!(response.status(), 401, "a refused sign-in");
        }
    };
    // Warm up: pool connections, the blocking thread pool, argon2's memory.
    rt.block_on(async {
        for (_, code, login) in kinds {
            attempt(code, login).await;
        }
    });

    let mut group = c.benchmark_group("sign_in");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(20));
    for (turn, (name, _, _)) in kinds.iter().enumerate() {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let attempt = &attempt;
                async move {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        for (i, (_, code, login)) in kinds.iter().enumerate() {
                            let started = Instant::now();
                            attempt(code, login).await;
                            if i == turn {
                                spent += started.elapsed();
                            }
                        }
                    }
                    spent
                }
            })
        });
    }
    group.finish();

    // Criterion measures one kind after the other, so load that drifts during the run (the
    // machine is shared) falls on them unequally. Paired rounds put it on all three alike: each
    // round signs in with every kind, in an order that rotates, and each kind's median and its
    // ratio to the wrong password's are printed (the figures docs/performance.md reports).
    const ROUNDS: usize = 300;
    let mut times = vec![Vec::with_capacity(ROUNDS); kinds.len()];
    rt.block_on(async {
        for round in 0..ROUNDS {
            for k in 0..kinds.len() {
                let i = (round + k) % kinds.len();
                let (_, code, login) = kinds[i];
                let started = Instant::now();
                attempt(code, login).await;
                times[i].push(started.elapsed());
            }
        }
    });
    let quantile = |t: &[Duration], q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    for t in &mut times {
        t.sort();
    }
    let base = quantile(&times[0], 0.5).as_secs_f64();
    println!("paired rounds: {ROUNDS}");
    for ((name, _, _), t) in kinds.iter().zip(&times) {
        let (q1, median, q3) = (quantile(t, 0.25), quantile(t, 0.5), quantile(t, 0.75));
        println!(
            "{name:>18}: median {:.2} ms (quartiles {:.2}-{:.2}), ratio {:.3}",
            median.as_secs_f64() * 1e3,
            q1.as_secs_f64() * 1e3,
            q3.as_secs_f64() * 1e3,
            median.as_secs_f64() / base
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
