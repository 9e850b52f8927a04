//! Sign-in and sign-out through the form, the error a person sees, the keyboard path, labels,
//! language and page width.

use super::*;

#[tokio::test]
async fn staff_sign_in_and_out_through_the_form_on_a_phone() {
    let app = app_with_staff().await;
    in_browser(&app, |page| async move {
        page.goto("/").await;
        page.wait_for(LOGIN_FORM).await;
        assert_eq!(page.path().await, "/login", "strangers are sent to sign in");
        assert_eq!(page.js("return document.documentElement.lang").await, "ja");
        let viewport = page
            .js("const m = document.querySelector('meta[name=viewport]'); return m && m.content")
            .await;
        assert!(
            viewport
                .as_str()
                .is_some_and(|c| c.contains("width=device-width")),
            "a viewport meta tag for phones: {viewport}"
        );
        let unlabelled = page
            .js(r#"return [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
                     .filter(e => e.labels.length === 0 || !e.labels[0].textContent.trim())
                     .map(e => e.name || e.id || e.outerHTML)"#)
            .await;
        assert_eq!(unlabelled, json!([]), "every field has a <label for=…>");
        page.screenshot("login").await;

        // Facility codes are not case-sensitive; phones often start with a small letter.
        page.sign_in(&FACILITY_CODE.to_lowercase(), LOGIN, FIXTURE_PASSWORD)
            .await;
        page.wait_for(LOGOUT_FORM).await;
        assert_eq!(page.path().await, "/");
        let text = page.text().await;
        assert!(text.contains(DISPLAY_NAME), "the staff member's name: {text}");
        assert!(text.contains(FACILITY_NAME), "the facility's name: {text}");
        assert!(page.has_session_cookie().await);
        page.screenshot("home").await;

        page.click(&format!("{LOGOUT_FORM} button[type=submit]"))
            .await;
        page.wait_for(LOGIN_FORM).await;
        assert_eq!(page.path().await, "/login", "signing out leads to sign in");
        page.goto("/").await;
        page.wait_for(LOGIN_FORM).await;
        assert_eq!(page.path().await, "/login", "signed out for real");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_shows_an_alert_and_keeps_what_was_typed_except_the_password() {
    let app = app_with_staff().await;
    in_browser(&app, |page| async move {
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, LOGIN, "not the password").await;

        let alert = page.wait_for("[role=alert]").await;
        let message = alert.text().await.expect("the alert's text");
        assert!(
            message.starts_with("施設コード、ユーザーID、またはパスワードが違います"),
            "the alert says what went wrong, in Japanese first: {message}"
        );
        assert_eq!(page.value_of("facility_code").await, FACILITY_CODE);
        assert_eq!(page.value_of("login_id").await, LOGIN);
        assert_eq!(
            page.value_of("password").await,
            "",
            "a password is never sent back"
        );
        assert_eq!(
            page.js("return document.querySelector('form').getAttribute('aria-describedby')")
                .await,
            "login-error",
            "the form points at the error"
        );
        page.screenshot("login-error").await;

        assert!(
            !page.has_session_cookie().await,
            "no session after a failure"
        );
        page.goto("/").await;
        page.wait_for(LOGIN_FORM).await;
        assert_eq!(page.path().await, "/login", "no session after a failure");
    })
    .await;
}

#[tokio::test]
async fn the_form_works_from_the_keyboard_alone() {
    let app = app_with_staff().await;
    in_browser(&app, |page| async move {
        page.goto("/login").await;
        page.wait_for(LOGIN_FORM).await;
        assert_eq!(page.focused().await, "body", "nothing is focused at first");

        // From the top of the page: the skip link, the home link, then the form in order,
        // typing into each field on the way.
        let stops = [
            ("a[href=\"#main\"]", None),
            ("a[href=\"/\"]", None),
            ("#facility_code", Some(FACILITY_CODE)),
            ("#login_id", Some(LOGIN)),
            ("#password", Some(FIXTURE_PASSWORD)),
            ("button[type=submit]", None),
        ];
        for (expected, typed) in stops {
            page.press_key(Key::Tab).await;
            assert_eq!(page.focused().await, expected, "tab order");
            assert!(
                page.focus_is_visible().await,
                "{expected} shows that it has the focus"
            );
            if let Some(text) = typed {
                page.press(text).await;
            }
        }
        assert_eq!(
            page.js("return document.activeElement.form?.getAttribute('action')")
                .await,
            "/login",
            "the button is the sign-in form's"
        );
        assert_eq!(page.value_of("facility_code").await, FACILITY_CODE);
        assert_eq!(page.value_of("login_id").await, LOGIN);

        // Back to the password and Enter there.
        page.press_back_tab().await;
        assert_eq!(page.focused().await, "#password", "Shift+Tab goes back");
        page.press_key(Key::Enter).await;
        // The code page has its field focused: the code is typed straight away, Enter sends it.
        page.wait_for("#one_time_code").await;
        assert_eq!(
            page.focused().await,
            "#one_time_code",
            "the code field has the focus"
        );
        let code = page.codes.code(FACILITY_CODE, LOGIN).await.unwrap();
        page.press(&code).await;
        page.press_key(Key::Enter).await;
        page.wait_for(LOGOUT_FORM).await;
        assert_eq!(page.path().await, "/");
        let text = page.text().await;
        assert!(text.contains(DISPLAY_NAME), "signed in: {text}");
    })
    .await;
}

#[tokio::test]
async fn no_page_scrolls_sideways_on_a_phone() {
    let app = app_with_staff().await;
    in_browser(&app, |page| async move {
        page.goto("/login").await;
        page.wait_for(LOGIN_FORM).await;
        page.assert_fits_the_phone("the sign-in page").await;

        page.sign_in(FACILITY_CODE, LOGIN, "not the password").await;
        page.wait_for("[role=alert]").await;
        page.assert_fits_the_phone("the sign-in error").await;

        page.sign_in(FACILITY_CODE, LOGIN, FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;
        page.assert_fits_the_phone("the home page").await;
    })
    .await;
}
