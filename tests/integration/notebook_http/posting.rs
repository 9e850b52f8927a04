//! Posting entries: every category and priority, checked vital signs, replies and mentions,
//! bad input refused with nothing stored, the clerk kept out; and a notebook that exists for
//! the very client that registered its patient.

use super::*;

/// Asserts what the API answers for a freshly posted entry of the clinic's nurse.
fn assert_posted_by_the_nurse(e: &Value, net: &Net, category: &str, priority: &str, body: &str) {
    assert_eq!(e["category"], category);
    assert_eq!(e["priority"], priority);
    assert_eq!(e["body"], body);
    assert_eq!(e["author_name"], NURSE);
    assert_eq!(e["author_profession"], "nurse");
    assert_eq!(e["facility"], net.clinic_id());
    assert_eq!(e["facility_name"], net.clinic.name.as_str());
    assert_eq!(e["patient"], net.patient.to_string());
    assert_eq!(e["version"], 1);
    assert_eq!(e["read"], true, "one's own entry counts as read");
    assert!(e["withdrawn_at"].is_null());
    if category == "vitals" {
        let v = &e["vitals"];
        assert_eq!(v["temperature_c"], 36.8);
        assert_eq!(v["systolic_mmhg"], 128);
        assert_eq!(v["diastolic_mmhg"], 76);
        assert!(v["pulse_bpm"].is_null() && v["weight_kg"].is_null());
    } else {
        assert!(e["vitals"].is_null());
    }
}

#[tokio::test]
async fn entries_of_every_kind_are_posted_and_the_care_team_reads_them_newest_first() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;

    let mut posted = Vec::new();
    for (i, category) in CATEGORIES.iter().enumerate() {
        let priority = ["urgent", "reply_requested", "info"][i % 3];
        let text = format!("記録 {i}");
        let mut body = json!({ "category": category, "priority": priority, "body": text });
        if *category == "vitals" {
            body["vitals"] = good_vitals();
        }
        let e = post(&app, &net.nurse_c, p, body).await;
        assert_posted_by_the_nurse(&e, &net, category, priority, &text);
        posted.push(id_of(&e));
    }
    // The priority defaults to 参考 (info).
    let e = post(
        &app,
        &net.doctor_c,
        p,
        json!({ "category": "notice", "body": "重要度なし" }),
    )
    .await;
    assert_eq!(e["priority"], "info");
    posted.push(id_of(&e));

    // The member station's nurse reads them, newest first, unread.
    let first = page(&app, &net.member_c, p, "").await;
    let entries = first["entries"].as_array().unwrap();
    let ids: Vec<String> = entries.iter().map(id_of).collect();
    let newest_first: Vec<String> = posted.iter().rev().cloned().collect();
    assert_eq!(
        ids, newest_first,
        "the member reads every entry, newest first"
    );
    assert!(first["next"].is_null(), "one page");
    assert!(entries.iter().all(|e| e["read"] == false));
    let vitals = entries.iter().find(|e| e["category"] == "vitals").unwrap();
    assert_eq!(vitals["vitals"]["temperature_c"], 36.8);

    // The clinic mentions the station; the station's nurse replies.
    let mention = post(
        &app,
        &net.doctor_c,
        p,
        json!({ "category": "instruction", "priority": "reply_requested",
                "body": "訪問時に褥瘡の状態を確認してください", "mentions": [net.station_id()] }),
    )
    .await;
    assert_eq!(mention["mentions"], json!([net.station_id()]));
    let reply = post(
        &app,
        &net.member_c,
        p,
        json!({ "category": "support", "body": "確認しました。発赤なし",
                "reply_to": id_of(&mention) }),
    )
    .await;
    assert_eq!(reply["reply_to"], id_of(&mention));
    assert_eq!(reply["facility"], net.station_id());
    assert_eq!(reply["author_name"], MEMBER);
    let shown = detail(&app, &net.doctor_c, p, &id_of(&mention)).await;
    assert_eq!(shown["entry"]["id"], id_of(&mention));
    let replies: Vec<String> = shown["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(replies, vec![id_of(&reply)], "the detail shows the reply");
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1);
}

