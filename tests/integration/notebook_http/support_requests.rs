//! Support requests to a facility outside the care team: they share only what they name, only
//! while they are open, and are found by their ID however many newer ones there are.

use renrakucho_testkit::PNG_1X1;

use super::*;

const QUESTION: &str = "皮膚病変について専門医の意見をいただけますか";
const SUMMARY: &str = "80代女性、要介護2、在宅療養中。1週間前から右下腿に紅斑。";

/// What the clinic could share: an entry with a photo attached, and another entry with
/// another photo.
struct Material {
    shared_file: String,
    shared: String,
    kept_file: String,
    kept: String,
}

/// A PNG uploaded by the clinic's doctor; its ID.
async fn photo(app: &TestApp, net: &Net, patient: Uuid, name: &str) -> String {
    let file = uploaded(
        app,
        &net.doctor_c,
        patient,
        "image/png",
        name,
        PNG_1X1.to_vec(),
    )
    .await;
    id_of(&file)
}

/// The doctor's entry with `file` attached; its ID.
async fn with_file(app: &TestApp, net: &Net, body: &str, file: &str) -> String {
    let entry = json!({ "category": "treatment", "body": body, "attachments": [file] });
    id_of(&post(app, &net.doctor_c, net.patient, entry).await)
}

async fn material(app: &TestApp, net: &Net) -> Material {
    let shared_file = photo(app, net, net.patient, "皮膚所見.png").await;
    let shared = with_file(app, net, "右下腿に紅斑、写真添付", &shared_file).await;
    let kept_file = photo(app, net, net.patient, "別の写真.png").await;
    let kept = with_file(app, net, "共有しない記録", &kept_file).await;
    Material {
        shared_file,
        shared,
        kept_file,
        kept,
    }
}

