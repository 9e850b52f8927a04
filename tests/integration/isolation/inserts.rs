//! Creating: a row written into another facility is refused with 42501, in every
//! facility-owned table (each named in [`insert_into`], which fails on a missing one).

use super::*;

/// A row for each facility-owned table, written into facility `into` (SQL with `$1` = that
/// facility). Every facility-owned table must have an entry: the test fails otherwise.
fn insert_into(table: &str) -> Option<&'static str> {
    Some(match table {
        "public.facilities" => {
            "INSERT INTO facilities (id, code, name, kind, status)
             VALUES ($1, 'ISO-NEW', '新施設', 'clinic', 'active')"
        }
        "public.staff_accounts" => {
            "INSERT INTO staff_accounts (id, facility_id, login_id, display_name, role,
                                         profession, password_hash)
             VALUES (gen_random_uuid(), $1, 'mallory', '侵入 者', 'facility_admin', 'doctor', 'x')"
        }
        "public.data_keys" => {
            "INSERT INTO data_keys (owner_kind, owner_id, version, facility_id, master_key_id,
                                    wrapped)
             VALUES ('facility', $1, 1, $1, 'local:forged', '\\x00')"
        }
        "public.patients" => {
            "INSERT INTO patients (id, facility_id, name_enc, kana_enc, profile_enc, registered_by)
             VALUES (gen_random_uuid(), $1, '\\x00', '\\x00', '\\x00',
                     (SELECT id FROM staff_accounts LIMIT 1))"
        }
        "public.patient_name_terms" => {
            "INSERT INTO patient_name_terms (patient_id, facility_id, term)
             VALUES (gen_random_uuid(), $1, sha256('x'))"
        }
        "public.care_team_members" => {
            "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id,
                                            role, status)
             VALUES (gen_random_uuid(), $1, $1, 'registering', 'active')"
        }
        "public.consents" => {
            "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id, signer,
                                   details_enc, signed_on, recorded_by)
             VALUES (gen_random_uuid(), gen_random_uuid(), $1, $1, 'patient', '\\x00',
                     '2026-11-01', gen_random_uuid())"
        }
        "public.consent_changes" => {
            "INSERT INTO consent_changes (patient_id, consent_id, kind, facility_id)
             VALUES ((SELECT patient_id FROM consents LIMIT 1), (SELECT id FROM consents LIMIT 1),
                     'withdrawn', $1)"
        }
        "public.patient_access" => {
            "INSERT INTO patient_access (facility_id, patient_id, relation)
             VALUES ($1, (SELECT id FROM patients LIMIT 1), 'sharing')"
        }
        "public.emergency_grants" => {
            "INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, reason_enc,
                                           expires_at)
             VALUES (gen_random_uuid(), $1, (SELECT id FROM patients LIMIT 1),
                     (SELECT id FROM staff_accounts LIMIT 1), '\\x00', now() + interval '1 hour')"
        }
        "public.deletion_requests" => {
            "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
             VALUES (gen_random_uuid(), $1, (SELECT id FROM patients LIMIT 1),
                     (SELECT id FROM staff_accounts LIMIT 1))"
        }
        "public.entries" => {
            "INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                  author_profession, category, priority, body_enc)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1,
                     (SELECT id FROM staff_accounts LIMIT 1), '侵入', 'doctor', 'other', 'info',
                     '\\x00')"
        }
        "public.entry_versions" => {
            "INSERT INTO entry_versions (id, entry_id, version, patient_id, facility_id, edited_by,
                                         edited_by_name, category, priority, body_enc)
             VALUES (gen_random_uuid(), gen_random_uuid(), 2, gen_random_uuid(), $1,
                     gen_random_uuid(), '侵入', 'other', 'info', '\\x00')"
        }
        "public.attachments" => {
            "INSERT INTO attachments (id, patient_id, facility_id, uploaded_by, media_type, size,
                                      file_name_enc, object)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1,
                     (SELECT id FROM staff_accounts LIMIT 1), 'image/png', 1, '\\x00', 'x')"
        }
        "public.entry_reads" => {
            "INSERT INTO entry_reads (entry_id, patient_id, staff_id, facility_id, reader_name,
                                      reader_profession)
             VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), $1, '侵入', 'doctor')"
        }
        "public.support_requests" => {
            "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                           requested_by, question_enc, summary_enc)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1,
                     gen_random_uuid(), 'information', gen_random_uuid(), '\\x00', '\\x00')"
        }
        "public.support_request_items" => {
            "INSERT INTO support_request_items (request_id, patient_id, facility_id, entry_id)
             VALUES (gen_random_uuid(), gen_random_uuid(), $1, gen_random_uuid())"
        }
        "public.notification_settings" => {
            "INSERT INTO notification_settings (staff_id, facility_id)
             VALUES (gen_random_uuid(), $1)"
        }
        "public.patient_mutes" => {
            "INSERT INTO patient_mutes (staff_id, patient_id, facility_id)
             VALUES (gen_random_uuid(), (SELECT id FROM patients LIMIT 1), $1)"
        }
        "public.patient_cards" => {
            "INSERT INTO patient_cards (patient_id, facility_id, lookup, birth_check, number_enc)
             VALUES (coalesce((SELECT id FROM patients LIMIT 1), gen_random_uuid()), $1,
                     sha256('x'), sha256('y'), '\\x00')"
        }
        "public.emergency_identification_failures" => {
            "INSERT INTO emergency_identification_failures (facility_id, requesting_facility_id,
                                                            staff_id)
             VALUES ($1, $1, gen_random_uuid())"
        }
        "public.account_notices" => {
            "INSERT INTO account_notices (id, facility_id, staff_id, event)
             VALUES (gen_random_uuid(), $1, gen_random_uuid(), 'second_factor_added')"
        }
        "public.identity_providers" => {
            "INSERT INTO identity_providers (id, facility_id, issuer, client_id, client_secret_enc,
                                             scopes, login_claim, account_policy)
             VALUES (gen_random_uuid(), $1, 'https://login.example.jp', 'x',
                     decode(repeat('00', 40), 'hex'), '{openid}', 'email', 'pre_linked')"
        }
        "public.external_identities" => {
            "INSERT INTO external_identities (id, facility_id, staff_id, issuer, subject, linked_by)
             VALUES (gen_random_uuid(), $1, gen_random_uuid(), 'https://login.example.jp', 's',
                     'admin')"
        }
        "public.staff_passkeys" => {
            "INSERT INTO staff_passkeys (id, facility_id, staff_id, credential_id, name, passkey)
             VALUES (gen_random_uuid(), $1, gen_random_uuid(), decode(repeat('00', 32), 'hex'),
                     '鍵', '{}')"
        }
        "public.audit_log" => {
            "INSERT INTO audit_log (facility_id, actor_kind, action, outcome, prev_hash, hash)
             VALUES ($1, 'system', 'forged.entry', 'success', '\\x00', '\\x00')"
        }
        _ => return None,
    })
}

