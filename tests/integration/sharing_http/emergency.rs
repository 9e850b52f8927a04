//! Emergency access end to end: confirmed by the date of birth, read-only, reviewed and ended;
//! an unknown card number audited as denied.

use super::*;

#[tokio::test]
async fn emergency_access_is_confirmed_by_birth_date_read_only_reviewed_and_ended() {
    let app = spawn_app().await;
    let reg = app.seed_facility("EMG-REG", FacilityKind::Clinic).await;
    let hospital = app.seed_facility("EMG-HSP", FacilityKind::Hospital).await;
    let reg_doctor = app
        .seed_staff(&reg, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(&reg, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    app.seed_staff(&reg, "clerk", StaffRole::Staff, Profession::Clerk)
        .await;
    app.seed_staff(&hospital, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(
        &hospital,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    app.seed_staff(&hospital, "pharm", StaffRole::Staff, Profession::Pharmacist)
        .await;
    let patient = app
        .seed_patient(&reg_doctor, "救急 花子", "キュウキュウ ハナコ")
        .await
        .id
        .as_uuid();
    let er = app.client_for(&hospital, "doctor").await;
    let open_url = app.url("/api/v1/emergency-access");
    let show_url = patient_url(&app, patient, "");
    let card = card_number(&app, &app.client_for(&reg, "doctor").await, patient).await;

    // The patient's ID is not what the card carries any more.
    let response = er
        .post(&open_url)
        .json(&json!({ "card_number": patient, "birth_date": BIRTH_DATE, "reason": REASON }))
        .send()
        .await
        .unwrap();
    invalid(
        response,
        "card_number",
        "a patient ID where the card number goes",
    )
    .await;

    // The wrong date of birth opens nothing, and the attempt is on the hospital's record,
    // without naming the patient.
    let response = er
        .post(&open_url)
        .json(&json!({ "card_number": card, "birth_date": "1950-02-02", "reason": REASON }))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(response).await.status, 404);
    assert_eq!(
        failure(er.get(&show_url).send().await.unwrap()).await,
        not_found()
    );
    let hospital_admin = app.client_for(&hospital, "admin").await;
    let records = audit_of(&app, &hospital_admin).await;
    assert!(
        records.iter().any(|r| r["action"] == "emergency.open"
            && r["outcome"] == "denied"
            && r["target_id"].is_null()),
        "the denied attempt is audited"
    );
    assert!(
        !records
            .iter()
            .filter(|r| r["action"].as_str().unwrap_or("").starts_with("emergency."))
            .any(|r| r.to_string().contains(&patient.to_string())),
        "the hospital's record does not say the number named a patient"
    );

    let response = er
        .post(&open_url)
        .json(&json!({ "card_number": card, "birth_date": BIRTH_DATE, "reason": "急ぎ" }))
        .send()
        .await
        .unwrap();
    invalid(response, "reason", "a reason that says nothing").await;

    let pharmacist = app.client_for(&hospital, "pharm").await;
    let response = pharmacist
        .post(&open_url)
        .json(&json!({ "card_number": card, "birth_date": BIRTH_DATE, "reason": REASON }))
        .send()
        .await
        .unwrap();
    forbidden(response, "a pharmacist opening a notebook in an emergency").await;

    let response = er
        .post(&open_url)
        .json(&json!({ "card_number": card, "birth_date": BIRTH_DATE, "reason": REASON }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "emergency access with the right date"
    );
    let grant = json_of(response).await;
    assert_eq!(grant["open"], true);
    assert_eq!(grant["ours"], true);
    assert_eq!(grant["patient"], patient.to_string());
    assert_eq!(grant["facility"], hospital.id.as_uuid().to_string());
    let grant_id = grant["id"].as_str().expect("the grant's ID").to_string();

    // Read only: the registration and the care team, not the consents, no changes.
    assert_eq!(status_of(&er, &show_url).await, 200);
    assert_eq!(
        status_of(&er, &patient_url(&app, patient, "/care-team")).await,
        200
    );
    let response = er
        .put(&show_url)
        .json(&patient_body("書き換え 花子"))
        .send()
        .await
        .unwrap();
    forbidden(response, "changing the registration in an emergency").await;
    let response = er
        .get(patient_url(&app, patient, "/consents"))
        .send()
        .await
        .unwrap();
    forbidden(response, "reading consents in an emergency").await;

    // The registering facility sees the grant and why, and reviews it once.
    let reg_client = app.client_for(&reg, "doctor").await;
    let response = reg_client.get(&open_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let grants = json_of(response).await;
    let seen = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant_id.as_str())
        .expect("the registering facility sees the grant");
    assert_eq!(seen["reason"], REASON);
    assert_eq!(seen["ours"], false);
    assert_eq!(seen["open"], true);
    assert_eq!(seen["facility"], hospital.id.as_uuid().to_string());
    // The reason is clinical: not for the registering facility's clerk, nor for the
    // hospital's pharmacist (who may not read the notebook through the grant); the
    // administrator who reviews reads it.
    let reason_for = |client: reqwest::Client| {
        let url = open_url.clone();
        let id = grant_id.clone();
        async move {
            let grants = json_of(client.get(&url).send().await.unwrap()).await;
            grants
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["id"] == id.as_str())
                .expect("the grant is listed")["reason"]
                .clone()
        }
    };
    assert!(reason_for(app.client_for(&reg, "clerk").await)
        .await
        .is_null());
    assert!(reason_for(pharmacist.clone()).await.is_null());
    assert_eq!(
        reason_for(app.client_for(&reg, "admin").await).await,
        REASON
    );
    assert_eq!(reason_for(er.clone()).await, REASON);
    let review_url = app.url(&format!("/api/v1/emergency-access/{grant_id}/review"));
    let response = reg_client.post(&review_url).send().await.unwrap();
    forbidden(response, "a doctor reviewing (administrators do)").await;
    let reg_admin = app.client_for(&reg, "admin").await;
    let response = reg_admin.post(&review_url).send().await.unwrap();
    assert_eq!(response.status(), 204, "the administrator reviews");
    let response = reg_admin.post(&review_url).send().await.unwrap();
    let twice = failure(response).await;
    assert_eq!((twice.status, twice.code.as_str()), (409, "conflict"));

    // The hospital ends its grant (a doctor, not the pharmacist): the notebook closes.
    let response = pharmacist
        .post(app.url(&format!("/api/v1/emergency-access/{grant_id}/end")))
        .send()
        .await
        .unwrap();
    forbidden(response, "a pharmacist ending the doctor's grant").await;
    let response = er
        .post(app.url(&format!("/api/v1/emergency-access/{grant_id}/end")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "ending the grant");
    eventually(&er, &show_url, 404).await;
    assert_eq!(
        failure(er.get(&show_url).send().await.unwrap()).await,
        not_found()
    );
    let ours = json_of(er.get(&open_url).send().await.unwrap()).await;
    let ended = ours
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant_id.as_str())
        .expect("the hospital still lists its grant");
    assert_eq!(ended["open"], false);
    assert!(!ended["ended_at"].is_null());
}

/// Guessing card numbers is what the date of birth guards against, and every guess belongs on
/// the record: a number that names no patient at all is audited as denied too, like a wrong
/// date (break_glass.rs has the rest).
#[tokio::test]
async fn emergency_access_for_an_unknown_card_number_is_audited_as_denied() {
    let app = spawn_app().await;
    let hospital = app.seed_facility("EMG-GUESS", FacilityKind::Hospital).await;
    app.seed_staff(
        &hospital,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let client = app.client_for(&hospital, "admin").await;
    let response = client
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": "0000-0000-0000-0000", "birth_date": BIRTH_DATE, "reason": REASON }))
        .send()
        .await
        .unwrap();
    let refused = failure(response).await;
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (404, "not_identified")
    );
    let records = audit_of(&app, &client).await;
    assert!(
        records.iter().any(|r| r["action"] == "emergency.open"
            && r["outcome"] == "denied"
            && r["target_id"].is_null()),
        "a guessed card number is audited as a denied emergency access"
    );
}
