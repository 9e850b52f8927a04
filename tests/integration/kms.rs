//! AWS KMS as the master key provider, against a real KMS peer (moto's server on loopback):
//! wrapping bound to its encryption context, moving from the local default to KMS with a
//! master-key rotation, and an unreachable KMS answered as unavailability, never plaintext.

use std::sync::Arc;

use renrakucho_core::{FacilityKind, PatientId};
use renrakucho_keyring::provider::WrapContext;
use renrakucho_keyring::{
    AwsKms, Binding, CacheSettings, KeyOwner, Keyring, KeyringError, LocalMasterKeys,
    MasterKeyProvider, MasterKeys,
};
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app_with, KmsEmulator, KMS_ACCESS_KEY, KMS_REGION, KMS_SECRET_KEY};
use sqlx::ConnectOptions;
use uuid::Uuid;

async fn kms_key(emulator: &KmsEmulator) -> AwsKms {
    let client = AwsKms::client_for(
        &emulator.endpoint,
        KMS_REGION,
        KMS_ACCESS_KEY,
        KMS_SECRET_KEY,
    );
    let created = client
        .create_key()
        .description("renrakucho test master key")
        .send()
        .await
        .expect("creating a KMS key");
    let key_id = created.key_metadata().unwrap().key_id().to_string();
    AwsKms::with_client(client, &key_id)
        .await
        .expect("the KMS provider")
}

fn context() -> WrapContext {
    WrapContext {
        owner_kind: "patient",
        owner_id: Uuid::now_v7(),
        version: 1,
    }
}

#[tokio::test]
async fn kms_wraps_data_keys_bound_to_owner_and_version() {
    let emulator = KmsEmulator::start().await;
    let kms = kms_key(&emulator).await;
    let id = kms.current_key_id();
    assert!(id.starts_with("aws-kms:arn:aws:kms:"), "{id}");
    assert!(kms.holds(&id));
    assert!(!kms.holds("local:0011223344556677"));

    let ctx = context();
    let data_key = [42u8; 32];
    let wrapped = kms.wrap(&data_key, &ctx).await.unwrap();
    assert!(!wrapped.windows(32).any(|w| w == data_key));
    assert_eq!(*kms.unwrap(&id, &wrapped, &ctx).await.unwrap(), data_key);

    // KMS enforces the encryption context: another owner or version is refused.
    for other in [
        WrapContext { version: 2, ..ctx },
        WrapContext {
            owner_id: Uuid::now_v7(),
            ..ctx
        },
    ] {
        let got = kms.unwrap(&id, &wrapped, &other).await;
        assert!(
            matches!(got, Err(KeyringError::ProviderRefused(_))),
            "{got:?}"
        );
    }
    let mut altered = wrapped.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let got = kms.unwrap(&id, &altered, &ctx).await;
    assert!(
        matches!(got, Err(KeyringError::ProviderRefused(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_network_moves_from_local_keys_to_kms_with_a_master_key_rotation() {
    let emulator = KmsEmulator::start().await;
    let keys_dir = tempfile::tempdir().unwrap();
    let dir = keys_dir.path().join("keys");
    let app = {
        let dir = dir.clone();
        spawn_app_with(move |s| {
            s.master_key = None;
            s.master_key_dir = Some(dir);
        })
        .await
    };
    let facility = app.seed_facility("KMS-A", FacilityKind::Clinic).await;
    let scope = Scope::Facility(facility.id);
    let local = Arc::new(LocalMasterKeys::open_dir(&dir).unwrap());
    let before = Keyring::new(MasterKeys::new(local.clone()), CacheSettings::default());

    let mut written = Vec::new();
    let mut tx = app.db.begin(scope).await.unwrap();
    for i in 0..10 {
        let b = Binding {
            owner: KeyOwner::Patient(PatientId::new()),
            table: "patients",
            column: "name",
            row: Uuid::now_v7(),
            version: 1,
        };
        let text = format!("訪問 {i}");
        written.push((
            b,
            before.encrypt(&mut tx, &b, text.as_bytes()).await.unwrap(),
            text,
        ));
    }
    tx.commit().await.unwrap();

    // KMS becomes current; the local keys still unwrap until the rotation is done.
    let kms = Arc::new(kms_key(&emulator).await);
    let moving = Keyring::new(
        MasterKeys::new(kms.clone()).with_previous(local),
        CacheSettings::default(),
    );
    let report = moving.rewrap_all(&app.db, 4, |_| {}).await.unwrap();
    assert_eq!(report.rewrapped, 11, "ten patients and the blind-index key");
    assert_eq!(
        Keyring::keys_by_master(&app.db).await.unwrap(),
        vec![(kms.current_key_id(), 11)]
    );

    // A server with KMS alone (the local key directory gone) reads everything.
    drop(keys_dir);
    let after = Keyring::new(MasterKeys::new(kms), CacheSettings::default());
    let mut tx = app.db.begin(scope).await.unwrap();
    for (b, value, text) in &written {
        let plain = after.decrypt(&mut tx, b, value).await.unwrap();
        assert_eq!(plain.as_slice(), text.as_bytes());
    }
    assert_eq!(after.name_terms(&mut tx, "山田").await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_kms_is_unavailability_and_nothing_falls_back() {
    let emulator = KmsEmulator::start().await;
    let app = spawn_app_with(|_| {}).await;
    let facility = app.seed_facility("KMS-B", FacilityKind::Pharmacy).await;
    let scope = Scope::Facility(facility.id);
    let kms = Arc::new(kms_key(&emulator).await);
    let keyring = Keyring::new(MasterKeys::new(kms.clone()), CacheSettings::default());

    let stored = Binding {
        owner: KeyOwner::Patient(PatientId::new()),
        table: "patients",
        column: "name",
        row: Uuid::now_v7(),
        version: 1,
    };
    let mut tx = app.db.begin(scope).await.unwrap();
    let value = keyring
        .encrypt(&mut tx, &stored, "田中".as_bytes())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    drop(emulator);
    let cold = Keyring::new(MasterKeys::new(kms), CacheSettings::default());
    let mut tx = app.db.begin(scope).await.unwrap();
    let read = cold.decrypt(&mut tx, &stored, &value).await;
    assert!(
        matches!(&read, Err(e @ KeyringError::ProviderUnavailable(_)) if e.is_unavailable()),
        "{read:?}"
    );
    let new_patient = KeyOwner::Patient(PatientId::new());
    let write = cold
        .encrypt(
            &mut tx,
            &Binding {
                owner: new_patient,
                ..stored
            },
            "鈴木".as_bytes(),
        )
        .await;
    assert!(matches!(&write, Err(e) if e.is_unavailable()), "{write:?}");
    drop(tx);

    let mut su = app.database.superuser_options().connect().await.unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys WHERE owner_id = $1")
        .bind(new_patient.id())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(keys, 0, "no key without its wrapping");
}
