//! Links are per facility: one provider serving two facilities (a hospital group) signs the same
//! subject in as a different account in each, each link made by that facility's admin; a link
//! in facility A never opens facility B, and an admin cannot link another facility's staff.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::{new_client, spawn_app};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{enable_provider, provider_sign_in, refusals, start_provider};

#[tokio::test]
async fn one_provider_two_facilities_one_link_each() {
    let app = spawn_app().await;
    let a = app.seed_facility("GROUP-A", FacilityKind::Clinic).await;
    let b = app.seed_facility("GROUP-B", FacilityKind::Pharmacy).await;
    for place in [&a, &b] {
        app.seed_staff(place, "admin", StaffRole::FacilityAdmin, Profession::Doctor)
            .await;
    }
    let a_nurse = app
        .seed_staff(&a, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let b_pharmacist = app
        .seed_staff(&b, "pharmacist", StaffRole::Staff, Profession::Pharmacist)
        .await;
    let provider = start_provider(&app, &["group-a", "group-b"]).await;
    let a_admin = app.client_for(&a, "admin").await;
    let b_admin = app.client_for(&b, "admin").await;
    enable_provider(&app, &a_admin, &provider.issuer, "group-a", "pre_linked").await;
    enable_provider(&app, &b_admin, &provider.issuer, "group-b", "pre_linked").await;

    let linked = a_admin
        .post(app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            a_nurse.id.as_uuid()
        )))
        .json(&json!({ "subject": "alice-sub" }))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 201);
    // B's admin cannot link A's staff: they do not exist in B.
    let across = b_admin
        .post(app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            a_nurse.id.as_uuid()
        )))
        .json(&json!({ "subject": "mallory-sub" }))
        .send()
        .await
        .unwrap();
    assert_eq!(across.status(), 404);

    provider.next_login("alice-sub").await;
    let client = new_client();
    let back = provider_sign_in(&app, &client, &a.code).await;
    assert_eq!(back.status(), 303);
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], a_nurse.id.as_uuid().to_string());

    // The same subject at B, where nobody linked it: refused, B's chain says so.
    provider.next_login("alice-sub").await;
    let client = new_client();
    let back = provider_sign_in(&app, &client, &b.code).await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401, "A's link does not open B");
    assert_eq!(refusals(&app, &b).await, ["not_linked"]);

    // B links the subject to its own pharmacist: a different account there.
    let linked = b_admin
        .post(app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            b_pharmacist.id.as_uuid()
        )))
        .json(&json!({ "subject": "alice-sub" }))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 201);
    provider.next_login("alice-sub").await;
    let client = new_client();
    assert_eq!(provider_sign_in(&app, &client, &b.code).await.status(), 303);
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], b_pharmacist.id.as_uuid().to_string());
    assert_eq!(me["facility"]["code"], "GROUP-B");

    // Each admin lists only their facility's links; a second link of the same subject in one
    // facility is refused.
    let listed: Vec<Value> = a_admin
        .get(app.url("/api/v1/facility/identity-links"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["staff_id"], a_nurse.id.as_uuid().to_string());
    let twice = a_admin
        .post(app.url(&format!(
            "/api/v1/staff/{}/identity-links",
            a_nurse.id.as_uuid()
        )))
        .json(&json!({ "subject": "bob-sub" }))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 409, "one subject per account and issuer");
}
