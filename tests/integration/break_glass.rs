//! Break-glass identification cannot be guessed (issue 11 §5, docs/adr/0018): over real HTTP,
//! failed identifications are counted per facility and per card in the database, lock after
//! five within an hour, are recorded in the registering facility's audit chain and alert it and
//! the operators; an unknown number and a wrong date of birth answer alike; a re-issued card's
//! old number stops working. And in the database, as the runtime role: what it may not do.

use std::time::Duration;

use renrakucho_authz::Action;
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app, TestApp};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

const REASON: &str = "救急搬送時に既往歴と服薬内容を確認するため";
/// The fixture patients' date of birth (`TestApp::seed_patient`).
const BIRTH_DATE: &str = "1940-01-15";
const WRONG_DATE: &str = "1941-03-03";

/// A clinic that registered a patient, and hospitals outside its care team.
struct Network {
    clinic: Facility,
    hospital: Facility,
    other_hospital: Facility,
    patient: Uuid,
    card: String,
    clinic_doctor: Client,
    clinic_admin: Client,
    er: Client,
    hospital_admin: Client,
    other_er: Client,
}

async fn network(app: &TestApp, prefix: &str) -> Network {
    let clinic = app
        .seed_facility(&format!("{prefix}-CL"), FacilityKind::Clinic)
        .await;
    let hospital = app
        .seed_facility(&format!("{prefix}-H1"), FacilityKind::Hospital)
        .await;
    let other_hospital = app
        .seed_facility(&format!("{prefix}-H2"), FacilityKind::Hospital)
        .await;
    let doctor = app
        .seed_staff(&clinic, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(
        &clinic,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Nurse,
    )
    .await;
    app.seed_staff(&clinic, "pharm", StaffRole::Staff, Profession::Pharmacist)
        .await;
    for h in [&hospital, &other_hospital] {
        app.seed_staff(h, "doctor", StaffRole::Staff, Profession::Doctor)
            .await;
        app.seed_staff(h, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
            .await;
    }
    let patient = app
        .seed_patient(&doctor, "緊急 照子", "キンキュウ テルコ")
        .await
        .id
        .as_uuid();
    let clinic_doctor = app.client_for(&clinic, "doctor").await;
    let card = card_number(app, &clinic_doctor, patient).await;
    Network {
        patient,
        card,
        clinic_admin: app.client_for(&clinic, "admin").await,
        er: app.client_for(&hospital, "doctor").await,
        hospital_admin: app.client_for(&hospital, "admin").await,
        other_er: app.client_for(&other_hospital, "doctor").await,
        clinic_doctor,
        clinic,
        hospital,
        other_hospital,
    }
}

async fn open(app: &TestApp, client: &Client, card: &str, birth_date: &str) -> Response {
    client
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": card, "birth_date": birth_date, "reason": REASON }))
        .send()
        .await
        .unwrap()
}

/// A card number nobody was given (a valid check character, 75 random bits).
fn unknown_card() -> String {
    let random = Uuid::new_v4();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random.as_bytes()[..10]);
    renrakucho_core::CardNumber::from_random(bytes).printed()
}

/// The answer without what differs by request (its ID): status, code, message, field.
async fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let mut body = json_of(response).await;
    body["error"]
        .as_object_mut()
        .expect("an error body")
        .remove("request_id");
    (status, body)
}

