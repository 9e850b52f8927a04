//! A deletion request erases the patient everywhere and leaves nothing behind.

use super::*;

#[tokio::test]
async fn a_deletion_request_erases_the_patient_everywhere() {
    let app = spawn_app().await;
    let reg = app.seed_facility("DEL-REG", FacilityKind::Clinic).await;
    let m = app
        .seed_facility("DEL-MEM", FacilityKind::VisitingNurseStation)
        .await;
    let hospital = app.seed_facility("DEL-HSP", FacilityKind::Hospital).await;
    let reg_doctor = app
        .seed_staff(&reg, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(&m, "admin", StaffRole::FacilityAdmin, Profession::Nurse)
        .await;
    app.seed_staff(&m, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    app.seed_staff(&hospital, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let name = "削除 花子";
    let patient = app
        .seed_patient(&reg_doctor, name, "サクジョ ハナコ")
        .await
        .id
        .as_uuid();
    // Another patient of the same facility, untouched by the deletion.
    let kept = app
        .seed_patient(&reg_doctor, "残る 太郎", "ノコル タロウ")
        .await
        .id
        .as_uuid();
    let reg_client = app.client_for(&reg, "doctor").await;
    let consent = record_consent(&app, &reg_client, patient, Some(&png_1x1())).await;
    let scan_file = app
        .settings
        .files_dir()
        .join(format!("consents/{patient}/{consent}"));
    assert!(scan_file.exists(), "the scan is stored");
    let response = reg_client
        .post(patient_url(&app, patient, "/care-team"))
        .json(&json!({ "facility_code": m.code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    authorizer_follows(&app, &m, patient, Action::CareTeamAccept, true).await;
    let m_admin = app.client_for(&m, "admin").await;
    let response = m_admin
        .post(patient_url(&app, patient, "/care-team/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let show_url = patient_url(&app, patient, "");
    let nurse = app.client_for(&m, "nurse").await;
    eventually(&nurse, &show_url, 200).await;
    // An emergency grant too, so that every kind of row exists.
    let card = card_number(&app, &reg_client, patient).await;
    let er = app.client_for(&hospital, "doctor").await;
    let response = er
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": card, "birth_date": BIRTH_DATE, "reason": REASON }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // Not confirmed: refused, nothing changed.
    let deletion_url = patient_url(&app, patient, "/deletion");
    let response = nurse
        .post(&deletion_url)
        .json(&json!({ "confirm": false }))
        .send()
        .await
        .unwrap();
    invalid(response, "confirm", "an unconfirmed deletion").await;
    assert_eq!(status_of(&nurse, &show_url).await, 200);
    assert_eq!(status_of(&reg_client, &show_url).await, 200);
    assert!(scan_file.exists());

    let response = nurse
        .post(&deletion_url)
        .json(&json!({ "confirm": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the member's nurse deletes");
    let erasure = json_of(response).await;
    let request = erasure["request"].as_str().expect("the request's ID");
    let erased = &erasure["erased"];
    assert_eq!(erased["patients"], 1);
    assert_eq!(erased["consents"], 1);
    assert_eq!(erased["care_team_members"], 2);
    assert_eq!(erased["emergency_grants"], 1);
    assert_eq!(erased["files"], 1);
    assert!(erased["name_terms"].as_i64().unwrap_or(0) > 0);

    // Gone for everyone, in every list.
    for client in [&nurse, &reg_client, &er] {
        assert_eq!(
            failure(client.get(&show_url).send().await.unwrap()).await,
            not_found()
        );
    }
    let patient_id = patient.to_string();
    for client in [&nurse, &reg_client] {
        for q in [name, "削除", ""] {
            assert!(!listed(&app, client, q).await.contains(&patient_id));
        }
    }
    assert_eq!(
        status_of(&reg_client, &patient_url(&app, kept, "")).await,
        200
    );

    // What is left in the database: the request and audit records, no personal data.
    let mut su = superuser(&app).await;
    for (table, column) in [
        ("patients", "id"),
        ("consents", "patient_id"),
        ("care_team_members", "patient_id"),
        ("patient_name_terms", "patient_id"),
        ("patient_access", "patient_id"),
        ("emergency_grants", "patient_id"),
        ("patient_cards", "patient_id"),
        ("private.emergency_identifications", "patient_id"),
    ] {
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {column} = $1"))
                .bind(patient)
                .fetch_one(&mut su)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table} keeps rows of the erased patient");
    }
    let (keys, live): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(wrapped) FROM data_keys
          WHERE owner_kind = 'patient' AND owner_id = $1",
    )
    .bind(patient)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(keys >= 1, "the key's tombstone remains");
    assert_eq!(live, 0, "every version of the patient's key destroyed");
    let (requests, completed, by): (i64, i64, Option<Uuid>) = sqlx::query_as(
        "SELECT count(*), count(completed_at), max(facility_id::text)::uuid
           FROM deletion_requests WHERE patient_id = $1",
    )
    .bind(patient)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((requests, completed), (1, 1), "the request, completed");
    assert_eq!(by, Some(m.id.as_uuid()));
    let records: Vec<(Option<Uuid>, Value)> = sqlx::query_as(
        "SELECT facility_id, details FROM audit_log
          WHERE action = 'patient.erase' AND target_id = $1",
    )
    .bind(patient)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "one patient.erase record");
    assert_eq!(records[0].0, Some(m.id.as_uuid()));
    let details = records[0].1.to_string();
    assert!(details.contains(request), "the record names the request");
    for part in [name, "削除", "花子", "サクジョ", "さくじょ"] {
        assert!(
            !details.contains(part),
            "the erase record names the patient"
        );
    }
    let everything: Vec<String> = sqlx::query_scalar("SELECT details::text FROM audit_log")
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert!(
        everything
            .iter()
            .all(|d| !d.contains("削除") && !d.contains("サクジョ")),
        "no audit record names the patient"
    );

    // The scan file is gone from the file store.
    assert!(!scan_file.exists(), "the scan file remains");
    assert!(
        stored_files(&app)
            .iter()
            .all(|f| !f.to_string_lossy().contains(&patient_id)),
        "a file of the erased patient remains"
    );
}
