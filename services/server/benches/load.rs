//! The load bench (issue 14): the running server on loopback, a network of facilities with their
//! staff signed in, each operation of a working day at concurrency 1, 8, 32 and 128, next to the
//! same statements issued raw against the same database at the same concurrency in the same run
//! (`renrakucho_testkit::load`). Prints a Markdown table: requests per second, p50/p95/p99, the
//! ratio to raw, errors (there must be none), and the process's peak resident set.
//!
//! ```sh
//! cargo bench -p renrakucho-server --bench load
//! ```
//!
//! Sizes by environment (defaults in brackets): `LOAD_FACILITIES` [40], `LOAD_STAFF` [3 per
//! facility], `LOAD_PATIENTS` [5 per facility], `LOAD_ENTRIES` [200 per patient],
//! `LOAD_SECONDS` [5 per measurement], `LOAD_CONCURRENCY` [1,8,32,128], `LOAD_OPERATIONS` [all;
//! e.g. `notebook,post`]. The server and the driver share the process (and its two cores), so the
//! peak resident set is the server's and the driver's together: an upper bound on the server's.

use std::time::Duration;

use renrakucho_testkit::load::{self, Measured, Operation, Shape};
use renrakucho_testkit::spawn_app;
use sqlx::postgres::PgPoolOptions;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn operations() -> Vec<Operation> {
    let Ok(list) = std::env::var("LOAD_OPERATIONS") else {
        return Operation::ALL.to_vec();
    };
    Operation::ALL
        .into_iter()
        .filter(|op| {
            list.split(',').any(|n| {
                op.name().starts_with(n.trim()) || format!("{op:?}").eq_ignore_ascii_case(n.trim())
            })
        })
        .collect()
}

fn main() {
    let shape = Shape {
        facilities: setting("LOAD_FACILITIES", 40),
        staff_per_facility: setting("LOAD_STAFF", 3),
        patients_per_facility: setting("LOAD_PATIENTS", 5),
        entries_per_patient: setting("LOAD_ENTRIES", 200),
    };
    let seconds = Duration::from_secs(setting("LOAD_SECONDS", 5) as u64);
    let concurrency: Vec<usize> = std::env::var("LOAD_CONCURRENCY")
        .unwrap_or_else(|_| "1,8,32,128".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let app = spawn_app().await;
        let network = load::build(&app, shape).await;
        let raw = PgPoolOptions::new()
            .max_connections(app.settings.database_max_connections)
            .connect_with(app.database.superuser_options())
            .await
            .expect("the raw pool");
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&raw)
            .await
            .expect("the database's size");
        println!(
            "network: {shape:?}; {} members signed in, {} patients; built in {:.1} s; database {} MiB; \
             pool {} connections each side; {} s per measurement",
            network.members.len(),
            network.patients.len(),
            network.built_in.as_secs_f64(),
            size / (1024 * 1024),
            app.settings.database_max_connections,
            seconds.as_secs(),
        );
        println!();
        println!("| operation | concurrency | server req/s | p50 ms | p95 ms | p99 ms | raw /s | raw p50 | raw p95 | raw p99 | ratio | errors | peak RSS MiB |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        let _ = load::peak_rss_mib_and_reset();
        let mut peak: f64 = 0.0;
        for operation in operations() {
            for &c in &concurrency {
                // A short unmeasured round first: connections opened, caches warm.
                let _ = load::through_server(&network, &app.address, operation, c, Duration::from_millis(500)).await;
                let served: Measured =
                    load::through_server(&network, &app.address, operation, c, seconds).await;
                let rss = load::peak_rss_mib_and_reset().unwrap_or(0.0);
                peak = peak.max(rss);
                let _ = load::raw(&network, &raw, operation, c, Duration::from_millis(500)).await;
                let bare: Measured = load::raw(&network, &raw, operation, c, seconds).await;
                println!(
                    "| {} | {c} | {:.0} | {} | {} | {} | {:.0} | {} | {} | {} | **{:.2}** | {}{} | {:.0} |",
                    operation.name(),
                    served.per_second(),
                    ms(served.quantile(0.50)),
                    ms(served.quantile(0.95)),
                    ms(served.quantile(0.99)),
                    bare.per_second(),
                    ms(bare.quantile(0.50)),
                    ms(bare.quantile(0.95)),
                    ms(bare.quantile(0.99)),
                    served.per_second() / bare.per_second().max(1e-9),
                    served.errors + bare.errors,
                    served
                        .first_error
                        .as_ref()
                        .or(bare.first_error.as_ref())
                        .map(|e| format!(" ({})", e.chars().take(120).collect::<String>()))
                        .unwrap_or_default(),
                    rss,
                );
            }
        }
        println!();
        println!("peak resident set while the server was measured: {peak:.0} MiB");
    });
}
