//! Encrypting and decrypting 1 KiB values through the keyring (warm cache, real PostgreSQL for
//! the key table) next to raw `aes-gcm` on the same data, in the same run.
//!
//! `cargo bench -p renrakucho-keyring --bench keyring`

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use aes_gcm::Aes256Gcm;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::RngCore;
use renrakucho_core::{FacilityCode, FacilityKind, FacilityName, FacilityStatus, PatientId};
use renrakucho_keyring::{Binding, CacheSettings, KeyOwner, Keyring, LocalMasterKeys, MasterKeys};
use renrakucho_store::facilities::{self, NewFacility};
use renrakucho_store::{Database, Scope};
use renrakucho_testkit::TestDatabase;
use uuid::Uuid;

/// Values per measured iteration, so that entering the runtime is amortised.
const BATCH: usize = 100;
const VALUE: usize = 1024;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let test_db = rt.block_on(TestDatabase::create());
    let db = rt
        .block_on(Database::connect(&test_db.connections(), 2))
        .unwrap();
    let keys_dir = tempfile::tempdir().unwrap();
    let local = LocalMasterKeys::open_dir(&keys_dir.path().join("keys")).unwrap();
    let keyring = Keyring::new(MasterKeys::new(Arc::new(local)), CacheSettings::default());
    rt.block_on(keyring.prepare(&db)).unwrap();
    let facility = rt.block_on(async {
        let mut tx = db.begin(Scope::Platform).await.unwrap();
        let f = facilities::insert(
            &mut tx,
            &NewFacility {
                code: FacilityCode::parse("BENCH").unwrap(),
                name: FacilityName::parse("ベンチ").unwrap(),
                kind: FacilityKind::Clinic,
                status: FacilityStatus::Active,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        f
    });

    let mut data = vec![0u8; VALUE];
    rand::rngs::OsRng.fill_bytes(&mut data);
    let binding = Binding {
        owner: KeyOwner::Patient(PatientId::new()),
        table: "entries",
        column: "body",
        row: Uuid::now_v7(),
        version: 1,
    };
    let mut tx = rt.block_on(db.begin(Scope::Facility(facility.id))).unwrap();
    // Warm: the patient's key exists and is cached.
    let sealed = rt
        .block_on(keyring.encrypt(&mut tx, &binding, &data))
        .unwrap();

    let mut raw_key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw_key);
    let raw = Aes256Gcm::new(&raw_key.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let raw_sealed = raw
        .encrypt(&Nonce::<Aes256Gcm>::from(nonce), &data[..])
        .unwrap();

    let mut group = c.benchmark_group("1KiB");
    group.throughput(Throughput::Bytes((BATCH * VALUE) as u64));
    group.bench_function("encrypt/raw-aes-gcm", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                // The same nonce source as the keyring's.
                let mut nonce = [0u8; 12];
                rand::thread_rng().fill_bytes(&mut nonce);
                std::hint::black_box(
                    raw.encrypt(&Nonce::<Aes256Gcm>::from(nonce), &data[..])
                        .unwrap(),
                );
            }
        })
    });
    group.bench_function("encrypt/keyring", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    std::hint::black_box(keyring.encrypt(&mut tx, &binding, &data).await.unwrap());
                }
            })
        })
    });
    // For reference (not the baseline): raw aes-gcm with associated data of the keyring's size,
    // to show how much of the difference is the binding itself.
    let aad = [7u8; 35];
    group.bench_function("encrypt/raw-aes-gcm-with-35-byte-aad", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let mut nonce = [0u8; 12];
                rand::thread_rng().fill_bytes(&mut nonce);
                std::hint::black_box(
                    raw.encrypt(
                        &Nonce::<Aes256Gcm>::from(nonce),
                        Payload {
                            msg: &data[..],
                            aad: &aad,
                        },
                    )
                    .unwrap(),
                );
            }
        })
    });
    group.bench_function("decrypt/raw-aes-gcm", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                std::hint::black_box(
                    raw.decrypt(&Nonce::<Aes256Gcm>::from(nonce), &raw_sealed[..])
                        .unwrap(),
                );
            }
        })
    });
    group.bench_function("decrypt/keyring", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    std::hint::black_box(
                        keyring.decrypt(&mut tx, &binding, &sealed).await.unwrap(),
                    );
                }
            })
        })
    });
    // The way a request handles many values of one patient: the key looked up once per batch.
    group.bench_function("encrypt/keyring-owner-keys", |b| {
        b.iter(|| {
            rt.block_on(async {
                let keys = keyring.owner_keys(&mut tx, binding.owner).await.unwrap();
                for _ in 0..BATCH {
                    std::hint::black_box(keys.encrypt(&binding, &data).unwrap());
                }
            })
        })
    });
    group.bench_function("decrypt/keyring-owner-keys", |b| {
        b.iter(|| {
            rt.block_on(async {
                let keys = keyring.owner_keys(&mut tx, binding.owner).await.unwrap();
                for _ in 0..BATCH {
                    std::hint::black_box(keys.decrypt(&mut tx, &binding, &sealed).await.unwrap());
                }
            })
        })
    });
    group.finish();
    rt.block_on(async {
        tx.commit().await.unwrap();
        db.close().await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
