//! The JSON body extractor of the API: every string passes the input gate, and a rejection
//! answers the API's error shape.

use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{header, StatusCode};

use super::ApiError;

/// JSON body extractor whose rejections use the API's error shape. Every string of the body
/// passes [`crate::input`]'s gate before the body becomes a `T`: a control character is a 422
/// naming the field, whatever the endpoint does with it afterwards.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> ApiJson<T> {
    /// The body as a JSON value, through the gate.
    async fn value<S: Send + Sync>(
        request: Request,
        state: &S,
    ) -> Result<serde_json::Value, ApiError> {
        let axum::Json(value) =
            <axum::Json<serde_json::Value> as FromRequest<S>>::from_request(request, state).await?;
        crate::input::check_json(&value)?;
        Ok(value)
    }

    /// The value as a `T`. JSON that does not fit (a field missing, a value of another type)
    /// is a 422, as `axum::Json` has it; only a body that is not JSON at all is a 400.
    fn parse(value: serde_json::Value) -> Result<Self, ApiError> {
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                format!(
                    "リクエストの内容がこの操作の形式に合いません / the request body does not fit this endpoint: {e}"
                ),
            )
        })
    }
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Self::parse(Self::value(request, state).await?)
    }
}

/// An optional JSON body: none when the request has no `Content-Type` at all (as
/// `Option<axum::Json>`) or the body is `null`; otherwise as [`ApiJson`], its gate and its
/// errors included.
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if !request.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        match Self::value(request, state).await? {
            serde_json::Value::Null => Ok(None),
            value => Self::parse(value).map(Some),
        }
    }
}
