//! Erasure reaches the disk (docs/adr/0015-erasure-reaches-the-disk.md): once a patient is erased
//! and the master key epoch has rotated, nothing left anywhere in the data directory — heap
//! files and their dead tuples, the WAL, the key directory, the file store — decrypts to anything
//! of the patient, with any master key material still there. The same scan, right after the
//! erasure and before the rotation, does decrypt the patient's name (so the scan finds what it
//! is looking for, and the test can fail).
//!
//! The server runs as a real installation does: its own PostgreSQL cluster, master keys and file
//! store under one data directory of the test's own, so that the scan sees everything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use renrakucho_core::{
    BirthDate, CareLevel, DisplayName, FacilityCode, FacilityKind, FacilityName, KanaName, LoginId,
    Password, PatientId, PatientName, PatientProfile, Profession, Sex, StaffRole,
};
use renrakucho_identity::{PasswordHasher, PasswordParams};
use renrakucho_keyring::provider::WrapContext;
use renrakucho_keyring::{
    open_with_data_key, Binding, KeyOwner, LocalMasterKeys, MasterKeyProvider,
};
use renrakucho_registry::StaffActor;
use renrakucho_server::admin_commands::{self, StaffToIssue};
use renrakucho_server::{setup, Application, Settings};
use renrakucho_store::audit::Origin;
use renrakucho_store::encrypted::{ENCRYPTED_COLUMNS, HISTORY_COLUMNS};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

/// Length of a data key wrapped by a local master key: nonce, key, tag.
const WRAPPED_LEN: usize = 12 + 32 + 16;
/// How far from an occurrence of the patient's ID a wrapped key is looked for (the ID and the
/// wrapped key are columns of the same `data_keys` row, a few dozen bytes apart).
const NEAR: usize = 512;

/// What a scan of the data directory found of one patient.
#[derive(Debug, Default)]
struct Findings {
    files: usize,
    bytes: u64,
    /// Places the patient's ID occurs, in any file.
    id_occurrences: usize,
    /// 60-byte strings near those places: every one a candidate wrapped key.
    wrap_candidates: usize,
    /// Values whose envelope header names the patient: candidate ciphertexts.
    ciphertext_candidates: usize,
    /// Candidate wrapped keys that unwrapped: (file, master key).
    unwrapped: Vec<(String, String)>,
    /// Candidate ciphertexts that decrypted with an unwrapped key: (file, plaintext).
    decrypted: Vec<(String, String)>,
}

/// Every master key present in the key directory, as someone holding a copy would use it.
fn master_keys_in(dir: &Path) -> Vec<(String, LocalMasterKeys)> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // Every file, not only `*.key`: whatever holds 32 bytes of base64 is tried.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.trim()) else {
            continue;
        };
        if bytes.len() != 32 {
            continue;
        }
        let provider = LocalMasterKeys::from_base64(text.trim(), &[]).unwrap();
        keys.push((provider.current_key_id(), provider));
    }
    keys
}

/// Every regular file under `dir`.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// The lengths a value starting at `start` may have: from a PostgreSQL varlena header just
/// before it (1 or 4 bytes, uncompressed), or the rest of the file (a stored object).
fn value_lengths(bytes: &[u8], start: usize) -> Vec<usize> {
    let mut lengths = Vec::new();
    if start == 0 {
        lengths.push(bytes.len());
    }
    if start >= 1 && bytes[start - 1] & 1 == 1 {
        lengths.push(usize::from(bytes[start - 1] >> 1).saturating_sub(1));
    }
    if start >= 4 {
        let word = u32::from_le_bytes(bytes[start - 4..start].try_into().unwrap());
        if word & 3 == 0 {
            if let Some(n) = ((word >> 2) as usize).checked_sub(4) {
                lengths.push(n);
            }
        }
    }
    lengths.retain(|&n| n >= renrakucho_keyring::OVERHEAD && start + n <= bytes.len());
    lengths
}

