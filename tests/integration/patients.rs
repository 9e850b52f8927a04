//! Patients: registered with every personal field encrypted under the patient's own key,
//! found by name or reading through the blind index, visible to the registering facility only
//! (until the care team widens it), every read and search audited.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_keyring::{KeyOwner, KeyringError, Problem};
use renrakucho_registry::{find_patients, patient, CareError, StaffActor};
use renrakucho_store::audit::{Actor, Origin};
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::ConnectOptions;

async fn two_facilities(app: &TestApp) -> (StaffAccount, StaffAccount) {
    let a = app.seed_facility("PAT-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("PAT-B", FacilityKind::Pharmacy).await;
    let nurse = app
        .seed_staff(&a, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let pharmacist = app
        .seed_staff(&b, "pharm", StaffRole::Staff, Profession::Pharmacist)
        .await;
    (nurse, pharmacist)
}

fn actor(staff: &StaffAccount) -> StaffActor {
    StaffActor {
        staff: staff.id,
        facility: staff.facility_id,
    }
}

#[tokio::test]
async fn a_registered_patient_reads_back_and_the_database_holds_no_plaintext() {
    let app = spawn_app().await;
    let (nurse, _) = two_facilities(&app).await;
    let registered = app.seed_patient(&nurse, "山田 花子", "ヤマダ ハナコ").await;

    let keyring = app.keyring().await;
    let read = patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&nurse), registered.id),
        &Origin::default(),
    )
    .await
    .unwrap();
    assert_eq!(read.name.as_str(), "山田 花子");
    assert_eq!(read.kana.as_str(), "ヤマダ ハナコ");
    assert_eq!(read.profile, registered.profile);
    assert_eq!(read.registering_facility, nurse.facility_id);

    // What a dump of the database shows: bytes, none of them the name, reading or phone.
    let mut su = app.database.superuser_options().connect().await.unwrap();
    let raw: Vec<u8> =
        sqlx::query_scalar("SELECT name_enc || kana_enc || profile_enc FROM patients")
            .fetch_one(&mut su)
            .await
            .unwrap();
    for secret in ["山田", "花子", "ヤマダ", "090-0000-9999", "1940"] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} readable in the database"
        );
    }
    assert!(
        raw.len() > 3 * renrakucho_keyring::OVERHEAD,
        "three encrypted values"
    );
}

#[tokio::test]
async fn patients_are_found_by_any_spelling_of_the_name_or_reading() {
    let app = spawn_app().await;
    let (nurse, _) = two_facilities(&app).await;
    let hanako = app.seed_patient(&nurse, "山田 花子", "ヤマダ ハナコ").await;
    let taro = app.seed_patient(&nurse, "山田 太郎", "やまだ たろう").await;
    app.seed_patient(&nurse, "佐々木 一", "ササキ ハジメ").await;
    let keyring = app.keyring().await;
    let search = |q: &'static str| {
        let (db, keyring) = (app.db.clone(), keyring.clone());
        let who = actor(&nurse);
        async move {
            let mut ids: Vec<_> = find_patients(
                &db,
                &keyring,
                &renrakucho_testkit::acting::permitted(who),
                &Origin::default(),
                q,
                50,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.into_readable().expect("readable").id)
            .collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![hanako.id, taro.id];
    both.sort();
    assert_eq!(search("山田").await, both, "family name");
    assert_eq!(search("やまだ").await, both, "reading in hiragana");
    assert_eq!(search("ﾔﾏﾀﾞ").await, both, "half-width katakana");
    assert_eq!(
        search("ヤマダ　ハナコ").await,
        vec![hanako.id],
        "whole reading"
    );
    assert_eq!(
        search("山田花子").await,
        vec![hanako.id],
        "whole name without space"
    );
    assert_eq!(search("たろう").await, vec![taro.id], "given name");
    assert!(search("やま").await.is_empty(), "no partial matches");
    assert_eq!(search("").await.len(), 3, "an empty query lists them");
}

#[tokio::test]
async fn another_facility_can_neither_read_nor_find_the_patient() {
    let app = spawn_app().await;
    let (nurse, pharmacist) = two_facilities(&app).await;
    let registered = app.seed_patient(&nurse, "山田 花子", "ヤマダ ハナコ").await;
    let keyring = app.keyring().await;

    let read = patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&pharmacist), registered.id),
        &Origin::default(),
    )
    .await;
    assert!(matches!(read, Err(CareError::NotFound)), "{read:?}");
    let unknown = patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&pharmacist), renrakucho_core::PatientId::new()),
        &Origin::default(),
    )
    .await;
    assert!(
        matches!(unknown, Err(CareError::NotFound)),
        "the same answer as for nobody"
    );
    for q in ["山田", "ヤマダ ハナコ", ""] {
        let found = find_patients(
            &app.db,
            &keyring,
            &renrakucho_testkit::acting::permitted(actor(&pharmacist)),
            &Origin::default(),
            q,
            50,
        )
        .await
        .unwrap();
        assert!(found.is_empty(), "{q:?} found {found:?}");
    }
}

