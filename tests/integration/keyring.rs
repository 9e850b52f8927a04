//! The keyring against PostgreSQL, as the runtime role: data keys created on first use and
//! stored only wrapped, values bound to their place, data-key rotation and re-encryption,
//! master-key rotation (online, resumable) and retirement, crypto-shredding (live and in a
//! backup), the unwrapped-key cache, and isolation of the key table.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use renrakucho_core::{FacilityKind, PatientId, Profession, StaffRole};
use renrakucho_keyring::provider::{KeyBytes, WrapContext};
use renrakucho_keyring::{
    Binding, CacheClock, CacheSettings, Header, KeyOwner, Keyring, KeyringError, LocalMasterKeys,
    MasterKeyProvider, MasterKeys, Problem,
};
use renrakucho_store::audit::{Actor, Origin};
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::{deletions, Database, Scope};
use renrakucho_testkit::{spawn_app_with, TestApp, TestDatabase};
use sqlx::{ConnectOptions, PgConnection};
use uuid::Uuid;

use crate::support::wait_until;

/// A local master-key provider that counts unwraps (to see the cache work).
struct Counting {
    inner: LocalMasterKeys,
    unwraps: AtomicUsize,
}

#[async_trait]
impl MasterKeyProvider for Counting {
    fn current_key_id(&self) -> String {
        self.inner.current_key_id()
    }
    fn holds(&self, key_id: &str) -> bool {
        self.inner.holds(key_id)
    }
    async fn wrap(&self, key: &[u8; 32], context: &WrapContext) -> Result<Vec<u8>, KeyringError> {
        self.inner.wrap(key, context).await
    }
    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        context: &WrapContext,
    ) -> Result<KeyBytes, KeyringError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(key_id, wrapped, context).await
    }
    async fn refresh(&self) -> Result<(), KeyringError> {
        self.inner.refresh().await
    }
}

struct Fixture {
    app: TestApp,
    keys_dir: tempfile::TempDir,
    provider: Arc<Counting>,
    keyring: Keyring,
    a: Facility,
    b: Facility,
}

impl Fixture {
    fn dir(&self) -> std::path::PathBuf {
        self.keys_dir.path().join("keys")
    }

    /// A keyring as a freshly started server process would have: an empty cache.
    fn restarted(&self) -> Keyring {
        let local = LocalMasterKeys::open_dir(&self.dir()).unwrap();
        Keyring::new(MasterKeys::new(Arc::new(local)), CacheSettings::default())
    }

    async fn su(&self) -> PgConnection {
        self.app
            .database
            .superuser_options()
            .connect()
            .await
            .unwrap()
    }
}

async fn fixture_with(cache: CacheSettings) -> Fixture {
    fixture_with_clock(cache, CacheClock::system()).await
}

/// The fixture with its keyring's caches reading the time from `clock`.
async fn fixture_with_clock(cache: CacheSettings, clock: CacheClock) -> Fixture {
    // The server and the fixture's keyring share one key directory, as two processes would.
    let keys_dir = tempfile::tempdir().unwrap();
    let dir = keys_dir.path().join("keys");
    let app = spawn_app_with(|s| {
        s.master_key = None;
        s.master_key_dir = Some(dir);
    })
    .await;
    let a = app.seed_facility("KEY-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("KEY-B", FacilityKind::Pharmacy).await;
    let provider = Arc::new(Counting {
        inner: LocalMasterKeys::open_dir(&keys_dir.path().join("keys")).unwrap(),
        unwraps: AtomicUsize::new(0),
    });
    let keyring = Keyring::with_cache_clock(MasterKeys::new(provider.clone()), cache, clock);
    keyring.prepare(&app.db).await.unwrap();
    Fixture {
        app,
        keys_dir,
        provider,
        keyring,
        a,
        b,
    }
}

async fn fixture() -> Fixture {
    fixture_with(CacheSettings::default()).await
}

/// A patient registered in facility A (its key, version 1, created by the registration): the
/// database lets only the registering facility start a newer version.
async fn registered(f: &Fixture) -> KeyOwner {
    KeyOwner::Patient(registered_by(f).await.0)
}

/// Like [`registered`], with the staff member of A who registered the patient (who may record
/// the patient's deletion request).
async fn registered_by(f: &Fixture) -> (PatientId, StaffAccount) {
    let login = format!("reg{}", &Uuid::now_v7().simple().to_string()[24..]);
    let nurse = f
        .app
        .seed_staff(&f.a, &login, StaffRole::Staff, Profession::Nurse)
        .await;
    let patient = f
        .app
        .seed_patient(&nurse, "鍵 花子", "カギ ハナコ")
        .await
        .id;
    (patient, nurse)
}

/// How many versions of the owner's key are still wrapped (not destroyed), as a superuser
/// sees the table.
async fn live_versions(su: &mut PgConnection, owner: KeyOwner) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM data_keys WHERE owner_id = $1 AND wrapped IS NOT NULL
            AND destroyed_at IS NULL",
    )
    .bind(owner.id())
    .fetch_one(su)
    .await
    .unwrap()
}

