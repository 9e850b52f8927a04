//! Rotation: a rotated data key writes new values while old ones move forward; the master key
//! rotated online (every data key rewrapped, resumed after a crash) and the old one retired.

use super::*;

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
