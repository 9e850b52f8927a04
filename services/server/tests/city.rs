//! `renrakucho demo --scale N` as docs/performance.md gives it, at the suite's small scale: on
//! the zero-configuration private cluster, refused a second time, its audit chains intact; and
//! with `DATABASE_URL`, refused without a superuser's URL, naming the option.

use renrakucho_testkit::TestDatabase;
use sqlx::ConnectOptions;

mod common;
use common::{describe, renrakucho, run, text, Scratch};

#[tokio::test]
async fn the_city_generator_fills_the_private_cluster_once_and_its_audit_verifies() {
    let scratch = Scratch::new("city");
    let envs = [("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir()))];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);

    let made = run(command(&["demo", "--scale", "0.001"])).await;
    assert!(made.status.success(), "{}", describe(&made));
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(
        stdout.contains("The city is ready")
            && stdout.contains("5 facilities, 50 staff, 50 patients")
            && stdout.contains("5000 entries")
            && stdout.contains("Sign in: facility code CITY-00000"),
        "{}",
        describe(&made)
    );

    let again = run(command(&["demo", "--scale", "0.001"])).await;
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already in this database"),
        "{}",
        describe(&again)
    );

    let verified = run(command(&["audit", "verify"])).await;
    assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("Audit log intact"));

    for bad in ["0", "-1", "abc", "11"] {
        let refused = run(command(&["demo", "--scale", bad])).await;
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{bad}: {}",
            describe(&refused)
        );
    }
}

#[tokio::test]
async fn with_database_url_the_city_needs_a_superuser_url_and_refuses_the_owner() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("city-url");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);

    let missing = run(command(&["demo", "--scale", "0.001"])).await;
    assert_eq!(missing.status.code(), Some(2), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--superuser-url"));

    // The owner is subject to row-level security (FORCE): COPY would be refused, so the
    // generator says so before writing anything.
    let owner = db.owner_url();
    let refused = run(command(&[
        "demo",
        "--scale",
        "0.001",
        "--superuser-url",
        &owner,
    ]))
    .await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("superuser"),
        "{}",
        describe(&refused)
    );
    let mut su = db.superuser_options().connect().await.unwrap();
    let facilities: i64 = sqlx::query_scalar("SELECT count(*) FROM facilities")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(facilities, 0, "nothing was written");
}
