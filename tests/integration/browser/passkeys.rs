//! Passkeys in Chromium with a software authenticator: Chrome's virtual authenticator, added
//! through WebDriver's Virtual Authenticators commands (WebAuthn Level 2, §11), which keeps
//! discoverable credentials and verifies the "person" at once. The portal's own script asks it
//! exactly as it would a phone. The app is reached at `localhost` (no browser accepts an IP
//! address as a relying party).

use fantoccini::wd::WebDriverCompatibleCommand;

use super::*;

/// `POST /session/{id}/webauthn/authenticator`: a CTAP2 platform authenticator that keeps
/// discoverable credentials and verifies the user without asking.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// `GET /session/{id}/webauthn/authenticator/{authenticator}/credentials`.
#[derive(Debug)]
struct CredentialsOf(String);

impl WebDriverCompatibleCommand for CredentialsOf {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator/{}/credentials",
            session_id.unwrap_or_default(),
            self.0
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

impl Page {
    /// Gives the browser a virtual authenticator: its ID.
    async fn add_authenticator(&self) -> String {
        let id = self
            .client
            .issue_cmd(AddVirtualAuthenticator)
            .await
            .expect("adding a virtual authenticator");
        id.as_str().expect("an authenticator ID").to_string()
    }

    /// How many credentials the authenticator holds.
    async fn credentials_in(&self, authenticator: &str) -> usize {
        self.client
            .issue_cmd(CredentialsOf(authenticator.to_string()))
            .await
            .expect("listing the authenticator's credentials")
            .as_array()
            .map_or(0, Vec::len)
    }

    /// Signs out from the home page (which has the form).
    async fn sign_out(&self) {
        self.goto("/").await;
        self.click(&format!("{LOGOUT_FORM} button[type=submit]"))
            .await;
        self.wait_for(LOGIN_FORM).await;
    }
}

#[tokio::test]
async fn a_passkey_is_registered_then_signs_in_alone_and_as_the_second_step() {
    let app = app_with_staff().await;
    let at_localhost = app.address.replace("127.0.0.1", "localhost");
    in_browser_at(&app, at_localhost, |page| async move {
        let authenticator = page.add_authenticator().await;
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, LOGIN, FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;

        // Registering: a name, then the button; the authenticator makes the credential.
        page.goto("/account/second-factor").await;
        page.wait_for("#passkey_name")
            .await
            .send_keys("仕事用スマホ")
            .await
            .expect("typing the name");
        page.click("#passkey-begin button[type=submit]").await;
        page.click("#passkey-create-button").await;
        page.wait_for("#passkey-list").await;
        page.wait_for_text("仕事用スマホ").await;
        assert_eq!(page.credentials_in(&authenticator).await, 1);
        assert_accessible_on_a_phone(&page, "the second-factor page with a passkey").await;
        page.js("document.getElementById('passkeys').scrollIntoView(); return null")
            .await;
        page.screenshot("passkeys").await;

        // The same authenticator again: the exclusion list makes it refuse, and the page
        // says so; nothing more is stored.
        page.wait_for("#passkey_name")
            .await
            .send_keys("もう一度")
            .await
            .expect("typing the name");
        page.click("#passkey-begin button[type=submit]").await;
        page.click("#passkey-create-button").await;
        page.wait_for_text("すでに登録されています").await;
        assert_eq!(page.credentials_in(&authenticator).await, 1);
        page.goto("/account/second-factor").await;
        let listed = page
            .js("return document.querySelectorAll('#passkey-list li').length")
            .await;
        assert_eq!(listed, json!(1));

        // Passwordless: the facility code, then the passkey.
        page.sign_out().await;
        page.wait_for("#passkey_facility_code")
            .await
            .send_keys(FACILITY_CODE)
            .await
            .expect("typing the facility code");
        page.click("#passkey-sign-in button[type=submit]").await;
        page.click("#passkey-sign-in-button").await;
        page.wait_for(LOGOUT_FORM).await;
        assert_eq!(page.path().await, "/");
        page.wait_for_text(DISPLAY_NAME).await;

        // After the password, the passkey in place of the app's code.
        page.sign_out().await;
        for (id, text) in [
            ("facility_code", FACILITY_CODE),
            ("login_id", LOGIN),
            ("password", FIXTURE_PASSWORD),
        ] {
            page.wait_for(&format!("#{id}"))
                .await
                .send_keys(text)
                .await
                .expect("typing");
        }
        page.click(&format!("{LOGIN_FORM} button[type=submit]"))
            .await;
        page.click("#passkey-second-step button[type=submit]").await;
        page.wait_for(LOGOUT_FORM).await;
        assert_eq!(page.path().await, "/");
    })
    .await;
}
