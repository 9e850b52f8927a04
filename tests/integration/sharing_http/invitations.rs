//! Invitations end to end: accepted by allowed staff, a member removed by the registering
//! facility, and an invited facility that has not accepted gets the same 404 as for no patient.

use super::*;

#[tokio::test]
async fn an_invitation_is_accepted_by_allowed_staff_and_a_member_is_removed_by_the_registering_facility(
) {
    let app = spawn_app().await;
    let reg = app.seed_facility("INV-REG", FacilityKind::Clinic).await;
    let m = app
        .seed_facility("INV-MEM", FacilityKind::VisitingNurseStation)
        .await;
    let other = app.seed_facility("INV-OTH", FacilityKind::Pharmacy).await;
    let reg_doctor = app
        .seed_staff(&reg, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(&reg, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    app.seed_staff(&m, "admin", StaffRole::FacilityAdmin, Profession::Nurse)
        .await;
    let nurse = app
        .seed_staff(&m, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    app.seed_staff(&m, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&reg_doctor, "招待 花子", "ショウタイ ハナコ")
        .await
        .id
        .as_uuid();
    let reg_client = app.client_for(&reg, "doctor").await;
    record_consent(&app, &reg_client, patient, None).await;
    let team_url = patient_url(&app, patient, "/care-team");
    let show_url = patient_url(&app, patient, "");

    let response = reg_client
        .post(&team_url)
        .json(&json!({ "facility_code": m.code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "inviting by code");
    let member = json_of(response).await;
    assert_eq!(member["facility"], m.id.as_uuid().to_string());
    assert_eq!(member["status"], "invited");
    assert_eq!(member["registering"], false);
    let response = reg_client
        .post(&team_url)
        .json(&json!({ "facility_code": other.code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "inviting a second facility");
    authorizer_follows(&app, &m, patient, Action::CareTeamAccept, true).await;

    let m_admin = app.client_for(&m, "admin").await;
    let m_nurse = app.client_for(&m, "nurse").await;
    let m_doctor = app.client_for(&m, "doctor").await;
    let response = m_admin
        .get(app.url("/api/v1/invitations"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pending = json_of(response).await;
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["patient"] == patient.to_string()
                && i["registering_facility"] == reg.id.as_uuid().to_string()),
        "M's administrator sees the invitation"
    );

    // Before accepting, M reads nothing of the patient (the strict 404 is its own test below).
    let response = m_doctor.get(&show_url).send().await.unwrap();
    let before = failure(response).await;
    assert!(
        before.status == 404 || before.status == 403,
        "an invited facility reads nothing: {before:?}"
    );
    // A nurse who is not allowed to accept for the facility cannot.
    let accept_url = patient_url(&app, patient, "/care-team/accept");
    let response = m_nurse.post(&accept_url).send().await.unwrap();
    let refused = failure(response).await;
    assert!(
        (refused.status, refused.code.as_str()) == (403, "forbidden") || refused == not_found(),
        "a nurse without the right accepting: {refused:?}"
    );
    let m_status = |team: &Value, facility: &Facility| {
        team.as_array()
            .unwrap()
            .iter()
            .find(|t| t["facility"] == facility.id.as_uuid().to_string())
            .map(|t| t["status"].as_str().unwrap_or_default().to_string())
    };
    let team = json_of(reg_client.get(&team_url).send().await.unwrap()).await;
    assert_eq!(
        m_status(&team, &m).as_deref(),
        Some("invited"),
        "still invited"
    );

    // The administrator allows the nurse; the next request picks it up.
    let response = m_admin
        .put(app.url(&format!(
            "/api/v1/staff/{}/may-accept-invitations",
            nurse.id.as_uuid()
        )))
        .json(&json!({ "allowed": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "allowing the nurse to accept");
    let response = m_nurse.post(&accept_url).send().await.unwrap();
    assert_eq!(response.status(), 204, "the allowed nurse accepts");
    // With consent on file, M's doctor now reads the patient.
    eventually(&m_doctor, &show_url, 200).await;
    let team = json_of(m_doctor.get(&team_url).send().await.unwrap()).await;
    assert_eq!(m_status(&team, &m).as_deref(), Some("active"));

    // Inviting again, or a facility that does not exist: clear conflicts.
    let response = reg_client
        .post(&team_url)
        .json(&json!({ "facility_code": m.code }))
        .send()
        .await
        .unwrap();
    let again = failure(response).await;
    assert_eq!((again.status, again.code.as_str()), (409, "conflict"));
    let response = reg_client
        .post(&team_url)
        .json(&json!({ "facility_code": "NO-SUCH-FACILITY" }))
        .send()
        .await
        .unwrap();
    let unknown = failure(response).await;
    assert_eq!((unknown.status, unknown.code.as_str()), (409, "conflict"));
    assert!(
        unknown
            .message
            .contains("no participating facility has that code"),
        "{}",
        unknown.message
    );

    // Only the registering facility removes: not a member, even its administrator.
    for facility in [&other, &reg] {
        let url = patient_url(
            &app,
            patient,
            &format!("/care-team/{}", facility.id.as_uuid()),
        );
        let response = m_admin.delete(&url).send().await.unwrap();
        let refused = failure(response).await;
        assert!(
            refused.status == 403 || refused.status == 404,
            "a member removing another facility: {refused:?}"
        );
    }
    let team = json_of(reg_client.get(&team_url).send().await.unwrap()).await;
    assert_eq!(m_status(&team, &other).as_deref(), Some("invited"));
    assert_eq!(m_status(&team, &reg).as_deref(), Some("active"));

    // The registering facility's administrator removes M (its doctor may not): M sees
    // nothing again.
    let remove_url = patient_url(&app, patient, &format!("/care-team/{}", m.id.as_uuid()));
    let response = reg_client.delete(&remove_url).send().await.unwrap();
    forbidden(response, "a doctor removing a member (administrators do)").await;
    let reg_admin = app.client_for(&reg, "admin").await;
    let response = reg_admin.delete(&remove_url).send().await.unwrap();
    assert_eq!(response.status(), 204, "the registering facility removes M");
    eventually(&m_doctor, &show_url, 404).await;
    let response = m_doctor.get(&show_url).send().await.unwrap();
    assert_eq!(failure(response).await, not_found());
    let team = json_of(reg_client.get(&team_url).send().await.unwrap()).await;
    assert_eq!(m_status(&team, &m).as_deref(), Some("removed"));
}

/// A facility that was invited but has not accepted holds no right to the patient's data: like
/// a member without consent, it gets the same 404 as for a patient that does not exist.
#[tokio::test]
async fn an_invited_facility_gets_not_found_for_the_patients_data_before_it_accepts() {
    let app = spawn_app().await;
    let reg = app.seed_facility("PRE-REG", FacilityKind::Clinic).await;
    let m = app.seed_facility("PRE-MEM", FacilityKind::Pharmacy).await;
    let reg_doctor = app
        .seed_staff(&reg, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    app.seed_staff(&m, "pharm", StaffRole::Staff, Profession::Pharmacist)
        .await;
    let patient = app
        .seed_patient(&reg_doctor, "未承諾 花子", "ミショウダク ハナコ")
        .await
        .id
        .as_uuid();
    let reg_client = app.client_for(&reg, "doctor").await;
    record_consent(&app, &reg_client, patient, None).await;
    let response = reg_client
        .post(patient_url(&app, patient, "/care-team"))
        .json(&json!({ "facility_code": m.code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    authorizer_follows(&app, &m, patient, Action::CareTeamAccept, true).await;

    let pharmacist = app.client_for(&m, "pharm").await;
    for rest in ["", "/consents", "/care-team"] {
        let response = pharmacist
            .get(patient_url(&app, patient, rest))
            .send()
            .await
            .unwrap();
        assert_eq!(
            failure(response).await,
            not_found(),
            "GET /api/v1/patients/{{id}}{rest} by an invited facility"
        );
    }
}
