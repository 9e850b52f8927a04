//! The facility administrator's staff list (issue 16, first part): the facility's accounts
//! with their second factor's state, in the API and the portal, for administrators only; and
//! the reset of a member's second factor from the portal (never another administrator's,
//! never another facility's member). Every reading and reset is audited.

use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::second_factors::{self, Holder};
use renrakucho_store::{audit, Scope};
use renrakucho_testkit::spawn_app;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn the_administrator_lists_the_staff_and_resets_a_members_second_factor() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("ST-A", FacilityKind::Clinic).await;
    let other = app.seed_facility("ST-B", FacilityKind::Pharmacy).await;
    app.seed_staff(
        &clinic,
        "boss",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    let deputy = app
        .seed_staff(
            &clinic,
            "deputy",
            StaffRole::FacilityAdmin,
            Profession::Nurse,
        )
        .await;
    let nurse = app
        .seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let stranger = app
        .seed_staff(&other, "nurse", StaffRole::Staff, Profession::Pharmacist)
        .await;
    let boss = app.client_for(&clinic, "boss").await;
    let nurse_session = app.client_for(&clinic, "nurse").await;

    // The API's list: this facility's accounts only, with the second factor's state.
    let listed: Vec<Value> = boss
        .get(app.url("/api/v1/staff"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logins: Vec<&str> = listed
        .iter()
        .filter_map(|s| s["login_id"].as_str())
        .collect();
    assert_eq!(logins, ["boss", "deputy", "nurse"]);
    assert!(listed.iter().all(|s| s["second_factor_enabled"] == true));
    assert_eq!(
        nurse_session
            .get(app.url("/api/v1/staff"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );

    // The page: a reset for the nurse, none for an administrator; not for the nurse to see.
    let page = boss
        .get(app.url("/admin/staff"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reset = |id: uuid::Uuid| format!("/admin/staff/{id}/second-factor/reset");
    assert!(page.contains(&reset(nurse.id.as_uuid())));
    assert!(!page.contains(&reset(deputy.id.as_uuid())));
    assert_eq!(
        nurse_session
            .get(app.url("/admin/staff"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );

    // Another facility's member, and another administrator: refused, nothing changed.
    for (id, expected) in [
        (stranger.id.as_uuid(), StatusCode::NOT_FOUND),
        (deputy.id.as_uuid(), StatusCode::FORBIDDEN),
    ] {
        let token = app.form_token(&boss, "/admin/staff").await;
        let response = boss
            .post(app.url(&reset(id)))
            .form(&[("authenticity_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let mut tx = app.db.begin(Scope::Facility(other.id)).await.unwrap();
    assert!(second_factors::get(&mut tx, Holder::Staff(stranger.id))
        .await
        .unwrap()
        .any());
    drop(tx);

    // The nurse's: reset, their session ended, audited.
    let token = app.form_token(&boss, "/admin/staff").await;
    let response = boss
        .post(app.url(&reset(nurse.id.as_uuid())))
        .form(&[("authenticity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/admin/staff?reset=1");
    let mut tx = app.db.begin(Scope::Facility(clinic.id)).await.unwrap();
    assert!(!second_factors::get(&mut tx, Holder::Staff(nurse.id))
        .await
        .unwrap()
        .any());
    let records = audit::recent(&mut tx, 100).await.unwrap();
    drop(tx);
    assert_eq!(
        nurse_session
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(records.iter().any(|r| r.action == "staff.list"));
    assert!(records.iter().any(|r| r.action == "account.second_factor"
        && r.details["event"] == "reset"
        && r.target_id == Some(nurse.id.as_uuid())));
}
