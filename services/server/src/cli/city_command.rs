//! `renrakucho demo --scale N`: the city-scale network for measurements (docs/performance.md).

use std::time::Instant;

use renrakucho_pgcluster::SUPERUSER;
use renrakucho_store::{Database, PgConnectOptions};

use super::{hasher, prepare, Failure};
use crate::city::{self, CityShape};
use crate::config::Settings;
use crate::setup::{self, PRIVATE_DATABASE};
use crate::{demo, keys};

/// Generates the city at `scale` into the configured database, as the cluster's superuser
/// (the private one's, or `superuser_url` with `DATABASE_URL`), and reports what it made.
pub(super) async fn run(
    settings: &Settings,
    scale: f64,
    superuser_url: Option<&str>,
) -> Result<(), Failure> {
    let shape = CityShape::at_scale(scale).map_err(Failure::config)?;
    let databases = prepare(settings).await?;
    let superuser: Result<PgConnectOptions, Failure> = match (&databases.cluster, superuser_url) {
        (_, Some(url)) => url
            .parse()
            .map_err(|e| Failure::config(format!("--superuser-url: {e}"))),
        (Some(cluster), None) => Ok(setup::socket_options(
            cluster,
            SUPERUSER,
            cluster.superuser_password(),
            PRIVATE_DATABASE,
        )),
        (None, None) => Err(Failure::config(
            "--superuser-url: required with DATABASE_URL. The city's notebooks are written \
                 with COPY, which row-level security refuses to the server's roles: give a \
                 superuser's connection URL for this command (it is used for nothing else)",
        )),
    };
    let result = match superuser {
        Ok(superuser) => match Database::connect(&databases.connections(), 8).await {
            Ok(db) => {
                let r = generate(&db, &superuser, settings, shape).await;
                db.close().await;
                r
            }
            Err(e) => Err(Failure::runtime(e)),
        },
        Err(e) => Err(e),
    };
    databases.shutdown().await;
    result
}

async fn generate(
    db: &Database,
    superuser: &PgConnectOptions,
    settings: &Settings,
    shape: CityShape,
) -> Result<(), Failure> {
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    keyring.prepare(db).await.map_err(Failure::runtime)?;
    let files =
        renrakucho_files::FileStore::local(&settings.files_dir()).map_err(Failure::runtime)?;
    let started = Instant::now();
    let progress = move |what: &str| {
        println!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    };
    let city = city::generate(
        db,
        superuser,
        &hasher(settings)?,
        &keyring,
        &files,
        shape,
        4,
        &progress,
    )
    .await
    .map_err(Failure::runtime)?;
    let staff: usize = city.facilities.iter().map(|f| f.staff.len()).sum();
    println!(
        "The city is ready in {:.1} s (network {:.1} s, notebooks {:.1} s): {} facilities, \
         {staff} staff, {} patients in {} care-team memberships, {} entries, {} read \
         receipts, {} audit records; the database holds {:.2} GiB.",
        started.elapsed().as_secs_f64(),
        city.network_took.as_secs_f64(),
        city.notebooks_took.as_secs_f64(),
        city.facilities.len(),
        city.patients.len(),
        city.memberships,
        city.entries,
        city.receipts,
        city.audit_records,
        city.database_bytes as f64 / f64::from(1u32 << 30),
    );
    println!(
        "Sign in: facility code {} (to {}), login ID {} (to {}), password {}",
        city::facility_code(0),
        city::facility_code(shape.facilities - 1),
        city::staff_login(0),
        city::staff_login(shape.staff_per_facility - 1),
        demo::DEMO_PASSWORD
    );
    Ok(())
}