fn name_of(owner: KeyOwner, row: Uuid) -> Binding<'static> {
    Binding {
        owner,
        table: "patients",
        column: "name",
        row,
        version: 1,
    }
}

async fn encrypt(
    keyring: &Keyring,
    db: &Database,
    scope: Scope,
    b: &Binding<'_>,
    text: &str,
) -> Vec<u8> {
    let mut tx = db.begin(scope).await.unwrap();
    let value = keyring.encrypt(&mut tx, b, text.as_bytes()).await.unwrap();
    tx.commit().await.unwrap();
    value
}

async fn decrypt(
    keyring: &Keyring,
    db: &Database,
    scope: Scope,
    b: &Binding<'_>,
    value: &[u8],
) -> Result<String, KeyringError> {
    let mut tx = db.begin(scope).await.unwrap();
    let result = keyring.decrypt(&mut tx, b, value).await;
    tx.commit().await.unwrap();
    result.map(|p| String::from_utf8(p.to_vec()).unwrap())
}

fn problem(result: Result<String, KeyringError>) -> Problem {
    match result {
        Err(KeyringError::Undecryptable { problem, .. }) => problem,
        other => panic!("expected an undecryptable value, got {other:?}"),
    }
}

#[tokio::test]
async fn keys_are_created_on_first_use_and_stored_only_wrapped() {
    let f = fixture().await;
    let scope = Scope::Facility(f.a.id);
    let (p1, p2) = (
        KeyOwner::Patient(PatientId::new()),
        KeyOwner::Patient(PatientId::new()),
    );
    let row = Uuid::now_v7();
    let v1 = encrypt(&f.keyring, &f.app.db, scope, &name_of(p1, row), "山田 太郎").await;
    let v2 = encrypt(&f.keyring, &f.app.db, scope, &name_of(p2, row), "山田 太郎").await;
    assert_ne!(v1[34..], v2[34..], "each patient has a key of their own");
    assert!(!v1.windows("山田".len()).any(|w| w == "山田".as_bytes()));

    let fresh = f.restarted();
    assert_eq!(
        decrypt(&fresh, &f.app.db, scope, &name_of(p1, row), &v1)
            .await
            .unwrap(),
        "山田 太郎"
    );

    let mut su = f.su().await;
    let rows: Vec<(String, i32, Option<Uuid>, String, i32)> = sqlx::query_as(
        "SELECT owner_kind, version, facility_id, master_key_id, length(wrapped)
           FROM data_keys WHERE owner_kind = 'patient' ORDER BY created_at",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for (kind, version, facility, master, len) in rows {
        assert_eq!((kind.as_str(), version), ("patient", 1));
        assert_eq!(facility, Some(f.a.id.as_uuid()));
        assert_eq!(master, f.provider.current_key_id());
        assert_eq!(len, 60, "nonce, wrapped key and tag");
    }
    // Creation is audited in the facility's chain, without any key material.
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'data_key.create' AND facility_id IS NULL",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(audited, 1, "the blind-index key's creation");
}

#[tokio::test]
async fn a_value_does_not_decrypt_in_another_row_column_patient_or_facility() {
    let f = fixture().await;
    let (sa, sb) = (Scope::Facility(f.a.id), Scope::Facility(f.b.id));
    let p1 = KeyOwner::Patient(PatientId::new());
    let p2 = KeyOwner::Patient(PatientId::new());
    let row = Uuid::now_v7();
    let value = encrypt(&f.keyring, &f.app.db, sa, &name_of(p1, row), "佐藤 花子").await;
    // p2 has a key in A too, so a swap is tried against a real key.
    encrypt(&f.keyring, &f.app.db, sa, &name_of(p2, row), "鈴木 一郎").await;
    let fa = KeyOwner::Facility(f.a.id);
    encrypt(&f.keyring, &f.app.db, sa, &name_of(fa, row), "施設メモ").await;

    let other_row = name_of(p1, Uuid::now_v7());
    let other_column = Binding {
        column: "kana",
        ..name_of(p1, row)
    };
    let other_table = Binding {
        table: "entries",
        ..name_of(p1, row)
    };
    for (what, binding, expected) in [
        ("row", other_row, Problem::Tampered),
        ("column", other_column, Problem::Tampered),
        ("table", other_table, Problem::Tampered),
        ("patient", name_of(p2, row), Problem::WrongOwner),
        ("facility key", name_of(fa, row), Problem::WrongOwner),
    ] {
        let got = problem(decrypt(&f.keyring, &f.app.db, sa, &binding, &value).await);
        assert_eq!(got, expected, "moved to another {what}");
    }

    // Facility B cannot use A's patient key at all: RLS hides it, so the version is unknown.
    let got = problem(decrypt(&f.restarted(), &f.app.db, sb, &name_of(p1, row), &value).await);
    assert_eq!(got, Problem::UnknownKeyVersion(1));

    // The error names the place, never the content.
    let err = decrypt(&f.keyring, &f.app.db, sa, &other_row, &value)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&other_row.row.to_string()) && err.contains("patients.name"),
        "{err}"
    );
    assert!(!err.contains("佐藤"));
}

