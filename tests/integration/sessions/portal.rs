//! The portal's side of sessions: strangers sent to the sign-in form, signing in (the password,
//! then the authenticator's code) and out through forms, the form re-rendered after bad
//! credentials, and forms that refuse a missing, foreign or tossed CSRF token.

use super::*;

fn assert_redirect(response: &reqwest::Response, to: &str) {
    assert!(
        matches!(response.status().as_u16(), 302 | 303 | 307),
        "expected a redirect to {to}, got {}",
        response.status()
    );
    assert_eq!(response.headers()[LOCATION], to);
}

async fn html(response: reqwest::Response) -> String {
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    response.text().await.unwrap()
}

async fn post_login(app: &TestApp, code: &str, login: &str, password: &str) -> reqwest::Response {
    let token = app.form_token(&app.client, "/login").await;
    app.client
        .post(app.url("/login"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("facility_code", code),
            ("login_id", login),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_portal_sends_strangers_to_a_japanese_login_form() {
    let app = spawn_app().await;
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");

    let page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let body = html(page).await;
    for label in ["施設コード", "ユーザーID", "パスワード"] {
        assert!(body.contains(label), "the form lacks the label {label}");
    }
    assert!(body.contains(r#"action="/login""#));
    for field in ["facility_code", "login_id", "password"] {
        assert!(
            body.contains(&format!(r#"name="{field}""#)),
            "no {field} input"
        );
    }
    assert!(body.contains(r#"type="password""#));
}

#[tokio::test]
async fn the_portal_signs_in_shows_the_name_and_signs_out() {
    let app = spawn_app().await;
    clinic(&app, "PORTAL-1", &["alice"]).await;

    let submitted = post_login(&app, "portal-1", "alice", FIXTURE_PASSWORD).await;
    // The password was right: the code page follows, and nothing opens before it.
    assert_redirect(&submitted, "/login/code");
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");
    let token = app.form_token(&app.client, "/login/code").await;
    let code = app.one_time_code("PORTAL-1", "alice").await.unwrap();
    let submitted = app
        .client
        .post(app.url("/login/code"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("one_time_code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_redirect(&submitted, "/");
    let id = session_id(&submitted);

    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let body = html(home).await;
    assert!(
        body.contains(DISPLAY_NAME),
        "the home page does not greet the user"
    );
    assert!(body.contains("PORTAL-1"));
    // Signed in, the login page sends you home.
    let login_page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_redirect(&login_page, "/");

    // Signing out is a form too: without its token nothing happens.
    let forged = app.client.post(app.url("/logout")).send().await.unwrap();
    assert!(forged.status().is_client_error(), "{}", forged.status());
    assert_eq!(stored_sessions(&app, &id).await, 1);
    let token = app.form_token(&app.client, "/").await;
    let logout = app
        .client
        .post(app.url("/logout"))
        .form(&[("authenticity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_redirect(&logout, "/login");
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");
    assert_eq!(stored_sessions(&app, &id).await, 0);
    assert_eq!(
        status_with_cookie(&app, &id).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_portal_re_renders_the_form_after_bad_credentials() {
    let app = spawn_app().await;
    clinic(&app, "PORTAL-2", &["alice"]).await;
    let wrong = "wrong password 123";
    for (code, login) in [
        ("PORTAL-2", "alice"),
        ("PORTAL-2", "nobody"),
        ("NO-SUCH-9", "alice"),
    ] {
        let response = post_login(&app, code, login, wrong).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{code}/{login}"
        );
        assert!(session_cookie(&response).is_none());
        let body = html(response).await;
        assert!(
            body.contains("施設コード、ユーザーID、またはパスワードが違います"),
            "{code}/{login}: no Japanese error message"
        );
        assert!(body.contains(r#"role="alert""#));
        assert!(
            body.contains(&format!(r#"value="{login}""#)),
            "the login ID is kept"
        );
        assert!(!body.contains(wrong), "the password is echoed back");
        assert!(
            body.contains(r#"action="/login""#),
            "the form is shown again"
        );
    }
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_redirect(&home, "/login");
}

#[tokio::test]
async fn portal_forms_refuse_a_missing_or_foreign_csrf_token() {
    let app = spawn_app().await;
    clinic(&app, "PORTAL-3", &["alice"]).await;
    let credentials = [
        ("facility_code", "PORTAL-3"),
        ("login_id", "alice"),
        ("password", FIXTURE_PASSWORD),
    ];
    // No token at all.
    let bare = app
        .client
        .post(app.url("/login"))
        .form(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&bare).is_none());
    assert!(html(bare).await.contains("フォームの有効期限が切れたか"));
    // A token taken from another browser (another cookie): a cross-site forgery's best try.
    let attacker = renrakucho_testkit::new_client();
    let stolen = app.form_token(&attacker, "/login").await;
    let _ = app.form_token(&app.client, "/login").await;
    let mut form = vec![("authenticity_token", stolen.as_str())];
    form.extend(credentials);
    let forged = app
        .client
        .post(app.url("/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&forged).is_none());
    assert_eq!(app.me().await.status(), StatusCode::UNAUTHORIZED);
}

/// The cookies a response sets, as `name=value`.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|h| h.split(';').next().map(|c| c.trim().to_string()))
        .collect()
}

/// The cookie of `jar` named `name`, as `name=value`.
fn cookie<'a>(jar: &'a [String], name: &str) -> &'a str {
    jar.iter()
        .rev()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {jar:?}"))
}

/// A browser without a cookie store: the test carries its cookies by hand, as a page on a
/// sibling site could make a browser carry them.
struct Browser {
    client: reqwest::Client,
    jar: Vec<String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Vec::new(),
        }
    }

    fn header(&self) -> String {
        self.jar.join("; ")
    }

    /// A page's form token, keeping the cookies the page sets.
    async fn form_token(&mut self, app: &TestApp, path: &str) -> String {
        let response = self
            .client
            .get(app.url(path))
            .header(COOKIE, self.header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        self.keep(&response);
        let page = response.text().await.unwrap();
        let marker = r#"name="authenticity_token" value=""#;
        let start = page.find(marker).expect("a form token") + marker.len();
        let end = page[start..].find('"').unwrap() + start;
        page[start..end].to_string()
    }

    async fn sign_in(&mut self, app: &TestApp, code: &str, login: &str) {
        let token = self.form_token(app, "/login").await;
        let response = self
            .client
            .post(app.url("/login"))
            .header(COOKIE, self.header())
            .form(&[
                ("authenticity_token", token.as_str()),
                ("facility_code", code),
                ("login_id", login),
                ("password", FIXTURE_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "signing {login} in"
        );
        self.keep(&response);
        // The password was right: the code of the account's authenticator completes it.
        let token = self.form_token(app, "/login/code").await;
        let one_time_code = app.one_time_code(code, login).await.unwrap();
        let response = self
            .client
            .post(app.url("/login/code"))
            .header(COOKIE, self.header())
            .form(&[
                ("authenticity_token", token.as_str()),
                ("one_time_code", one_time_code.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_redirect(&response, "/");
        self.keep(&response);
    }

    /// Keeps the cookies `response` sets, each replacing the one of its name.
    fn keep(&mut self, response: &reqwest::Response) {
        for cookie in set_cookies(response) {
            let name = cookie.split('=').next().unwrap_or_default().to_string();
            self.jar
                .retain(|kept| kept.split('=').next().unwrap_or_default() != name);
            self.jar.push(cookie);
        }
    }
}

/// Cookie tossing: a page on a sibling site plants the attacker's own CSRF cookie in the
/// victim's browser and submits the attacker's own form token with the victim's session
/// cookie. The token is bound to the session, so the form is refused and nothing is created;
/// the victim's own form goes through.
#[tokio::test]
async fn a_tossed_csrf_cookie_and_token_do_not_act_for_the_victim() {
    let app = spawn_app().await;
    let (facility, _) = clinic(&app, "PORTAL-TOSS", &["alice", "mallory"]).await;
    let mut victim = Browser::new();
    victim.sign_in(&app, "PORTAL-TOSS", "alice").await;
    let own_token = victim.form_token(&app, "/patients/new").await;

    // The attacker's cookie and token: as a visitor (no session), and signed in as themself.
    let mut visitor = Browser::new();
    let visitor_token = visitor.form_token(&app, "/login").await;
    let mut insider = Browser::new();
    insider.sign_in(&app, "PORTAL-TOSS", "mallory").await;
    let insider_token = insider.form_token(&app, "/patients/new").await;

    let registered = || {
        let app = &app;
        async move {
            let mut su = crate::support::superuser(app).await;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM patients WHERE facility_id = $1")
                .bind(facility.id.as_uuid())
                .fetch_one(&mut su)
                .await
                .unwrap()
        }
    };
    let submit = |csrf_cookie: String, token: String| {
        let app = &app;
        let session = cookie(&victim.jar, COOKIE_NAME).to_string();
        let client = victim.client.clone();
        async move {
            client
                .post(app.url("/patients/new"))
                .header(COOKIE, format!("{session}; {csrf_cookie}"))
                .form(&[
                    ("authenticity_token", token.as_str()),
                    ("name", "投げ込み 太郎"),
                    ("kana", "ナゲコミ タロウ"),
                    ("birth_date", "1940-01-15"),
                    ("sex", "male"),
                    ("care_level", "care_1"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for (attacker, token) in [(&visitor, visitor_token), (&insider, insider_token)] {
        let tossed = cookie(&attacker.jar, "renrakucho_csrf").to_string();
        let response = submit(tossed, token).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "a tossed cookie");
        assert!(html(response)
            .await
            .contains("フォームの有効期限が切れたか"));
        assert_eq!(registered().await, 0, "nothing was registered");
    }
    // The victim's own cookie and token: registered.
    let own_cookie = cookie(&victim.jar, "renrakucho_csrf").to_string();
    let response = submit(own_cookie, own_token).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the victim's own form"
    );
    assert_eq!(registered().await, 1);
}
