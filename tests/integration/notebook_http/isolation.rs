//! A facility with nothing to do with the patient gets the same 404 from every notebook
//! endpoint as for a patient that does not exist, and changes nothing.

use super::*;

/// The clinic doctor's entry with a photo attached: (entry, file).
async fn entry_with_photo(app: &TestApp, net: &Net) -> (String, String) {
    let p = net.patient;
    let file = id_of(
        &uploaded(
            app,
            &net.doctor_c,
            p,
            "image/png",
            "写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let entry = id_of(
        &post(
            app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "処置", "attachments": [file] }),
        )
        .await,
    );
    (entry, file)
}

/// Every notebook request about `patient` (an ID, as a string): method, URL, body. `entry` and
/// `file` are the patient's own.
fn every_notebook_request(
    app: &TestApp,
    patient: &str,
    entry: &str,
    file: &str,
    hospital_code: &str,
) -> Vec<(Method, String, Option<Value>)> {
    let url = |rest: &str| patient_url(app, patient, rest);
    vec![
        (Method::GET, url("/entries"), None),
        (
            Method::POST,
            url("/entries"),
            Some(json!({ "category": "notice", "body": "侵入" })),
        ),
        (Method::GET, url(&format!("/entries/{entry}")), None),
        (
            Method::PUT,
            url(&format!("/entries/{entry}")),
            Some(json!({ "expected_version": 1, "category": "notice", "body": "改ざん" })),
        ),
        (
            Method::POST,
            url(&format!("/entries/{entry}/withdraw")),
            Some(json!({ "reason": "取り下げさせる" })),
        ),
        (
            Method::POST,
            url("/entries/read"),
            Some(json!({ "entries": [entry] })),
        ),
        (
            Method::GET,
            url("/entries/search?q=%E5%87%A6%E7%BD%AE"),
            None,
        ),
        (Method::GET, url(&format!("/attachments/{file}")), None),
        (
            Method::GET,
            url(&format!("/attachments/{file}/thumbnail")),
            None,
        ),
        (Method::GET, url("/export.json"), None),
        (Method::GET, url("/export.pdf"), None),
        (Method::PUT, url("/mute"), Some(json!({ "muted": true }))),
        (
            Method::POST,
            url("/support-requests"),
            Some(json!({ "to": hospital_code, "kind": "information",
                         "question": "教えて", "summary": "概要", "entries": [entry] })),
        ),
    ]
}

#[tokio::test]
async fn an_unrelated_facility_gets_the_same_404_from_every_notebook_endpoint() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let (entry, file) = entry_with_photo(&app, &net).await;

    for target in [p, Uuid::new_v4()] {
        let patient = target.to_string();
        for (method, url, body) in
            every_notebook_request(&app, &patient, &entry, &file, net.hospital.code.as_str())
        {
            let mut request = net.outsider_c.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = failure(request.send().await.unwrap()).await;
            assert_eq!(
                answer,
                not_found(),
                "{method} {}",
                url.replace(&patient, "{id}")
            );
        }
        let response = upload(
            &app,
            &net.outsider_c,
            target,
            Some("image/png"),
            "写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await;
        assert_eq!(failure(response).await, not_found(), "uploading");
    }

    // Every attempt is in the hospital's own audit log, refused, the same for the patient it
    // does not care for and for an ID that names nobody.
    let mut tx = app
        .db
        .begin(renrakucho_store::Scope::Facility(net.hospital.id))
        .await
        .unwrap();
    let refusals: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT target_id, count(*) FROM audit_log
          WHERE action = 'access.refused' AND outcome = 'denied'
          GROUP BY target_id",
    )
    .fetch_all(tx.raw_connection_for_tests())
    .await
    .unwrap();
    drop(tx);
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals.iter().any(|(id, _)| *id == p));
    assert_eq!(
        refusals[0].1, refusals[1].1,
        "a real patient and no patient leave the same trace"
    );

    // Nothing the hospital tried changed anything.
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, p, "").await,
        vec![entry.clone()]
    );
    let shown = detail(&app, &net.doctor_c, p, &entry).await;
    assert_eq!(shown["entry"]["version"], 1);
    assert_eq!(shown["entry"]["body"], "処置");
    assert!(shown["entry"]["withdrawn_at"].is_null());
    assert_eq!(shown["read_by"], json!([]));
    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await, json!([]));
    let unread = json_of(
        net.outsider_c
            .get(app.url("/api/v1/unread"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unread, json!([]), "the hospital has nothing unread");
    let feed_items = feed(&app, &net.outsider_c).await;
    assert!(feed_items.is_empty(), "nor anything in its feed");
}
