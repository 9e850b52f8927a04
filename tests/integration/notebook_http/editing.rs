//! Edits with optimistic concurrency and a kept history; who may edit and withdraw (each
//! refusal audited); a withdrawn entry hidden from the timeline and kept in its history.

use super::*;

/// Refusals of `action` on the patient in a facility's audit log.
fn denied(records: &[Value], action: &str, patient: Uuid) -> usize {
    records
        .iter()
        .filter(|r| {
            r["action"] == action
                && r["outcome"] == "denied"
                && r["target_id"] == patient.to_string()
        })
        .count()
}

/// Edits `entry` from `expected_version` (200); the new version number.
async fn edited(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    entry: &str,
    expected_version: i64,
    body: &str,
) -> i64 {
    let response = edit(
        app,
        client,
        patient,
        entry,
        json!({ "expected_version": expected_version, "category": "treatment", "body": body }),
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "editing from version {expected_version}"
    );
    json_of(response).await["version"].as_i64().unwrap()
}

/// The entry as the author's edit left it: version 2 of 2.
fn still_the_second_version(shown: &Value) {
    assert_eq!(shown["entry"]["version"], 2);
    assert_eq!(shown["entry"]["body"], "修正後の本文");
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
}

/// The member station's nurse and administrator may not edit or withdraw the clinic nurse's
/// `entry` (at version 2), nor may the clinic's nurse edit the clinic doctor's entry; nothing
/// changes, and each refusal is in the audit log of the facility that tried.
async fn only_the_author_and_the_administrator_edit(app: &TestApp, net: &Net, entry: &str) {
    let p = net.patient;
    let v2 = json!({ "expected_version": 2, "category": "treatment", "body": "他人による修正" });
    forbidden(
        edit(app, &net.member_c, p, entry, v2.clone()).await,
        "a member facility's nurse editing",
    )
    .await;
    forbidden(
        edit(app, &net.station_admin_c, p, entry, v2.clone()).await,
        "another facility's administrator editing",
    )
    .await;
    let doctors = note(app, &net.doctor_c, p, "instruction", "info", "医師の指示").await;
    forbidden(
        edit(
            app,
            &net.nurse_c,
            p,
            &doctors,
            json!({ "expected_version": 1, "category": "instruction", "body": "看護師が修正" }),
        )
        .await,
        "a nurse of the same clinic editing the doctor's entry",
    )
    .await;
    forbidden(
        withdraw(app, &net.member_c, p, entry, "別施設から取り下げ").await,
        "a member facility's nurse withdrawing",
    )
    .await;
    still_the_second_version(&detail(app, &net.doctor_c, p, entry).await);
    assert_eq!(
        detail(app, &net.doctor_c, p, &doctors).await["entry"]["version"],
        1
    );
    // Each refusal is in the audit log of the facility that tried.
    let station = audit_of(app, &net.station_admin_c).await;
    assert_eq!(
        denied(&station, "entry.edit", p),
        2,
        "the station's two edits"
    );
    assert_eq!(
        denied(&station, "entry.withdraw", p),
        1,
        "the station's withdrawal"
    );
    let clinic = audit_of(app, &net.doctor_c).await;
    assert_eq!(
        denied(&clinic, "entry.edit", p),
        1,
        "the clinic nurse's edit"
    );
}