#[tokio::test]
async fn reads_and_searches_are_audited_without_the_name() {
    let app = spawn_app().await;
    let (nurse, _) = two_facilities(&app).await;
    let registered = app.seed_patient(&nurse, "山田 花子", "ヤマダ ハナコ").await;
    let keyring = app.keyring().await;
    let origin = Origin {
        client_addr: Some("192.0.2.7".parse().unwrap()),
        request_id: Some("req-1".into()),
    };
    patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&nurse), registered.id),
        &origin,
    )
    .await
    .unwrap();
    find_patients(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::permitted(actor(&nurse)),
        &origin,
        "ヤマダ",
        50,
    )
    .await
    .unwrap();

    let mut tx = app
        .db
        .begin(Scope::Facility(nurse.facility_id))
        .await
        .unwrap();
    let mut rows = renrakucho_store::audit::recent(&mut tx, 100).await.unwrap();
    rows.reverse();
    rows.retain(|r| r.action.starts_with("patient."));
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["patient.register", "patient.read", "patient.search"]
    );
    for r in &rows {
        assert_eq!(r.actor_id, Some(nurse.id.as_uuid()));
        let text = r.details.to_string();
        assert!(!text.contains("ヤマダ") && !text.contains("山田"), "{text}");
    }
    assert_eq!(rows[1].target_id, Some(registered.id.as_uuid()));
    assert_eq!(rows[1].request_id.as_deref(), Some("req-1"));
    assert_eq!(rows[2].details["found"], 1);
}

#[tokio::test]
async fn after_shredding_the_patient_cannot_be_read_and_others_can() {
    let app = spawn_app().await;
    let (nurse, _) = two_facilities(&app).await;
    let gone = app.seed_patient(&nurse, "山田 花子", "ヤマダ ハナコ").await;
    let kept = app.seed_patient(&nurse, "佐々木 一", "ササキ ハジメ").await;
    let keyring = app.keyring().await;
    let scope = Scope::Facility(nurse.facility_id);

    // Without a deletion request recorded in the same transaction, the registering facility
    // cannot destroy the patient's key: refused, nothing destroyed, the patient still reads.
    let mut tx = app.db.begin(scope).await.unwrap();
    let refused = keyring
        .destroy(
            &mut tx,
            KeyOwner::Patient(gone.id),
            Actor::Staff(nurse.id),
            &Origin::default(),
        )
        .await;
    drop(tx);
    assert!(
        matches!(
            refused,
            Err(KeyringError::Store(renrakucho_store::StoreError::Forbidden))
        ),
        "{refused:?}"
    );
    let mut su = app.database.superuser_options().connect().await.unwrap();
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM data_keys WHERE owner_kind = 'patient' AND owner_id = $1
            AND wrapped IS NOT NULL",
    )
    .bind(gone.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(live, 1, "the key is still there");
    let still = patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&nurse), gone.id),
        &Origin::default(),
    )
    .await
    .unwrap();
    assert_eq!(still.name.as_str(), "山田 花子");

    // In the transaction that records the request (as the deletion flow does), it can.
    let mut tx = app.db.begin(scope).await.unwrap();
    renrakucho_store::deletions::record(&mut tx, uuid::Uuid::now_v7(), gone.id, nurse.id)
        .await
        .unwrap();
    let destroyed = keyring
        .destroy(
            &mut tx,
            KeyOwner::Patient(gone.id),
            Actor::Staff(nurse.id),
            &Origin::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(destroyed, 1);

    let read = patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&nurse), gone.id),
        &Origin::default(),
    )
    .await;
    assert!(
        matches!(
            read,
            Err(CareError::Keyring(KeyringError::OwnerShredded))
                | Err(CareError::Keyring(KeyringError::Undecryptable {
                    problem: Problem::KeyDestroyed,
                    ..
                }))
        ),
        "{read:?}"
    );
    let other = patient(
        &app.db,
        &keyring,
        &renrakucho_testkit::acting::allowed(actor(&nurse), kept.id),
        &Origin::default(),
    )
    .await
    .unwrap();
    assert_eq!(other.name.as_str(), "佐々木 一");
}