/// Scans every file under `data_dir` for the patient's wrapped data key and ciphertexts, and
/// tries every master key found in `key_dir` on them.
fn scan(data_dir: &Path, key_dir: &Path, patient: PatientId, rows: &[Uuid]) -> Findings {
    let masters = master_keys_in(key_dir);
    assert!(
        !masters.is_empty(),
        "the current master key is always there"
    );
    let id = patient.as_uuid();
    let needle = *id.as_bytes();
    let mut files = Vec::new();
    files_under(data_dir, &mut files);
    let mut findings = Findings::default();
    let runtime = tokio::runtime::Handle::current();
    let mut data_keys: Vec<[u8; 32]> = Vec::new();
    // Pass 1: wrapped keys. Pass 2: ciphertexts, with every data key pass 1 recovered.
    let mut ciphertexts: Vec<(String, Vec<u8>)> = Vec::new();
    for path in &files {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let name = path.strip_prefix(data_dir).unwrap().display().to_string();
        findings.files += 1;
        findings.bytes += bytes.len() as u64;
        for at in memchr::memmem::find_iter(&bytes, &needle) {
            findings.id_occurrences += 1;
            let from = at.saturating_sub(NEAR);
            let to = (at + NEAR).min(bytes.len().saturating_sub(WRAPPED_LEN));
            for start in from..to {
                findings.wrap_candidates += 1;
                let candidate = &bytes[start..start + WRAPPED_LEN];
                for (master_id, master) in &masters {
                    for version in 1..=2 {
                        let context = WrapContext {
                            owner_kind: "patient",
                            owner_id: id,
                            version,
                        };
                        let unwrapped = tokio::task::block_in_place(|| {
                            runtime.block_on(master.unwrap(master_id, candidate, &context))
                        });
                        if let Ok(key) = unwrapped {
                            findings.unwrapped.push((name.clone(), master_id.clone()));
                            if !data_keys.contains(&*key) {
                                data_keys.push(*key);
                            }
                        }
                    }
                }
            }
            // An envelope header: format 1 or 2 (ADR 0016), owner kind 1 (patient), then the ID.
            if at >= 2 && matches!(bytes[at - 2], 1 | 2) && bytes[at - 1] == 1 {
                let start = at - 2;
                for length in value_lengths(&bytes, start) {
                    findings.ciphertext_candidates += 1;
                    ciphertexts.push((name.clone(), bytes[start..start + length].to_vec()));
                }
            }
        }
    }
    let owner = KeyOwner::Patient(patient);
    let mut bindings: Vec<(&str, &str)> = ENCRYPTED_COLUMNS
        .iter()
        .chain(HISTORY_COLUMNS.iter())
        .map(|c| (c.table, c.column))
        .collect();
    bindings.extend([("attachments", "content"), ("attachments", "thumbnail")]);
    for (name, value) in &ciphertexts {
        for key in &data_keys {
            for (table, column) in &bindings {
                for row in rows {
                    // The version a value is bound to (ADR 0016): 0 for values written once,
                    // a revision or entry version (from 1) otherwise; a few suffice here.
                    for version in 0..=3 {
                        let binding = Binding {
                            owner,
                            table,
                            column,
                            row: *row,
                            version,
                        };
                        if let Ok(plaintext) = open_with_data_key(key, &binding, value) {
                            let text = String::from_utf8_lossy(&plaintext).to_string();
                            findings.decrypted.push((name.clone(), text));
                        }
                    }
                }
            }
        }
    }
    findings
}

