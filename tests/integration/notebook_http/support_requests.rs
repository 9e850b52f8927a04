//! Support requests to a facility outside the care team: they share only what they name, only
//! while they are open, and are found by their ID however many newer ones there are.

use super::*;

#[tokio::test]
async fn a_support_request_shares_only_what_it_names_while_it_is_open() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let shared_file = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "皮膚所見.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let shared = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "右下腿に紅斑、写真添付",
                    "attachments": [shared_file] }),
        )
        .await,
    );
    let kept_file = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "別の写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let kept = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "共有しない記録", "attachments": [kept_file] }),
        )
        .await,
    );
    let send = |body: Value| {
        let url = patient_url(&app, p, "/support-requests");
        let client = net.doctor_c.clone();
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let question = "皮膚病変について専門医の意見をいただけますか";
    let summary = "80代女性、要介護2、在宅療養中。1週間前から右下腿に紅斑。";

    // Refusals first: nothing is sent.
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "gossip", "question": question,
                     "summary": summary }),
        )
        .await,
        "kind",
        "an unknown kind",
    )
    .await;
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "second_opinion", "question": "",
                     "summary": summary }),
        )
        .await,
        "question",
        "no question",
    )
    .await;
    conflict(
        send(
            json!({ "to": net.clinic.code, "kind": "second_opinion", "question": question,
                     "summary": summary }),
        )
        .await,
        "asking oneself",
    )
    .await;
    conflict(
        send(
            json!({ "to": "NO-SUCH", "kind": "second_opinion", "question": question,
                     "summary": summary }),
        )
        .await,
        "an unknown facility",
    )
    .await;
    let other = another_patient(&app, &net).await;
    let others = note(
        &app,
        &net.doctor_c,
        other,
        "notice",
        "info",
        "別の対象者の記録",
    )
    .await;
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "second_opinion", "question": question,
                     "summary": summary, "entries": [others] }),
        )
        .await,
        "entries",
        "another patient's entry",
    )
    .await;
    let unattached = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "未添付.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "second_opinion", "question": question,
                     "summary": summary, "attachments": [unattached] }),
        )
        .await,
        "attachments",
        "a file attached to no entry",
    )
    .await;
    // Without consent on file (the other patient has none): 409.
    let response = net
        .doctor_c
        .post(patient_url(&app, other, "/support-requests"))
        .json(
            &json!({ "to": net.hospital.code, "kind": "information", "question": question,
                       "summary": summary, "entries": [others] }),
        )
        .send()
        .await
        .unwrap();
    conflict(response, "a request without consent").await;
    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await, json!([]), "nothing was sent");

    // The request.
    let response = send(json!({ "to": net.hospital.code, "kind": "second_opinion",
                                "question": question, "summary": summary,
                                "entries": [shared], "attachments": [shared_file] }))
    .await;
    assert_eq!(response.status(), 201, "sending the request");
    let request = id_of(&json_of(response).await);
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, true).await;

    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lines = json_of(response).await;
    let line = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == request.as_str())
        .expect("the hospital sees the request");
    assert_eq!(line["sent"], false);
    assert_eq!(line["status"], "requested");
    assert_eq!(line["kind"], "second_opinion");
    assert_eq!(line["from"], net.clinic_id());
    assert_eq!(line["to"], net.hospital.id.as_uuid().to_string());
    let feed = json_of(
        net.outsider_c
            .get(app.url("/api/v1/notifications"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        feed.as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "support" && n["request"] == request.as_str()),
        "the request is in the hospital's notifications"
    );

    let request_url = app.url(&format!("/api/v1/support-requests/{request}"));
    let response = net.outsider_c.get(&request_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "the hospital reads the request");
    let shown = json_of(response).await;
    assert_eq!(shown["question"], question);
    assert_eq!(shown["summary"], summary);
    assert!(shown["answer"].is_null());
    let entries: Vec<String> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(entries, vec![shared.clone()], "exactly the shared entry");
    assert_eq!(shown["entries"][0]["body"], "右下腿に紅斑、写真添付");

    // The hospital reads the shared file, nothing else of the patient.
    let shared_url = patient_url(&app, p, &format!("/attachments/{shared_file}"));
    let response = net.outsider_c.get(&shared_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "the shared file");
    assert!(response.bytes().await.unwrap().starts_with(b"\x89PNG"));
    for rest in [
        String::new(),
        "/entries".to_string(),
        format!("/entries/{kept}"),
        format!("/attachments/{kept_file}"),
        format!("/attachments/{unattached}"),
        "/consents".to_string(),
        "/export.json".to_string(),
    ] {
        let response = net
            .outsider_c
            .get(patient_url(&app, p, &rest))
            .send()
            .await
            .unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital: {rest}");
    }
    let response = try_post(
        &app,
        &net.outsider_c,
        p,
        &json!({ "category": "notice", "body": "病院から" }),
    )
    .await;
    assert_eq!(failure(response).await, not_found(), "the hospital posting");

    // The clinic cannot answer its own request; the hospital accepts and answers once.
    let step = |client: &Client, what: &str, body: Option<Value>| {
        let mut request =
            client.post(app.url(&format!("/api/v1/support-requests/{request}/{what}")));
        if let Some(b) = body {
            request = request.json(&b);
        }
        request.send()
    };
    let response = step(
        &net.doctor_c,
        "answer",
        Some(json!({ "answer": "自分で回答" })),
    )
    .await
    .unwrap();
    assert_eq!(
        failure(response).await,
        not_found(),
        "the asking side answering"
    );
    conflict(
        step(
            &net.outsider_c,
            "answer",
            Some(json!({ "answer": "受諾前の回答" })),
        )
        .await
        .unwrap(),
        "answering before accepting",
    )
    .await;
    let response = step(&net.outsider_c, "accept", None).await.unwrap();
    assert_eq!(response.status(), 204, "accepting");
    let answer = "接触皮膚炎を疑います。ステロイド外用で経過観察し、拡大すれば受診を。";
    let response = step(&net.outsider_c, "answer", Some(json!({ "answer": answer })))
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "answering");
    conflict(
        step(
            &net.outsider_c,
            "answer",
            Some(json!({ "answer": "二度目の回答" })),
        )
        .await
        .unwrap(),
        "answering twice",
    )
    .await;

    let response = net.doctor_c.get(&request_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = json_of(response).await;
    assert_eq!(seen["answer"], answer, "the clinic sees the answer");
    assert_eq!(seen["answered_by_name"], OUTSIDER);
    assert_eq!(seen["line"]["status"], "answered");
    assert_eq!(seen["line"]["sent"], true);

    // A second request, declined: what it shared is closed again at once.
    let response = send(json!({ "to": net.hospital.code, "kind": "information",
                                "question": "経過を教えてください", "summary": summary,
                                "entries": [kept], "attachments": [kept_file] }))
    .await;
    assert_eq!(response.status(), 201);
    let second = id_of(&json_of(response).await);
    let kept_url = patient_url(&app, p, &format!("/attachments/{kept_file}"));
    assert_eq!(status_of(&net.outsider_c, &kept_url).await, 200);
    let response = net
        .outsider_c
        .post(app.url(&format!("/api/v1/support-requests/{second}/decline")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "declining");
    assert_eq!(
        failure(net.outsider_c.get(&kept_url).send().await.unwrap()).await,
        not_found(),
        "a declined request shares nothing"
    );
    assert_eq!(status_of(&net.outsider_c, &shared_url).await, 200);

    // The clinic closes the first: from the next request on, the hospital reads its file no
    // more (row-level security answers at once, whatever the authorizer still believes).
    let response = step(&net.doctor_c, "close", None).await.unwrap();
    assert_eq!(response.status(), 204, "closing");
    assert_eq!(
        failure(net.outsider_c.get(&shared_url).send().await.unwrap()).await,
        not_found(),
        "a closed request shares nothing"
    );
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, false).await;
    let response = net.outsider_c.get(&request_url).send().await.unwrap();
    assert_eq!(
        failure(response).await,
        not_found(),
        "nor the request itself"
    );
    conflict(
        step(&net.doctor_c, "close", None).await.unwrap(),
        "closing twice",
    )
    .await;
    let response = net.doctor_c.get(&request_url).send().await.unwrap();
    assert_eq!(json_of(response).await["line"]["status"], "closed");
}

