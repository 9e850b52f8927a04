//! The notebook's two everyday operations against the same statements issued raw, in the same
//! run, on the same database: reading a page of 50 entries from a patient with 2,000 (authorized
//! by Casbin, filtered by row-level security, decrypted, audited) next to the bare SELECT of the
//! same rows (no RLS, no decryption, no authorization); and posting an entry next to the bare
//! INSERT. A second group measures the tenant context itself (ADR 0013): a transaction that only
//! enters it, next to plain ones, and one statement verifying it, next to one reading a setting.
//!
//! `cargo bench -p renrakucho-server --bench notebook`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use renrakucho_authz::{Action, Role};
use renrakucho_core::{Category, EntryBody, FacilityKind, Priority, Profession, StaffRole};
use renrakucho_notebook::{EntryContent, NewEntryInput};
use renrakucho_registry::StaffActor;
use renrakucho_store::audit::Origin;
use renrakucho_store::notebook::TimelineFilter;
use renrakucho_testkit::acting::Writer;
use renrakucho_testkit::load::entry_text;
use renrakucho_testkit::spawn_app;
use sqlx::postgres::PgPoolOptions;

const ENTRIES: usize = 2000;
const PAGE: i64 = 50;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, keyring, author, patient) = rt.block_on(async {
        let app = spawn_app().await;
        let clinic = app.seed_facility("BENCH-NB", FacilityKind::Clinic).await;
        let doctor = app
            .seed_staff(
                &clinic,
                "doctor",
                StaffRole::FacilityAdmin,
                Profession::Doctor,
            )
            .await;
        let patient = app
            .seed_patient(&doctor, "性能 測子", "セイノウ ハカコ")
            .await
            .id;
        let keyring = app.keyring().await;
        let author = Writer {
            actor: StaffActor {
                staff: doctor.id,
                facility: doctor.facility_id,
            },
            name: "性能 医師".into(),
            profession: Profession::Doctor,
            facility_admin: true,
        };
        for n in 0..ENTRIES {
            renrakucho_notebook::post_entry(
                &app.db,
                &keyring,
                &author.on(patient),
                &Origin::default(),
                NewEntryInput {
                    content: EntryContent {
                        category: Category::Treatment,
                        priority: Priority::Info,
                        body: EntryBody::parse(&entry_text(n)).unwrap(),
                        vitals: None,
                        mentions: vec![],
                    },
                    reply_to: None,
                    attachments: vec![],
                },
            )
            .await
            .unwrap();
        }
        (app, keyring, author, patient)
    });
    // The raw side: the same database, a pool of the same size, no row-level security.
    let raw = rt.block_on(async {
        PgPoolOptions::new()
            .max_connections(app.settings.database_max_connections)
            .connect_with(app.database.superuser_options())
            .await
            .unwrap()
    });
    // Fresh statistics, as a database in service has (autovacuum keeps them).
    rt.block_on(async {
        sqlx::query("ANALYZE").execute(&raw).await.unwrap();
    });
    let origin = Origin::default();
    let roles = [Role::Profession(Profession::Doctor), Role::FacilityAdmin];
    let filter = TimelineFilter::default();

    let mut group = c.benchmark_group("notebook");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("read_page_raw_select", |b| {
        b.to_async(&rt).iter(|| async {
            let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(
                "SELECT id, body_enc FROM entries
                  WHERE withdrawn_at IS NULL AND patient_id = $1
                  ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(patient.as_uuid())
            .bind(PAGE)
            .fetch_all(&raw)
            .await
            .unwrap();
            assert_eq!(rows.len() as i64, PAGE);
        })
    });
    // The same SELECT in a tenant transaction as the runtime role: what the transaction and
    // row-level security alone cost.
    group.bench_function("read_page_tenant_transaction_rls", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tx = app
                .db
                .begin(renrakucho_store::Scope::Facility(author.actor.facility))
                .await
                .unwrap();
            let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(
                "SELECT id, body_enc FROM entries
                  WHERE withdrawn_at IS NULL AND patient_id = $1
                  ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(patient.as_uuid())
            .bind(PAGE)
            .fetch_all(tx.raw_connection_for_tests())
            .await
            .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(rows.len() as i64, PAGE);
        })
    });
    group.bench_function("read_page_authorized_rls_decrypted_audited", |b| {
        b.to_async(&rt).iter(|| async {
            assert!(app
                .authz
                .allowed(&roles, author.actor.facility, patient, Action::NotebookRead)
                .await
                .unwrap());
            let page = renrakucho_notebook::timeline(
                &app.db,
                &keyring,
                &renrakucho_testkit::acting::allowed(author.actor, patient),
                &origin,
                &filter,
                None,
                PAGE,
            )
            .await
            .unwrap();
            assert_eq!(page.entries.len() as i64, PAGE);
        })
    });
    let sealed = entry_text(0).into_bytes();
    group.bench_function("post_raw_insert", |b| {
        b.to_async(&rt).iter(|| async {
            sqlx::query(
                "INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                      author_profession, category, priority, body_enc)
                 VALUES ($1, $2, $3, $4, '性能 医師', 'doctor', 'treatment', 'info', $5)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(patient.as_uuid())
            .bind(author.actor.facility.as_uuid())
            .bind(author.actor.staff.as_uuid())
            .bind(&sealed)
            .execute(&raw)
            .await
            .unwrap();
        })
    });
    group.bench_function("post_authorized_rls_encrypted_audited", |b| {
        b.to_async(&rt).iter(|| async {
            assert!(app
                .authz
                .allowed(
                    &roles,
                    author.actor.facility,
                    patient,
                    Action::NotebookWrite
                )
                .await
                .unwrap());
            renrakucho_notebook::post_entry(
                &app.db,
                &keyring,
                &author.on(patient),
                &origin,
                NewEntryInput {
                    content: EntryContent {
                        category: Category::Treatment,
                        priority: Priority::Info,
                        body: EntryBody::parse(&entry_text(1)).unwrap(),
                        vitals: None,
                        mentions: vec![],
                    },
                    reply_to: None,
                    attachments: vec![],
                },
            )
            .await
            .unwrap();
        })
    });
    group.finish();

    // What the tenant context itself costs (ADR 0013): a transaction that only opens the
    // context and commits, next to the same shape as before (BEGIN and a transaction-local
    // setting, COMMIT) on a raw connection; and one verification of the context inside a
    // statement, next to reading the old unverified setting.
    let mut context = c.benchmark_group("context");
    context.sample_size(50);
    context.measurement_time(Duration::from_secs(10));
    let scope = renrakucho_store::Scope::Staff {
        facility: author.actor.facility,
        staff: author.actor.staff,
    };
    context.bench_function("raw_begin_set_config_commit", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = raw.acquire().await.unwrap();
            sqlx::Executor::execute(
                &mut *conn,
                "BEGIN; SELECT set_config('renrakucho.facility_id', \
                 '00000000-0000-0000-0000-000000000001', true)",
            )
            .await
            .unwrap();
            sqlx::Executor::execute(&mut *conn, "COMMIT").await.unwrap();
        })
    });
    // The same two round trips through this crate's pool, as a privileged role (plain BEGIN and
    // COMMIT): what the pool itself costs next to the raw one.
    context.bench_function("pool_begin_commit_privileged", |b| {
        b.to_async(&rt).iter(|| async {
            app.db
                .begin(renrakucho_store::Scope::Platform)
                .await
                .unwrap()
                .commit()
                .await
                .unwrap();
        })
    });
    context.bench_function("begin_enter_commit_reset", |b| {
        b.to_async(&rt).iter(|| async {
            app.db.begin(scope).await.unwrap().commit().await.unwrap();
        })
    });
    let open = tokio::sync::Mutex::new(rt.block_on(app.db.begin(scope)).unwrap());
    context.bench_function("statement_reading_the_old_setting", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tx = open.lock().await;
            let _: Option<uuid::Uuid> = sqlx::query_scalar(
                "SELECT nullif(current_setting('renrakucho.facility_id', true), '')::uuid",
            )
            .fetch_one(tx.raw_connection_for_tests())
            .await
            .unwrap();
        })
    });
    context.bench_function("statement_verifying_the_context", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tx = open.lock().await;
            let facility: Option<uuid::Uuid> = sqlx::query_scalar("SELECT current_facility_id()")
                .fetch_one(tx.raw_connection_for_tests())
                .await
                .unwrap();
            assert!(facility.is_some());
        })
    });
    context.finish();
    drop(open);
    rt.block_on(async move {
        raw.close().await;
        drop(keyring);
        drop(app);
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
