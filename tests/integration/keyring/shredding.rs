//! Crypto-shredding: a patient's keys destroyed with the deletion request make every value
//! unreadable, in every server process and in a backup, and leave other patients alone.

use renrakucho_store::deletions;
use renrakucho_testkit::TestDatabase;

use crate::support::wait_until;

use super::*;

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
