//! CSRF protection of the portal's forms: axum_csrf (a token in an encrypted cookie, its HMAC
//! in every form), bound to the signed-in session (a random value kept in the session record,
//! on the server, and repeated in every form). The key and salt come from one deployment
//! secret, so that every server process accepts the forms any of them rendered.
//!
//! Why the binding: a page on a sibling site can set cookies for this one ("cookie tossing").
//! With the victim's session cookie, the attacker's own CSRF cookie and the attacker's own form
//! token verify as far as axum_csrf can tell; the binding is the victim's session's, which the
//! attacker never sees. Over HTTPS the cookies are named `__Host-…`, which a sibling cannot set.
//!
//! Where it is checked: [`require_token`], one middleware in front of every portal route
//! (`crate::routes::routes`), refuses any request but GET and HEAD whose form does not carry
//! the token, before a handler runs. Handlers never check it themselves. A url-encoded form is
//! read whole (it is small: at most [`URLENCODED_MAX`]); a multipart form (files) must carry
//! the token as its first part, which is read and verified before the rest of the body
//! streams on to the handler untouched.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponseParts, Response, ResponseParts};
use axum_csrf::{CsrfConfig, Key, SameSite};
use base64::Engine;
use futures_util::StreamExt;
use renrakucho_http::state::AppState;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

/// The name of the form field carrying the token.
pub const FIELD: &str = "authenticity_token";

/// Where the session keeps its binding.
const BINDING_KEY: &str = "csrf_binding";

/// The portal's form token: axum_csrf's, plus the session's binding once someone is signed
/// in (the form carries `<axum_csrf token>.<binding>`). Before sign-in there is no session
/// (ADR 0013 §5), and the sign-in form is protected by axum_csrf alone.
#[derive(Clone)]
pub struct CsrfToken {
    inner: axum_csrf::CsrfToken,
    binding: Option<String>,
}

/// The session's binding, made when first asked for (sessions started before bindings
/// existed get one at their next page).
async fn binding(session: &Session) -> Result<Option<String>, tower_sessions::session::Error> {
    if !renrakucho_http::session::is_signed_in(session).await? {
        return Ok(None);
    }
    if let Some(existing) = session.get::<String>(BINDING_KEY).await? {
        return Ok(Some(existing));
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let fresh = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    session.insert(BINDING_KEY, &fresh).await?;
    Ok(Some(fresh))
}

impl FromRequestParts<AppState> for CsrfToken {
    type Rejection = renrakucho_http::error::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The one [`require_token`] verified, if it ran.
        if let Some(token) = parts.extensions.get::<CsrfToken>() {
            return Ok(token.clone());
        }
        let inner = axum_csrf::CsrfToken::from_request_parts(parts, state)
            .await
            .map_err(|_| renrakucho_http::error::ApiError::internal())?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| renrakucho_http::error::ApiError::internal())?;
        let binding = binding(&session).await?;
        Ok(Self { inner, binding })
    }
}

impl CsrfToken {
    /// The value for the form's hidden field.
    pub fn authenticity_token(&self) -> Result<String, axum_csrf::CsrfError> {
        let token = self.inner.authenticity_token()?;
        Ok(match &self.binding {
            Some(binding) => format!("{token}.{binding}"),
            None => token,
        })
    }

