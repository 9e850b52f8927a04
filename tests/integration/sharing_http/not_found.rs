//! Another facility's patient is indistinguishable from one that does not exist, on every
//! patient endpoint.

use reqwest::Method;

use super::*;

/// Every patient endpoint a facility might try with someone's patient ID.
fn patient_requests(
    app: &TestApp,
    patient: &str,
    consent: Uuid,
    facility: &Facility,
) -> Vec<(Method, String, Option<Value>)> {
    let url = |rest: &str| patient_url(app, patient, rest);
    vec![
        (Method::GET, url(""), None),
        (Method::PUT, url(""), Some(patient_body("書き換え 花子"))),
        (Method::GET, url("/consents"), None),
        (Method::POST, url("/consents"), Some(consent_body(None))),
        (Method::GET, url(&format!("/consents/{consent}/scan")), None),
        (Method::POST, url("/consents/withdraw"), None),
        (Method::GET, url("/care-team"), None),
        (
            Method::POST,
            url("/care-team"),
            Some(json!({ "facility_code": facility.code })),
        ),
        (Method::POST, url("/care-team/accept"), None),
        (Method::POST, url("/care-team/decline"), None),
        (Method::POST, url("/care-team/leave"), None),
        (
            Method::DELETE,
            url(&format!("/care-team/{}", facility.id.as_uuid())),
            None,
        ),
        (
            Method::POST,
            url("/deletion"),
            Some(json!({ "confirm": true })),
        ),
    ]
}

#[tokio::test]
async fn another_facilitys_patient_is_indistinguishable_from_one_that_does_not_exist() {
    let app = spawn_app().await;
    let a = app.seed_facility("IDOR-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("IDOR-B", FacilityKind::Hospital).await;
    let a_doctor = app
        .seed_staff(&a, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let b_doctor = app
        .seed_staff(&b, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let theirs = app
        .seed_patient(&a_doctor, "他院 花子", "タイン ハナコ")
        .await
        .id
        .as_uuid();
    let ours = app
        .seed_patient(&b_doctor, "自院 太郎", "ジイン タロウ")
        .await
        .id
        .as_uuid();
    let a_client = app.client_for(&a, "doctor").await;
    let consent = record_consent(&app, &a_client, theirs, Some(&png_1x1())).await;
    let b_client = app.client_for(&b, "doctor").await;
    // The client works: B's own patient is there.
    assert_eq!(
        status_of(&b_client, &patient_url(&app, ours, "")).await,
        200
    );

    let random = Uuid::new_v4().to_string();
    let ids = [theirs.to_string(), random, "not-a-patient".to_string()];
    let mut answers: Vec<Vec<Failure>> = Vec::new();
    for id in &ids {
        let mut these = Vec::new();
        for (method, url, body) in patient_requests(&app, id, consent, &b) {
            let mut request = b_client.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = failure(request.send().await.unwrap()).await;
            assert_eq!(
                answer,
                not_found(),
                "{method} {}",
                url.replace(id.as_str(), "{id}")
            );
            these.push(answer);
        }
        answers.push(these);
    }
    assert_eq!(answers[0], answers[1], "another's patient vs a random ID");
    assert_eq!(
        answers[0], answers[2],
        "another's patient vs a malformed ID"
    );

    // A's consent under B's own patient is not found either.
    let response = b_client
        .get(patient_url(
            &app,
            ours,
            &format!("/consents/{consent}/scan"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(response).await, not_found());
    let response = b_client
        .get(patient_url(&app, ours, "/consents"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_of(response).await,
        json!([]),
        "B's patient has no consent"
    );

    // Lists never show A's patient, whatever B searches for.
    let theirs_id = theirs.to_string();
    for q in ["他院 花子", "他院", "たいん", "タイン ハナコ", ""] {
        let found = listed(&app, &b_client, q).await;
        assert!(!found.contains(&theirs_id), "B's list for a search");
    }
    assert!(listed(&app, &b_client, "")
        .await
        .contains(&ours.to_string()));

    // Nothing B tried changed anything for A.
    let response = a_client
        .get(patient_url(&app, theirs, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["name"], "他院 花子");
    let consents = json_of(
        a_client
            .get(patient_url(&app, theirs, "/consents"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(consents.as_array().unwrap().len(), 1);
    assert!(consents[0]["withdrawn_at"].is_null());
    let team = json_of(
        a_client
            .get(patient_url(&app, theirs, "/care-team"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(team.as_array().unwrap().len(), 1, "A alone in the team");
    assert_eq!(team[0]["facility"], a.id.as_uuid().to_string());
}