#[tokio::test]
async fn edits_keep_every_version_and_stale_or_foreign_ones_are_refused() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let entry = note(&app, &net.nurse_c, p, "treatment", "info", "初回の本文").await;

    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &entry,
        json!({ "expected_version": 1, "category": "treatment", "priority": "reply_requested",
                "body": "修正後の本文" }),
    )
    .await;
    assert_eq!(response.status(), 200, "the author edits");
    let saved = json_of(response).await;
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["body"], "修正後の本文");
    assert_eq!(saved["priority"], "reply_requested");
    let shown = detail(&app, &net.member_c, p, &entry).await;
    let versions = shown["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["body"], "初回の本文");
    assert_eq!(versions[0]["editor_name"], NURSE);
    assert_eq!(versions[0]["priority"], "info");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["body"], "修正後の本文");
    assert_eq!(versions[1]["editor_name"], NURSE);
    assert_eq!(versions[1]["editor_facility"], net.clinic_id());
    assert_eq!(shown["entry"]["version"], 2);

    // A second edit from version 1: 409 with the current entry, nothing changed.
    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &entry,
        json!({ "expected_version": 1, "category": "treatment", "body": "古い版からの修正" }),
    )
    .await;
    assert_eq!(response.status(), 409, "a stale edit");
    let stale = json_of(response).await;
    assert_eq!(stale["error"]["code"], "stale_version");
    assert_eq!(stale["error"]["field"], "expected_version");
    assert_eq!(stale["current"]["id"], entry.as_str());
    assert_eq!(stale["current"]["version"], 2);
    assert_eq!(stale["current"]["body"], "修正後の本文");
    still_the_second_version(&detail(&app, &net.doctor_c, p, &entry).await);

    // Nobody but the author and the author's facility administrator edits.
    only_the_author_and_the_administrator_edit(&app, &net, &entry).await;

    // The clinic's administrator edits its nurse's entry.
    let v3 = edited(&app, &net.doctor_c, p, &entry, 2, "管理者による修正").await;
    assert_eq!(v3, 3, "the facility administrator edits");
    let shown = detail(&app, &net.nurse_c, p, &entry).await;
    let editors: Vec<&str> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["editor_name"].as_str().unwrap())
        .collect();
    assert_eq!(editors, vec![NURSE, NURSE, DOCTOR]);
    assert_eq!(shown["entry"]["author_name"], NURSE, "the author stays");
}

#[tokio::test]
async fn withdrawal_hides_an_entry_from_the_timeline_and_keeps_its_history() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    // An entry of the nurse with three versions (the last by the clinic's administrator), and
    // the doctor's own.
    let entry = note(&app, &net.nurse_c, p, "treatment", "info", "初回の本文").await;
    edited(&app, &net.nurse_c, p, &entry, 1, "修正後の本文").await;
    edited(&app, &net.doctor_c, p, &entry, 2, "管理者による修正").await;
    let doctors = note(&app, &net.doctor_c, p, "instruction", "info", "医師の指示").await;

    // A reason is needed; then hidden from the timeline, kept in its history.
    invalid(
        withdraw(&app, &net.nurse_c, p, &entry, "x").await,
        "reason",
        "a one-character reason",
    )
    .await;
    let reason = "別の対象者の記録を誤って入力したため";
    let response = withdraw(&app, &net.nurse_c, p, &entry, reason).await;
    assert_eq!(response.status(), 204, "the author withdraws");
    let ids = timeline_ids(&app, &net.member_c, p, "").await;
    assert_eq!(ids, vec![doctors.clone()], "hidden from the timeline");
    let shown = detail(&app, &net.member_c, p, &entry).await;
    assert!(shown["entry"]["withdrawn_at"].is_string());
    assert_eq!(shown["entry"]["withdrawal_reason"], reason);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 3);
    conflict(
        withdraw(&app, &net.nurse_c, p, &entry, reason).await,
        "withdrawing again",
    )
    .await;
    conflict(
        edit(
            &app,
            &net.nurse_c,
            p,
            &entry,
            json!({ "expected_version": 3, "category": "treatment", "body": "取り下げ後の修正" }),
        )
        .await,
        "editing a withdrawn entry",
    )
    .await;
    conflict(
        try_post(
            &app,
            &net.member_c,
            p,
            &json!({ "category": "notice", "body": "返信", "reply_to": entry }),
        )
        .await,
        "replying to a withdrawn entry",
    )
    .await;
    let shown = detail(&app, &net.doctor_c, p, &entry).await;
    assert_eq!(shown["entry"]["version"], 3);
    assert_eq!(shown["entry"]["body"], "管理者による修正");

    // The clinic's administrator may withdraw its nurse's entry too.
    let nurses = note(&app, &net.nurse_c, p, "notice", "info", "看護師の連絡").await;
    let response = withdraw(&app, &net.doctor_c, p, &nurses, "重複して登録したため").await;
    assert_eq!(
        response.status(),
        204,
        "the facility administrator withdraws"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "").await,
        vec![doctors]
    );
}