    /// Whether a form's field verifies: axum_csrf's token for this browser's cookie, and the
    /// binding of this session (compared in constant time).
    pub fn verify(&self, given: &str) -> Result<(), axum_csrf::CsrfError> {
        let (token, bound) = match given.rsplit_once('.') {
            Some((token, bound)) => (token, Some(bound)),
            None => (given, None),
        };
        self.inner.verify(token)?;
        match (&self.binding, bound) {
            (None, None) => Ok(()),
            (Some(expected), Some(bound))
                if bool::from(expected.as_bytes().ct_eq(bound.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(axum_csrf::CsrfError::Verify),
        }
    }
}

impl IntoResponseParts for CsrfToken {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.inner.into_response_parts(res)
    }
}

/// The largest url-encoded form read (an entry's text of 5,000 characters is some 45 KB
/// encoded); a larger one is refused (413) before its token is looked at.
pub const URLENCODED_MAX: usize = 256 * 1024;

/// The most of a multipart body read while looking for the end of its first part (the token).
const FIRST_PART_MAX: usize = 8 * 1024;

/// The page for a form whose token is missing or does not verify (403).
pub fn refused() -> Response {
    crate::routes::error_page(
        StatusCode::FORBIDDEN,
        "フォームの有効期限が切れたか、不正な送信です。ページを開き直してもう一度お試しください / the form has expired or was not sent from this site; reload the page and try again",
    )
}

/// The CSRF check of the portal: every request but GET and HEAD passes only with this
/// session's token in its form (`authenticity_token`), url-encoded or as the first part of a
/// multipart form; anything else is [`refused`] before the route's handler runs. The token
/// verified is left in the request's extensions, where the handler's [`CsrfToken`] finds it
/// to render the next form.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let token = match CsrfToken::from_request_parts(&mut parts, &state).await {
        Ok(token) => token,
        Err(e) => return crate::routes::error_page(e.status, &e.message),
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    let form = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok());
    let (given, body) = match form {
        Some(m) if m.essence_str() == mime::APPLICATION_WWW_FORM_URLENCODED.essence_str() => {
            let bytes = match axum::body::to_bytes(body, URLENCODED_MAX).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    return crate::routes::error_page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "送信された内容が大きすぎます / the form is too large",
                    )
                }
            };
            let given = url::form_urlencoded::parse(&bytes)
                .find(|(name, _)| name == FIELD)
                .map(|(_, value)| value.into_owned());
            (given, Body::from(bytes))
        }
        Some(m) if m.essence_str() == mime::MULTIPART_FORM_DATA.essence_str() => {
            match (m.get_param(mime::BOUNDARY), content_type) {
                (Some(boundary), Some(content_type)) => {
                    match first_part(body, &content_type, boundary.as_str()).await {
                        Some((given, body)) => (Some(given), body),
                        None => (None, Body::empty()),
                    }
                }
                _ => (None, Body::empty()),
            }
        }
        _ => (None, Body::empty()),
    };
    match given {
        Some(given) if token.verify(&given).is_ok() => {
            parts.extensions.insert(token);
            next.run(Request::from_parts(parts, body)).await
        }
        _ => {
            tracing::info!("a portal form without this session's token refused");
            refused()
        }
    }
}

/// Where the first part of a multipart body ends: the offset of the delimiter (`\r\n--`
/// boundary) that closes it, once `head` holds it.
fn end_of_first_part(head: &[u8], boundary: &str) -> Option<usize> {
    let opening = format!("--{boundary}");
    let closing = format!("\r\n--{boundary}");
    let start = find(head, opening.as_bytes())? + opening.len();
    find(&head[start..], closing.as_bytes()).map(|at| start + at)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The token in a multipart body's first part, and the body to hand on (the bytes read,
/// then the rest as it streams). `None` when the first part is not the token field, does not
/// end within [`FIRST_PART_MAX`], or the body fails.
async fn first_part(
    body: Body,
    content_type: &HeaderValue,
    boundary: &str,
) -> Option<(String, Body)> {
    let mut stream = body.into_data_stream();
    let mut head = Vec::new();
    let end = loop {
        if let Some(end) = end_of_first_part(&head, boundary) {
            break end;
        }
        if head.len() > FIRST_PART_MAX {
            return None;
        }
        head.extend_from_slice(&stream.next().await?.ok()?);
    };
    // The first part alone, closed as a whole body, read by the same parser as the handler's.
    let mut first = head[..end].to_vec();
    first.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(first))
        .ok()?;
    let mut multipart = Multipart::from_request(request, &()).await.ok()?;
    let field = multipart.next_field().await.ok()??;
    if field.name() != Some(FIELD) {
        return None;
    }
    let given = field.text().await.ok()?;
    let head = Bytes::from(head);
    let rest = futures_util::stream::once(async move { Ok::<_, axum::Error>(head) }).chain(stream);
    Some((given, Body::from_stream(rest)))
}

