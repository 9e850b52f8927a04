//! The load bench (issue 14): the release server (`renrakucho serve`, a process of its own) on
//! loopback over a network of facilities with their staff signed in, each operation of a working
//! day at concurrency 1, 8, 32 and 128, next to the same statements issued raw against the same
//! database at the same concurrency in the same run (`renrakucho_testkit::load`): bare, and with
//! the one audit record 第31条 asks of each (`Raw::Audited`). Prints a
//! Markdown table: requests per second, p50/p95/p99, the ratio to raw, errors (there must be
//! none), and the server process's peak resident set during each measurement.
//!
//! ```sh
//! cargo bench -p renrakucho-server --bench load
//! ```
//!
//! Sizes by environment (defaults in brackets): `LOAD_SCALE` [0.02: the city of `renrakucho
//! demo --scale`, made by the same generator; 1 is 1,000 facilities and 5,000,000 entries],
//! `LOAD_MEMBERS` [200 staff signed in, spread over the facilities], `LOAD_SECONDS` [5 per
//! measurement], `LOAD_CONCURRENCY` [1,8,32,128], `LOAD_OPERATIONS` [all;
//! e.g. `Notebook,Post`], `LOAD_POOL` [10: the server's `RENRAKUCHO_DATABASE_MAX_CONNECTIONS`, and
//! the raw side's pool]. The network is built and its staff signed in through a server in this
//! process (the harness's). `LOAD_ASYNC_COMMIT=1` sets `synchronous_commit = off` in the
//! harness's private cluster first, for the comparison in ADR 0026 (the server never does this;
//! refused when `DATABASE_URL` names a shared server); `LOAD_CLUSTER_SETTING=name=value,…` sets
//! any other setting the same way. The measured server is started from the
//! same binary the bench was built with, on the same database, and shares the machine's cores
//! with the driver.

use std::time::Duration;

use renrakucho_testkit::load::{self, Measured, Operation, Raw, Shape};
use renrakucho_testkit::{spawn_app_with, TestApp};
use sqlx::postgres::PgPoolOptions;

/// The release server under measurement, stopped when dropped.
struct Served {
    child: tokio::process::Child,
    address: String,
}

