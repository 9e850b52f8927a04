//! The notebook's export (第15条): JSON with every version and PDF, audited, for the care team
//! only.

use super::*;

/// A notebook with one entry of each history: edited once (by the nurse), withdrawn (by the
/// nurse), a vital sign (by the member station's nurse). Their IDs, oldest first.
async fn three_histories(app: &TestApp, net: &Net) -> [String; 3] {
    let p = net.patient;
    let edited = note(app, &net.nurse_c, p, "treatment", "info", "処置の記録 初版").await;
    let response = edit(
        app,
        &net.nurse_c,
        p,
        &edited,
        json!({ "expected_version": 1, "category": "treatment", "body": "処置の記録 修正版" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let withdrawn = note(app, &net.nurse_c, p, "notice", "info", "誤記の連絡").await;
    let response = withdraw(app, &net.nurse_c, p, &withdrawn, "誤記のため").await;
    assert_eq!(response.status(), 204);
    let vitals = id_of(
        &post(
            app,
            &net.member_c,
            p,
            json!({ "category": "vitals", "body": "訪問時測定", "vitals": good_vitals() }),
        )
        .await,
    );
    [edited, withdrawn, vitals]
}

/// Asserts the JSON copy: the notice of 第15条, the patient, every entry oldest first with
/// every version, the withdrawn one included.
fn assert_complete_copy(copy: &Value, patient: Uuid, ids: &[String; 3]) {
    let notice = copy["notice"].as_str().unwrap();
    assert!(notice.contains("第15条"), "the notice of 第15条");
    assert_eq!(copy["patient"]["id"], patient.to_string());
    assert_eq!(copy["patient"]["name"], PATIENT_NAME);
    let entries = copy["entries"].as_array().unwrap();
    let listed: Vec<String> = entries.iter().map(id_of).collect();
    assert_eq!(
        listed,
        ids.to_vec(),
        "every entry, oldest first, the withdrawn one included"
    );
    let versions = |i: usize| entries[i]["versions"].as_array().unwrap().clone();
    let edited_versions = versions(0);
    assert_eq!(edited_versions.len(), 2);
    assert_eq!(edited_versions[0]["body"], "処置の記録 初版");
    assert_eq!(edited_versions[1]["body"], "処置の記録 修正版");
    assert_eq!(entries[0]["body"], "処置の記録 修正版");
    assert_eq!(entries[1]["withdrawal_reason"], "誤記のため");
    assert_eq!(versions(1).len(), 1);
    assert_eq!(entries[2]["vitals"]["systolic_mmhg"], 128);
}

#[tokio::test]
async fn the_notebook_exports_as_json_and_pdf_audited_and_only_for_the_care_team() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let ids = three_histories(&app, &net).await;

    let response = net
        .nurse_c
        .get(patient_url(&app, p, "/export.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "exporting as JSON");
    assert_eq!(header(&response, "content-type"), "application/json");
    let disposition = header(&response, "content-disposition");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains(&format!("notebook-{p}.json")));
    assert_complete_copy(&json_of(response).await, p, &ids);

    let response = net
        .nurse_c
        .get(patient_url(&app, p, "/export.pdf"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "exporting as PDF");
    assert_eq!(header(&response, "content-type"), "application/pdf");
    assert!(header(&response, "content-disposition").starts_with("attachment"));
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));

    // Both exports are in the clinic's audit log, with their format.
    let records = audit_of(&app, &net.doctor_c).await;
    let nurse_id =
        json_of(net.nurse_c.get(app.url("/api/v1/me")).send().await.unwrap()).await["id"].clone();
    assert!(nurse_id.is_string());
    for format in ["json", "pdf"] {
        let record = records
            .iter()
            .find(|r| r["action"] == "notebook.export" && r["details"]["format"] == format)
            .unwrap_or_else(|| panic!("the {format} export is audited"));
        assert_eq!(record["target_id"], p.to_string());
        assert_eq!(record["outcome"], "success");
        assert_eq!(record["actor_id"], nurse_id, "the nurse exported");
    }

    // Nobody else exports: the hospital gets 404, the clinic's clerk 403.
    for rest in ["/export.json", "/export.pdf"] {
        let response = net
            .outsider_c
            .get(patient_url(&app, p, rest))
            .send()
            .await
            .unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital");
        let response = net
            .clerk_c
            .get(patient_url(&app, p, rest))
            .send()
            .await
            .unwrap();
        forbidden(response, "the clerk exporting").await;
    }
}

/// The JSON copy is "complete with every version" (第15条): each version's vital signs
/// included, as the entry's own history shows them.
#[tokio::test]
async fn the_json_export_keeps_the_vital_signs_of_every_version() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let entry = id_of(
        &post(
            &app,
            &net.nurse_c,
            p,
            json!({ "category": "vitals", "body": "朝の測定", "vitals": good_vitals() }),
        )
        .await,
    );
    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &entry,
        json!({ "expected_version": 1, "category": "vitals", "body": "朝の測定 再測定",
                "vitals": { "temperature": { "value": 37.4, "unit": "℃" } } }),
    )
    .await;
    assert_eq!(response.status(), 200);
    // The history as the detail shows it.
    let shown = detail(&app, &net.nurse_c, p, &entry).await;
    assert_eq!(shown["versions"][0]["vitals"]["temperature_c"], 36.8);
    assert_eq!(shown["versions"][1]["vitals"]["temperature_c"], 37.4);

    let copy = json_of(
        net.nurse_c
            .get(patient_url(&app, p, "/export.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let versions = copy["entries"][0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0]["vitals"], shown["versions"][0]["vitals"],
        "version 1's vital signs are in the export"
    );
    assert_eq!(
        versions[1]["vitals"], shown["versions"][1]["vitals"],
        "version 2's vital signs are in the export"
    );
}