/// Entries the API refuses with a 422: (body, the field named, what is wrong).
fn refused_entries(net: &Net) -> Vec<(Value, &'static str, &'static str)> {
    let vitals_with =
        |vitals: Value| json!({ "category": "vitals", "body": "測定", "vitals": vitals });
    vec![
        (
            json!({ "category": "notice", "body": "" }),
            "body",
            "an empty body",
        ),
        (
            json!({ "category": "notice", "body": " \n\t " }),
            "body",
            "a blank body",
        ),
        (
            json!({ "category": "notice", "body": "あ".repeat(5001) }),
            "body",
            "5001 characters",
        ),
        (
            json!({ "category": "diary", "body": "本文" }),
            "category",
            "an unknown category",
        ),
        (
            json!({ "category": "notice", "priority": "asap", "body": "本文" }),
            "priority",
            "an unknown priority",
        ),
        (
            vitals_with(json!({ "temperature": { "value": 45, "unit": "℃" } })),
            "temperature",
            "45 ℃",
        ),
        (
            vitals_with(json!({ "temperature": { "value": 98.6, "unit": "℉" } })),
            "temperature",
            "℉",
        ),
        (
            vitals_with(json!({ "weight": { "value": 110, "unit": "lb" } })),
            "weight",
            "pounds",
        ),
        (
            vitals_with(json!({ "systolic": { "value": 80, "unit": "mmHg" },
                                "diastolic": { "value": 80, "unit": "mmHg" } })),
            "diastolic",
            "diastolic = systolic",
        ),
        (
            vitals_with(json!({ "systolic": { "value": 80, "unit": "mmHg" },
                                "diastolic": { "value": 95, "unit": "mmHg" } })),
            "diastolic",
            "diastolic > systolic",
        ),
        (
            vitals_with(json!({ "temperature": 36.5 })),
            "vitals",
            "a value without its unit",
        ),
        (
            json!({ "category": "vitals", "body": "測定" }),
            "vitals",
            "vitals without vitals",
        ),
        (vitals_with(json!({})), "vitals", "vitals with none given"),
        (
            json!({ "category": "notice", "body": "本文", "mentions": [net.hospital.id.as_uuid()] }),
            "mentions",
            "mentioning a facility outside the care team",
        ),
        (
            json!({ "category": "notice", "body": "本文", "mentions": [Uuid::new_v4()] }),
            "mentions",
            "mentioning no facility at all",
        ),
    ]
}

#[tokio::test]
async fn bad_entries_are_refused_naming_the_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let first = note(&app, &net.nurse_c, p, "notice", "info", "最初の記録").await;
    // Another patient of the clinic, with an entry of its own.
    let other = another_patient(&app, &net).await;
    let others = note(&app, &net.doctor_c, other, "notice", "info", "別の対象者").await;

    let before = timeline_ids(&app, &net.doctor_c, p, "").await;
    assert_eq!(before, vec![first]);
    for (body, field, what) in &refused_entries(&net) {
        invalid(try_post(&app, &net.nurse_c, p, body).await, field, what).await;
    }
    // A reply to another patient's entry: refused, whatever the status says.
    let response = try_post(
        &app,
        &net.nurse_c,
        p,
        &json!({ "category": "notice", "body": "返信", "reply_to": others }),
    )
    .await;
    let refused = failure(response).await;
    assert!(
        refused.status == 422 || refused.status == 404,
        "a reply to another patient's entry: {refused:?}"
    );
    if refused.status == 422 {
        assert_eq!(refused.field.as_deref(), Some("reply_to"));
    }
    let response = try_post(
        &app,
        &net.nurse_c,
        p,
        &json!({ "category": "notice", "body": "返信", "reply_to": Uuid::new_v4() }),
    )
    .await;
    assert!(!response.status().is_success(), "a reply to nothing");
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, p, "").await,
        before,
        "nothing was stored"
    );
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, other, "").await,
        vec![others],
        "nothing was stored on the other patient either"
    );
    // 5000 characters are fine.
    let e = post(
        &app,
        &net.nurse_c,
        p,
        json!({ "category": "other", "body": "い".repeat(5000) }),
    )
    .await;
    assert_eq!(e["body"].as_str().unwrap().chars().count(), 5000);
}

/// The clinic's clerk sees the patient but not the clinical notebook.
#[tokio::test]
async fn a_clerk_neither_reads_nor_posts_the_notebook() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let response = net
        .clerk_c
        .get(patient_url(&app, p, "/entries"))
        .send()
        .await
        .unwrap();
    forbidden(response, "a clerk reading the notebook").await;
    let response = try_post(
        &app,
        &net.clerk_c,
        p,
        &json!({ "category": "notice", "body": "事務から" }),
    )
    .await;
    forbidden(response, "a clerk posting").await;
    assert_eq!(
        status_of(&net.clerk_c, &patient_url(&app, p, "")).await,
        200
    );
}

/// Read-your-writes: a patient registered through the API has a notebook at once, for the
/// very client that registered it (the next request must not answer 404 because the server's
/// authorizer has not yet heard of the registration).
#[tokio::test]
async fn a_patient_registered_through_the_api_has_a_notebook_at_once() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("RYW-CLINIC", FacilityKind::Clinic).await;
    person(
        &app,
        &clinic,
        "doctor",
        StaffRole::Staff,
        Profession::Doctor,
        DOCTOR,
    )
    .await;
    let client = app.client_for(&clinic, "doctor").await;
    let mut missing = 0;
    for i in 0..100 {
        let response = client
            .post(app.url("/api/v1/patients"))
            .json(&json!({ "name": format!("登録 {i}号"), "kana": "トウロク", "birth_date": "1940-01-15",
                           "sex": "female", "care_level": "care_2" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registering");
        let id = id_of(&json_of(response).await);
        let response = client
            .post(patient_url(&app, &id, "/entries"))
            .json(&json!({ "category": "notice", "body": "初回訪問" }))
            .send()
            .await
            .unwrap();
        if response.status() != 201 {
            missing += 1;
        }
    }
    assert_eq!(
        missing, 0,
        "posts answered 404 right after registering (of 100)"
    );
}
