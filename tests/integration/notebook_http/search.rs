//! Search within one patient's notebook: hiragana, katakana and half-width alike, vital signs
//! by their summary, withdrawn entries no longer found, an outsider answered 404.

use super::*;

async fn search(app: &TestApp, client: &Client, patient: Uuid, q: &str) -> Response {
    client
        .get(patient_url(app, patient, "/entries/search"))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap()
}

async fn found(app: &TestApp, client: &Client, patient: Uuid, q: &str) -> Vec<String> {
    let response = search(app, client, patient, q).await;
    assert_eq!(response.status(), 200, "searching");
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn search_finds_words_of_one_patients_notebook_in_either_kana() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let fall = note(
        &app,
        &net.doctor_c,
        p,
        "instruction",
        "info",
        "ふらつきがあり、転倒に注意してください",
    )
    .await;
    let helper = note(
        &app,
        &net.member_c,
        p,
        "support",
        "info",
        "ヘルパーの訪問時間を変更しました",
    )
    .await;
    note(
        &app,
        &net.doctor_c,
        p,
        "notice",
        "info",
        "食事量は普段どおり",
    )
    .await;
    let other = another_patient(&app, &net).await;
    let others = note(
        &app,
        &net.doctor_c,
        other,
        "notice",
        "info",
        "ふらつきが強く受診を勧めました",
    )
    .await;

    for client in [&net.doctor_c, &net.member_c] {
        assert_eq!(found(&app, client, p, "ふらつき").await, vec![fall.clone()]);
        assert_eq!(
            found(&app, client, p, "フラツキ").await,
            vec![fall.clone()],
            "katakana finds hiragana"
        );
        assert_eq!(
            found(&app, client, p, "へるぱー").await,
            vec![helper.clone()],
            "hiragana finds katakana"
        );
        assert_eq!(
            found(&app, client, p, "ﾌﾗﾂｷ").await,
            vec![fall.clone()],
            "half-width katakana too"
        );
        assert_eq!(found(&app, client, p, "転倒").await, vec![fall.clone()]);
        assert_eq!(
            found(&app, client, p, "存在しない言葉").await,
            Vec::<String>::new()
        );
    }
    assert_eq!(
        found(&app, &net.doctor_c, other, "ふらつき").await,
        vec![others],
        "the other patient's notebook has its own"
    );
    invalid(
        search(&app, &net.doctor_c, p, " ").await,
        "q",
        "an empty query",
    )
    .await;

    // A withdrawn entry is no longer found.
    let response = withdraw(&app, &net.doctor_c, p, &fall, "内容を誤ったため").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        found(&app, &net.member_c, p, "ふらつき").await,
        Vec::<String>::new()
    );

    // The unrelated hospital: 404, like a patient that does not exist.
    for patient in [p, Uuid::new_v4()] {
        let response = search(&app, &net.outsider_c, patient, "ヘルパー").await;
        assert_eq!(failure(response).await, not_found());
    }
}

/// `search_notebook` promises entries "whose text (or vitals summary) contains" the words: a
/// vital sign is found by what its summary says (体温 37.9℃).
#[tokio::test]
async fn search_finds_a_vitals_entry_by_its_summary() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let vitals = id_of(
        &post(
            &app,
            &net.member_c,
            p,
            json!({ "category": "vitals", "body": "訪問時に測定",
                    "vitals": { "temperature": { "value": 37.9, "unit": "℃" } } }),
        )
        .await,
    );
    note(&app, &net.doctor_c, p, "notice", "info", "特記事項なし").await;
    assert_eq!(
        found(&app, &net.doctor_c, p, "訪問時").await,
        vec![vitals.clone()]
    );
    assert_eq!(
        found(&app, &net.doctor_c, p, "37.9").await,
        vec![vitals],
        "the temperature, as the summary writes it"
    );
}
