//! What the database lets a facility do to a patient, action by action: each probe run as the
//! runtime role in a savepoint and rolled back.

use super::*;

/// Runs `sql` (with `$1` = the patient) in a savepoint and rolls it back: whether the database
/// let it through, and how many rows it touched or counted.
async fn attempt(conn: &mut PgConnection, sql: &str, patient: PatientId) -> Option<i64> {
    sqlx::raw_sql("SAVEPOINT probe")
        .execute(&mut *conn)
        .await
        .unwrap();
    // A probe may start with statements of its own (without parameters), separated by a line
    // holding only `;`: what the application runs before the statement that decides.
    let mut parts: Vec<&str> = sql.split("\n;\n").collect();
    let sql = parts.pop().expect("a statement");
    let mut prepared = Ok(());
    for setup in parts {
        prepared = sqlx::raw_sql(setup).execute(&mut *conn).await.map(|_| ());
        if prepared.is_err() {
            break;
        }
    }
    let result = if let Err(e) = prepared {
        Err(e)
    } else if sql.trim_start().starts_with("SELECT") {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(patient.as_uuid())
            .fetch_one(&mut *conn)
            .await
    } else {
        sqlx::query(sql)
            .bind(patient.as_uuid())
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected() as i64)
    };
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT probe")
        .execute(&mut *conn)
        .await
        .unwrap();
    match result {
        Ok(n) => Some(n),
        Err(e) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string());
            // Refused by a policy or a guard (42501), or by a rule of the schema (23514: a
            // consent recorded while withdrawn without the renewal's scan).
            assert!(
                matches!(code.as_deref(), Some("42501" | "23514")),
                "{sql}: unexpected error {e}"
            );
            None
        }
    }
}

/// How many rows of `table` exist for the patient, whoever may see them.
async fn total(su: &mut PgConnection, table: &str, column: &str, patient: PatientId) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {column} = $1"))
        .bind(patient.as_uuid())
        .fetch_one(su)
        .await
        .unwrap()
}