#[tokio::test]
async fn altered_truncated_and_unknown_version_values_are_typed_errors() {
    let f = fixture().await;
    let sa = Scope::Facility(f.a.id);
    let b = name_of(KeyOwner::Patient(PatientId::new()), Uuid::now_v7());
    let value = encrypt(&f.keyring, &f.app.db, sa, &b, "血圧 128/82").await;

    for i in (0..value.len()).step_by(3) {
        let mut altered = value.clone();
        altered[i] ^= 0x20;
        let got = decrypt(&f.keyring, &f.app.db, sa, &b, &altered).await;
        assert!(
            matches!(got, Err(KeyringError::Undecryptable { .. })),
            "byte {i}: {got:?}"
        );
    }
    for len in [0, 1, 20, 33, 34, 49] {
        assert_eq!(
            problem(decrypt(&f.keyring, &f.app.db, sa, &b, &value[..len]).await),
            Problem::Truncated,
            "{len} bytes"
        );
    }
    let mut future = value.clone();
    future[18..22].copy_from_slice(&9u32.to_be_bytes());
    assert_eq!(
        problem(decrypt(&f.keyring, &f.app.db, sa, &b, &future).await),
        Problem::UnknownKeyVersion(9)
    );
}

#[tokio::test]
async fn a_rotated_data_key_writes_new_values_and_old_ones_move_forward() {
    let f = fixture().await;
    let sa = Scope::Facility(f.a.id);
    let owner = registered(&f).await;
    let rows: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut values = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        values.push(
            encrypt(
                &f.keyring,
                &f.app.db,
                sa,
                &name_of(owner, *row),
                &format!("記録{i}"),
            )
            .await,
        );
    }

    let mut tx = f.app.db.begin(sa).await.unwrap();
    let version = f
        .keyring
        .rotate_data_key(&mut tx, owner, Actor::System, &Origin::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(version, 2);

    let new = encrypt(
        &f.keyring,
        &f.app.db,
        sa,
        &name_of(owner, rows[0]),
        "新しい記録",
    )
    .await;
    assert_eq!(Header::parse(&new).unwrap().key_version, 2);
    for (i, (row, value)) in rows.iter().zip(&values).enumerate() {
        assert_eq!(Header::parse(value).unwrap().key_version, 1);
        assert_eq!(
            decrypt(&f.restarted(), &f.app.db, sa, &name_of(owner, *row), value)
                .await
                .unwrap(),
            format!("記録{i}")
        );
    }

    // Re-encryption moves each old value to version 2, and leaves new ones alone.
    let mut tx = f.app.db.begin(sa).await.unwrap();
    for (i, (row, value)) in rows.iter().zip(&values).enumerate() {
        let b = name_of(owner, *row);
        let moved = f
            .keyring
            .reencrypt(&mut tx, &b, value)
            .await
            .unwrap()
            .expect("moved");
        assert_eq!(Header::parse(&moved).unwrap().key_version, 2);
        assert_eq!(
            String::from_utf8(
                f.keyring
                    .decrypt(&mut tx, &b, &moved)
                    .await
                    .unwrap()
                    .to_vec()
            )
            .unwrap(),
            format!("記録{i}")
        );
        assert!(f
            .keyring
            .reencrypt(&mut tx, &b, &moved)
            .await
            .unwrap()
            .is_none());
    }
    tx.commit().await.unwrap();
}

/// Keys for `n` patients in each of A and B, with one value each.
async fn populate(f: &Fixture, n: usize) -> Vec<(Scope, Binding<'static>, Vec<u8>, String)> {
    let mut out = Vec::new();
    for scope in [Scope::Facility(f.a.id), Scope::Facility(f.b.id)] {
        for i in 0..n {
            let b = name_of(KeyOwner::Patient(PatientId::new()), Uuid::now_v7());
            let text = format!("患者{i}");
            let value = encrypt(&f.keyring, &f.app.db, scope, &b, &text).await;
            out.push((scope, b, value, text));
        }
    }
    out
}