/// The portal's CSRF configuration from the deployment's secret (at least 32 bytes, the same
/// for every server process behind one address): the cookie key and the token salt derived
/// from it, the cookie `__Host-` and `Secure` when `secure_cookies`.
pub fn config(secret: &[u8], secure_cookies: bool) -> CsrfConfig {
    let key = Sha512::new()
        .chain_update(b"renrakucho csrf cookie key\0")
        .chain_update(secret)
        .finalize();
    let salt = Sha256::new()
        .chain_update(b"renrakucho csrf salt\0")
        .chain_update(secret)
        .finalize();
    let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    CsrfConfig::default()
        .with_key(Some(Key::from(&key)))
        .with_salt(salt)
        .with_cookie_name("renrakucho_csrf")
        .with_prefix_with_host(secure_cookies)
        .with_cookie_path("/")
        .with_cookie_same_site(SameSite::Strict)
        .with_http_only(true)
        .with_secure(secure_cookies)
        .with_lifetime(time::Duration::hours(12))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    const BOUNDARY: &str = "----renrakucho-test-7MA4YWxkTrZu0gW";

    fn content_type() -> HeaderValue {
        HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap()
    }

    /// A multipart body: `token` (if any) as the named field first, then a file of `file_len`
    /// bytes and a text field.
    fn form(first: Option<(&str, &str)>, file_len: usize) -> Vec<u8> {
        let mut body = Vec::new();
        if let Some((name, value)) = first {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"scan.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend((0..file_len).map(|i| (i % 251) as u8));
        body.extend_from_slice(
            format!(
                "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n本文\r\n--{BOUNDARY}--\r\n"
            )
            .as_bytes(),
        );
        body
    }

    /// `bytes` as a streamed body in chunks of `size`, and how many chunks were taken from it.
    fn streamed(bytes: &[u8], size: usize) -> (Body, usize, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let chunks: Vec<Bytes> = bytes.chunks(size).map(Bytes::copy_from_slice).collect();
        let count = chunks.len();
        let counter = taken.clone();
        let stream = futures_util::stream::iter(chunks).map(move |chunk| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(chunk)
        });
        (Body::from_stream(stream), count, taken)
    }

    const TOKEN: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=.c2Vzc2lvbi1iaW5kaW5n";

    #[tokio::test]
    async fn the_token_is_read_from_the_first_part_and_the_rest_streams_on_untouched() {
        // A 1 MiB file in 64 KiB chunks, as a connection delivers it.
        let original = form(Some((FIELD, TOKEN)), 1024 * 1024);
        let (body, chunks, taken) = streamed(&original, 64 * 1024);
        let (given, rest) = first_part(body, &content_type(), BOUNDARY)
            .await
            .expect("the token");
        assert_eq!(given, TOKEN);
        assert_eq!(
            taken.load(Ordering::SeqCst),
            1,
            "only the first of {chunks} chunks is read before the token is known"
        );
        // The handler gets every byte, in order, and parses the whole form.
        let request = Request::builder()
            .header(header::CONTENT_TYPE, content_type())
            .body(rest)
            .unwrap();
        let mut multipart = Multipart::from_request(request, &()).await.unwrap();
        let mut names = Vec::new();
        let mut file = Vec::new();
        while let Some(field) = multipart.next_field().await.unwrap() {
            let name = field.name().unwrap().to_string();
            let bytes = field.bytes().await.unwrap();
            if name == "files" {
                file = bytes.to_vec();
            }
            names.push(name);
        }
        assert_eq!(names, [FIELD, "files", "body"]);
        assert_eq!(file.len(), 1024 * 1024);
        assert!(file.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        assert_eq!(taken.load(Ordering::SeqCst), chunks);
    }

    #[tokio::test]
    async fn a_token_split_over_small_chunks_is_found() {
        let original = form(Some((FIELD, TOKEN)), 1000);
        let (body, _, taken) = streamed(&original, 7);
        let (given, rest) = first_part(body, &content_type(), BOUNDARY)
            .await
            .expect("the token");
        assert_eq!(given, TOKEN);
        // The first part with the delimiter that ends it.
        let delimiter = format!("\r\n--{BOUNDARY}");
        let through_delimiter = original
            .windows(delimiter.len())
            .position(|w| w == delimiter.as_bytes())
            .unwrap()
            + delimiter.len();
        assert_eq!(
            taken.load(Ordering::SeqCst),
            through_delimiter.div_ceil(7),
            "read up to the end of the first part, no further"
        );
        assert_eq!(
            axum::body::to_bytes(rest, usize::MAX).await.unwrap(),
            original
        );
    }

    #[tokio::test]
    async fn a_form_whose_first_part_is_not_the_token_is_refused_without_reading_on() {
        // The token last: the file would have to be read first.
        let mut original = form(Some(("category", "treatment")), 4 * 1024 * 1024);
        let tail = format!("--{BOUNDARY}--\r\n");
        original.truncate(original.len() - tail.len());
        original.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{FIELD}\"\r\n\r\n{TOKEN}\r\n{tail}"
            )
            .as_bytes(),
        );
        let (body, _, taken) = streamed(&original, 64 * 1024);
        assert!(first_part(body, &content_type(), BOUNDARY).await.is_none());
        assert_eq!(taken.load(Ordering::SeqCst), 1);

        // No token at all: the file comes first.
        let (body, _, taken) = streamed(&form(None, 4 * 1024 * 1024), 1024);
        assert!(first_part(body, &content_type(), BOUNDARY).await.is_none());
        assert!(
            taken.load(Ordering::SeqCst) <= FIRST_PART_MAX / 1024 + 2,
            "a first part that does not end is given up after {FIRST_PART_MAX} bytes"
        );
    }
}
