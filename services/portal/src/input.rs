//! The portal's side of the input gate (`renrakucho_http::input`): query strings and
//! url-encoded forms checked the same way as the API's, a refusal answered with an error page.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use renrakucho_core::Lines;
use renrakucho_http::input::{check_query, check_urlencoded};
use serde::de::DeserializeOwned;

use crate::routes::error_page;

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
            return Err(error_page(e.status, &e.message));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(IntoResponse::into_response)
    }
}

/// `axum::Form`, after every field passed the gate (line breaks and tabs allowed: a
/// `<textarea>`).
pub struct Form<T>(pub T);

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        // Read the body as `Bytes` does (it honours the route's body limit), then hand the
        // same bytes to `axum::Form`, which checks the content type and deserializes.
        let mut reading = Request::new(body);
        *reading.extensions_mut() = parts.extensions.clone();
        let bytes = Bytes::from_request(reading, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if let Err(e) = check_urlencoded(&bytes, Lines::Many) {
            return Err(error_page(e.status, &e.message));
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        axum::Form::<T>::from_request(request, state)
            .await
            .map(|axum::Form(value)| Form(value))
            .map_err(IntoResponse::into_response)
    }
}