#[tokio::test]
async fn master_key_rotation_rewraps_online_resumes_after_a_crash_and_retires_the_old_key() {
    let f = fixture().await;
    let values = Arc::new(populate(&f, 30).await);
    let old = f.provider.current_key_id();
    let new = LocalMasterKeys::add_new_current(&f.dir()).unwrap();
    // Two processes: the server (still holding the old key as current until it refreshes) and
    // the rotation command (which opens the directory anew).
    let rotation = f.restarted();
    assert_eq!(rotation.master_keys().current_key_id(), new);

    // A first run is killed after its first batch: it dies in the progress report that
    // follows the batch's commit, as a process killed there would (no panic message: the
    // unwinding is not a panic of the test's).
    let (tx, mut first_batch) = tokio::sync::mpsc::unbounded_channel();
    let killed = {
        let (rotation, db) = (rotation.clone(), f.app.db.clone());
        tokio::spawn(async move {
            rotation
                .rewrap_all(&db, 10, |n| {
                    let _ = tx.send(n);
                    std::panic::resume_unwind(Box::new("killed after the first batch"));
                })
                .await
        })
    };
    assert_eq!(first_batch.recv().await, Some(10));
    assert!(killed.await.unwrap_err().is_panic(), "the first run died");
    let by_master = Keyring::keys_by_master(&f.app.db).await.unwrap();
    let on_new = by_master
        .iter()
        .find(|(m, _)| *m == new)
        .map_or(0, |(_, c)| *c);
    assert!((10..61).contains(&on_new), "{by_master:?}");

    // The server keeps reading while the second run finishes the job.
    let reader = {
        let (keyring, db, values) = (f.restarted(), f.app.db.clone(), values.clone());
        tokio::spawn(async move {
            for _ in 0..3 {
                for (scope, b, value, text) in values.iter() {
                    assert_eq!(
                        &decrypt(&keyring, &db, *scope, b, value).await.unwrap(),
                        text
                    );
                }
            }
        })
    };
    let mut progressed = 0;
    let report = rotation
        .rewrap_all(&f.app.db, 10, |n| progressed += n)
        .await
        .unwrap();
    reader.await.unwrap();
    assert_eq!(report.rewrapped, progressed);
    assert_eq!(
        report.rewrapped as i64 + on_new,
        61,
        "60 patients and the blind-index key"
    );
    assert_eq!(
        Keyring::keys_by_master(&f.app.db).await.unwrap(),
        vec![(new.clone(), 61)]
    );

    // Retire the old key: everything still reads, in a process that never saw it.
    LocalMasterKeys::remove(&f.dir(), &old).unwrap();
    let after = f.restarted();
    for (scope, b, value, text) in values.iter() {
        assert_eq!(
            &decrypt(&after, &f.app.db, *scope, b, value).await.unwrap(),
            text
        );
    }
    let mut tx = f.app.db.begin(Scope::Facility(f.a.id)).await.unwrap();
    assert_eq!(after.name_terms(&mut tx, "ヤマダ").await.unwrap().len(), 1);

    let mut su = f.su().await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum((details->>'keys')::int), 0) FROM audit_log
          WHERE action = 'master_key.rewrap' AND facility_id IS NULL",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(audited, 61, "every rewrapped key is in an audited batch");
}

