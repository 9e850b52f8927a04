//! The load driver of the `load` bench, run tiny: every operation through the server and raw, no
//! error. Not a measurement (the bench is, docs/performance.md): it keeps the driver and the
//! network builder from rotting.

use std::time::Duration;

use renrakucho_testkit::load::{self, Operation, Shape};
use renrakucho_testkit::spawn_app;
use sqlx::postgres::PgPoolOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_load_bench_runs_without_error() {
    let app = spawn_app().await;
    // The small-scale run of `renrakucho demo --scale 0.001`: five facilities of ten staff,
    // fifty patients, five thousand entries.
    let shape = Shape::at_scale(0.001).unwrap();
    let network = load::build(&app, shape, 8).await;
    let city = &network.city;
    assert_eq!(city.facilities.len(), 5);
    assert_eq!(network.patients.len(), 50);
    assert_eq!(city.entries, 5_000);
    // All but each notebook's newest five have a receipt; one audit record per entry posted
    // and per reader of a notebook.
    assert_eq!(city.receipts, 50 * 95);
    assert!(city.audit_records > 5_000, "{}", city.audit_records);
    assert_eq!(network.members.len(), 8);
    assert!(network.members.iter().all(|m| m.patients.len() >= 10));
    // The chains the database linked over the COPY'd notebooks verify like the server's own.
    let report = renrakucho_store::audit::verify(&app.db).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert!(report.records as u64 >= city.audit_records);
    // The generated entries decrypt for a member of the care team, newest first, and the
    // unread ones are the newest five.
    let member = &network.members[0];
    let patient = &network.patients[member.patients[0]];
    let page: serde_json::Value = member
        .client
        .get(format!(
            "{}/api/v1/patients/{}/entries?limit=50",
            app.address,
            patient.id.as_uuid()
        ))
        // The driver's clients ask for gzip and never look inside; this one reads the page.
        .header(reqwest::header::ACCEPT_ENCODING, "identity")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().expect("a page of entries");
    assert_eq!(entries.len(), 50);
    assert_eq!(entries[0]["id"], patient.entries[0].to_string());
    assert_eq!(entries[0]["body"], load::entry_text(99));
    assert!(entries.iter().all(|e| e.get("unreadable").is_none()));
    let raw = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(app.database.superuser_options())
        .await
        .unwrap();
    for operation in Operation::ALL {
        let served = load::through_server(
            &network,
            &app.address,
            operation,
            2,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(
            served.errors,
            0,
            "{} through the server: {:?}",
            operation.name(),
            served.first_error
        );
        assert!(
            served.completed > 0,
            "{} completed nothing",
            operation.name()
        );
        for mode in [load::Raw::Bare, load::Raw::Audited] {
            let bare = load::raw(
                &network,
                &raw,
                operation,
                2,
                Duration::from_millis(300),
                mode,
            )
            .await;
            assert_eq!(
                bare.errors,
                0,
                "{} raw ({mode:?}): {:?}",
                operation.name(),
                bare.first_error
            );
            assert!(bare.completed > 0);
        }
    }
    // The audited raw side's records went through the same chain trigger.
    let report = renrakucho_store::audit::verify(&app.db).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}
