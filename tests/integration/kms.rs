//! AWS KMS as the master key provider, against a real KMS peer (moto's server on loopback):
//! wrapping bound to its encryption context, moving from the local default to KMS with a
//! master-key rotation, and an unreachable KMS answered as unavailability, never plaintext.

use std::sync::Arc;
use std::time::Duration;

use renrakucho_core::{FacilityKind, PatientId, Profession, StaffRole};
use renrakucho_keyring::provider::WrapContext;
use renrakucho_keyring::{
    AwsKms, Binding, CacheSettings, KeyOwner, Keyring, KeyringError, LocalMasterKeys,
    MasterKeyProvider, MasterKeys,
};
use renrakucho_server::config::KeyProvider;
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

/// The state of a master key epoch, as the server records it.
async fn epoch_state(app: &renrakucho_testkit::TestApp, id: &str) -> Option<String> {
    let mut su = crate::support::superuser(app).await;
    sqlx::query_scalar("SELECT state FROM master_key_epochs WHERE master_key_id = $1")
        .bind(id)
        .fetch_optional(&mut su)
        .await
        .unwrap()
}

/// Master key epochs with AWS KMS (docs/adr/0015-erasure-reaches-the-disk.md): with the key
/// configured by an alias, the running server makes a new KMS key after an erasure, moves the
/// alias to it, re-wraps every data key under it, then disables the key the erased patient's
/// data key was wrapped under and schedules it for deletion. A copy of that wrapped key (in the
/// WAL, a dead tuple or a backup) unwraps right before, and has no usable key after. A rotation
/// by another process (`renrakucho keys rotate-epoch`) is followed by the server: its next new
/// data key is wrapped under the newest key.
#[tokio::test]
async fn with_a_kms_alias_an_erasure_ends_the_epoch_and_its_key() {
    let emulator = KmsEmulator::start().await;
    let client = AwsKms::client_for(
        &emulator.endpoint,
        KMS_REGION,
        KMS_ACCESS_KEY,
        KMS_SECRET_KEY,
    );
    let first = client
        .create_key()
        .description("renrakucho first epoch")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .clone();
    let alias = format!("alias/renrakucho-{}", Uuid::new_v4().simple());
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(first.key_id())
        .send()
        .await
        .unwrap();
    // The server takes its credentials from the usual AWS environment; moto checks their shape
    // only. Every test that sets them sets the same values.
    std::env::set_var("AWS_ACCESS_KEY_ID", KMS_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", KMS_SECRET_KEY);
    let app = {
        let (alias, endpoint) = (alias.clone(), emulator.endpoint.clone());
        spawn_app_with(move |s| {
            s.key_provider = KeyProvider::AwsKms;
            s.aws_kms_key_id = Some(alias);
            s.aws_kms_endpoint = Some(endpoint);
            s.aws_region = Some(KMS_REGION.into());
            s.master_key_epoch_check = Duration::from_millis(200);
        })
        .await
    };
    let first_id = format!("aws-kms:{}", first.arn().unwrap());
    let facility = app.seed_facility("KMS-EPOCH", FacilityKind::Clinic).await;
    let nurse = app
        .seed_staff(
            &facility,
            "nurse",
            StaffRole::FacilityAdmin,
            Profession::Nurse,
        )
        .await;
    let erased = app
        .seed_patient(&nurse, "消去 花子", "ショウキョ ハナコ")
        .await;
    let kept = app.seed_patient(&nurse, "残 太郎", "ノコリ タロウ").await;

    // The copy a backup taken now holds: the erased patient's data key as wrapped now.
    let mut su = crate::support::superuser(&app).await;
    let (wrapped_under, wrapped, version): (String, Vec<u8>, i32) = sqlx::query_as(
        "SELECT master_key_id, wrapped, version FROM data_keys
          WHERE owner_kind = 'patient' AND owner_id = $1",
    )
    .bind(erased.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(wrapped_under, first_id, "wrapped under the alias's key");
    assert_eq!(
        epoch_state(&app, &first_id).await.as_deref(),
        Some("active")
    );
    let copy = WrapContext {
        owner_kind: "patient",
        owner_id: erased.id.as_uuid(),
        version: version as u32,
    };
    let holder = AwsKms::with_client(client.clone(), first.key_id())
        .await
        .unwrap();
    assert!(
        holder.unwrap(&wrapped_under, &wrapped, &copy).await.is_ok(),
        "before the erasure's epoch ends, the copy unwraps"
    );

    // The registering facility's administrator erases the patient through the server.
    let admin = app.client_for(&facility, "nurse").await;
    let response = admin
        .post(crate::support::patient_url(
            &app,
            erased.id.as_uuid(),
            "/deletion",
        ))
        .json(&serde_json::json!({ "confirm": true }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "erasing: {}",
        response.status()
    );

    // The server rotates by itself (woken by its own erasure): bounded wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while epoch_state(&app, &first_id).await.as_deref() != Some("destroyed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the erasure's epoch was not destroyed within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = client.describe_key().key_id(&alias).send().await.unwrap();
    let second_arn = now.key_metadata().unwrap().arn().unwrap().to_string();
    assert_ne!(
        second_arn,
        first.arn().unwrap(),
        "the alias moved to a new key"
    );
    let second_id = format!("aws-kms:{second_arn}");
    assert_eq!(
        Keyring::keys_by_master(&app.db).await.unwrap(),
        vec![(second_id.clone(), 3)],
        "the kept patient's key, the facility's (its staff's authenticator secrets) and the \
         blind-index key, under the new key only"
    );
    let old = client
        .describe_key()
        .key_id(first.key_id())
        .send()
        .await
        .unwrap();
    let old = old.key_metadata().unwrap();
    assert!(!old.enabled(), "the old key is disabled at once");
    assert_eq!(
        old.key_state().map(|s| s.as_str()),
        Some("PendingDeletion"),
        "and scheduled for deletion"
    );
    let destroyed: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'master_key.destroy'
          AND details->>'master_key_id' = $1",
    )
    .bind(&first_id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(destroyed["found"], true, "{destroyed}");

    // The kept patient reads as before.
    let response = admin
        .get(crate::support::patient_url(&app, kept.id.as_uuid(), ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["name"], "残 太郎", "{body}");

    // Another process starts an epoch (as `renrakucho keys rotate-epoch` does); the server
    // follows the alias at its next check, and its next new data key goes under the newest
    // key.
    let other = renrakucho_server::keys::open_keys(&app.settings)
        .await
        .unwrap();
    let policy = other.epochs.expect("epochs with a KMS alias");
    // (The server's own check holds the rotation lock for a moment every 200 ms: a rotation
    // that meets it skips its turn, as `keys rotate-epoch` then says. Try again, bounded.)
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    let report = loop {
        if let Some(report) = other
            .keyring
            .rotate_epoch(&app.db, &policy, true)
            .await
            .unwrap()
        {
            break report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no turn to rotate within {:?}",
            crate::support::PATIENCE
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let third_id = report.new_master_key.clone().unwrap();
    assert!(third_id.starts_with("aws-kms:arn:") && third_id != second_id);
    assert_eq!(report.destroyed, vec![second_id.clone()]);
    crate::support::wait_until(
        "the server following the alias to the newest key",
        || async { app.server_keyring.master_keys().current_key_id() == third_id },
    )
    .await;
    let response = admin
        .post(app.url("/api/v1/patients"))
        .json(
            &serde_json::json!({ "name": "新規 三郎", "kana": "シンキ サブロウ",
                                   "birth_date": "1940-01-15", "sex": "male",
                                   "care_level": "care_1" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registering after the rotation");
    // The patients', the facility's (its staff's authenticator secrets) and the blind-index key.
    assert_eq!(
        Keyring::keys_by_master(&app.db).await.unwrap(),
        vec![(third_id, 4)]
    );
}

/// A KMS key configured by ID (not an alias) is not the server's to replace: no epochs, and
/// `keys rotate-epoch` says why.
#[tokio::test]
async fn a_kms_key_by_id_has_no_epochs() {
    let emulator = KmsEmulator::start().await;
    let kms = kms_key(&emulator).await;
    assert!(kms.alias().is_none());
    let refused = kms.create_epoch_key().await.unwrap_err();
    assert!(refused.to_string().contains("alias"), "{refused}");
    let current = kms.current_key_id();
    let refused = kms.destroy_epoch_key(&current).await.unwrap_err();
    assert!(refused.to_string().contains("current"), "{refused}");
}