#[tokio::test]
async fn shredding_a_patient_makes_every_value_unreadable_and_leaves_others_alone() {
    let f = fixture().await;
    let sa = Scope::Facility(f.a.id);
    let (gone_patient, nurse) = registered_by(&f).await;
    let gone = KeyOwner::Patient(gone_patient);
    let kept = KeyOwner::Patient(PatientId::new());
    let mut gone_values = Vec::new();
    for i in 0..4 {
        let b = name_of(gone, Uuid::now_v7());
        gone_values.push((
            b,
            encrypt(&f.keyring, &f.app.db, sa, &b, &format!("消す{i}")).await,
        ));
    }
    let mut tx = f.app.db.begin(sa).await.unwrap();
    f.keyring
        .rotate_data_key(&mut tx, gone, Actor::System, &Origin::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let b = name_of(gone, Uuid::now_v7());
    gone_values.push((b, encrypt(&f.keyring, &f.app.db, sa, &b, "v2").await));
    let kept_b = name_of(kept, Uuid::now_v7());
    let kept_value = encrypt(&f.keyring, &f.app.db, sa, &kept_b, "残す").await;

    // A backup taken before the deletion request: the wrapped keys as they were.
    let mut su = f.su().await;
    let backup: Vec<(String, Uuid, i32, Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT owner_kind, owner_id, version, facility_id, master_key_id, wrapped
           FROM data_keys WHERE owner_kind = 'patient'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();

    // Another server process has the key cached.
    let other_process = f.restarted();
    let follower = other_process
        .clone()
        .key_change_follower(f.app.db.clone())
        .await
        .unwrap();
    tokio::spawn(follower);
    let (b0, v0) = &gone_values[0];
    decrypt(&other_process, &f.app.db, sa, b0, v0)
        .await
        .unwrap();

    // The web role destroys a patient's keys only in the transaction that records the
    // patient's deletion request: not without one (refused, nothing destroyed)…
    let mut tx = f.app.db.begin(sa).await.unwrap();
    let refused = f
        .keyring
        .destroy(&mut tx, gone, Actor::System, &Origin::default())
        .await;
    drop(tx);
    assert!(
        matches!(
            refused,
            Err(KeyringError::Store(renrakucho_store::StoreError::Forbidden))
        ),
        "{refused:?}"
    );
    // …nor with one recorded in an earlier transaction.
    let mut tx = f.app.db.begin(sa).await.unwrap();
    deletions::record(&mut tx, Uuid::now_v7(), gone_patient, nurse.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = f.app.db.begin(sa).await.unwrap();
    let refused = f
        .keyring
        .destroy(&mut tx, gone, Actor::System, &Origin::default())
        .await;
    drop(tx);
    assert!(
        matches!(
            refused,
            Err(KeyringError::Store(renrakucho_store::StoreError::Forbidden))
        ),
        "{refused:?}"
    );
    assert_eq!(
        live_versions(&mut su, gone).await,
        2,
        "nothing was destroyed"
    );
    assert_eq!(
        decrypt(&other_process, &f.app.db, sa, b0, v0)
            .await
            .unwrap(),
        "消す0"
    );

    // With the request recorded in the same transaction (as the deletion flow does), both
    // versions go.
    let mut tx = f.app.db.begin(sa).await.unwrap();
    deletions::record(&mut tx, Uuid::now_v7(), gone_patient, nurse.id)
        .await
        .unwrap();
    let destroyed = f
        .keyring
        .destroy(&mut tx, gone, Actor::System, &Origin::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(destroyed, 2, "both versions");
    assert_eq!(live_versions(&mut su, gone).await, 0);

    // The other process hears of it (its cached key goes); then no process decrypts.
    wait_until("the other process forgetting the destroyed key", || async {
        matches!(
            decrypt(&other_process, &f.app.db, sa, b0, v0).await,
            Err(KeyringError::Undecryptable {
                problem: Problem::KeyDestroyed,
                ..
            })
        )
    })
    .await;
    for keyring in [&f.keyring, &other_process, &f.restarted()] {
        for (b, v) in &gone_values {
            assert_eq!(
                problem(decrypt(keyring, &f.app.db, sa, b, v).await),
                Problem::KeyDestroyed
            );
        }
        assert_eq!(
            decrypt(keyring, &f.app.db, sa, &kept_b, &kept_value)
                .await
                .unwrap(),
            "残す"
        );
    }
    let mut tx = f.app.db.begin(sa).await.unwrap();
    assert!(matches!(
        f.keyring
            .encrypt(&mut tx, &name_of(gone, Uuid::now_v7()), b"x")
            .await,
        Err(KeyringError::OwnerShredded)
    ));
    drop(tx);
    let (left, audited): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM data_keys WHERE owner_id = $1 AND wrapped IS NOT NULL),
                (SELECT count(*) FROM audit_log WHERE action = 'data_key.destroy' AND target_id = $1)",
    )
    .bind(gone.id())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((left, audited), (0, 1));
    // Even the owner cannot bring a destroyed key back.
    let restore = sqlx::query(
        "UPDATE data_keys SET wrapped = '\\x00', destroyed_at = NULL WHERE owner_id = $1",
    )
    .bind(gone.id())
    .execute(&mut su)
    .await;
    assert!(restore.is_err());

    // The backup: once the master key that wrapped its keys is rotated away and retired, the
    // shredded patient's values are unreadable there too.
    let old = f.provider.current_key_id();
    LocalMasterKeys::add_new_current(&f.dir()).unwrap();
    f.restarted()
        .rewrap_all(&f.app.db, 100, |_| {})
        .await
        .unwrap();
    LocalMasterKeys::remove(&f.dir(), &old).unwrap();

    let restored = TestDatabase::create().await;
    let mut su2 = restored.superuser_options().connect().await.unwrap();
    for facility in [&f.a, &f.b] {
        sqlx::query("INSERT INTO facilities (id, code, name, kind, status) VALUES ($1, $2, 'x', 'clinic', 'active')")
            .bind(facility.id.as_uuid())
            .bind(&facility.code)
            .execute(&mut su2)
            .await
            .unwrap();
    }
    for (kind, owner, version, facility, master, wrapped) in &backup {
        sqlx::query("INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id, wrapped) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(kind).bind(owner).bind(version).bind(facility).bind(master).bind(wrapped)
            .execute(&mut su2)
            .await
            .unwrap();
    }
    let restored_db = Database::connect(&restored.connections(), 2).await.unwrap();
    let reader = f.restarted();
    let got = decrypt(&reader, &restored_db, sa, b0, v0).await;
    assert!(
        matches!(got, Err(KeyringError::UnknownMasterKey(ref id)) if *id == old),
        "{got:?}"
    );
}

#[tokio::test]
async fn unwrapped_keys_are_cached_within_their_bounds() {
    // The caches' clock stands still until the test moves it.
    let now = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
    let clock = {
        let now = now.clone();
        CacheClock::new(move || *now.lock().unwrap())
    };
    let max_age = Duration::from_secs(300);
    let f = fixture_with_clock(
        CacheSettings {
            capacity: 2,
            max_age,
        },
        clock,
    )
    .await;
    let sa = Scope::Facility(f.a.id);
    let owner = KeyOwner::Patient(PatientId::new());
    let b = name_of(owner, Uuid::now_v7());
    let value = encrypt(&f.keyring, &f.app.db, sa, &b, "キャッシュ").await;
    let before = f.provider.unwraps.load(Ordering::SeqCst);
    for _ in 0..20 {
        decrypt(&f.keyring, &f.app.db, sa, &b, &value)
            .await
            .unwrap();
    }
    assert_eq!(
        f.provider.unwraps.load(Ordering::SeqCst),
        before,
        "a new key is cached as created"
    );

    *now.lock().unwrap() += max_age - Duration::from_millis(1);
    decrypt(&f.keyring, &f.app.db, sa, &b, &value)
        .await
        .unwrap();
    assert_eq!(
        f.provider.unwraps.load(Ordering::SeqCst),
        before,
        "still cached just before its age"
    );
    *now.lock().unwrap() += Duration::from_millis(1);
    decrypt(&f.keyring, &f.app.db, sa, &b, &value)
        .await
        .unwrap();
    assert_eq!(
        f.provider.unwraps.load(Ordering::SeqCst),
        before + 1,
        "expired after its age"
    );

    // Per scope: B's request never reuses a key A unwrapped (and cannot load it).
    let got = decrypt(&f.keyring, &f.app.db, Scope::Facility(f.b.id), &b, &value).await;
    assert_eq!(problem(got), Problem::UnknownKeyVersion(1));

    // Debug output names no key material.
    let shown = format!("{:?}", f.keyring);
    assert!(
        shown.contains("cached_keys") && !shown.contains("cipher"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_key_table_is_isolated_like_every_facility_table() {
    let f = fixture().await;
    let sa = Scope::Facility(f.a.id);
    let sb = Scope::Facility(f.b.id);
    encrypt(
        &f.keyring,
        &f.app.db,
        sa,
        &name_of(KeyOwner::Patient(PatientId::new()), Uuid::nil()),
        "a",
    )
    .await;
    encrypt(
        &f.keyring,
        &f.app.db,
        sb,
        &name_of(KeyOwner::Patient(PatientId::new()), Uuid::nil()),
        "b",
    )
    .await;

    let count = |scope: Scope| {
        let db = f.app.db.clone();
        async move {
            let mut tx = db.begin(scope).await.unwrap();
            let n: Vec<String> = sqlx::query_scalar("SELECT owner_kind FROM data_keys ORDER BY 1")
                .fetch_all(tx.raw_connection_for_tests())
                .await
                .unwrap();
            n
        }
    };
    assert_eq!(count(sa).await, vec!["blind_index", "patient"]);
    assert_eq!(count(sb).await, vec!["blind_index", "patient"]);
    // Operators see no keys: platform scope has no privilege on the table at all (stricter
    // than the empty result it used to get).
    let mut tx = f.app.db.begin(Scope::Platform).await.unwrap();
    let refused = sqlx::query_scalar::<_, String>("SELECT owner_kind FROM data_keys")
        .fetch_all(tx.raw_connection_for_tests())
        .await
        .expect_err("platform scope reads no keys");
    let refused = refused.as_database_error().expect("a database error");
    assert_eq!(
        (refused.code().as_deref(), refused.message()),
        (Some("42501"), "permission denied for table data_keys")
    );
    drop(tx);

    // A facility can neither change the network's blind-index key nor destroy B's keys.
    let mut tx = f.app.db.begin(sa).await.unwrap();
    let changed = sqlx::query("UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE owner_kind = 'blind_index' OR facility_id = $1")
        .bind(f.b.id.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 0);
}

#[tokio::test]
async fn reencryption_moves_every_stored_value_of_an_owner_to_the_newest_key() {
    // Real tables: a patient's registration, consent, notebook entries (one written by another
    // facility of the care team, one withdrawn) and their versions; another patient untouched.
    let f = fixture().await;
    let origin = Origin::default();
    let doctor = f
        .app
        .seed_staff(&f.a, "doctor", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    let nurse = f
        .app
        .seed_staff(&f.b, "nurse", StaffRole::FacilityAdmin, Profession::Nurse)
        .await;
    let actor = |s: &renrakucho_store::staff::StaffAccount| renrakucho_registry::StaffActor {
        staff: s.id,
        facility: s.facility_id,
    };
    let writer = |s: &renrakucho_store::staff::StaffAccount, profession| {
        renrakucho_testkit::acting::Writer {
            actor: actor(s),
            name: "試験 太郎".into(),
            profession,
            facility_admin: true,
        }
    };
    let patient = f
        .app
        .seed_patient(&doctor, "鍵替 花子", "カギカエ ハナコ")
        .await
        .id;
    let other = f
        .app
        .seed_patient(&doctor, "別人 次郎", "ベツジン ジロウ")
        .await
        .id;
    renrakucho_registry::record_consent(
        &f.app.db,
        &f.keyring,
        &f.app.files,
        &renrakucho_testkit::acting::allowed(actor(&doctor), patient),
        &origin,
        renrakucho_registry::ConsentForm {
            signer: renrakucho_registry::Signer::Patient,
            signed_on: time::macros::date!(2026 - 11 - 01),
            scope: renrakucho_registry::ConsentScope::standard(),
        },
        None,
    )
    .await
    .unwrap();
    renrakucho_registry::invite(
        &f.app.db,
        &renrakucho_testkit::acting::allowed(actor(&doctor), patient),
        &origin,
        &f.b.code,
    )
    .await
    .unwrap();
    renrakucho_registry::accept_invitation(
        &f.app.db,
        &renrakucho_testkit::acting::allowed(actor(&nurse), patient),
        &origin,
    )
    .await
    .unwrap();
    let post = |who: renrakucho_testkit::acting::Writer, p: PatientId, text: &'static str| {
        let db = f.app.db.clone();
        let keyring = f.keyring.clone();
        async move {
            renrakucho_notebook::post_entry(
                &db,
                &keyring,
                &who.on(p),
                &Origin::default(),
                renrakucho_notebook::NewEntryInput {
                    content: renrakucho_notebook::EntryContent {
                        category: renrakucho_core::Category::Treatment,
                        priority: renrakucho_core::Priority::Info,
                        body: renrakucho_core::EntryBody::parse(text).unwrap(),
                        vitals: None,
                        mentions: vec![],
                    },
                    reply_to: None,
                    attachments: vec![],
                },
            )
            .await
            .unwrap()
            .id
        }
    };
    let mut ours = Vec::new();
    let mut written = Vec::new();
    for text in ["経過一", "経過二", "経過三"] {
        let id = post(writer(&doctor, Profession::Doctor), patient, text).await;
        ours.push(id);
        written.push((id, text));
    }
    let theirs = post(writer(&nurse, Profession::Nurse), patient, "訪問看護の経過").await;
    written.push((theirs, "訪問看護の経過"));
    post(writer(&doctor, Profession::Doctor), other, "別の人の経過").await;
    renrakucho_notebook::withdraw_entry(
        &f.app.db,
        &f.keyring,
        &writer(&doctor, Profession::Doctor).on(patient),
        &origin,
        ours[0],
        renrakucho_core::Reason::parse("記載誤りのため").unwrap(),
    )
    .await
    .unwrap();

    // A new key version for the patient (the registering facility holds the keys).
    let owner = KeyOwner::Patient(patient);
    let mut tx = f.app.db.begin(Scope::Facility(f.a.id)).await.unwrap();
    f.keyring
        .rotate_data_key(&mut tx, owner, Actor::System, &origin)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let columns = renrakucho_store::encrypted::ENCRYPTED_COLUMNS;
    let report = f
        .keyring
        .reencrypt_owner(&f.app.db, owner, columns, Actor::System, &origin)
        .await
        .unwrap();
    // Name, reading, profile; the consent; four bodies and a withdrawal reason; the card
    // number (ADR 0018). The four entry versions are history: they are not re-encrypted
    // (HISTORY_COLUMNS).
    assert_eq!((report.values, report.moved), (10, 10), "{report:?}");
    let again = f
        .keyring
        .reencrypt_owner(&f.app.db, owner, columns, Actor::System, &origin)
        .await
        .unwrap();
    assert_eq!((again.values, again.moved), (10, 0), "nothing left to move");

    // Every stored value of the patient is under version 2, the other patient's under 1; every
    // entry version (history) under the version it was written with, 1.
    let mut su = f.su().await;
    let stored: Vec<(String, Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT 'entries', patient_id, body_enc FROM entries
         UNION ALL SELECT 'entry_versions', patient_id, body_enc FROM entry_versions
         UNION ALL SELECT 'consents', patient_id, details_enc FROM consents
         UNION ALL SELECT 'entries', patient_id, withdrawal_reason_enc FROM entries
                    WHERE withdrawal_reason_enc IS NOT NULL
         UNION ALL SELECT 'patients', id, name_enc FROM patients",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    // Entries and versions (4 of the patient's, 1 of the other), the consent, the reason, names.
    assert_eq!(stored.len(), 5 + 5 + 1 + 1 + 2, "every value was looked at");
    for (table, who, value) in stored {
        let expected = if who == patient.as_uuid() && table != "entry_versions" {
            2
        } else {
            1
        };
        assert_eq!(
            Header::parse(&value).unwrap().key_version,
            expected,
            "{table}"
        );
    }

    // History never changes: not through re-encryption (which reaches it only to bind a value
    // of format 1 to its version, ADR 0016), not as key maintenance or the web role (no
    // privilege), and not even for a superuser, whom row-level security and privileges do not
    // stop (the trigger does).
    let (version_id, version_body): (Uuid, Vec<u8>) = sqlx::query_as(
        "SELECT id, body_enc FROM entry_versions WHERE patient_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(patient.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    let refused = |result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>| {
        let e = result.expect_err("entry_versions must not change");
        let db = e.as_database_error().expect("a database error");
        (
            db.code().map(|c| c.into_owned()).unwrap_or_default(),
            db.message().to_string(),
        )
    };
    let mut tx = f.app.db.begin(Scope::KeyMaintenance).await.unwrap();
    let attempt = sqlx::query(
        "SELECT reencrypt_value('entry_versions', 'body_enc', $1, $2, $3, '\\x00'::bytea)",
    )
    .bind(patient.as_uuid())
    .bind(version_id)
    .bind(&version_body)
    .execute(tx.raw_connection_for_tests())
    .await;
    assert_eq!(
        refused(attempt),
        (
            "42501".into(),
            "an entry's earlier versions do not change".into()
        )
    );
    drop(tx);
    for scope in [Scope::KeyMaintenance, Scope::Facility(f.a.id)] {
        let mut tx = f.app.db.begin(scope).await.unwrap();
        let attempt = sqlx::query("UPDATE entry_versions SET body_enc = body_enc WHERE id = $1")
            .bind(version_id)
            .execute(tx.raw_connection_for_tests())
            .await;
        assert_eq!(
            refused(attempt),
            (
                "42501".into(),
                "permission denied for table entry_versions".into()
            ),
            "{scope:?}"
        );
    }
    let attempt = sqlx::query("UPDATE entry_versions SET body_enc = body_enc WHERE id = $1")
        .bind(version_id)
        .execute(&mut su)
        .await;
    assert_eq!(
        refused(attempt),
        (
            "42501".into(),
            "an entry's earlier versions do not change".into()
        )
    );
    // And everything still reads, in both facilities.
    for facility in [&f.a, &f.b] {
        let who = if facility.id == f.a.id {
            actor(&doctor)
        } else {
            actor(&nurse)
        };
        let page = renrakucho_notebook::timeline(
            &f.app.db,
            &f.keyring,
            &renrakucho_testkit::acting::allowed(who, patient),
            &origin,
            &Default::default(),
            None,
            50,
        )
        .await
        .unwrap();
        assert_eq!(
            page.entries.len(),
            3,
            "withdrawn entries stay out of the timeline"
        );
        let detail = renrakucho_notebook::entry_detail(
            &f.app.db,
            &f.keyring,
            &renrakucho_testkit::acting::allowed(who, patient),
            &origin,
            ours[0],
        )
        .await
        .unwrap();
        assert_eq!(
            detail.entry.withdrawal_reason.as_deref(),
            Some("記載誤りのため")
        );
        // Every entry version still decrypts, with the key version it was written with.
        for (entry, text) in &written {
            let detail = renrakucho_notebook::entry_detail(
                &f.app.db,
                &f.keyring,
                &renrakucho_testkit::acting::allowed(who, patient),
                &origin,
                *entry,
            )
            .await
            .unwrap();
            let bodies: Vec<&str> = detail
                .versions
                .iter()
                .map(|v| v.readable().expect("readable").body.as_str())
                .collect();
            assert_eq!(bodies, [*text], "{entry}");
        }
    }
    // Re-encryption is key maintenance's work, audited in the platform's chain (before, the
    // registering facility did it and audited it in its own).
    let audited: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE facility_id IS NULL), count(*) FROM audit_log
          WHERE action = 'data_key.reencrypt' AND target_id = $1",
    )
    .bind(patient.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(audited, (2, 2));
}
