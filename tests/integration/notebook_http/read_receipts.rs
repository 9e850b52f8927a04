//! Read receipts that name the reader, unread counts per person with urgent first, and a
//! clerk who learns nothing of the notebook through either.

use super::*;

/// A person's unread counts: (patient, urgent, reply requested, total), in the order given.
async fn unread(app: &TestApp, client: &Client) -> Vec<(String, i64, i64, i64)> {
    let response = client.get(app.url("/api/v1/unread")).send().await.unwrap();
    assert_eq!(response.status(), 200, "reading unread counts");
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["patient"].as_str().unwrap().to_string(),
                l["urgent"].as_i64().unwrap(),
                l["reply_requested"].as_i64().unwrap(),
                l["total"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Marks `entries` of `patient` read; how many were newly marked.
async fn mark(app: &TestApp, client: &Client, patient: Uuid, entries: &[&str]) -> u64 {
    let response = client
        .post(patient_url(app, patient, "/entries/read"))
        .json(&json!({ "entries": entries }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "marking entries read");
    json_of(response).await["marked"].as_u64().unwrap()
}

/// The doctor's entries for two patients shared with the station: for the first, an info
/// entry and then an urgent one; for the second (newer, none urgent), an info entry and one
/// asking for a reply. (first patient, second patient, its info entry, its urgent entry)
async fn two_patients_with_entries(app: &TestApp, net: &Net) -> (Uuid, Uuid, String, String) {
    let p1 = net.patient;
    let p2 = another_patient(app, net).await;
    net.share(app, p2).await;
    let a = note(app, &net.doctor_c, p1, "notice", "info", "朝の体調は安定").await;
    let b = note(
        app,
        &net.doctor_c,
        p1,
        "complaint",
        "urgent",
        "夕方から発熱",
    )
    .await;
    // The second patient's entries are newer, but not urgent.
    note(app, &net.doctor_c, p2, "notice", "info", "デイサービス利用").await;
    note(
        app,
        &net.doctor_c,
        p2,
        "medication",
        "reply_requested",
        "残薬の確認",
    )
    .await;
    (p1, p2, a, b)
}

/// Whether every entry of the first page reads as `read` for this person.
async fn all_read(app: &TestApp, client: &Client, patient: Uuid, read: bool) -> bool {
    page(app, client, patient, "").await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["read"] == read)
}

#[tokio::test]
async fn read_receipts_name_the_reader_and_unread_counts_put_urgent_first() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let (p1, p2, a, b) = two_patients_with_entries(&app, &net).await;
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let everything = vec![(s1.clone(), 1, 0, 2), (s2.clone(), 0, 1, 2)];
    assert_eq!(
        unread(&app, &net.station_admin_c).await,
        everything,
        "urgent first, though the other patient's entries are newer"
    );
    assert_eq!(unread(&app, &net.member_c).await, everything);
    assert_eq!(
        unread(&app, &net.doctor_c).await,
        Vec::new(),
        "one's own entries are not unread"
    );

    // The station's nurse reads the first patient's entries.
    assert_eq!(mark(&app, &net.member_c, p1, &[&a, &b]).await, 2);
    assert_eq!(
        mark(&app, &net.member_c, p1, &[&a, &b]).await,
        0,
        "reading again changes nothing"
    );
    // The receipt is on the station's record once: the second marking changed nothing.
    let receipts: Vec<Value> = audit_of(&app, &net.station_admin_c)
        .await
        .into_iter()
        .filter(|r| r["action"] == "entry.mark_read" && r["target_id"] == p1.to_string())
        .collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["details"]["entries"], 2);
    let shown = detail(&app, &net.doctor_c, p1, &b).await;
    let readers = shown["read_by"].as_array().unwrap();
    assert_eq!(readers.len(), 1);
    assert_eq!(readers[0]["name"], MEMBER);
    assert_eq!(readers[0]["profession"], "nurse");
    assert_eq!(readers[0]["facility"], net.station_id());
    assert_eq!(readers[0]["facility_name"], net.station.name.as_str());
    assert!(readers[0]["read_at"].is_string());
    assert!(all_read(&app, &net.member_c, p1, true).await);
    assert!(
        all_read(&app, &net.station_admin_c, p1, false).await,
        "read marks are per person"
    );
    assert_eq!(
        unread(&app, &net.member_c).await,
        vec![(s2.clone(), 0, 1, 2)],
        "her counts drop"
    );
    assert_eq!(
        unread(&app, &net.station_admin_c).await,
        everything,
        "her colleague's do not"
    );

    // The colleague reads the urgent one: urgent no more, the newest patient comes first.
    assert_eq!(mark(&app, &net.station_admin_c, p1, &[&b]).await, 1);
    assert_eq!(
        unread(&app, &net.station_admin_c).await,
        vec![(s2.clone(), 0, 1, 2), (s1.clone(), 0, 0, 1)]
    );
    let shown = detail(&app, &net.member_c, p1, &b).await;
    let names: Vec<&str> = shown["read_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![MEMBER, STATION_ADMIN], "in reading order");

    // Marking another patient's entry under this patient marks nothing.
    let response = net
        .member_c
        .post(patient_url(&app, p2, "/entries/read"))
        .json(&json!({ "entries": [a] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "an entry of another patient");
    assert_eq!(json_of(response).await["error"]["field"], "entries");
    // An entry that does not exist at all is refused the same way.
    let response = net
        .member_c
        .post(patient_url(&app, p2, "/entries/read"))
        .json(&json!({ "entries": [uuid::Uuid::now_v7()] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "an entry that does not exist");
    assert_eq!(
        unread(&app, &net.member_c).await,
        vec![(s2, 0, 1, 2)],
        "nothing changed"
    );
}

/// A clerk, whose role may not read the notebook, learns nothing of it through the unread
/// counts (refused, as the live stream refuses them) or the notification feed (no entry
/// items); a nurse of the same facility does.
#[tokio::test]
async fn a_clerk_gets_no_unread_counts_or_entry_notifications() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    post(
        &app,
        &net.member_c,
        p,
        json!({ "category": "notice", "priority": "urgent", "body": "転倒あり、至急連絡を" }),
    )
    .await;
    let unread_of = |client: &Client| {
        let client = client.clone();
        let url = app.url("/api/v1/unread");
        async move { json_of(client.get(url).send().await.unwrap()).await }
    };
    let nurse = unread_of(&net.nurse_c).await;
    assert!(
        nurse
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["patient"] == p.to_string() && l["urgent"] == 1),
        "the nurse sees the urgent entry counted: {nurse}"
    );
    // Refused outright, as the live stream refuses the clerk: no capability to read notebooks.
    let clerk = net
        .clerk_c
        .get(app.url("/api/v1/unread"))
        .send()
        .await
        .unwrap();
    assert_eq!(clerk.status(), 403, "the clerk gets no counts");

    let feed_of = |client: &Client| {
        let client = client.clone();
        let url = app.url("/api/v1/notifications");
        async move { json_of(client.get(url).send().await.unwrap()).await }
    };
    let entry_kinds = |feed: &Value| {
        feed.as_array()
            .unwrap()
            .iter()
            .filter(|n| ["entry", "reply", "mention"].contains(&n["kind"].as_str().unwrap()))
            .count()
    };
    assert!(entry_kinds(&feed_of(&net.nurse_c).await) > 0);
    assert_eq!(entry_kinds(&feed_of(&net.clerk_c).await), 0);
    // As the notebook itself refuses the clerk.
    let response = net
        .clerk_c
        .get(patient_url(&app, p, "/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

/// Unread counts cover the last 30 days: an unread entry older than that is history (still in
/// the notebook, still marked unread on its card), not news; the newer ones still count.
#[tokio::test]
async fn unread_counts_cover_the_last_thirty_days() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let (p1, p2, a, b) = two_patients_with_entries(&app, &net).await;
    let (s1, s2) = (p1.to_string(), p2.to_string());
    // The first patient's entries age: the info entry 31 days, the urgent one 29 days.
    let mut su = sqlx::ConnectOptions::connect(&app.database.superuser_options())
        .await
        .unwrap();
    // Past the guard that keeps an entry's time as written (ordinary triggers off).
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    for (entry, days) in [(&a, 31), (&b, 29)] {
        let aged = sqlx::query(
            "UPDATE entries SET created_at = now() - make_interval(days => $2)
              WHERE id = $1::uuid",
        )
        .bind(entry)
        .bind(days)
        .execute(&mut su)
        .await
        .unwrap();
        assert_eq!(aged.rows_affected(), 1);
    }
    assert_eq!(
        unread(&app, &net.member_c).await,
        vec![(s1.clone(), 1, 0, 1), (s2.clone(), 0, 1, 2)],
        "the 31-day-old entry no longer counts; the 29-day-old urgent one does"
    );
    // The old entry is still there, and still unread on its card.
    let first = page(&app, &net.member_c, p1, "").await;
    let old = first["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == a.as_str())
        .expect("the old entry is in the notebook");
    assert_eq!(old["read"], false);
}