impl Served {
    /// `renrakucho serve` on `app`'s database with `app`'s keys, on a free port, once ready.
    async fn start(app: &TestApp, pool: usize) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let secret = |s: &Option<renrakucho_server::config::Secret>| {
            s.as_ref()
                .expect("the harness sets it")
                .expose()
                .to_string()
        };
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_renrakucho"))
            .arg("serve")
            .env("DATABASE_URL", app.database.owner_url())
            .env(
                "RENRAKUCHO_RUNTIME_DATABASE_URL",
                app.database.runtime_url(),
            )
            .env("RENRAKUCHO_MASTER_KEY", secret(&app.settings.master_key))
            .env("RENRAKUCHO_CSRF_SECRET", secret(&app.settings.csrf_secret))
            .env("RENRAKUCHO_FILES_DIR", app.settings.files_dir())
            .env("RENRAKUCHO_LISTEN", format!("127.0.0.1:{port}"))
            .env("RENRAKUCHO_DATABASE_MAX_CONNECTIONS", pool.to_string())
            .env("RENRAKUCHO_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("starting renrakucho serve");
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{address}/readyz")).send().await {
                if r.status().is_success() {
                    return Self { child, address };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the release server did not become ready");
    }

    /// Its peak resident set since the last call, in MiB (and the peak reset).
    fn peak_rss_mib(&self) -> f64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        kib / 1024.0
    }
}

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
    let scale: f64 = std::env::var("LOAD_SCALE")
        .ok()
        .map(|s| s.parse().expect("LOAD_SCALE: a number"))
        .unwrap_or(0.02);
    let shape = Shape::at_scale(scale).expect("LOAD_SCALE");
    let members = setting("LOAD_MEMBERS", 200);
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
        // Every member signs in from this one address: room for all of them.
        let app = spawn_app_with(|s| {
            s.signin_address_burst = 1_000_000;
        })
        .await;
        let network = load::build(&app, shape, members).await;
        let pool = setting("LOAD_POOL", 10);
        let mut cluster_settings: Vec<String> = std::env::var("LOAD_CLUSTER_SETTING")
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        if setting("LOAD_ASYNC_COMMIT", 0) == 1 {
            cluster_settings.push("synchronous_commit=off".into());
        }
        if !cluster_settings.is_empty() {
            assert!(
                std::env::var_os("DATABASE_URL").is_none(),
                "LOAD_ASYNC_COMMIT and LOAD_CLUSTER_SETTING change the whole cluster: only with \
                 the harness's private one"
            );
            let mut su: sqlx::PgConnection =
                sqlx::Connection::connect_with(&app.database.superuser_options())
                .await
                .expect("a superuser connection");
            // For the whole (private) cluster: the server refuses a runtime role whose database
            // or role carries settings (ADR 0013), and the raw side gets the same.
            for setting in &cluster_settings {
                let (name, value) = setting.split_once('=').expect("LOAD_CLUSTER_SETTING: name=value");
                // A bench knob from the person running it, not input: but keep it a name and a value.
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                sqlx::query(&format!("ALTER SYSTEM SET {name} = '{value}'"))
                    .execute(&mut su)
                    .await
                    .expect("a cluster setting");
                println!("{name} = {value} in the whole cluster, for both sides");
            }
            sqlx::query("SELECT pg_reload_conf()")
                .execute(&mut su)
                .await
                .expect("reloading the configuration");
        }
        let server = Served::start(&app, pool).await;
        let raw = PgPoolOptions::new()
            .max_connections(pool as u32)
            .connect_with(app.database.superuser_options())
            .await
            .expect("the raw pool");
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&raw)
            .await
            .expect("the database's size");
        let city = &network.city;
        println!(
            "network: scale {scale} ({shape:?}): {} patients, {} entries, {} receipts, {} audit \
             records, generated in {:.1} s (network {:.1} s, notebooks {:.1} s); {} members \
             signed in; database {} MiB; pool {} connections each side; {} s per measurement",
            network.patients.len(),
            city.entries,
            city.receipts,
            city.audit_records,
            (city.network_took + city.notebooks_took).as_secs_f64(),
            city.network_took.as_secs_f64(),
            city.notebooks_took.as_secs_f64(),
            network.members.len(),
            size / (1024 * 1024),
            pool,
            seconds.as_secs(),
        );
        println!();
        println!("| operation | concurrency | server req/s | p50 ms | p95 ms | p99 ms | raw /s | raw p99 | raw audited /s | raw audited p99 | × raw | × raw audited | errors | peak RSS MiB |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        let idle = server.peak_rss_mib();
        let mut peak: f64 = 0.0;
        for &c in &concurrency {
            let _ = load::http_alone(&network, &server.address, c, Duration::from_millis(500)).await;
            let alone = load::http_alone(&network, &server.address, c, seconds).await;
            println!(
                "| HTTP alone (`/healthz`) | {c} | {:.0} | {} | {} | {} | | | | | | | {} | |",
                alone.per_second(),
                ms(alone.quantile(0.50)),
                ms(alone.quantile(0.95)),
                ms(alone.quantile(0.99)),
                alone.errors,
            );
        }
        for operation in operations() {
            for &c in &concurrency {
                // A short unmeasured round first: connections opened, caches warm.
                let _ = load::through_server(&network, &server.address, operation, c, Duration::from_millis(500)).await;
                let _ = server.peak_rss_mib();
                let served: Measured =
                    load::through_server(&network, &server.address, operation, c, seconds).await;
                let rss = server.peak_rss_mib();
                peak = peak.max(rss);
                let _ = load::raw(&network, &raw, operation, c, Duration::from_millis(500), Raw::Bare).await;
                let bare: Measured = load::raw(&network, &raw, operation, c, seconds, Raw::Bare).await;
                let audited: Measured =
                    load::raw(&network, &raw, operation, c, seconds, Raw::Audited).await;
                println!(
                    "| {} | {c} | {:.0} | {} | {} | {} | {:.0} | {} | {:.0} | {} | **{:.2}** | **{:.2}** | {}{} | {:.0} |",
                    operation.name(),
                    served.per_second(),
                    ms(served.quantile(0.50)),
                    ms(served.quantile(0.95)),
                    ms(served.quantile(0.99)),
                    bare.per_second(),
                    ms(bare.quantile(0.99)),
                    audited.per_second(),
                    ms(audited.quantile(0.99)),
                    served.per_second() / bare.per_second().max(1e-9),
                    served.per_second() / audited.per_second().max(1e-9),
                    served.errors + bare.errors + audited.errors,
                    served
                        .first_error
                        .as_ref()
                        .or(bare.first_error.as_ref())
                        .or(audited.first_error.as_ref())
                        .map(|e| format!(" ({})", e.chars().take(120).collect::<String>()))
                        .unwrap_or_default(),
                    rss,
                );
            }
        }
        println!();
        println!(
            "the server's resident set: {idle:.0} MiB once ready; at most {peak:.0} MiB under load"
        );
    });
}
