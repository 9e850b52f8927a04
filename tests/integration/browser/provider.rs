//! Sign-in through the facility's OpenID provider in the browser: the sign-in page's provider
//! form, the trip through a real provider and back, signed in at home; sign-out through the
//! provider's logout; and the facility admin's provider page on a phone.

use crate::oidc::{federated, link};

use super::*;

#[tokio::test]
async fn staff_sign_in_through_the_facilitys_provider_in_the_browser() {
    let f = federated(FACILITY_CODE, "pre_linked").await;
    let nurse = f
        .app
        .seed_staff(&f.facility, LOGIN, StaffRole::Staff, Profession::Nurse)
        .await;
    link(&f, nurse.id, "alice-sub").await;
    f.provider.next_login("alice-sub").await;
    let issuer = f.provider.issuer.clone();
    in_browser(&f.app, |page| async move {
        page.goto("/login").await;
        assert_accessible_on_a_phone(&page, "the sign-in page").await;
        let field = page.wait_for("#provider_facility_code").await;
        field
            .send_keys(FACILITY_CODE)
            .await
            .expect("typing the code");
        page.click("form[action='/login/provider'] button[type=submit]")
            .await;
        // Off to the provider and back, signed in at home.
        page.wait_for(LOGOUT_FORM).await;
        assert_eq!(page.path().await, "/");
        page.wait_for_text(DISPLAY_NAME).await;
        assert!(page.has_session_cookie().await);

        // Signing out ends our session and goes through the provider's logout.
        page.click(&format!("{LOGOUT_FORM} button[type=submit]"))
            .await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let url = page.client.current_url().await.expect("a URL").to_string();
            if url.starts_with(&issuer) || page.path().await == "/login" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never left: {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        page.goto("/").await;
        page.wait_for(LOGIN_FORM).await;
        assert_eq!(page.path().await, "/login", "signed out");
    })
    .await;
}

#[tokio::test]
async fn the_admins_provider_page_on_a_phone() {
    let f = federated(FACILITY_CODE, "just_in_time").await;
    // One account waiting for approval, for the page to show.
    f.provider.next_login("bob-sub").await;
    let back =
        crate::oidc::provider_sign_in(&f.app, &renrakucho_testkit::new_client(), FACILITY_CODE)
            .await;
    assert_eq!(back.status(), 403);
    in_browser(&f.app, |page| async move {
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, "admin", FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;
        page.goto("/admin/identity-provider").await;
        page.wait_for("#provider-state").await;
        page.wait_for_text("有効").await;
        page.wait_for_text("bob").await;
        assert_accessible_on_a_phone(&page, "the identity provider page").await;
        page.screenshot("identity-provider").await;
        // Approving from the page: the waiting list empties.
        page.click("form[action='/admin/identity-provider/approve'] button[type=submit]")
            .await;
        page.wait_for_text("保存しました").await;
        page.wait_for_text("ありません").await;
    })
    .await;
}
