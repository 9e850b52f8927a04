//! The one gate every text from a request passes before a handler sees it: JSON bodies
//! ([`ApiJson`](crate::error::ApiJson)), query strings ([`Query`]), form bodies (the portal's
//! `Form`, through [`check_urlencoded`]) and the text fields of multipart forms
//! ([`multipart_fields`]).
//!
//! A control character other than a line break or a tab is refused here, as a 422 naming the
//! field, in every string of the request: a NUL cannot be stored in PostgreSQL `text` at all,
//! so without this gate a NUL in a field that reaches a query unparsed (a facility code, a
//! search) became the database's error and a 500. Line breaks and tabs stay, because the gate
//! does not know which fields hold several lines; the domain types (`renrakucho_core::text`)
//! refuse them in one-line values. Query strings never hold several lines: there every
//! control character is refused.
//!
//! Refusals answer in the form the caller reads: [`Query`] with the API's JSON error; the
//! portal's own `Query` and `Form` (`renrakucho_portal::input`) with an error page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use renrakucho_core::text::control_refusal;
use renrakucho_core::Lines;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A 422 naming `field`.
pub fn refusal(field: String, message: String) -> ApiError {
    ApiError {
        field: Some(field),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }
}

/// Checks one text: `Err` (a 422 naming `field`) when it holds a control character `lines`
/// does not allow.
pub fn check(field: &str, text: &str, lines: Lines) -> Result<(), ApiError> {
    match control_refusal(field, text, lines) {
        Some(message) => Err(refusal(field.to_string(), message)),
        None => Ok(()),
    }
}

/// A field's name as reported: itself when it is clean, escaped when the name itself is the
/// problem (so the answer never carries the control character back).
fn reported(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name.to_string()
    }
}

/// Checks every string (and every key) of a JSON document; the field is named by its path
/// (`signer.name`, `items[2]`).
pub fn check_json(value: &Value) -> Result<(), ApiError> {
    fn walk(value: &Value, path: &mut String) -> Result<(), ApiError> {
        match value {
            Value::String(s) => check(path, s, Lines::Many),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&reported(key));
                    check(path, key, Lines::One)?;
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }
    walk(value, &mut String::new())
}

/// Checks the pairs of a URL-encoded text (a query string, a form body).
pub fn check_urlencoded(encoded: &[u8], lines: Lines) -> Result<(), ApiError> {
    for (key, value) in url::form_urlencoded::parse(encoded) {
        let field = reported(&key);
        check(&field, &key, Lines::One)?;
        check(&field, &value, lines)?;
    }
    Ok(())
}

/// Checks the text fields of a multipart form, as `(name, text)` pairs.
pub fn multipart_fields<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    for (name, text) in fields {
        let field = reported(name);
        check(&field, name, Lines::One)?;
        check(&field, text, Lines::Many)?;
    }
    Ok(())
}

/// Checks a request's query string (no control character at all).
pub fn check_query(parts: &Parts) -> Result<(), ApiError> {
    check_urlencoded(parts.uri.query().unwrap_or_default().as_bytes(), Lines::One)
}

/// `axum::extract::Query`, after every parameter passed the gate (no control character at
/// all).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        if let Err(e) = check_query(parts) {
            return Err(e.into_response());
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_strings_and_keys_are_checked_and_named_by_their_path() {
        assert!(check_json(&json!({ "body": "一行目\r\n二行目\tです", "n": 1 })).is_ok());
        let e = check_json(&json!({ "facility_code": "AB\u{0}C" })).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("facility_code"));
        let e =
            check_json(&json!({ "signer": { "kind": "family", "name": "a\u{1B}" } })).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("signer.name"));
        let e = check_json(&json!({ "ids": ["a", "b\u{85}"] })).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ids[1]"));
        let e = check_json(&json!({ "a\u{0}": 1 })).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("a\\0"));
    }

    #[test]
    fn url_encoded_pairs_are_checked() {
        assert!(check_urlencoded(b"q=%E5%B1%B1%E7%94%B0&limit=5", Lines::One).is_ok());
        let e = check_urlencoded(b"q=%00", Lines::One).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("q"));
        assert!(check_urlencoded(b"q=a%0Ab", Lines::One).is_err());
        assert!(check_urlencoded(b"body=a%0D%0Ab%09c", Lines::Many).is_ok());
        assert!(check_urlencoded(b"body=a%07", Lines::Many).is_err());
    }
}