#[tokio::test]
async fn writing_a_row_into_another_facility_is_refused_with_42501() {
    let net = network().await;
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;
    let nowhere = uuid::Uuid::new_v4();

    for table in &tables {
        let sql = insert_into(&table.name).unwrap_or_else(|| {
            panic!(
                "{} is facility-owned: add an insert for it to this test",
                table.name
            )
        });
        // Into B, into a facility that does not exist, and with no context at all: the same
        // refusal, so the answer does not tell whether B exists.
        let mut refusal: Option<String> = None;
        for (scope, target) in [
            (Some(Scope::Facility(net.a.id)), net.b.id.as_uuid()),
            (Some(Scope::Facility(net.a.id)), nowhere),
            (None, net.a.id.as_uuid()),
        ] {
            let result = match scope {
                Some(scope) => {
                    let mut tx = net.app.db.begin(scope).await.unwrap();
                    sqlx::query(sql)
                        .bind(target)
                        .execute(tx.raw_connection_for_tests())
                        .await
                }
                None => {
                    let mut conn = net.app.database.runtime_options().connect().await.unwrap();
                    sqlx::query(sql).bind(target).execute(&mut conn).await
                }
            };
            let Err(err) = result else {
                panic!(
                    "{}: insert into {target} with {scope:?} succeeded",
                    table.name
                );
            };
            let db = err.as_database_error().expect("a database error");
            assert_eq!(db.code().as_deref(), Some("42501"), "{}: {err}", table.name);
            let table_name = table.name.trim_start_matches("public.");
            // Refused by a policy, or (for tables only the database itself writes, such as
            // patient_access) for want of the privilege: either way the same words each time.
            let expected = if db.message().starts_with("permission denied") {
                format!("permission denied for table {table_name}")
            } else {
                format!("new row violates row-level security policy for table \"{table_name}\"")
            };
            assert_eq!(db.message(), expected, "{}", table.name);
            let first = refusal.get_or_insert_with(|| db.message().to_string());
            assert_eq!(
                db.message(),
                first.as_str(),
                "the message must be the same whether the facility exists or not"
            );
        }
    }

    // Moving one of A's rows over to B is refused the same way.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let moved = sqlx::query("UPDATE staff_accounts SET facility_id = $1 WHERE login_id = 'bob'")
        .bind(net.b.id.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await;
    assert_eq!(sqlstate(moved), "42501");
    drop(tx);

    let staff: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(staff, 4, "nothing was written");
}
