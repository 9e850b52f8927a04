//! A first sign-in with a password someone else chose: the person is taken to the password
//! page, refused with the rule they broke, changes it, then sets up an authenticator app (an
//! administrator must), and goes on; the next sign-in asks for the app's code.

use renrakucho_core::{DisplayName, LoginId, Password};
use renrakucho_server::admin_commands::{self, StaffToIssue};

use super::*;

const NEW_PASSWORD: &str = "Umegaoka-7-kaidan-no-neko";

/// Types `fields` (by id) into the password form and sends it.
async fn send_password_form(page: &Page, fields: [(&str, &str); 3]) {
    for (id, text) in fields {
        let field = page.wait_for(&format!("#{id}")).await;
        field.clear().await.expect("clearing a field");
        field.send_keys(text).await.expect("typing into a field");
    }
    page.click("form[action='/account/password'] button[type=submit]")
        .await;
}

#[tokio::test]
async fn a_first_sign_in_leads_to_changing_the_password_on_a_phone() {
    let app = spawn_app().await;
    let clinic = app.seed_facility(FACILITY_CODE, FacilityKind::Clinic).await;
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).expect("a password");
    admin_commands::create_staff(
        &app.db,
        &app.server_hasher,
        &clinic,
        StaffToIssue {
            login_id: LoginId::parse(LOGIN).expect("a login ID"),
            name: DisplayName::parse(DISPLAY_NAME).expect("a name"),
            role: StaffRole::FacilityAdmin,
            profession: Profession::Doctor,
            password: &password,
            password_must_change: true,
        },
    )
    .await
    .expect("an account whose password was chosen for its owner");
    in_browser(&app, |page| async move {
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, LOGIN, FIXTURE_PASSWORD).await;
        page.wait_for("#password-required").await;
        assert_eq!(page.path().await, "/account/password");
        assert_accessible_on_a_phone(&page, "the password page").await;
        page.screenshot("password").await;

        // Any other page sends the person back here.
        page.goto("/patients").await;
        page.wait_for("#password-required").await;
        assert_eq!(page.path().await, "/account/password");

        send_password_form(
            &page,
            [
                ("current_password", FIXTURE_PASSWORD),
                ("new_password", "password12345"),
                ("new_password_again", "password12345"),
            ],
        )
        .await;
        let alert = page.wait_for("#password-error").await;
        let message = alert.text().await.expect("the alert's text");
        assert!(
            message.starts_with("よく使われるパスワード"),
            "the rule, in Japanese first: {message}"
        );
        assert_eq!(page.value_of("new_password").await, "", "never sent back");
        assert_eq!(
            page.js("return document.querySelector(\"form[action='/account/password']\").getAttribute('aria-describedby')")
                .await,
            "password-error",
            "the form points at the error"
        );

        send_password_form(
            &page,
            [
                ("current_password", FIXTURE_PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("new_password_again", NEW_PASSWORD),
            ],
        )
        .await;
        page.wait_for("#password-done").await;

        // An administrator must set up a second factor before anything else.
        page.goto("/patients").await;
        page.wait_for("#second-factor-required").await;
        assert_eq!(page.path().await, "/account/second-factor");
        page.click("form[action='/account/second-factor/begin'] button[type=submit]")
            .await;
        let secret = page.wait_for("#totp-secret").await.text().await.unwrap();
        assert!(
            page.js("return document.querySelector('figure.qr svg') !== null").await
                == Value::Bool(true),
            "the QR code, drawn by the server"
        );
        assert_accessible_on_a_phone(&page, "the authenticator set-up").await;
        page.screenshot("second-factor").await;
        let secret = renrakucho_identity::totp::secret_from_base32(&secret).expect("the key");
        let step = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / renrakucho_identity::totp::STEP_SECONDS;
        let field = page.wait_for("#one_time_code").await;
        field.send_keys(&secret.code_at(step)).await.unwrap();
        page.click("form[action='/account/second-factor/confirm'] button[type=submit]")
            .await;
        let codes = page.wait_for("#recovery-codes").await.text().await.unwrap();
        assert_eq!(codes.lines().count(), 10, "ten recovery codes: {codes}");

        page.goto("/patients").await;
        page.wait_for_text("対象者").await;
        assert_eq!(page.path().await, "/patients", "free to go on");

        // The next sign-in asks for the app's code after the password.
        page.goto("/").await;
        page.click(&format!("{LOGOUT_FORM} button[type=submit]"))
            .await;
        page.wait_for(LOGIN_FORM).await;
        for (id, text) in [
            ("facility_code", FACILITY_CODE),
            ("login_id", LOGIN),
            ("password", NEW_PASSWORD),
        ] {
            page.wait_for(&format!("#{id}")).await.send_keys(text).await.unwrap();
        }
        page.click(&format!("{LOGIN_FORM} button[type=submit]"))
            .await;
        page.wait_for("#one_time_code").await;
        assert_eq!(page.path().await, "/login/code");
        assert_accessible_on_a_phone(&page, "the code page").await;
        page.screenshot("login-code").await;
        page.enter_code(&secret.code_at(step + 1)).await;
        page.wait_for(LOGOUT_FORM).await;
        assert_eq!(page.path().await, "/");

        // Home leads to the person's second factor, set up now.
        page.click("a[href='/account/second-factor']").await;
        page.wait_for("#second-factor-on").await;
        assert_accessible_on_a_phone(&page, "the second factor's page").await;
    })
    .await;
}
