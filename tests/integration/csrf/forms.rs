//! The machinery of the CSRF test: a browser whose cookies the test holds, forms encoded as a
//! browser would send them (with the token first, last or absent), and snapshots of everything
//! a form could change.

use std::collections::BTreeMap;

use renrakucho_portal::FormKind;
use renrakucho_testkit::{TestApp, FIXTURE_PASSWORD};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};

use crate::support::{stored_files, superuser};

pub(super) const REFUSAL: &str = "フォームの有効期限が切れたか、不正な送信です。ページを開き直してもう一度お試しください / the form has expired or was not sent from this site; reload the page and try again";
pub(super) const SESSION: &str = renrakucho_http::session::SESSION_COOKIE;
pub(super) const CSRF: &str = "renrakucho_csrf";
pub(super) const BOUNDARY: &str = "renrakucho-csrf-test-boundary";

/// A browser whose cookies the test holds, so that it can send them as a page on a sibling
/// site could make the browser send them.
pub(super) struct Browser {
    pub(super) client: Client,
    pub(super) jar: BTreeMap<String, String>,
}

impl Browser {
    pub(super) fn new() -> Self {
        Self {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }

    pub(super) fn keep(&mut self, response: &Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            let header = header.to_str().unwrap();
            let pair = header.split(';').next().unwrap().trim();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || header.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    pub(super) fn cookie(&self, name: &str) -> String {
        let value = self
            .jar
            .get(name)
            .unwrap_or_else(|| panic!("no {name} cookie"));
        format!("{name}={value}")
    }

    pub(super) fn cookies(&self) -> String {
        self.jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Signed in (through the API) as `login` of the facility `code`.
    pub(super) async fn signed_in(app: &TestApp, code: &str, login: &str) -> Self {
        let mut browser = Self::new();
        let response = app
            .sign_in_with(&browser.client, Some(code), login, FIXTURE_PASSWORD)
            .await;
        assert_eq!(response.status(), 200, "signing {login} of {code} in");
        browser.keep(&response);
        browser
    }

    /// The form token of the page at `path` (keeping the cookies the page sets).
    pub(super) async fn token(&mut self, app: &TestApp, path: &str) -> String {
        let response = self
            .client
            .get(app.url(path))
            .header(COOKIE, self.cookies())
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
}

/// A field of a form.
#[derive(Clone)]
pub(super) enum Field {
    Text(&'static str, String),
    File(&'static str, &'static str, &'static [u8]),
}

pub(super) fn text(name: &'static str, value: impl Into<String>) -> Field {
    Field::Text(name, value.into())
}

/// Where the token goes.
#[derive(Clone, Copy)]
pub(super) enum Token<'a> {
    Absent,
    First(&'a str),
    Last(&'a str),
}

/// The body of a form of `kind` and its content type.
pub(super) fn encode(kind: FormKind, fields: &[Field], token: Token<'_>) -> (String, Vec<u8>) {
    let mut all = Vec::new();
    if let Token::First(t) = token {
        all.push(text("authenticity_token", t));
    }
    all.extend(fields.iter().cloned());
    if let Token::Last(t) = token {
        all.push(text("authenticity_token", t));
    }
    match kind {
        FormKind::UrlEncoded => {
            let pairs: Vec<(&str, &str)> = all
                .iter()
                .map(|f| match f {
                    Field::Text(name, value) => (*name, value.as_str()),
                    Field::File(..) => panic!("a file in a url-encoded form"),
                })
                .collect();
            let body = urlencoded(&pairs);
            (
                "application/x-www-form-urlencoded".into(),
                body.into_bytes(),
            )
        }
        FormKind::Multipart => {
            let mut body = Vec::new();
            for field in &all {
                body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
                match field {
                    Field::Text(name, value) => {
                        body.extend_from_slice(
                            format!(
                                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                            )
                            .as_bytes(),
                        );
                    }
                    Field::File(name, file_name, bytes) => {
                        body.extend_from_slice(
                            format!(
                                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n"
                            )
                            .as_bytes(),
                        );
                        body.extend_from_slice(bytes);
                        body.extend_from_slice(b"\r\n");
                    }
                }
            }
            body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
            (format!("multipart/form-data; boundary={BOUNDARY}"), body)
        }
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(super) fn urlencoded(pairs: &[(&str, &str)]) -> String {
    pub(super) fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) async fn post(
    app: &TestApp,
    client: &Client,
    path: &str,
    cookies: String,
    (content_type, body): (String, Vec<u8>),
) -> Response {
    client
        .post(app.url(path))
        .header(COOKIE, cookies)
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Every table's rows (count and digest), as the superuser sees them, and the stored files.
pub(super) async fn snapshot(
    app: &TestApp,
) -> (BTreeMap<String, (i64, String)>, Vec<std::path::PathBuf>) {
    let mut su = superuser(app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    let mut rows = BTreeMap::new();
    for table in tables {
        let digest: (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') \
             FROM {table} t"
        ))
        .fetch_one(&mut su)
        .await
        .unwrap();
        rows.insert(table, digest);
    }
    let mut files = stored_files(app);
    files.sort();
    (rows, files)
}

pub(super) type Snapshot = (BTreeMap<String, (i64, String)>, Vec<std::path::PathBuf>);

/// The tables (and the file store) that differ.
pub(super) fn changed(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut changed: Vec<String> = before
        .0
        .keys()
        .chain(after.0.keys())
        .filter(|t| before.0.get(*t) != after.0.get(*t))
        .cloned()
        .collect();
    changed.dedup();
    if before.1 != after.1 {
        changed.push("the file store".into());
    }
    changed
}
