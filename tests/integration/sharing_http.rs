//! The consent-gated sharing API over HTTP, as a browser or another system calls it: another
//! facility's patient is indistinguishable from one that does not exist; consents carry real
//! scans, stored encrypted and sent back as attachments; roles are checked; invitations,
//! emergency access and deletion requests work end to end and leave nothing behind.

use renrakucho_authz::Action;
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_testkit::{new_client, spawn_app, TestApp, FIXTURE_PASSWORD};
use reqwest::{Client, Method};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// The signing date of the fixture consents.
const SIGNED_ON: &str = "2026-11-01";
const SCOPE: &str = "在宅医療のため、ケアチームの施設間で連絡帳を共有すること";
/// A reason long enough for emergency access (10–500 characters).
const REASON: &str = "救急搬送時に既往歴と服薬内容を確認するため";
/// The fixture patients' date of birth (`TestApp::seed_patient`).
const BIRTH_DATE: &str = "1940-01-15";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png_1x1() -> Vec<u8> {
    renrakucho_testkit::PNG_1X1.to_vec()
}

fn consent_body(scan: Option<&[u8]>) -> Value {
    let mut body = json!({
        "signer": { "kind": "family", "name": "試験 花子", "relation": "長女" },
        "signed_on": SIGNED_ON,
        "scope": SCOPE,
    });
    if let Some(scan) = scan {
        body["scan_base64"] = json!(base64(scan));
    }
    body
}

/// Records a family member's consent through the API; the new consent's ID.
async fn record_consent(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    scan: Option<&[u8]>,
) -> Uuid {
    let response = client
        .post(patient_url(app, patient, "/consents"))
        .json(&consent_body(scan))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "recording a consent");
    let created = json_of(response).await;
    Uuid::parse_str(created["id"].as_str().expect("the consent's ID")).unwrap()
}

fn patient_body(name: &str) -> Value {
    json!({
        "name": name,
        "kana": "カキカエ ハナコ",
        "birth_date": BIRTH_DATE,
        "sex": "female",
        "care_level": "care_2",
    })
}

/// The patient IDs a list answers.
async fn listed(app: &TestApp, client: &Client, q: &str) -> Vec<String> {
    let response = client
        .get(app.url("/api/v1/patients"))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "listing patients");
    json_of(response)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

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

#[tokio::test]
async fn a_consent_with_a_scan_is_stored_encrypted_and_sent_back_as_an_attachment() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("SCAN-A", FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&clinic, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&doctor, "走査 花子", "ソウサ ハナコ")
        .await
        .id
        .as_uuid();
    let client = app.client_for(&clinic, "doctor").await;
    let png = png_1x1();
    let consent = record_consent(&app, &client, patient, Some(&png)).await;

    let response = client
        .get(patient_url(&app, patient, "/consents"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listed = json_of(response).await;
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 1);
    let c = &listed[0];
    assert_eq!(c["id"], consent.to_string());
    assert_eq!(c["signer"], "family");
    assert_eq!(c["signer_name"], "試験 花子");
    assert_eq!(c["signer_relation"], "長女");
    assert_eq!(c["signed_on"], SIGNED_ON);
    assert_eq!(c["scope"], SCOPE);
    assert_eq!(c["collected_by"], clinic.id.as_uuid().to_string());
    assert_eq!(c["scan_media_type"], "image/png");
    assert!(c["withdrawn_at"].is_null());

    let response = client
        .get(patient_url(
            &app,
            patient,
            &format!("/consents/{consent}/scan"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "image/png");
    assert!(
        header("content-disposition").starts_with("attachment"),
        "a download, never inline: {}",
        header("content-disposition")
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    // Cleaned like a notebook photo (decoded and encoded again: tests/integration/uploads.rs).
    let stored = response.bytes().await.unwrap();
    assert!(stored.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert_eq!(c["scan_size"], stored.len());

    // Bad input: a clear 422 naming the field, and nothing stored.
    let url = patient_url(&app, patient, "/consents");
    let mut body = consent_body(None);
    body["scan_base64"] = json!(base64(
        b"PNG\r\n<html><script>alert('not an image')</script></html>"
    ));
    let response = client.post(&url).json(&body).send().await.unwrap();
    invalid(response, "scan", "text pretending to be a PNG").await;

    let mut body = consent_body(None);
    body["scan_base64"] = json!("@@ not base64 @@");
    let response = client.post(&url).json(&body).send().await.unwrap();
    invalid(response, "scan_base64", "a scan that is not base64").await;

    let tomorrow = time::OffsetDateTime::now_utc().date() + time::Duration::days(2);
    let mut body = consent_body(Some(&png));
    body["signed_on"] = json!(tomorrow
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap());
    let response = client.post(&url).json(&body).send().await.unwrap();
    invalid(response, "signed_on", "a signing date in the future").await;

    for name in ["", "   "] {
        let mut body = consent_body(Some(&png));
        body["signer"]["name"] = json!(name);
        let response = client.post(&url).json(&body).send().await.unwrap();
        invalid(response, "signer_name", "a family signer without a name").await;
    }

    let after = json_of(client.get(&url).send().await.unwrap()).await;
    assert_eq!(after.as_array().unwrap().len(), 1, "no consent added");
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "one stored scan, nothing left behind");

    // On disk: the scan of the right consent, sealed.
    let file = &files[0];
    assert!(
        file.ends_with(format!("consents/{patient}/{consent}")),
        "{}",
        file.display()
    );
    let sealed = std::fs::read(file).unwrap();
    assert!(sealed.len() > png.len(), "an envelope around the scan");
    assert!(!contains(&sealed, &png), "the PNG readable on disk");
    assert!(
        !contains(&sealed, &png[..16]),
        "the PNG header readable on disk"
    );
    assert!(!contains(&sealed, b"IHDR") && !contains(&sealed, b"IDAT"));
}

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
