//! A withdrawal of consent sticks (第12条; issue 11 §1, ADR 0014): a member of the care team
//! cannot reopen the notebook with a back-dated form; only the registering facility renews,
//! with the scan of the newly signed form, signed no earlier than the withdrawal; every change
//! reaches the whole care team at once. Each rule is tried through the API and, where it is
//! about data, straight against the database as the web role in the facility's own context.

use std::time::Duration;

use base64::Engine;
use renrakucho_authz::Action;
use renrakucho_store::Scope;
use renrakucho_testkit::{spawn_app, TestApp, PNG_1X1};
use reqwest::Client;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::notebook_http::Live;
use crate::support::{
    audit_of, authorizer_follows, eventually, forbidden, invalid, json_of, patient_url, superuser,
    trio,
};

fn today() -> String {
    time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date()
        .to_string()
}

fn form(signed_on: &str, scan: bool) -> Value {
    let mut body = json!({
        "signer": { "kind": "patient" },
        "signed_on": signed_on,
    });
    if scan {
        body["scan_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(PNG_1X1));
    }
    body
}

async fn post_consent(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    body: Value,
) -> reqwest::Response {
    client
        .post(patient_url(app, patient, "/consents"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The relations a facility holds to the patient, as the database derived them.
async fn relations(app: &TestApp, facility: Uuid, patient: Uuid) -> Vec<String> {
    let mut su = superuser(app).await;
    sqlx::query_scalar(
        "SELECT relation FROM patient_access WHERE facility_id = $1 AND patient_id = $2
          ORDER BY relation",
    )
    .bind(facility)
    .bind(patient)
    .fetch_all(&mut su)
    .await
    .unwrap()
}

async fn feed_kinds(app: &TestApp, client: &Client) -> Vec<String> {
    let feed = json_of(
        client
            .get(app.url("/api/v1/notifications"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    feed.as_array()
        .expect("a list")
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .filter(|k| k.starts_with("consent_"))
        .map(str::to_string)
        .collect()
}

/// Waits for the next live notification of `kind` (others pass by).
async fn live_kind(live: &mut Live, kind: &str) -> Value {
    loop {
        let event = live
            .next(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("a live {kind} notification within five seconds"));
        if event["kind"] == kind {
            return event;
        }
    }
}

/// Inserts a consent as the web role in `facility`'s genuine context, straight in SQL: the
/// database's answer (SQLSTATE and constraint) or the renewal flag it set.
async fn insert_raw(
    app: &TestApp,
    facility: renrakucho_core::FacilityId,
    staff: Uuid,
    registering: Uuid,
    patient: Uuid,
    signed_on: &str,
    scan: bool,
) -> Result<bool, (String, Option<String>)> {
    let mut tx = app.db.begin(Scope::Facility(facility)).await.unwrap();
    let conn = tx.raw_connection_for_tests();
    let result = sqlx::query_scalar::<_, bool>(
        "INSERT INTO consents (id, patient_id, registering_facility_id, facility_id, signer,
                               details_enc, signed_on, scan_object, scan_media_type, scan_size,
                               recorded_by, renewal)
         VALUES (gen_random_uuid(), $1, $2, $3, 'patient', '\\x00', $4::date,
                 CASE WHEN $5 THEN 'consents/x/y' END, CASE WHEN $5 THEN 'image/png' END,
                 CASE WHEN $5 THEN 1 END, $6, false)
         RETURNING renewal",
    )
    .bind(patient)
    .bind(registering)
    .bind(facility.as_uuid())
    .bind(signed_on)
    .bind(scan)
    .bind(staff)
    .fetch_one(&mut *conn)
    .await;
    drop(tx);
    result.map_err(|e| {
        let db = e.as_database_error().expect("a database error");
        (
            db.code().map(|c| c.to_string()).unwrap_or_default(),
            db.constraint().map(str::to_string),
        )
    })
}

#[tokio::test]
async fn a_withdrawal_sticks_until_the_registering_facility_renews_with_a_scan() {
    let app = spawn_app().await;
    let t = trio(&app, "RENEW").await;
    let patient = t.b_patient;
    let entries = patient_url(&app, patient, "/entries");
    let mut c_live = Live::open(&app, &t.c_client).await;
    let mut b_live = Live::open(&app, &t.b_client).await;

    // The registering clinic B records the withdrawal: the nursing station C loses the
    // notebook at once, and is told (live and in its notifications), without content.
    let response = t
        .b_client
        .post(patient_url(&app, patient, "/consents/withdraw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    eventually(&t.c_client, &entries, 404).await;
    let event = live_kind(&mut c_live, "consent_withdrawn").await;
    assert_eq!(event["patient"], patient.to_string());
    assert_eq!(event["priority"], "urgent");
    assert!(
        !crate::support::contains(&c_live.raw, "境界".as_bytes()),
        "no name"
    );
    // Newest first: the withdrawal, then the consent B recorded before C joined.
    assert_eq!(
        feed_kinds(&app, &t.c_client).await,
        ["consent_withdrawn", "consent_recorded"]
    );
    let c_before = relations(&app, t.c.id.as_uuid(), patient).await;
    assert_eq!(c_before, ["member", "withdrawn"]);

    // The member tries to reopen it with a back-dated form, then with a proper one: refused
    // (403, not hidden: it knows the patient), and nothing changes.
    for body in [form("2020-01-01", false), form(&today(), true)] {
        forbidden(
            post_consent(&app, &t.c_client, patient, body).await,
            "a member renewing",
        )
        .await;
    }
    assert_eq!(relations(&app, t.c.id.as_uuid(), patient).await, c_before);
    let status = t.c_client.get(&entries).send().await.unwrap().status();
    assert_eq!(status, 404, "the member still does not read the notebook");
    // The database refuses it on its own, with the member's genuine context.
    let refused = insert_raw(
        &app,
        t.c.id,
        t.c_admin.id.as_uuid(),
        t.b.id.as_uuid(),
        patient,
        &today(),
        true,
    )
    .await;
    assert_eq!(
        refused.unwrap_err().0,
        "42501",
        "row-level security: no `collecting`"
    );

    // The registering facility itself: a renewal needs the scan, and a signing date between
    // the withdrawal and today.
    invalid(
        post_consent(&app, &t.b_client, patient, form(&today(), false)).await,
        "scan",
        "a renewal without the scan",
    )
    .await;
    invalid(
        post_consent(&app, &t.b_client, patient, form("2020-01-01", true)).await,
        "signed_on",
        "a renewal signed before the withdrawal",
    )
    .await;
    let tomorrow = (time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date()
        + time::Duration::days(1))
    .to_string();
    invalid(
        post_consent(&app, &t.b_client, patient, form(&tomorrow, true)).await,
        "signed_on",
        "a renewal signed tomorrow",
    )
    .await;
    // The database on its own: back-dated, without scan, in the future.
    for (signed_on, scan, constraint) in [
        ("2020-01-01", true, "consents_signed_on"),
        (today().as_str(), false, "consents_renewal_scan"),
        (tomorrow.as_str(), true, "consents_signed_on"),
    ] {
        let refused = insert_raw(
            &app,
            t.b.id,
            t.b_admin.id.as_uuid(),
            t.b.id.as_uuid(),
            patient,
            signed_on,
            scan,
        )
        .await
        .unwrap_err();
        assert_eq!(refused, ("23514".to_string(), Some(constraint.to_string())));
    }
    // What the database would record for the registering facility: a renewal, whatever the
    // caller said (`renewal = false` in the statement).
    let flagged = insert_raw(
        &app,
        t.b.id,
        t.b_admin.id.as_uuid(),
        t.b.id.as_uuid(),
        patient,
        &today(),
        true,
    )
    .await;
    assert_eq!(flagged, Ok(true));
    assert_eq!(
        relations(&app, t.c.id.as_uuid(), patient).await,
        c_before,
        "nothing changed"
    );

    // The allowed renewal: the team reads again and is told; the audit log says renewal.
    let response = post_consent(&app, &t.b_client, patient, form(&today(), true)).await;
    assert_eq!(response.status(), 201);
    let created = json_of(response).await;
    assert_eq!(created["renewal"], true);
    authorizer_follows(&app, &t.c, patient, Action::NotebookRead, true).await;
    eventually(&t.c_client, &entries, 200).await;
    let event = live_kind(&mut c_live, "consent_renewed").await;
    assert_eq!(event["patient"], patient.to_string());
    assert!(feed_kinds(&app, &t.c_client)
        .await
        .contains(&"consent_renewed".to_string()));
    let consents = json_of(
        t.b_client
            .get(patient_url(&app, patient, "/consents"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let renewals: Vec<bool> = consents
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["renewal"].as_bool().unwrap())
        .collect();
    assert_eq!(
        renewals,
        [true, false],
        "newest first: the renewal, the original"
    );
    let actions: Vec<String> = audit_of(&app, &t.b_client)
        .await
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .filter(|a| a.starts_with("consent."))
        .collect();
    assert!(
        actions.contains(&"consent.renew".to_string()),
        "{actions:?}"
    );

    // Renewed, the member may record a further form again (not a renewal), but never one
    // signed before the withdrawal.
    invalid(
        post_consent(&app, &t.c_client, patient, form("2020-01-01", false)).await,
        "signed_on",
        "back-dated after a renewal",
    )
    .await;
    let response = post_consent(&app, &t.c_client, patient, form(&today(), false)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(json_of(response).await["renewal"], false);
    // B, the registering facility, hears of C's consent (C does not hear of its own).
    let event = live_kind(&mut b_live, "consent_recorded").await;
    assert_eq!(event["patient"], patient.to_string());
}

#[tokio::test]
async fn the_portal_offers_a_renewal_with_a_required_scan_only_while_withdrawn() {
    let app = spawn_app().await;
    let t = trio(&app, "RENEWP").await;
    let page = format!("/patients/{}", t.b_patient);
    let html = t
        .b_client
        .get(app.url(&page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("同意書を登録"));
    assert!(!html.contains("再同意を登録"));
    let response = t
        .b_client
        .post(patient_url(&app, t.b_patient, "/consents/withdraw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let html = t
        .b_client
        .get(app.url(&page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("再同意を登録"),
        "the form is offered as a renewal"
    );
    assert!(
        html.contains(r#"name="scan" type="file" accept=".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png" required"#),
        "the scan is required"
    );
}
