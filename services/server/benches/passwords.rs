//! What the password lifecycle costs (issue 15), against one bare argon2id verification with
//! the server's own hasher in the same run: a successful sign-in over HTTP with the password
//! alone and with the password and a TOTP code in the same request (ADR 0031: the second
//! factor read under lock, its secret decrypted, the step recorded), the rules' check of a new
//! password (zxcvbn), and a password change over HTTP (the current password verified, the
//! rules, the current and five earlier hashes verified against the new one, the new one hashed).
//! A TOTP code is good once per account and step, so each round signs in a different account.
//! And the return from a facility's OpenID provider (ADR 0032) with its keys cached: the
//! callback's code exchange at a real provider process (`tests/oidc-provider`), the ID token's
//! validation, the link's lookup and the session; the trip through the provider before it is
//! the provider's own work and not timed.
//!
//! Paired rounds: every round does each once, in an order that rotates, so load drifting during
//! the run (the machine is shared) falls on all alike; medians and their ratios to the bare
//! verification are printed (the figures docs/performance.md reports). The throttle is set out
//! of reach.
//!
//! `cargo bench -p renrakucho-server --bench passwords`

use std::time::{Duration, Instant};

use renrakucho_core::{DisplayName, FacilityKind, LoginId, Password, Profession, StaffRole};
use renrakucho_identity::PasswordRules;
use renrakucho_server::admin_commands::{self, StaffToIssue};
use renrakucho_testkit::oidc::{follow_to_app, OidcAccount, OidcClientConfig, OidcProvider};
use renrakucho_testkit::{new_client, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use serde_json::json;

const ROUNDS: usize = 60;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let app = spawn_app_with(|s| {
        s.signin_account_burst = 1_000_000;
        s.signin_address_burst = 1_000_000;
        // alice signs in with her password alone; the others have authenticators.
        s.staff_second_factor = false;
    })
    .await;
    let clinic = app.seed_facility("BENCH-PW", FacilityKind::Clinic).await;
    admin_commands::create_staff(
        &app.db,
        &app.server_hasher,
        &clinic,
        StaffToIssue {
            login_id: LoginId::parse("alice").unwrap(),
            name: DisplayName::parse("試験 花子").unwrap(),
            role: StaffRole::Staff,
            profession: Profession::Nurse,
            password: &Password::new_secret(FIXTURE_PASSWORD.into()).unwrap(),
            password_must_change: false,
        },
    )
    .await
    .unwrap();
    for round in 0..=ROUNDS {
        app.seed_staff(
            &clinic,
            &format!("totp-{round}"),
            StaffRole::Staff,
            Profession::Nurse,
        )
        .await;
    }
    app.seed_staff(&clinic, "bob", StaffRole::Staff, Profession::Nurse)
        .await;
    let hasher = app.server_hasher.clone();
    let stored = hasher.hash(&Password::new_secret(FIXTURE_PASSWORD.into()).unwrap());
    // Seven passwords in turn: each comes back only after six changes (the reuse rule).
    let cycle: Vec<String> = std::iter::once(FIXTURE_PASSWORD.to_string())
        .chain((1..7).map(|i| format!("Kawabata-{i}-sakura-namiki")))
        .collect();
    let changer = new_client();
    let signed = app
        .sign_in_with(&changer, Some("BENCH-PW"), "bob", FIXTURE_PASSWORD)
        .await;
    assert_eq!(signed.status(), 200);
    let mut changes = 0usize;
    // Kept running to the end of the run.
    let _provider = federate(&app, &clinic).await;

    let kinds = [
        "bare argon2id verification",
        "sign-in over HTTP",
        "sign-in with TOTP over HTTP",
        "rules check (zxcvbn)",
        "password change over HTTP",
        "OIDC callback (warm keys)",
    ];
    let mut times = vec![Vec::with_capacity(ROUNDS); kinds.len()];
    for round in 0..ROUNDS + 1 {
        for k in 0..kinds.len() {
            let i = (round + k) % kinds.len();
            let started = Instant::now();
            match i {
                0 => {
                    let (h, s) = (hasher.clone(), stored.clone());
                    let ok = tokio::task::spawn_blocking(move || {
                        h.verify(
                            &Password::for_sign_in(FIXTURE_PASSWORD.into()).unwrap(),
                            Some(&s),
                        )
                    })
                    .await
                    .unwrap();
                    assert!(ok);
                }
                1 => {
                    let response = app
                        .sign_in_with(&new_client(), Some("BENCH-PW"), "alice", FIXTURE_PASSWORD)
                        .await;
                    assert_eq!(response.status(), 200);
                }
                2 => {
                    // The code is taken before the clock starts: what the person types.
                    let login = format!("totp-{round}");
                    let code = app.one_time_code("BENCH-PW", &login).await.unwrap();
                    let started = Instant::now();
                    let response = new_client()
                        .post(app.url("/api/v1/auth/sign-in"))
                        .json(&json!({ "facility_code": "BENCH-PW", "login_id": login,
                                       "password": FIXTURE_PASSWORD, "one_time_code": code }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    if round > 0 {
                        times[i].push(started.elapsed());
                    }
                    continue;
                }
                3 => {
                    let new = cycle[1 + round % 6].clone();
                    tokio::task::spawn_blocking(move || {
                        PasswordRules::default().check(new, "bob", &["試験 太郎", "BENCH-PW"])
                    })
                    .await
                    .unwrap()
                    .expect("a good password");
                }
                5 => {
                    let client = new_client();
                    let back = provider_return(&app, &client).await;
                    let started = Instant::now();
                    let response = client.get(&back).send().await.unwrap();
                    assert_eq!(response.status(), 303, "signed in through the provider");
                    if round > 0 {
                        times[i].push(started.elapsed());
                    }
                    continue;
                }
                _ => {
                    let (current, new) = (&cycle[changes % 7], &cycle[(changes + 1) % 7]);
                    let response = changer
                        .post(app.url("/api/v1/me/password"))
                        .json(&json!({ "current_password": current, "new_password": new }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 204, "{current} -> {new}");
                    changes += 1;
                }
            }
            // The first round warms up (pool connections, the blocking threads, argon2's
            // memory) and is not counted.
            if round > 0 {
                times[i].push(started.elapsed());
            }
        }
    }
    let quantile = |t: &[Duration], q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    for t in &mut times {
        t.sort();
    }
    let base = quantile(&times[0], 0.5).as_secs_f64();
    println!("paired rounds: {ROUNDS}");
    for (name, t) in kinds.iter().zip(&times) {
        let (q1, median, q3) = (quantile(t, 0.25), quantile(t, 0.5), quantile(t, 0.75));
        println!(
            "{name:>28}: median {:.2} ms (quartiles {:.2}-{:.2}), ratio {:.2}",
            median.as_secs_f64() * 1e3,
            q1.as_secs_f64() * 1e3,
            q3.as_secs_f64() * 1e3,
            median.as_secs_f64() / base
        );
    }
}

/// The clinic's provider: a real one, configured, tested and enabled by the clinic's admin, its
/// subject `bench-sub` linked to the nurse `oidc-nurse`.
async fn federate(app: &TestApp, clinic: &renrakucho_store::facilities::Facility) -> OidcProvider {
    app.seed_staff(
        clinic,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let nurse = app
        .seed_staff(clinic, "oidc-nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let provider = OidcProvider::start(
        vec![OidcClientConfig {
            client_id: "bench".into(),
            client_secret: "bench-client-secret".into(),
            redirect_uris: vec![app.url("/login/provider/callback")],
            post_logout_redirect_uris: vec![app.url("/login")],
        }],
        vec![OidcAccount {
            sub: "bench-sub".into(),
            email: Some("nurse@bench.example.jp".into()),
            email_verified: true,
            preferred_username: None,
            name: None,
        }],
    )
    .await;
    let admin = app.client_for(clinic, "admin").await;
    let saved = admin
        .put(app.url("/api/v1/facility/identity-provider"))
        .json(&json!({ "issuer": provider.issuer, "client_id": "bench",
                       "client_secret": "bench-client-secret", "scopes": ["email"],
                       "login_claim": "email", "account_policy": "pre_linked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    let test = admin
        .post(app.url("/api/v1/facility/identity-provider/test"))
        .send()
        .await
        .unwrap();
    let url = test.json::<serde_json::Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_string();
    let back = follow_to_app(app, &admin, &url).await;
    assert_eq!(admin.get(&back).send().await.unwrap().status(), 200);
    let enabled = admin
        .put(app.url("/api/v1/facility/identity-provider/enabled"))
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    let linked = admin
        .post(app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            nurse.id.as_uuid()
        )))
        .json(&json!({ "subject": "bench-sub" }))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 201);
    provider
}

/// A sign-in through the provider up to the browser's return: the callback URL.
async fn provider_return(app: &TestApp, client: &reqwest::Client) -> String {
    let start = client
        .post(app.url("/api/v1/auth/provider"))
        .json(&json!({ "facility_code": "BENCH-PW" }))
        .send()
        .await
        .unwrap();
    let url = start.json::<serde_json::Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_string();
    follow_to_app(app, client, &url).await
}