/// A request is found by its ID however many newer ones there are (the list shows the newest
/// 200; reading, accepting, answering and closing look the request up by itself).
#[tokio::test]
async fn a_support_request_older_than_the_newest_two_hundred_is_still_answered() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let photo = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "紅斑.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let entry = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "右下腿に紅斑", "attachments": [photo] }),
        )
        .await,
    );
    let response = net
        .doctor_c
        .post(patient_url(&app, p, "/support-requests"))
        .json(&json!({ "to": net.hospital.code, "kind": "second_opinion",
                       "question": "ご意見をください", "summary": "80代女性",
                       "entries": [entry], "attachments": [photo] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "sending the request");
    let request = id_of(&json_of(response).await);
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, true).await;
    // Two hundred newer requests between the same facilities (their texts are copies that
    // would not decrypt for their own rows, which nothing here reads).
    let mut su = superuser(&app).await;
    sqlx::query(
        "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                       requested_by, question_enc, summary_enc, created_at)
         SELECT gen_random_uuid(), patient_id, facility_id, to_facility_id, kind, requested_by,
                question_enc, summary_enc, created_at + make_interval(secs => g)
           FROM support_requests, generate_series(1, 200) g
          WHERE id = $1::uuid",
    )
    .bind(&request)
    .execute(&mut su)
    .await
    .unwrap();
    let listed = json_of(
        net.outsider_c
            .get(app.url("/api/v1/support-requests"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 200, "the list shows the newest 200");
    assert!(listed.iter().all(|l| l["id"] != request.as_str()));

    let response = net
        .outsider_c
        .get(app.url(&format!("/api/v1/support-requests/{request}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading the oldest request");
    assert_eq!(json_of(response).await["question"], "ご意見をください");
    // The file the request shares: read through the request's relation, with no refusal
    // recorded on the way (the care team's check is not tried first and logged as refused).
    let response = net
        .outsider_c
        .get(patient_url(&app, p, &format!("/attachments/{photo}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the shared file");
    let refusals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE facility_id = $1 AND action = 'access.refused'",
    )
    .bind(net.hospital.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        refusals, 0,
        "no false refusal in the asked facility's chain"
    );
    for (client, step) in [
        (&net.outsider_c, "accept"),
        (&net.outsider_c, "answer"),
        (&net.doctor_c, "close"),
    ] {
        let response = client
            .post(app.url(&format!("/api/v1/support-requests/{request}/{step}")))
            .json(&json!({ "answer": "皮膚科受診をお勧めします" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{step}");
    }
    // Another facility still finds nothing by the ID.
    let response = net
        .member_c
        .get(app.url(&format!("/api/v1/support-requests/{request}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