/// The clinic's doctor sends a support request about `patient`.
async fn send(app: &TestApp, net: &Net, patient: Uuid, body: Value) -> Response {
    net.doctor_c
        .post(patient_url(app, patient, "/support-requests"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A step of the request's life (`accept`, `answer`, `decline`, `close`) by `client`.
async fn step(
    app: &TestApp,
    client: &Client,
    request: &str,
    what: &str,
    body: Option<Value>,
) -> Response {
    let mut call = client.post(app.url(&format!("/api/v1/support-requests/{request}/{what}")));
    if let Some(b) = body {
        call = call.json(&b);
    }
    call.send().await.unwrap()
}

/// The hospital's support requests, as its list shows them.
async fn hospital_list(app: &TestApp, net: &Net) -> Value {
    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    json_of(response).await
}

#[tokio::test]
async fn a_support_request_naming_what_it_may_not_share_is_refused_and_nothing_is_sent() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
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
    let unattached = photo(&app, &net, p, "未添付.png").await;
    let to = net.hospital.code.as_str();
    // (the request, the field a 422 names or `None` for a 409, what is wrong)
    let refused = [
        (
            json!({ "to": to, "kind": "gossip", "question": QUESTION, "summary": SUMMARY }),
            Some("kind"),
            "an unknown kind",
        ),
        (
            json!({ "to": to, "kind": "second_opinion", "question": "", "summary": SUMMARY }),
            Some("question"),
            "no question",
        ),
        (
            json!({ "to": net.clinic.code, "kind": "second_opinion", "question": QUESTION,
                     "summary": SUMMARY }),
            None,
            "asking oneself",
        ),
        (
            json!({ "to": "NO-SUCH", "kind": "second_opinion", "question": QUESTION,
                     "summary": SUMMARY }),
            None,
            "an unknown facility",
        ),
        (
            json!({ "to": to, "kind": "second_opinion", "question": QUESTION,
                     "summary": SUMMARY, "entries": [others] }),
            Some("entries"),
            "another patient's entry",
        ),
        (
            json!({ "to": to, "kind": "second_opinion", "question": QUESTION,
                     "summary": SUMMARY, "attachments": [unattached] }),
            Some("attachments"),
            "a file attached to no entry",
        ),
    ];
    for (body, field, what) in refused {
        let response = send(&app, &net, p, body).await;
        match field {
            Some(field) => invalid(response, field, what).await,
            None => conflict(response, what).await,
        }
    }
    // Without consent on file (the other patient has none): 409.
    let response = send(
        &app,
        &net,
        other,
        json!({ "to": to, "kind": "information", "question": QUESTION, "summary": SUMMARY,
                "entries": [others] }),
    )
    .await;
    conflict(response, "a request without consent").await;
    assert_eq!(
        hospital_list(&app, &net).await,
        json!([]),
        "nothing was sent"
    );
}

#[tokio::test]
async fn a_support_request_shares_only_what_it_names_while_it_is_open() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let m = material(&app, &net).await;
    let unattached = photo(&app, &net, p, "未添付.png").await;

    // The request.
    let response = send(
        &app,
        &net,
        p,
        json!({ "to": net.hospital.code, "kind": "second_opinion", "question": QUESTION,
                "summary": SUMMARY, "entries": [m.shared], "attachments": [m.shared_file] }),
    )
    .await;
    assert_eq!(response.status(), 201, "sending the request");
    let request = id_of(&json_of(response).await);
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, true).await;
    the_hospital_is_told(&app, &net, &request).await;

    let request_url = app.url(&format!("/api/v1/support-requests/{request}"));
    let response = net.outsider_c.get(&request_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "the hospital reads the request");
    let shown = json_of(response).await;
    assert_eq!(shown["question"], QUESTION);
    assert_eq!(shown["summary"], SUMMARY);
    assert!(shown["answer"].is_null());
    let entries: Vec<String> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(entries, vec![m.shared.clone()], "exactly the shared entry");
    assert_eq!(shown["entries"][0]["body"], "右下腿に紅斑、写真添付");

    // The hospital reads the shared file, nothing else of the patient.
    let shared_url = patient_url(&app, p, &format!("/attachments/{}", m.shared_file));
    the_hospital_reads_only_what_is_shared(&app, &net, &m, &unattached).await;

    answered_once_by_the_asked_facility(&app, &net, &request).await;
    a_declined_request_shares_nothing(&app, &net, &m).await;
    assert_eq!(status_of(&net.outsider_c, &shared_url).await, 200);

    // The clinic closes the first: from the next request on, the hospital reads its file no
    // more (row-level security answers at once, whatever the authorizer still believes).
    let response = step(&app, &net.doctor_c, &request, "close", None).await;
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
        step(&app, &net.doctor_c, &request, "close", None).await,
        "closing twice",
    )
    .await;
    let response = net.doctor_c.get(&request_url).send().await.unwrap();
    assert_eq!(json_of(response).await["line"]["status"], "closed");
}

/// The request is in the hospital's list, as sent, and in its notifications.
async fn the_hospital_is_told(app: &TestApp, net: &Net, request: &str) {
    let lines = hospital_list(app, net).await;
    let line = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == request)
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
            .any(|n| n["kind"] == "support" && n["request"] == request),
        "the request is in the hospital's notifications"
    );
}

/// The hospital reads the shared file and nothing else of the patient: not the patient, the
/// notebook, the kept entry or file, an unattached upload, consents or the export; nor may it
/// post.
async fn the_hospital_reads_only_what_is_shared(
    app: &TestApp,
    net: &Net,
    m: &Material,
    unattached: &str,
) {
    let shared_url = patient_url(app, net.patient, &format!("/attachments/{}", m.shared_file));
    let response = net.outsider_c.get(&shared_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "the shared file");
    assert!(response.bytes().await.unwrap().starts_with(b"\x89PNG"));
    for rest in [
        String::new(),
        "/entries".to_string(),
        format!("/entries/{}", m.kept),
        format!("/attachments/{}", m.kept_file),
        format!("/attachments/{unattached}"),
        "/consents".to_string(),
        "/export.json".to_string(),
    ] {
        let response = net
            .outsider_c
            .get(patient_url(app, net.patient, &rest))
            .send()
            .await
            .unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital: {rest}");
    }
    let response = try_post(
        app,
        &net.outsider_c,
        net.patient,
        &json!({ "category": "notice", "body": "病院から" }),
    )
    .await;
    assert_eq!(failure(response).await, not_found(), "the hospital posting");
}