/// What the database lets `facility` do to `patient`, action by action, each probe in a
/// savepoint that is rolled back. `spare` is a facility in no care team (to invite), `other`
/// the facility whose membership a removal aims at.
pub(super) async fn database_decisions(
    app: &TestApp,
    facility: &Place,
    patient: PatientId,
    spare: &Facility,
    other: &Facility,
) -> Vec<(Action, bool)> {
    let mut su = superuser(app).await;
    let consents = total(&mut su, "consents", "patient_id", patient).await;
    let changes = total(&mut su, "consent_changes", "patient_id", patient).await;
    let members = total(&mut su, "care_team_members", "patient_id", patient).await;
    let entries = total(&mut su, "entries", "patient_id", patient).await;
    let registering: uuid::Uuid =
        sqlx::query_scalar("SELECT facility_id FROM patients WHERE id = $1")
            .bind(patient.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    // The card's keyed lookup and birth check, as the server computes them from the number and
    // the date of birth: a grant needs the database to confirm them in its transaction.
    let (lookup, birth_check): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT lookup, birth_check FROM patient_cards WHERE patient_id = $1")
            .bind(patient.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (lookup, birth_check) = (hex(lookup), hex(birth_check));

    // As a staff member's request runs: the facility and the person acting.
    let mut tx = app
        .db
        .begin(Scope::Staff {
            facility: facility.facility.id,
            staff: facility.admin.id,
        })
        .await
        .unwrap();
    let conn = tx.raw_connection_for_tests();
    let me = facility.facility.id.as_uuid();
    let staff = facility.admin.id.as_uuid();
    let visible =
        attempt(conn, "SELECT count(*) FROM patients WHERE id = $1", patient).await == Some(1);
    // Search terms (for finding patients the facility shares) never show without the patient.
    let terms = attempt(
        conn,
        "SELECT count(*) FROM patient_name_terms WHERE patient_id = $1",
        patient,
    )
    .await;
    assert!(
        terms.unwrap_or(0) == 0 || visible,
        "search terms are never visible without the patient"
    );

    let mut decisions = Vec::new();
    for action in Action::ALL {
        let sql = match action {
            Action::PatientRegister => format!(
                "INSERT INTO patients (id, facility_id, name_enc, kana_enc, profile_enc,
                                       registered_by)
                 SELECT gen_random_uuid(), '{me}', '\\x00', '\\x00', '\\x00', '{staff}'
                  WHERE $1::uuid IS NOT NULL"
            ),
            Action::PatientRead => "SELECT count(*) FROM patients WHERE id = $1".into(),
            Action::NotebookRead => "SELECT count(*) FROM entries WHERE patient_id = $1".into(),
            Action::PatientUpdate => "UPDATE patients SET updated_at = now() WHERE id = $1".into(),
            Action::PatientCardReissue => {
                format!(
                    "UPDATE patient_cards SET issued_at = now(), issued_by = '{staff}'
                      WHERE patient_id = $1"
                )
            }
            Action::ConsentRead => "SELECT count(*) FROM consents WHERE patient_id = $1".into(),
            Action::ConsentRecord => format!(
                "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id,
                                       signer, details_enc, signed_on, recorded_by)
                 VALUES (gen_random_uuid(), $1, '{registering}', '{me}', 'patient', '\\x00',
                         (now() AT TIME ZONE 'Asia/Tokyo')::date, '{staff}')"
            ),
            Action::ConsentRenew => format!(
                "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id,
                                       signer, details_enc, signed_on, scan_object,
                                       scan_media_type, scan_size, recorded_by)
                 VALUES (gen_random_uuid(), $1, '{registering}', '{me}', 'patient', '\\x00',
                         (now() AT TIME ZONE 'Asia/Tokyo')::date, 'consents/probe/scan',
                         'image/png', 1, '{staff}')"
            ),
            Action::ConsentChanges => {
                "SELECT count(*) FROM consent_changes WHERE patient_id = $1".into()
            }
            Action::ConsentWithdraw => {
                "SELECT count(*) FROM (SELECT FROM consents WHERE patient_id = $1 FOR UPDATE) c"
                    .into()
            }
            Action::CareTeamRead => {
                "SELECT count(*) FROM care_team_members WHERE patient_id = $1".into()
            }
            Action::CareTeamInvite => format!(
                "INSERT INTO care_team_members (patient_id, registering_facility_id, facility_id,
                                                role, status, invited_by)
                 VALUES ($1, '{registering}', '{}', 'member', 'invited', '{staff}')",
                spare.id.as_uuid()
            ),
            Action::CareTeamAccept => format!(
                "UPDATE care_team_members SET status = 'active', joined_at = now()
                  WHERE patient_id = $1 AND facility_id = '{me}' AND status = 'invited'"
            ),
            Action::CareTeamLeave => format!(
                "UPDATE care_team_members SET status = 'left', ended_at = now()
                  WHERE patient_id = $1 AND facility_id = '{me}' AND status = 'active'"
            ),
            Action::CareTeamRemove => format!(
                "UPDATE care_team_members SET status = 'removed', ended_at = now()
                  WHERE patient_id = $1 AND facility_id = '{}'
                    AND status IN ('active', 'invited')",
                other.id.as_uuid()
            ),
            Action::NotebookWrite => format!(
                "INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                      author_profession, category, priority, body_enc)
                 VALUES (gen_random_uuid(), $1, '{me}', '{staff}', '試験', 'doctor', 'other',
                         'info', '\\x00')"
            ),
            Action::SupportRequest => format!(
                "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                               requested_by, question_enc, summary_enc)
                 VALUES (gen_random_uuid(), $1, '{me}', '{}', 'information', '{staff}',
                         '\\x00', '\\x00')",
                spare.id.as_uuid()
            ),
            Action::SupportAnswer => format!(
                "UPDATE support_requests SET status = 'accepted'
                  WHERE patient_id = $1 AND to_facility_id = '{me}' AND status = 'requested'"
            ),
            Action::DeletionRecord => format!(
                "INSERT INTO deletion_requests (id, facility_id, patient_id, requested_by)
                 VALUES (gen_random_uuid(), '{me}', $1, '{staff}')"
            ),
            // Identified first, as the server does after comparing the number and the date of
            // birth (the database accepts a grant only then, ADR 0018).
            Action::EmergencyOpen => format!(
                "SELECT emergency_identified('\\x{lookup}', '\\x{birth_check}')
;
                 INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, reason_enc,
                                               expires_at)
                 VALUES (gen_random_uuid(), '{me}', $1, '{staff}', '\\x00',
                         now() + interval '1 hour')"
            ),
        };
        let outcome = attempt(conn, &sql, patient).await;
        let allowed = match action {
            // Seeing the patient and every one of their consents (or care-team rows).
            Action::ConsentRead | Action::ConsentWithdraw => visible && outcome == Some(consents),
            Action::CareTeamRead => visible && outcome == Some(members),
            Action::ConsentChanges => outcome == Some(changes),
            // Every entry of the notebook, not just some shared in a request.
            Action::NotebookRead => entries > 0 && outcome == Some(entries),
            _ => outcome == Some(1),
        };
        decisions.push((*action, allowed));
    }
    tx.commit().await.unwrap();
    decisions
}
