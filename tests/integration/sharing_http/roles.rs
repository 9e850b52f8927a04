//! Roles: a clerk reads but neither withdraws consent nor deletes; an operator sees no patients.

use renrakucho_testkit::{new_client, FIXTURE_PASSWORD};

use super::*;

#[tokio::test]
async fn a_clerk_reads_but_neither_withdraws_nor_deletes_and_an_operator_sees_no_patients() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("ROLE-A", FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&clinic, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(&clinic, "clerk", StaffRole::Staff, Profession::Clerk)
        .await;
    let patient = app
        .seed_patient(&doctor, "事務 花子", "ジム ハナコ")
        .await
        .id
        .as_uuid();
    let doctor_client = app.client_for(&clinic, "doctor").await;
    record_consent(&app, &doctor_client, patient, None).await;

    let clerk = app.client_for(&clinic, "clerk").await;
    let response = clerk
        .get(patient_url(&app, patient, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a clerk reads the registration");
    assert_eq!(json_of(response).await["id"], patient.to_string());
    let response = clerk
        .post(patient_url(&app, patient, "/consents/withdraw"))
        .send()
        .await
        .unwrap();
    forbidden(response, "a clerk withdrawing consent").await;
    let response = clerk
        .post(patient_url(&app, patient, "/deletion"))
        .json(&json!({ "confirm": true }))
        .send()
        .await
        .unwrap();
    forbidden(response, "a clerk deleting the patient").await;

    // Neither happened.
    let consents = json_of(
        doctor_client
            .get(patient_url(&app, patient, "/consents"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        consents[0]["withdrawn_at"].is_null(),
        "consent still on file"
    );
    assert_eq!(
        status_of(&doctor_client, &patient_url(&app, patient, "")).await,
        200
    );

    app.seed_operator("operator").await;
    let operator = new_client();
    let signed_in = app
        .sign_in_with(&operator, None, "operator", FIXTURE_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200, "the operator signs in");
    let response = operator
        .get(app.url("/api/v1/patients"))
        .send()
        .await
        .unwrap();
    forbidden(response, "an operator listing patients").await;
    let response = operator
        .get(patient_url(&app, patient, ""))
        .send()
        .await
        .unwrap();
    forbidden(response, "an operator reading a patient").await;
}
