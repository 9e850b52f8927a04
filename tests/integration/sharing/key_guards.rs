//! The database's own guards on the patient's keys, erasure and re-encryption.

use super::*;

/// The outcome of `statements` run in order in one transaction of `scope` (`$1` = the
/// patient), rolled back: rows touched by the last one, or the SQLSTATE of the first failure.
async fn outcome(
    app: &TestApp,
    scope: Scope,
    statements: &[&str],
    patient: PatientId,
) -> Result<u64, String> {
    let mut tx = app.db.begin(scope).await.unwrap();
    let mut touched = 0;
    for sql in statements {
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") {
            query.bind(patient.as_uuid())
        } else {
            query
        };
        match query.execute(tx.raw_connection_for_tests()).await {
            Ok(done) => touched = done.rows_affected(),
            Err(e) => {
                return Err(e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| e.to_string()))
            }
        }
    }
    Ok(touched)
}

/// The patient's keys and rows answer to a deletion request only in the transaction that
/// records it; no facility but the registering one starts a new key version; key maintenance
/// re-wraps (a new wrap always with its master key) and does nothing else; re-encryption is
/// key maintenance's alone and never reaches history; and the owner-only flags (re-encryption,
/// erasure) mean nothing to the runtime role, even switched to its group role.
#[tokio::test]
async fn the_database_guards_keys_erasure_and_reencryption() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "KGD-REG", FacilityKind::Clinic).await;
    let member = place(&app, "KGD-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "鍵守 花子", "カギモリ ハナコ")
        .await
        .id;
    record_consent(
        &app.db,
        &keyring,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        &member.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    let at_member = Scope::Facility(member.facility.id);
    let at_registering = Scope::Facility(registering.facility.id);
    let request = format!(
        "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
         VALUES (gen_random_uuid(), '{}', $1, '{}')",
        member.facility.id.as_uuid(),
        member.admin.id.as_uuid()
    );
    let destroy = "UPDATE data_keys SET wrapped = NULL, destroyed_at = now()
                    WHERE owner_kind = 'patient' AND owner_id = $1";
    let mut su = superuser(&app).await;
    let live_keys = "SELECT count(*) FROM data_keys
                      WHERE owner_kind = 'patient' AND owner_id = $1 AND wrapped IS NOT NULL";
    let keys_before: i64 = sqlx::query_scalar(live_keys)
        .bind(p.as_uuid())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(keys_before, 1);

    // In the transaction that records the request, the member may carry it out (the
    // application does exactly this, then destroys the keys)…
    assert_eq!(
        outcome(&app, at_member, &[&request, "SELECT erase_patient($1)"], p).await,
        Ok(1)
    );
    assert_eq!(
        outcome(
            &app,
            at_member,
            &[&request, "SELECT erase_patient($1)", destroy],
            p
        )
        .await,
        Ok(1),
        "erasure destroys the key in the request's transaction"
    );
    // …but a request left behind by an earlier transaction gives no power later.
    let mut tx = app.db.begin(at_member).await.unwrap();
    sqlx::query(&request)
        .bind(p.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        outcome(&app, at_member, &["SELECT erase_patient($1)"], p).await,
        Err("P0002".into())
    );
    // The member reads the key (to store a consent form it collected) but may not destroy it.
    // Was: refused with 42501 (the key was visible for UPDATE and the new row failed the
    // check). Now the key is not visible for UPDATE at all outside erasure, so nothing is
    // updated: the statement changes no row, and the key is checked to be still there.
    assert_eq!(outcome(&app, at_member, &[destroy], p).await, Ok(0));
    // Neither may the registering facility, which holds the keys (stricter: before, it could
    // destroy them at any time).
    assert_eq!(outcome(&app, at_registering, &[destroy], p).await, Ok(0));
    let keys_after: i64 = sqlx::query_scalar(live_keys)
        .bind(p.as_uuid())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(keys_after, keys_before, "no key was destroyed");

    // A new version of the patient's key: the registering facility only; never born destroyed.
    let new_key = |facility: &Facility, version: i32, wrapped: &str| {
        format!(
            "INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id,
                                    wrapped, destroyed_at)
             VALUES ('patient', $1, {version}, '{}', 'local:test', {wrapped})",
            facility.id.as_uuid()
        )
    };
    assert_eq!(
        outcome(
            &app,
            at_member,
            &[&new_key(&member.facility, 9, "'\\x00', NULL")],
            p
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        outcome(
            &app,
            at_registering,
            &[&new_key(&registering.facility, 9, "NULL, now()")],
            p
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        outcome(
            &app,
            at_registering,
            &[&new_key(&registering.facility, 9, "'\\x00', NULL")],
            p
        )
        .await,
        Ok(1)
    );

    // Key maintenance re-wraps; it neither destroys nor creates a patient's key.
    assert_eq!(
        outcome(&app, Scope::KeyMaintenance, &[destroy], p).await,
        Err("42501".into())
    );
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &[&new_key(&registering.facility, 9, "'\\x00', NULL")],
            p
        )
        .await,
        Err("42501".into())
    );
    // New for the database boundary: nor does it clear a wrap without destroying, and a new
    // wrap comes with its master key (neither changes alone). Both together is a re-wrap.
    let rewrap = |set: &str| {
        format!("UPDATE data_keys SET {set} WHERE owner_kind = 'patient' AND owner_id = $1")
    };
    for set in [
        "wrapped = NULL",
        "wrapped = '\\x01'",
        "master_key_id = 'local:elsewhere'",
    ] {
        assert_eq!(
            outcome(&app, Scope::KeyMaintenance, &[&rewrap(set)], p).await,
            Err("42501".into()),
            "key maintenance: {set}"
        );
    }
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &[&rewrap(
                "wrapped = '\\x01', master_key_id = 'local:elsewhere', rewrapped_at = now()"
            )],
            p
        )
        .await,
        Ok(1)
    );

    // Re-encryption is key maintenance's alone: the runtime role may not call its functions at
    // all (stricter: before, the registering facility called them for its patients), with or
    // without its group role, and neither may the platform.
    let reencryption = [
        "SELECT count(*) FROM encrypted_values('patients', 'name_enc', $1)",
        "SELECT reencrypt_value('patients', 'name_enc', $1, $1, '\\x00'::bytea, '\\x01'::bytea)",
    ];
    for call in reencryption {
        for (scope, group) in [
            (at_registering, false),
            (at_registering, true),
            (at_member, false),
            (Scope::Platform, false),
        ] {
            let mut statements = Vec::new();
            if group {
                statements.push("SET LOCAL ROLE renrakucho_runtime");
            }
            statements.push(call);
            assert_eq!(
                outcome(&app, scope, &statements, p).await,
                Err("42501".into()),
                "{scope:?} (group role: {group}): {call}"
            );
        }
    }
    // Key maintenance calls them; history (entry_versions) too, which they read and may change
    // only from format 1 to format 2 (`keys bind-versions`, ADR 0016: the trigger refuses
    // anything else, tests/integration/keyring/reencryption.rs); a column they do not know is
    // refused.
    assert_eq!(
        outcome(&app, Scope::KeyMaintenance, &[reencryption[0]], p).await,
        Ok(1),
        "one row: the count of the patient's names"
    );
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &["SELECT count(*) FROM encrypted_values('entry_versions', 'body_enc', $1)"],
            p
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        outcome(
            &app,
            Scope::KeyMaintenance,
            &["SELECT count(*) FROM encrypted_values('entry_versions', 'edited_by_name', $1)"],
            p
        )
        .await,
        Err("42501".into())
    );

    // The owner-only flags mean nothing to the runtime role: naming the patient as erasure's
    // target removes nothing (it has no DELETE on the patient's tables).
    for table in ["entries", "consents", "entry_versions"] {
        assert_eq!(
            outcome(
                &app,
                at_registering,
                &[
                    "SELECT set_config('renrakucho.erasure_patient', $1::text, true)",
                    &format!("DELETE FROM {table} WHERE patient_id = $1"),
                ],
                p
            )
            .await,
            Err("42501".into()),
            "{table}"
        );
    }

    // A withdrawn consent stays withdrawn, even for a runtime session that switches to its
    // group role and names the patient as if re-encrypting.
    withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await
    .unwrap();
    assert_eq!(
        outcome(
            &app,
            at_registering,
            &[
                "SET LOCAL ROLE renrakucho_runtime",
                "SELECT set_config('renrakucho.reencrypt_patient', $1::text, true)",
                "UPDATE consents SET withdrawn_at = NULL, withdrawn_by = NULL,
                                     withdrawn_by_facility = NULL
                  WHERE patient_id = $1",
            ],
            p
        )
        .await,
        Err("42501".into())
    );
}
