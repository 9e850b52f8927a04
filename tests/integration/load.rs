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
    let network = load::build(
        &app,
        Shape {
            facilities: 3,
            staff_per_facility: 2,
            patients_per_facility: 2,
            entries_per_patient: 3,
        },
    )
    .await;
    assert_eq!(network.members.len(), 6);
    assert_eq!(network.patients.len(), 6);
    assert!(network.members.iter().all(|m| m.patients.len() >= 2));
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
        let bare = load::raw(&network, &raw, operation, 2, Duration::from_millis(300)).await;
        assert_eq!(
            bare.errors,
            0,
            "{} raw: {:?}",
            operation.name(),
            bare.first_error
        );
        assert!(bare.completed > 0);
    }
}
