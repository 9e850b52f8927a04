//! One bad value does not take a page down (issue 11 §4, ADR 0017). A value is corrupted with
//! real SQL as the database owner — a flipped bit, a ciphertext moved from another row — in
//! each listing: the patient list and the name search, the timeline, the notebook search, an
//! entry's versions and replies, the consents. Every page (JSON and portal) still answers, in
//! every facility that shares the patient, with the broken item marked unreadable by its ID
//! and the others intact; the read is audited with the unreadable IDs; the single broken item
//! read on its own is a clear 409; the export refuses naming every broken item; the platform
//! operators get one alert per broken value, however often it is read.

use renrakucho_testkit::{new_client, spawn_app, TestApp, FIXTURE_PASSWORD};
use reqwest::Client;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::support::{audit_of, failure, json_of, patient_url, post_note, superuser, trio};

/// Flips the last bit of `table.column` in row `id` (the GCM tag: authentication fails).
async fn flip(su: &mut PgConnection, table: &str, column: &str, id: Uuid) {
    let sql = format!(
        "UPDATE {table} SET {column} = set_byte({column}, length({column}) - 1,
                get_byte({column}, length({column}) - 1) # 1)
          WHERE id = $1"
    );
    let done = sqlx::query(&sql).bind(id).execute(&mut *su).await.unwrap();
    assert_eq!(
        done.rows_affected(),
        1,
        "{table}.{column} of {id} corrupted"
    );
}

/// Puts `from`'s value of `table.column` into row `to` (a valid ciphertext, in the wrong row).
async fn swap(su: &mut PgConnection, table: &str, column: &str, from: Uuid, to: Uuid) {
    let sql = format!(
        "UPDATE {table} SET {column} = (SELECT {column} FROM {table} WHERE id = $1) WHERE id = $2"
    );
    let done = sqlx::query(&sql)
        .bind(from)
        .bind(to)
        .execute(&mut *su)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{table}.{column} moved to {to}");
}

/// The owner's connection with the tables' guards (edit and immutability triggers) off.
async fn owner(app: &TestApp) -> PgConnection {
    let mut su = superuser(app).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    su
}

async fn get_json(client: &Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    json_of(response).await
}

async fn get_html(client: &Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.unwrap()
}

