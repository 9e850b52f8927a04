//! Alerts for the platform operators (issue 11): a facility's request raises one in its own
//! name, the operators read and acknowledge them through the API, and the web role can neither
//! read them nor raise one without a genuine tenant context.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::{platform_alerts, Scope};
use renrakucho_testkit::{new_client, spawn_app, FIXTURE_PASSWORD};
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};

use crate::support::{json_of, superuser};

#[tokio::test]
async fn a_facility_raises_an_alert_once_and_the_operators_read_and_acknowledge_it() {
    let app = spawn_app().await;
    let clinic = app
        .seed_facility("ALERT-CLINIC", FacilityKind::Clinic)
        .await;
    app.seed_staff(
        &clinic,
        "alert-admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    app.seed_operator("alert-operator").await;

    // The same alert twice: stored once, counted twice.
    for expected_new in [true, false] {
        let mut tx = app.db.begin(Scope::Facility(clinic.id)).await.unwrap();
        let new = platform_alerts::raise(
            &mut tx,
            "value.unreadable",
            "entries/body_enc/0194",
            json!({ "table": "entries", "column": "body_enc" }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(new, expected_new);
    }

    // A staff member is not an operator.
    let admin = app.client_for(&clinic, "alert-admin").await;
    let response = admin
        .get(app.url("/api/v1/platform/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let operator = new_client();
    let signed_in = app
        .sign_in_with(&operator, None, "alert-operator", FIXTURE_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200);
    let alerts: Value = json_of(
        operator
            .get(app.url("/api/v1/platform/alerts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert["kind"], "value.unreadable");
    assert_eq!(alert["facility_id"], clinic.id.as_uuid().to_string());
    assert_eq!(alert["occurrences"], 2);
    assert_eq!(alert["acknowledged_at"], Value::Null);

    let id = alert["id"].as_str().unwrap();
    let acknowledge = app.url(&format!("/api/v1/platform/alerts/{id}/acknowledge"));
    let response = operator.post(&acknowledge).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let response = operator.post(&acknowledge).send().await.unwrap();
    assert_eq!(response.status(), 404, "an alert is acknowledged once");
    let response = admin.post(&acknowledge).send().await.unwrap();
    assert_eq!(response.status(), 403);

    // Reading and acknowledging are in the platform's audit chain.
    let mut su = superuser(&app).await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE facility_id IS NULL AND action LIKE 'platform.alert%'
          ORDER BY seq",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["platform.alerts.read", "platform.alert.acknowledge"]
    );
}

#[tokio::test]
async fn the_web_role_neither_reads_alerts_nor_raises_one_without_a_tenant_context() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("ALERT-WEB", FacilityKind::Clinic).await;
    let mut tx = app.db.begin(Scope::Facility(clinic.id)).await.unwrap();
    platform_alerts::raise(&mut tx, "value.unreadable", "k", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A leaked runtime URL: no tenant context, no schema private.
    let mut attacker = app.database.runtime_options().connect().await.unwrap();
    let read = sqlx::query("SELECT * FROM private.platform_alerts")
        .fetch_all(&mut attacker)
        .await
        .unwrap_err();
    assert_eq!(
        read.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501")
    );
    let raised = sqlx::query("SELECT raise_platform_alert('value.unreadable', 'forged', '{}')")
        .execute(&mut attacker)
        .await
        .unwrap_err();
    assert_eq!(
        raised.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501")
    );
    attacker.close().await.unwrap();

    let mut su = superuser(&app).await;
    let keys: Vec<String> = sqlx::query_scalar("SELECT dedupe_key FROM private.platform_alerts")
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert_eq!(keys, ["k"]);
}