async fn card_of(app: &TestApp, registering: &Client, patient: Uuid) -> Value {
    let response = registering
        .get(patient_url(app, patient, "/card"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading the card");
    json_of(response).await
}

#[tokio::test]
async fn the_sixth_attempt_is_refused_even_with_the_right_date_and_the_lockout_shows() {
    let app = spawn_app().await;
    let net = network(&app, "BG-SIX").await;
    let show_url = patient_url(&app, net.patient, "");

    // Five wrong dates: five identical "not identified" answers.
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(answer(open(&app, &net.er, &net.card, WRONG_DATE).await).await);
    }
    assert_eq!(answers[0].0, 404);
    assert_eq!(answers[0].1["error"]["code"], "not_identified");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");

    // The sixth, with the right date: refused, the facility is locked out; nothing opened.
    let response = open(&app, &net.er, &net.card, BIRTH_DATE).await;
    assert_eq!(response.status(), 429, "the sixth attempt is refused");
    assert!(response.headers().contains_key("retry-after"));
    let locked = failure(response).await;
    assert_eq!(locked.code, "identification_locked");
    assert!(locked
        .message
        .starts_with("緊急閲覧の本人確認に1時間で5回失敗"));
    assert_eq!(status_of(&net.er, &show_url).await, 404);

    // The hospital's administrator sees the lockout (and the portal says so).
    let status = json_of(
        net.hospital_admin
            .get(app.url("/api/v1/emergency-access/status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["failures_within_hour"], 5);
    assert_eq!(status["limit"], 5);
    assert!(status["locked_until"].is_string(), "{status}");
    let page = net
        .hospital_admin
        .get(app.url("/emergency"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("施設からの照会を停止しています"));

    // Another facility, with the right date: the card itself is locked, and says only
    // "not identified" (the same answer as an unknown number).
    let other = answer(open(&app, &net.other_er, &net.card, BIRTH_DATE).await).await;
    let unknown = answer(open(&app, &net.other_er, &unknown_card(), BIRTH_DATE).await).await;
    assert_eq!(other, unknown);
    assert_eq!(other.0, 404);
    assert_eq!(
        status_of(&net.other_er, &show_url).await,
        404,
        "the locked card opened nothing"
    );

    // The registering facility sees the lock and who tried.
    let card = card_of(&app, &net.clinic_doctor, net.patient).await;
    assert_eq!(card["failures_within_hour"], 6, "{card}");
    assert!(card["locked_until"].is_string());
    let tried: Vec<&Value> = card["recent_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["facility"])
        .collect();
    assert_eq!(
        tried
            .iter()
            .filter(|f| **f == &json!(net.hospital.id.as_uuid()))
            .count(),
        5
    );
    assert_eq!(
        tried
            .iter()
            .filter(|f| **f == &json!(net.other_hospital.id.as_uuid()))
            .count(),
        1
    );
    let page = net
        .clinic_doctor
        .get(app.url(&format!("/patients/{}", net.patient)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&net.card),
        "the card number is on the patient page"
    );
    assert!(
        page.contains("card-locked"),
        "the lock is on the patient page"
    );
}

#[tokio::test]
async fn failures_are_in_the_registering_facilitys_audit_and_the_caller_learns_nothing() {
    let app = spawn_app().await;
    let net = network(&app, "BG-AUD").await;
    let wrong = answer(open(&app, &net.er, &net.card, WRONG_DATE).await).await;
    let unknown = answer(open(&app, &net.er, &unknown_card(), WRONG_DATE).await).await;
    assert_eq!(
        wrong, unknown,
        "a wrong date and an unknown number answer alike"
    );
    assert_eq!(wrong.0, 404);
    assert_eq!(wrong.1["error"]["code"], "not_identified");

    // The registering facility's chain holds the attempt on its patient, naming who tried.
    let records = audit_of(&app, &net.clinic_admin).await;
    let identify: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "emergency.identify")
        .collect();
    assert_eq!(identify.len(), 1, "only the attempt on its own patient");
    assert_eq!(identify[0]["outcome"], "denied");
    assert_eq!(identify[0]["target_id"], net.patient.to_string());
    assert_eq!(
        identify[0]["details"]["requesting_facility"],
        net.hospital.id.as_uuid().to_string()
    );
    assert_eq!(identify[0]["details"]["failures_within_hour"], 1);

    // The hospital's own chain has both attempts, alike, without the patient.
    let records = audit_of(&app, &net.hospital_admin).await;
    let denied: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "emergency.open" && r["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2);
    assert_eq!(denied[0]["details"]["why"], denied[1]["details"]["why"]);
    assert!(denied.iter().all(|r| r["target_id"].is_null()));
    assert!(
        !records
            .iter()
            .any(|r| r.to_string().contains(&net.patient.to_string())),
        "nothing in the hospital's record names the patient"
    );
    // The number that named nothing is in the platform's chain.
    let mut su = superuser(&app).await;
    let platform: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE facility_id IS NULL AND action = 'emergency.identify'
            AND details->>'requesting_facility' = $1",
    )
    .bind(net.hospital.id.as_uuid().to_string())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(platform, 1);
    // Every chain still verifies.
    let report = renrakucho_store::audit::verify(&app.db).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}

/// The next `notification` event of a stream within `wait`.
async fn next_event(stream: &mut Response, buffer: &mut Vec<u8>, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            let block = String::from_utf8(block).unwrap();
            if block.lines().any(|l| l.trim() == "event: notification") {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                return Some(serde_json::from_str(&data).unwrap());
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.extend_from_slice(&chunk),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn repeated_failures_alert_the_registering_facility_and_the_operators() {
    let app = spawn_app().await;
    let net = network(&app, "BG-ALR").await;
    let mut live = net
        .clinic_doctor
        .get(app.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let mut buffer = Vec::new();

    // Four failures from two hospitals: no facility is locked, the card is not yet.
    for client in [&net.er, &net.er, &net.other_er, &net.other_er] {
        assert_eq!(
            open(&app, client, &net.card, WRONG_DATE).await.status(),
            404
        );
    }
    // Four failures are not yet an alert: the next thing the clinic's doctor hears is a marker
    // sent now, an entry of the clinic's administrator.
    authorizer_follows(&app, &net.clinic, net.patient, Action::NotebookWrite, true).await;
    let marker = post_note(
        &app,
        &net.clinic_admin,
        net.patient,
        "urgent",
        "定期訪問の記録",
    )
    .await;
    let event = next_event(&mut live, &mut buffer, PATIENCE)
        .await
        .expect("the marker entry reaches the clinic's doctor");
    assert_eq!(
        (&event["kind"], &event["entry"]),
        (&json!("entry"), &json!(marker.to_string())),
        "four failures are not yet an alert: {event}"
    );
    // The fifth locks the card: the clinic is told at once, as urgent, and in its feed.
    assert_eq!(
        open(&app, &net.er, &net.card, WRONG_DATE).await.status(),
        404
    );
    let event = next_event(&mut live, &mut buffer, PATIENCE)
        .await
        .expect("the registering facility hears of the locked card");
    assert_eq!(event["kind"], "card_locked");
    assert_eq!(event["priority"], "urgent");
    assert_eq!(event["patient"], net.patient.to_string());
    let feed = json_of(
        net.clinic_doctor
            .get(app.url("/api/v1/notifications"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let locked: Vec<&Value> = feed
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "card_locked")
        .collect();
    assert_eq!(locked.len(), 1, "{feed}");
    assert_eq!(locked[0]["patient"], net.patient.to_string());
    // The hospitals' feeds say nothing of it.
    let theirs = json_of(
        net.er
            .get(app.url("/api/v1/notifications"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!theirs.to_string().contains(&net.patient.to_string()));

    // The operators see the locked card (IDs only), and a facility locked out.
    for _ in 0..2 {
        assert_eq!(
            open(&app, &net.er, &unknown_card(), WRONG_DATE)
                .await
                .status(),
            404
        );
    }
    let alerts = operator_alerts(&app).await;
    let card_alert = alerts
        .iter()
        .find(|a| a["kind"] == "emergency_identification.card_locked")
        .unwrap_or_else(|| panic!("a card-locked alert in {alerts:?}"));
    assert_eq!(
        card_alert["details"]["patient"],
        net.patient.to_string(),
        "{card_alert}"
    );
    assert!(!card_alert.to_string().contains("緊急 照子"));
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "emergency_identification.facility_locked"
                && a["details"]["facility"] == net.hospital.id.as_uuid().to_string()),
        "a facility-locked alert in {alerts:?}"
    );
    let _ = &net.clinic;
}

#[tokio::test]
async fn a_reissued_card_ends_the_old_number_and_the_lock() {
    let app = spawn_app().await;
    let net = network(&app, "BG-RE").await;
    // Lock the card from two hospitals (neither facility is locked).
    for client in [&net.er, &net.er, &net.er, &net.other_er, &net.other_er] {
        assert_eq!(
            open(&app, client, &net.card, WRONG_DATE).await.status(),
            404
        );
    }
    assert_eq!(
        open(&app, &net.er, &net.card, BIRTH_DATE).await.status(),
        404
    );

    // Only the registering facility re-issues, and only who may.
    let reissue = patient_url(&app, net.patient, "/card/reissue");
    let pharmacist = app.client_for(&net.clinic, "pharm").await;
    forbidden(
        pharmacist.post(&reissue).send().await.unwrap(),
        "a pharmacist re-issuing the card",
    )
    .await;
    assert_eq!(
        failure(net.er.post(&reissue).send().await.unwrap()).await,
        not_found(),
        "another facility cannot even tell the patient exists"
    );
    assert_eq!(
        failure(
            net.er
                .get(patient_url(&app, net.patient, "/card"))
                .send()
                .await
                .unwrap()
        )
        .await,
        not_found()
    );
    let response = net.clinic_admin.post(&reissue).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the clinic's administrator re-issues"
    );
    let card = json_of(response).await;
    let new_number = card["number"].as_str().unwrap().to_string();
    assert_ne!(new_number, net.card);
    assert_eq!(card["failures_within_hour"], 0);
    assert!(card["locked_until"].is_null());
    assert_eq!(
        card_number(&app, &net.clinic_doctor, net.patient).await,
        new_number
    );

    // The old number is an unknown number now, with the right date too.
    let old = answer(open(&app, &net.other_er, &net.card, BIRTH_DATE).await).await;
    let unknown = answer(open(&app, &net.other_er, &unknown_card(), BIRTH_DATE).await).await;
    assert_eq!(old, unknown);
    // The new one opens the notebook.
    let response = open(&app, &net.other_er, &new_number, BIRTH_DATE).await;
    assert_eq!(response.status(), 201, "the new number with the right date");
    let records = audit_of(&app, &net.clinic_admin).await;
    let reissued = records
        .iter()
        .find(|r| r["action"] == "patient.card_reissue")
        .expect("the re-issue is audited");
    assert_eq!(reissued["target_id"], net.patient.to_string());
    assert_eq!(reissued["details"]["replaced"], true);
    assert!(!reissued.to_string().contains(&new_number));
}

#[tokio::test]
async fn a_correct_birth_date_follows_the_card_and_typing_is_forgiving() {
    let app = spawn_app().await;
    let net = network(&app, "BG-DOB").await;
    // Lower case, spaces instead of hyphens, full-width characters: the same number.
    let typed: String = net
        .card
        .to_lowercase()
        .replace('-', " ")
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            ' ' => '\u{3000}',
            c => c,
        })
        .collect();
    // A typo is caught by the check character before anything is counted.
    let mut typo: Vec<char> = net.card.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    invalid(
        open(&app, &net.er, &typo, BIRTH_DATE).await,
        "card_number",
        "a mistyped card number",
    )
    .await;
    let status = json_of(
        net.er
            .get(app.url("/api/v1/emergency-access/status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["failures_within_hour"], 0, "a typo is not a failure");
    // The date of birth is corrected: the card confirms the new date, not the old.
    let response = net
        .clinic_doctor
        .put(patient_url(&app, net.patient, ""))
        .json(&json!({
            "name": "緊急 照子", "kana": "キンキュウ テルコ", "birth_date": "1940-01-16",
            "sex": "female", "care_level": "care_2", "phone": "090-0000-9999",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "correcting the date of birth");
    assert_eq!(open(&app, &net.er, &typed, BIRTH_DATE).await.status(), 404);
    assert_eq!(
        open(&app, &net.er, &typed, "1940-01-16").await.status(),
        201,
        "the corrected date, typed loosely"
    );
}

/// As the runtime role itself (what an injection could run): the card table and the failures
/// show nothing of other facilities, failures cannot be written or erased by hand, the lookup
/// needs a staff member's context, and no grant opens while the facility is locked out.
#[tokio::test]
async fn the_database_holds_the_rule_against_the_runtime_role() {
    let app = spawn_app().await;
    let net = network(&app, "BG-DB").await;
    for _ in 0..5 {
        assert_eq!(
            open(&app, &net.er, &net.card, WRONG_DATE).await.status(),
            404
        );
    }
    let hospital = net.hospital.id;
    let staff: Uuid = {
        let mut su = superuser(&app).await;
        sqlx::query_scalar("SELECT id FROM staff_accounts WHERE facility_id = $1 LIMIT 1")
            .bind(hospital.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap()
    };
    let scope = Scope::Staff {
        facility: hospital,
        staff: renrakucho_core::StaffId::from_uuid(staff),
    };
    let attempt = |sql: &'static str| {
        let db = app.db.clone();
        let patient = net.patient;
        async move {
            let mut tx = db.begin(scope).await.unwrap();
            let conn = tx.raw_connection_for_tests();
            let result = sqlx::query(sql).bind(patient).execute(&mut *conn).await;
            result.map(|r| r.rows_affected()).map_err(|e| e.to_string())
        }
    };
    // Another facility's patient's card: invisible, unchangeable.
    assert_eq!(
        attempt("SELECT * FROM patient_cards WHERE patient_id = $1").await,
        Ok(0)
    );
    assert_eq!(
        attempt(
            "UPDATE patient_cards SET issued_at = now(), issued_by = NULL WHERE patient_id = $1"
        )
        .await,
        Ok(0)
    );
    // Its own failures are not rows it may read (they would name the patient), write or erase.
    assert_eq!(
        attempt("SELECT * FROM emergency_identification_failures WHERE patient_id = $1").await,
        Ok(0)
    );
    for sql in [
        "DELETE FROM emergency_identification_failures WHERE patient_id = $1",
        "INSERT INTO emergency_identification_failures (requesting_facility_id, staff_id)
         SELECT current_facility_id(), current_staff_id() WHERE $1::uuid IS NOT NULL",
    ] {
        let refused = attempt(sql).await.unwrap_err();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
    // A grant written directly: refused by the database (the facility is locked out); and
    // while it is, the database confirms no identification, even given the right keyed values.
    let refused = attempt(GRANT_FOR_PATIENT).await.unwrap_err();
    assert!(refused.contains("locked"), "{refused}");
    let (lookup, birth_check) = card_hashes(&app, net.patient).await;
    let refused = identify_then_grant(&app, scope, &lookup, &birth_check, net.patient, 1)
        .await
        .unwrap_err();
    assert!(refused.contains("not identified"), "{refused}");
    // Each trigger holds on its own (the other switched off), and with both off the insert goes
    // through: the refusals are the triggers', not something else in the way.
    let patient = net.patient;
    let without = |triggers: &'static [&'static str]| {
        let db = app.db.clone();
        let app = &app;
        async move {
            let mut su = superuser(app).await;
            for t in triggers {
                sqlx::raw_sql(&format!("ALTER TABLE emergency_grants DISABLE TRIGGER {t}"))
                    .execute(&mut su)
                    .await
                    .unwrap();
            }
            let mut tx = db.begin(scope).await.unwrap();
            let planted = sqlx::query(GRANT_FOR_PATIENT)
                .bind(patient)
                .execute(&mut *tx.raw_connection_for_tests())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            drop(tx);
            for t in triggers {
                sqlx::raw_sql(&format!("ALTER TABLE emergency_grants ENABLE TRIGGER {t}"))
                    .execute(&mut su)
                    .await
                    .unwrap();
            }
            planted
        }
    };
    let refused = without(&["emergency_grants_identified"]).await.unwrap_err();
    assert!(refused.contains("locked"), "{refused}");
    let refused = without(&["emergency_grants_unlocked"]).await.unwrap_err();
    assert!(refused.contains("identified by card number"), "{refused}");
    let planted = without(&["emergency_grants_identified", "emergency_grants_unlocked"]).await;
    assert!(planted.is_ok(), "without the triggers: {planted:?}");
    // The lookup and the failure record need a staff member's context.
    let mut tx = app.db.begin(Scope::Facility(hospital)).await.unwrap();
    let refused = sqlx::query("SELECT * FROM emergency_identify('\\x00'::bytea)")
        .execute(&mut *tx.raw_connection_for_tests())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("staff member"), "{refused}");
    drop(tx);
    // The failures counted stay in the database across a restart of the server (a second
    // process sees them: the lockout is the database's).
    let mut tx = app.db.begin(scope).await.unwrap();
    let (failures, locked): (i32, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT failures, locked_until FROM emergency_identification_status()")
            .fetch_one(&mut *tx.raw_connection_for_tests())
            .await
            .unwrap();
    assert_eq!(failures, 5);
    assert!(locked.is_some());
}

/// A grant of the transaction's facility for the patient `$1`, written directly.
const GRANT_FOR_PATIENT: &str =
    "INSERT INTO emergency_grants (id, facility_id, patient_id, opened_by, reason_enc, expires_at)
     SELECT gen_random_uuid(), current_facility_id(), $1, current_staff_id(), '\\x00',
            now() + interval '1 hour'";

/// The card's keyed lookup and birth check, as stored (what the server computes from the
/// number and the date of birth with the network's blind-index key).
async fn card_hashes(app: &TestApp, patient: Uuid) -> (Vec<u8>, Vec<u8>) {
    let mut su = superuser(app).await;
    sqlx::query_as("SELECT lookup, birth_check FROM patient_cards WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(&mut su)
        .await
        .unwrap()
}

/// As the runtime role in `scope`: confirms an identification with `emergency_identified`,
/// then writes `grants` grants for `patient` directly, in one transaction that is rolled back.
async fn identify_then_grant(
    app: &TestApp,
    scope: Scope,
    lookup: &[u8],
    birth_check: &[u8],
    patient: Uuid,
    grants: usize,
) -> Result<Uuid, String> {
    let mut tx = app.db.begin(scope).await.unwrap();
    let conn = tx.raw_connection_for_tests();
    let identified: Uuid = sqlx::query_scalar("SELECT emergency_identified($1, $2)")
        .bind(lookup)
        .bind(birth_check)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..grants {
        sqlx::query(GRANT_FOR_PATIENT)
            .bind(patient)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(identified)
}

/// What an injection could do without the card number and the date of birth: nothing. The
/// database accepts a grant only after it confirmed the identification (keyed values the
/// runtime role cannot compute) in the same transaction, for that patient, facility and staff
/// member, once.
#[tokio::test]
async fn a_grant_needs_an_identification_the_database_confirmed() {
    let app = spawn_app().await;
    let net = network(&app, "BG-PROOF").await;
    let second = app
        .seed_patient(
            &app.seed_staff(&net.clinic, "nurse", StaffRole::Staff, Profession::Nurse)
                .await,
            "緊急 次郎",
            "キンキュウ ジロウ",
        )
        .await
        .id
        .as_uuid();
    let staff_of = |facility: &Facility| {
        let app = &app;
        let facility = facility.id;
        async move {
            let mut su = superuser(app).await;
            let staff: Uuid = sqlx::query_scalar(
                "SELECT id FROM staff_accounts WHERE facility_id = $1 ORDER BY login_id LIMIT 1",
            )
            .bind(facility.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
            Scope::Staff {
                facility,
                staff: renrakucho_core::StaffId::from_uuid(staff),
            }
        }
    };
    let hospital = staff_of(&net.hospital).await;
    let (lookup, birth_check) = card_hashes(&app, net.patient).await;
    let (_, second_check) = card_hashes(&app, second).await;

    // Without an identification, whatever the patient: refused.
    for patient in [net.patient, second] {
        let mut tx = app.db.begin(hospital).await.unwrap();
        let refused = sqlx::query(GRANT_FOR_PATIENT)
            .bind(patient)
            .execute(&mut *tx.raw_connection_for_tests())
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("identified"), "{refused}");
    }
    // A birth check that is not this card's (another patient's, or made up): not confirmed.
    for wrong in [second_check.clone(), vec![0u8; 32]] {
        let refused = identify_then_grant(&app, hospital, &lookup, &wrong, net.patient, 0)
            .await
            .unwrap_err();
        assert!(refused.contains("not identified"), "{refused}");
    }
    // Confirmed: one grant for that patient, in that transaction.
    assert_eq!(
        identify_then_grant(&app, hospital, &lookup, &birth_check, net.patient, 1).await,
        Ok(net.patient)
    );
    // Not for another patient, not twice, not in a later transaction.
    let refused = identify_then_grant(&app, hospital, &lookup, &birth_check, second, 1)
        .await
        .unwrap_err();
    assert!(refused.contains("identified"), "{refused}");
    let refused = identify_then_grant(&app, hospital, &lookup, &birth_check, net.patient, 2)
        .await
        .unwrap_err();
    assert!(refused.contains("identified"), "{refused}");
    {
        let mut tx = app.db.begin(hospital).await.unwrap();
        let conn = tx.raw_connection_for_tests();
        sqlx::query("SELECT emergency_identified($1, $2)")
            .bind(&lookup)
            .bind(&birth_check)
            .execute(&mut *conn)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = app.db.begin(hospital).await.unwrap();
        let refused = sqlx::query(GRANT_FOR_PATIENT)
            .bind(net.patient)
            .execute(&mut *tx.raw_connection_for_tests())
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("identified"), "{refused}");
    }
    // Not for a facility-only context (no staff member), nor for another facility's staff.
    let mut tx = app
        .db
        .begin(Scope::Facility(net.hospital.id))
        .await
        .unwrap();
    let refused = sqlx::query("SELECT emergency_identified($1, $2)")
        .bind(&lookup)
        .bind(&birth_check)
        .execute(&mut *tx.raw_connection_for_tests())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("staff member"), "{refused}");
    drop(tx);
    // The confirmations are nobody's to read or write but the owner's.
    for sql in [
        "SELECT count(*) FROM private.emergency_identifications",
        "INSERT INTO private.emergency_identifications (xact, facility_id, patient_id, staff_id)
         VALUES (pg_current_xact_id(), current_facility_id(), gen_random_uuid(),
                 current_staff_id())",
    ] {
        let mut tx = app.db.begin(hospital).await.unwrap();
        let refused = sqlx::raw_sql(sql)
            .execute(&mut *tx.raw_connection_for_tests())
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
    // Through the application (number and date of birth), the grant opens as before, and the
    // confirmation is used up with it.
    assert_eq!(
        open(&app, &net.er, &net.card, BIRTH_DATE).await.status(),
        201
    );
    let mut su = superuser(&app).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM private.emergency_identifications")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        left, 1,
        "only the committed confirmation without a grant above"
    );
}

/// The platform's alerts, as an operator reads them.
async fn operator_alerts(app: &TestApp) -> Vec<Value> {
    app.seed_operator("bg-operator").await;
    let operator = renrakucho_testkit::new_client();
    let response = app
        .sign_in_with(
            &operator,
            None,
            "bg-operator",
            renrakucho_testkit::FIXTURE_PASSWORD,
        )
        .await;
    assert_eq!(response.status(), 200, "the operator signs in");
    let response = operator
        .get(app.url("/api/v1/platform/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading the platform's alerts");
    let body = json_of(response).await;
    body.as_array()
        .or_else(|| body["alerts"].as_array())
        .expect("a list of alerts")
        .clone()
}

/// One broken reason does not take the emergency list down (ADR 0017): the grant is listed
/// with its reason marked unreadable, for the care team as for the opener, and the operators
/// are alerted once.
#[tokio::test]
async fn a_broken_reason_leaves_the_emergency_list_working() {
    let app = spawn_app().await;
    let net = network(&app, "BGRSN").await;
    let response = open(&app, &net.er, &net.card, BIRTH_DATE).await;
    assert_eq!(response.status(), 201, "the emergency opening");
    let grant = json_of(response).await["id"].as_str().unwrap().to_string();
    let mut su = superuser(&app).await;
    // On disk, past the guard trigger (the reason is given once): what a damaged page or a
    // tampering hand would leave.
    let grant_id = Uuid::parse_str(&grant).unwrap();
    let done = sqlx::raw_sql(&format!(
        "BEGIN;
         SET LOCAL session_replication_role = replica;
         UPDATE emergency_grants SET reason_enc = set_byte(reason_enc, length(reason_enc) - 1,
                get_byte(reason_enc, length(reason_enc) - 1) # 1)
          WHERE id = '{grant_id}';
         COMMIT;"
    ))
    .execute(&mut su)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);

    for (client, who) in [
        (&net.clinic_doctor, "the care team"),
        (&net.er, "the opener"),
    ] {
        let response = client
            .get(app.url("/api/v1/emergency-access"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{who}: the list still answers");
        let list = json_of(response).await;
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == grant.as_str())
            .unwrap_or_else(|| panic!("{who}: the grant is listed"));
        assert_eq!(listed["reason_unreadable"], true, "{who}");
        assert_eq!(listed["reason"], Value::Null, "{who}");
        let page = client
            .get(app.url("/emergency"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("判読できない記録"),
            "{who}: the page marks it"
        );
    }
    let alerts = operator_alerts(&app).await;
    let reason_alerts: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["kind"] == "unreadable_value")
        .collect();
    assert_eq!(
        reason_alerts.len(),
        2,
        "one per facility that met it: {alerts:?}"
    );
    for a in reason_alerts {
        assert_eq!(a["details"]["table"], "emergency_grants");
        assert_eq!(a["details"]["column"], "reason_enc");
        assert!(
            !a.to_string().contains(REASON),
            "no reason text in the alert"
        );
    }
}
