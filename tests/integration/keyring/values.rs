//! Data keys created on first use and stored only wrapped; a value bound to its row, column,
//! patient and facility; altered, truncated and unknown-version values as typed errors.

use super::*;

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