/// The clinic cannot answer its own request; the hospital accepts and answers once, and the
/// clinic sees the answer.
async fn answered_once_by_the_asked_facility(app: &TestApp, net: &Net, request: &str) {
    let response = step(
        app,
        &net.doctor_c,
        request,
        "answer",
        Some(json!({ "answer": "自分で回答" })),
    )
    .await;
    assert_eq!(
        failure(response).await,
        not_found(),
        "the asking side answering"
    );
    conflict(
        step(
            app,
            &net.outsider_c,
            request,
            "answer",
            Some(json!({ "answer": "受諾前の回答" })),
        )
        .await,
        "answering before accepting",
    )
    .await;
    let response = step(app, &net.outsider_c, request, "accept", None).await;
    assert_eq!(response.status(), 204, "accepting");
    let answer = "接触皮膚炎を疑います。ステロイド外用で経過観察し、拡大すれば受診を。";
    let response = step(
        app,
        &net.outsider_c,
        request,
        "answer",
        Some(json!({ "answer": answer })),
    )
    .await;
    assert_eq!(response.status(), 204, "answering");
    conflict(
        step(
            app,
            &net.outsider_c,
            request,
            "answer",
            Some(json!({ "answer": "二度目の回答" })),
        )
        .await,
        "answering twice",
    )
    .await;

    let request_url = app.url(&format!("/api/v1/support-requests/{request}"));
    let response = net.doctor_c.get(&request_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = json_of(response).await;
    assert_eq!(seen["answer"], answer, "the clinic sees the answer");
    assert_eq!(seen["answered_by_name"], OUTSIDER);
    assert_eq!(seen["line"]["status"], "answered");
    assert_eq!(seen["line"]["sent"], true);
}

/// A second request, naming the kept entry and its file, declined by the hospital: what it
/// shared is closed again at once.
async fn a_declined_request_shares_nothing(app: &TestApp, net: &Net, m: &Material) {
    let p = net.patient;
    let response = send(
        app,
        net,
        p,
        json!({ "to": net.hospital.code, "kind": "information",
                "question": "経過を教えてください", "summary": SUMMARY,
                "entries": [m.kept], "attachments": [m.kept_file] }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let second = id_of(&json_of(response).await);
    let kept_url = patient_url(app, p, &format!("/attachments/{}", m.kept_file));
    assert_eq!(status_of(&net.outsider_c, &kept_url).await, 200);
    let response = step(app, &net.outsider_c, &second, "decline", None).await;
    assert_eq!(response.status(), 204, "declining");
    assert_eq!(
        failure(net.outsider_c.get(&kept_url).send().await.unwrap()).await,
        not_found(),
        "a declined request shares nothing"
    );
}

/// A request is found by its ID however many newer ones there are (the list shows the newest
/// 200; reading, accepting, answering and closing look the request up by itself).
#[tokio::test]
async fn a_support_request_older_than_the_newest_two_hundred_is_still_answered() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let photo = photo(&app, &net, p, "紅斑.png").await;
    let entry = with_file(&app, &net, "右下腿に紅斑", &photo).await;
    let response = send(
        &app,
        &net,
        p,
        json!({ "to": net.hospital.code, "kind": "second_opinion",
                "question": "ご意見をください", "summary": "80代女性",
                "entries": [entry], "attachments": [photo] }),
    )
    .await;
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