/// The test's data directory, removed when the test ends (also when it fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settles the disk as the attack did: dead tuples vacuumed, everything checkpointed.
async fn vacuum_and_checkpoint(superuser: &mut PgConnection) {
    superuser.execute("VACUUM").await.unwrap();
    superuser.execute("CHECKPOINT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_an_erased_patient_decrypts_anywhere_on_disk_after_the_epoch_rotation() {
    let data_dir = std::env::temp_dir().join(format!("renrakucho-erasure-{}", Uuid::now_v7()));
    let _scratch = Scratch(data_dir.clone());
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(data_dir.clone()),
        master_key_epoch: Duration::from_secs(24 * 60 * 60),
        master_key_epoch_check: Duration::from_millis(200),
        ..Settings::default()
    };
    let key_dir = renrakucho_server::keys::local_key_dir(&settings);
    let files_dir = settings.files_dir();
    let databases = setup::prepare(&settings)
        .await
        .expect("the private cluster");
    let cluster = databases.cluster.as_ref().expect("a private cluster");
    let mut superuser = PgConnection::connect_with(&setup::socket_options(
        cluster,
        renrakucho_pgcluster::SUPERUSER,
        cluster.superuser_password(),
        setup::PRIVATE_DATABASE,
    ))
    .await
    .unwrap();
    let app = Application::build(&settings, &databases.connections())
        .await
        .expect("the server");
    let db = app.database().clone();
    let keyring = app.keyring().clone();
    let files = app.files().clone();

    // A facility, a nurse, and two patients: one to erase (with a unique name, and a photo in
    // the file store), one that stays.
    let facility = admin_commands::create_facility(
        &db,
        &FacilityCode::parse("erasure-st").unwrap(),
        &FacilityName::parse("消去 訪問看護ステーション").unwrap(),
        FacilityKind::VisitingNurseStation,
    )
    .await
    .unwrap();
    let hasher = PasswordHasher::new(PasswordParams {
        memory_kib: settings.password_memory_kib,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let password = Password::new_secret("correct horse battery staple".into()).unwrap();
    let nurse = admin_commands::create_staff(
        &db,
        &hasher,
        &facility,
        StaffToIssue {
            login_id: LoginId::parse("nurse").unwrap(),
            name: DisplayName::parse("看護 花子").unwrap(),
            role: StaffRole::FacilityAdmin,
            profession: Profession::Nurse,
            password: &password,
            password_must_change: false,
        },
    )
    .await
    .unwrap();
    let who = StaffActor {
        staff: nurse.id,
        facility: nurse.facility_id,
    };
    let origin = Origin::default();
    let register = |name: String| {
        let db = db.clone();
        let keyring = keyring.clone();
        let origin = origin.clone();
        async move {
            let today = time::OffsetDateTime::now_utc().date();
            renrakucho_registry::register_patient(
                &db,
                &keyring,
                &renrakucho_testkit::acting::permitted(who),
                &origin,
                renrakucho_registry::NewPatient {
                    name: PatientName::parse(&name).unwrap(),
                    kana: KanaName::parse("ショウキョ ハナコ").unwrap(),
                    profile: PatientProfile {
                        birth_date: BirthDate::parse("1940-01-15", today).unwrap(),
                        sex: Sex::Female,
                        care_level: CareLevel::Care2,
                        address: None,
                        phone: None,
                        primary_doctor: None,
                    },
                },
            )
            .await
            .unwrap()
        }
    };
    let marker = format!("消去{}", &Uuid::new_v4().simple().to_string()[..12]);
    let erased = register(format!("試験 {marker}")).await;
    let kept = register("試験 残子".to_string()).await;
    let photo = renrakucho_notebook::upload_attachment(
        &db,
        &keyring,
        &files,
        &renrakucho_testkit::acting::allowed(who, erased.id),
        &origin,
        renrakucho_notebook::FileUpload {
            name: &format!("{marker}.png"),
            bytes: renrakucho_testkit::PNG_1X1.to_vec(),
        },
        1 << 20,
    )
    .await
    .unwrap();
    let folder = files_dir.join("attachments").join(erased.id.to_string());
    assert!(
        folder.is_dir(),
        "the photo is stored under the patient's ID"
    );

    renrakucho_registry::request_deletion(
        &db,
        &keyring,
        &files,
        &renrakucho_testkit::acting::allowed(who, erased.id),
        &origin,
    )
    .await
    .unwrap();
    assert!(
        !folder.exists(),
        "the erased patient's folder is removed with its files"
    );
    assert!(
        !files_dir
            .join("consents")
            .join(erased.id.to_string())
            .exists(),
        "no consents folder is left either"
    );

    // Before the epoch rotation: the attack of issue 11 works. A copy of the patient's wrapped
    // data key is still in the WAL or a dead tuple, the master key of the same directory
    // unwraps it, and the patient's name decrypts.
    vacuum_and_checkpoint(&mut superuser).await;
    let rows = [erased.id.as_uuid(), photo.id];
    let before = scan(&data_dir, &key_dir, erased.id, &rows);
    assert!(
        !before.unwrapped.is_empty(),
        "before the rotation a copy of the wrapped key unwraps: {before:?}"
    );
    assert!(
        before
            .decrypted
            .iter()
            .any(|(_, text)| text.contains(&marker)),
        "before the rotation the erased name decrypts from the disk: {:?}",
        before.unwrapped
    );
    let (old_master, _) = LocalMasterKeys::ids_in(&key_dir).unwrap();
    eprintln!(
        "before the rotation: {} files, {} bytes, {} places with the ID, {} candidate wrapped \
         keys, {} candidate ciphertexts; {} unwrapped, {} decrypted",
        before.files,
        before.bytes,
        before.id_occurrences,
        before.wrap_candidates,
        before.ciphertext_candidates,
        before.unwrapped.len(),
        before.decrypted.len()
    );

    // The step the guarantee names: the server's own epoch rotation, which starts by itself
    // after the erasure (here at the server's start, its first check).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (current, present) = LocalMasterKeys::ids_in(&key_dir).unwrap();
        if current != old_master && !present.contains(&old_master) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the epoch rotation did not destroy {old_master}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After it: the copies are still on disk, and nothing decrypts.
    vacuum_and_checkpoint(&mut superuser).await;
    let after = scan(&data_dir, &key_dir, erased.id, &rows);
    eprintln!(
        "after the rotation: {} files, {} bytes, {} places with the ID, {} candidate wrapped \
         keys, {} candidate ciphertexts; {} unwrapped, {} decrypted",
        after.files,
        after.bytes,
        after.id_occurrences,
        after.wrap_candidates,
        after.ciphertext_candidates,
        after.unwrapped.len(),
        after.decrypted.len()
    );
    assert!(
        after.id_occurrences > 0 && after.wrap_candidates > 0 && after.ciphertext_candidates > 0,
        "the copies are still on disk (the scan looked at them): {after:?}"
    );
    assert!(
        after.unwrapped.is_empty() && after.decrypted.is_empty(),
        "after the rotation nothing of the erased patient decrypts: {after:?}"
    );
    assert!(
        !std::fs::read_dir(&key_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(old_master.trim_start_matches("local:"))),
        "no file of the destroyed master key is left"
    );

    // No live key was lost: the other patient reads, through a keyring of another process
    // (no cached keys) with the master keys as they are now.
    let fresh = renrakucho_server::keys::open_keyring(&settings)
        .await
        .unwrap();
    let read = renrakucho_registry::patient(
        &db,
        &fresh,
        &renrakucho_testkit::acting::allowed(who, kept.id),
        &origin,
    )
    .await
    .unwrap();
    assert_eq!(read.name.as_str(), "試験 残子");

    // The rotation is in the platform's audit chain.
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE facility_id IS NULL AND action LIKE 'master_key.%'
          ORDER BY seq",
    )
    .fetch_all(&mut superuser)
    .await
    .unwrap();
    assert!(
        actions.contains(&"master_key.epoch".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"master_key.destroy".to_string()),
        "{actions:?}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    superuser.close().await.unwrap();
    databases.shutdown().await;
}

/// The two rules that keep a rotation from losing a live key, against the database: a data key
/// is never wrapped under an epoch being retired (the trigger refuses it, so the count the
/// rotation checks before destroying stays at zero), and only one rotation runs at a time.
#[tokio::test]
async fn no_key_is_wrapped_under_a_retiring_epoch_and_one_rotation_runs_at_a_time() {
    use renrakucho_store::{epochs, Scope};
    let app = renrakucho_testkit::spawn_app().await;
    let trio = crate::support::trio(&app, "epoch").await;
    let keyring = app.keyring().await;
    let current = keyring.master_keys().current_key_id();

    // Active: a new patient's data key is wrapped under it.
    app.seed_patient(&trio.b_admin, "試験 一子", "シケン イチコ")
        .await;

    let mut tx = app.db.begin(Scope::KeyMaintenance).await.unwrap();
    epochs::register(&mut tx, &current, 0).await.unwrap();
    epochs::begin_retiring(&mut tx, &current).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = app.db.begin(Scope::KeyMaintenance).await.unwrap();
    let live_before = epochs::live_keys_under(&mut tx, &current).await.unwrap();
    tx.commit().await.unwrap();

    // Retiring: the same registration is refused, and nothing was wrapped under it.
    let refused = renrakucho_registry::register_patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::permitted(StaffActor {
            staff: trio.b_admin.id,
            facility: trio.b_admin.facility_id,
        }),
        &Origin::default(),
        renrakucho_registry::NewPatient {
            name: PatientName::parse("試験 二子").unwrap(),
            kana: KanaName::parse("シケン ニコ").unwrap(),
            profile: PatientProfile {
                birth_date: BirthDate::parse("1940-01-15", time::OffsetDateTime::now_utc().date())
                    .unwrap(),
                sex: Sex::Female,
                care_level: CareLevel::Care2,
                address: None,
                phone: None,
                primary_doctor: None,
            },
        },
    )
    .await;
    let message = format!("{:?}", refused.expect_err("a wrap under a retiring epoch"));
    assert!(message.contains("being retired"), "{message}");
    let mut tx = app.db.begin(Scope::KeyMaintenance).await.unwrap();
    assert_eq!(
        epochs::live_keys_under(&mut tx, &current).await.unwrap(),
        live_before
    );
    // An epoch never goes back.
    let mut raw = crate::support::superuser(&app).await;
    let back = sqlx::query("UPDATE master_key_epochs SET state = 'active', retiring_at = NULL")
        .execute(&mut raw)
        .await;
    assert!(back.is_err(), "a retiring epoch cannot become active again");
    tx.commit().await.unwrap();

    // One rotation at a time: while another process holds the lock, a rotation skips its turn.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let local = renrakucho_keyring::Keyring::new(
        renrakucho_keyring::MasterKeys::new(std::sync::Arc::new(
            LocalMasterKeys::open_dir(&dir).unwrap(),
        )),
        renrakucho_keyring::CacheSettings::default(),
    );
    let policy = renrakucho_keyring::EpochPolicy {
        keys: renrakucho_keyring::EpochKeys::Directory(dir.clone()),
        period: Duration::from_secs(3600),
        batch: 10,
    };
    let mut other = app.db.begin(Scope::KeyMaintenance).await.unwrap();
    assert!(epochs::try_lock_rotation(&mut other).await.unwrap());
    assert_eq!(
        local.rotate_epoch(&app.db, &policy, true).await.unwrap(),
        None
    );
    other.commit().await.unwrap();
    let (_, before) = LocalMasterKeys::ids_in(&dir).unwrap();
    assert_eq!(
        before.len(),
        1,
        "nothing was generated while another rotation ran"
    );
}
