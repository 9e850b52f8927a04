//! Re-encryption: every stored value of an owner, in the real tables, moved to the newest key.

use super::*;

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
