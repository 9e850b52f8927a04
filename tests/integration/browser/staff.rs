//! The facility administrator's staff page on a phone: listed, labelled, and a member's second
//! factor reset from it.

use super::*;

#[tokio::test]
async fn the_administrator_resets_a_members_second_factor_from_the_staff_page() {
    let app = spawn_app().await;
    let clinic = app.seed_facility(FACILITY_CODE, FacilityKind::Clinic).await;
    app.seed_staff(
        &clinic,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
    )
    .await;
    app.seed_staff(&clinic, LOGIN, StaffRole::Staff, Profession::Nurse)
        .await;
    in_browser(&app, |page| async move {
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, "admin", FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;
        page.click("a[href='/admin/staff']").await;
        page.wait_for("#staff-list").await;
        assert_accessible_on_a_phone(&page, "the staff page").await;
        page.screenshot("staff").await;
        // Only the member has a reset (the administrator's own is not reset here); the
        // password was given just now, so it acts at once.
        let forms = page
            .js("return document.querySelectorAll('#staff-list form').length")
            .await;
        assert_eq!(forms, json!(1));
        page.click("#staff-list form button[type=submit]").await;
        page.wait_for("#staff-done").await;
        let forms = page
            .js("return document.querySelectorAll('#staff-list form').length")
            .await;
        assert_eq!(forms, json!(0), "nothing left to reset");
    })
    .await;
}
