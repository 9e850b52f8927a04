//! The keyring against PostgreSQL, as the runtime role: data keys created on first use and
//! stored only wrapped, values bound to their place, data-key rotation and re-encryption,
//! master-key rotation (online, resumable) and retirement, crypto-shredding (live and in a
//! backup), the unwrapped-key cache, and isolation of the key table.
//!
//! Shared here: a master-key provider that counts unwraps, the fixture (a server and a keyring
//! of its own sharing one key directory, two facilities), patients registered in facility A,
//! and encrypting and decrypting one value in its own transaction; the values, rotations,
//! shredding, the cache, the key table's isolation and re-encryption each in a file beside it.

mod cache;
mod isolation;
mod reencryption;
mod rotation;
mod shredding;
mod values;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
use renrakucho_store::{Database, Scope};
use renrakucho_testkit::{spawn_app_with, TestApp};
use sqlx::{ConnectOptions, PgConnection};
use uuid::Uuid;

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