/// The listing's items marked unreadable, by ID.
fn unreadable_ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .filter(|i| i["unreadable"] == json!(true))
        .map(|i| {
            assert_eq!(
                i.as_object().unwrap().len(),
                2,
                "a marker holds only its ID and the flag: {i}"
            );
            i["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The portal shows the marker, in both languages, with the item's ID.
fn assert_marker(html: &str, id: impl std::fmt::Display, what: &str) {
    assert!(html.contains("判読できない記録"), "{what}: the marker");
    assert!(
        html.contains("unreadable record"),
        "{what}: the marker in English"
    );
    assert!(
        html.contains(&format!("<code>{id}</code>")),
        "{what}: the item's ID"
    );
    assert!(html.contains("role=\"note\""), "{what}: announced");
}

/// The platform operators' alerts about unreadable values.
async fn unreadable_alerts(app: &TestApp, operator: &Client) -> Vec<Value> {
    let response = operator
        .get(app.url("/api/v1/platform/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the operator reads the alerts");
    let body = json_of(response).await;
    let list = body
        .as_array()
        .or_else(|| body["alerts"].as_array())
        .expect("a list of alerts")
        .clone();
    list.into_iter()
        .filter(|a| a["kind"] == json!("unreadable_value"))
        .collect()
}

#[tokio::test]
async fn one_corrupt_value_leaves_every_listing_working_with_a_marker() {
    let app = spawn_app().await;
    let t = trio(&app, "unr").await;
    let p = t.b_patient;
    app.seed_operator("unr-operator").await;
    let operator = new_client();
    let signed_in = app
        .sign_in_with(&operator, None, "unr-operator", FIXTURE_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200, "the operator signs in");

    // A second patient of B, whose name is then altered; an edit gives the first entry a
    // second version; a reply; a second consent.
    let broken_patient = app
        .seed_patient(&t.b_admin, "破損 太郎", "ハソン タロウ")
        .await
        .id
        .as_uuid();
    let response = t
        .b_client
        .put(patient_url(
            &app,
            p,
            &format!("/entries/{}", t.b_entries[0]),
        ))
        .json(
            &json!({ "expected_version": 1, "category": "notice", "priority": "info",
                       "body": "境界の記録 その一(修正)" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "editing the first entry");
    let response = t
        .c_client
        .post(patient_url(&app, p, "/entries"))
        .json(
            &json!({ "category": "notice", "priority": "info", "body": "境界の返信",
                       "reply_to": t.b_entries[0] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "replying");
    let reply = Uuid::parse_str(json_of(response).await["id"].as_str().unwrap()).unwrap();
    let good_reply = post_note(&app, &t.b_client, p, "info", "境界の記録 その四").await;
    let response = t
        .b_client
        .post(patient_url(&app, p, "/consents"))
        .json(&json!({
            "signer": { "kind": "patient" },
            "signed_on": "2026-11-20",
            "scope": "在宅医療のため、ケアチームの施設間で連絡帳を共有すること",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "a second consent");
    let consents = get_json(&t.b_client, &patient_url(&app, p, "/consents")).await;
    let consent_ids: Vec<Uuid> = consents
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Uuid::parse_str(c["id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(consent_ids.len(), 2);
    let detail = get_json(
        &t.b_client,
        &patient_url(&app, p, &format!("/entries/{}", t.b_entries[0])),
    )
    .await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let mut su = owner(&app).await;
    let first_version: Uuid = sqlx::query_scalar(
        "SELECT id FROM entry_versions WHERE entry_id = $1 ORDER BY version LIMIT 1",
    )
    .bind(t.b_entries[0])
    .fetch_one(&mut su)
    .await
    .unwrap();

    // The corruption: one value in each listing.
    let broken_entry = t.b_entries[1];
    flip(&mut su, "patients", "name_enc", broken_patient).await;
    flip(&mut su, "entries", "body_enc", broken_entry).await;
    flip(&mut su, "entry_versions", "body_enc", first_version).await;
    swap(&mut su, "entries", "body_enc", good_reply, reply).await;
    flip(&mut su, "consents", "details_enc", consent_ids[0]).await;

    // The patient list and the name search (blind index): the broken patient is a marker.
    let list = get_json(&t.b_client, &app.url("/api/v1/patients")).await;
    assert_eq!(unreadable_ids(&list), [broken_patient.to_string()]);
    let good = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == json!(p.to_string()))
        .expect("the other patient is listed");
    assert_eq!(good["name"], "境界 花子");
    let found = get_json(
        &t.b_client,
        &app.url("/api/v1/patients?q=%E3%83%8F%E3%82%BD%E3%83%B3"),
    )
    .await;
    assert_eq!(
        unreadable_ids(&found),
        [broken_patient.to_string()],
        "by name"
    );
    let html = get_html(&t.b_client, &app.url("/patients")).await;
    assert_marker(&html, broken_patient, "the patient list");
    assert!(html.contains("境界 花子"), "the other patient is shown");
    let response = t
        .b_client
        .get(patient_url(&app, broken_patient, ""))
        .send()
        .await
        .unwrap();
    let f = failure(response).await;
    assert_eq!((f.status, f.code.as_str()), (409, "unreadable"), "{f:?}");
    assert!(f.message.starts_with("この記録は判読できません"), "{f:?}");
    assert!(f.message.contains(&broken_patient.to_string()), "{f:?}");

    let html = get_html(
        &t.b_client,
        &app.url(&format!("/patients/{broken_patient}/notebook")),
    )
    .await;
    assert!(
        html.contains("判読できない氏名 / unreadable name"),
        "the notebook of a patient whose name is unreadable still opens"
    );

    // The timeline, in both facilities that share the patient, JSON and portal.
    for (client, who) in [(&t.b_client, "B"), (&t.c_client, "C")] {
        let page = get_json(client, &patient_url(&app, p, "/entries")).await;
        let entries = &page["entries"];
        let mut broken = unreadable_ids(entries);
        broken.sort();
        let mut expected = vec![broken_entry.to_string(), reply.to_string()];
        expected.sort();
        assert_eq!(broken, expected, "{who}'s timeline");
        let bodies: Vec<&str> = entries
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["body"].as_str())
            .collect();
        assert_eq!(
            bodies,
            [
                "境界の記録 その四",
                "訪問看護の記録",
                "境界の記録 その一(修正)"
            ],
            "{who}: the other entries intact"
        );
        let html = get_html(client, &app.url(&format!("/patients/{p}/notebook"))).await;
        assert_marker(&html, broken_entry, &format!("{who}'s notebook page"));
        assert!(
            html.contains("訪問看護の記録"),
            "{who}: the other entries shown"
        );
    }

    // The notebook search: the unsearchable entry is listed as unreadable, the matches intact.
    let found = get_json(
        &t.b_client,
        &patient_url(&app, p, "/entries/search?q=%E5%A2%83%E7%95%8C"),
    )
    .await;
    let ids = unreadable_ids(&found);
    assert!(ids.contains(&broken_entry.to_string()), "{found}");
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["body"] == "境界の記録 その一(修正)"),
        "{found}"
    );
    let html = get_html(
        &t.b_client,
        &app.url(&format!(
            "/patients/{p}/notebook/search?q=%E5%A2%83%E7%95%8C"
        )),
    )
    .await;
    assert_marker(&html, broken_entry, "the search page");

    // An entry's history and replies.
    let detail = get_json(
        &t.c_client,
        &patient_url(&app, p, &format!("/entries/{}", t.b_entries[0])),
    )
    .await;
    assert_eq!(detail["entry"]["body"], "境界の記録 その一(修正)");
    assert_eq!(
        unreadable_ids(&detail["versions"]),
        [first_version.to_string()]
    );
    assert_eq!(
        detail["versions"][1]["body"], "境界の記録 その一(修正)",
        "the current version intact"
    );
    assert_eq!(unreadable_ids(&detail["replies"]), [reply.to_string()]);
    let html = get_html(
        &t.c_client,
        &app.url(&format!("/patients/{p}/entries/{}", t.b_entries[0])),
    )
    .await;
    assert_marker(&html, first_version, "the history");
    assert_marker(&html, reply, "the replies");

    // The broken entry read on its own: a clear refusal naming it.
    let response = t
        .c_client
        .get(patient_url(&app, p, &format!("/entries/{broken_entry}")))
        .send()
        .await
        .unwrap();
    let f = failure(response).await;
    assert_eq!((f.status, f.code.as_str()), (409, "unreadable"), "{f:?}");
    assert!(f.message.contains(&broken_entry.to_string()), "{f:?}");

    // The consents.
    let consents = get_json(&t.b_client, &patient_url(&app, p, "/consents")).await;
    assert_eq!(unreadable_ids(&consents), [consent_ids[0].to_string()]);
    assert_eq!(consents[1]["id"], json!(consent_ids[1].to_string()));
    assert_eq!(consents[1]["signer"], "family", "{consents}");
    let html = get_html(&t.b_client, &app.url(&format!("/patients/{p}"))).await;
    assert_marker(&html, consent_ids[0], "the patient page's consents");

    // The export refuses, naming every broken item; nothing is sent.
    for format in ["json", "pdf"] {
        let response = t
            .c_client
            .get(patient_url(&app, p, &format!("/export.{format}")))
            .send()
            .await
            .unwrap();
        let f = failure(response).await;
        if format == "pdf" && f.code == "no_pdf_font" {
            continue;
        }
        assert_eq!(
            (f.status, f.code.as_str()),
            (409, "conflict"),
            "{format}: {f:?}"
        );
        assert!(f.message.starts_with("判読できない記録があるため"), "{f:?}");
        for id in [broken_entry, reply, first_version] {
            assert!(
                f.message.contains(&id.to_string()),
                "{format} names {id}: {f:?}"
            );
        }
    }

    // Audited: the reads with the unreadable IDs, the refused export.
    let b_audit = audit_of(&app, &t.b_client).await;
    let read = b_audit
        .iter()
        .find(|r| r["action"] == "notebook.read")
        .expect("the timeline read is audited");
    assert_eq!(read["outcome"], "success");
    let audited: Vec<&str> = read["details"]["unreadable"]
        .as_array()
        .expect("the unreadable IDs")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        audited.contains(&broken_entry.to_string().as_str()),
        "{read}"
    );
    let search = b_audit
        .iter()
        .find(|r| r["action"] == "patient.search")
        .expect("the patient search is audited");
    assert_eq!(
        search["details"]["unreadable"],
        json!([broken_patient.to_string()])
    );
    let refused_read = b_audit
        .iter()
        .find(|r| r["action"] == "patient.read" && r["outcome"] == "denied")
        .expect("the refused patient read is audited");
    assert_eq!(
        refused_read["details"]["unreadable"],
        json!(broken_patient.to_string())
    );
    let c_audit = audit_of(&app, &t.c_client).await;
    let export = c_audit
        .iter()
        .find(|r| r["action"] == "notebook.export")
        .expect("the refused export is audited");
    assert_eq!(export["outcome"], "denied", "{export}");
    assert!(
        export["details"]["unreadable"]
            .as_array()
            .unwrap()
            .contains(&json!(broken_entry.to_string())),
        "{export}"
    );

    // The platform operators: one alert per broken value and facility that met it, however
    // many reads found it (they count as occurrences), and nothing of the content.
    let alerts = unreadable_alerts(&app, &operator).await;
    let mut raised: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            let d = &a["details"];
            (
                a["facility_id"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}.{}/{}",
                    d["table"].as_str().unwrap_or_default(),
                    d["column"].as_str().unwrap_or_default(),
                    d["row"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect();
    raised.sort();
    let (b, c) = (t.b.id.as_uuid().to_string(), t.c.id.as_uuid().to_string());
    let mut expected = vec![
        (b.clone(), format!("patients.name_enc/{broken_patient}")),
        (b.clone(), format!("entries.body_enc/{broken_entry}")),
        (c.clone(), format!("entries.body_enc/{broken_entry}")),
        (b.clone(), format!("entries.body_enc/{reply}")),
        (c.clone(), format!("entries.body_enc/{reply}")),
        // A history value is bound to (entry, version) (ADR 0016): the alert names the entry.
        (
            c.clone(),
            format!("entry_versions.body_enc/{}", t.b_entries[0]),
        ),
        (
            b.clone(),
            format!("consents.details_enc/{}", consent_ids[0]),
        ),
    ];
    expected.sort();
    assert_eq!(raised, expected, "one alert per value and facility");
    let name_alert = alerts
        .iter()
        .find(|a| a["details"]["table"] == "patients")
        .unwrap();
    assert!(
        name_alert["occurrences"].as_i64().unwrap() >= 4,
        "list, search, page and direct read counted on one alert: {name_alert}"
    );
    let text = serde_json::to_string(&alerts).unwrap();
    for secret in ["破損", "境界", "ハソン"] {
        assert!(!text.contains(secret), "an alert holds no content");
    }
}
