//! Request extractors whose rejections are API errors with the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed JSON or a wrong field gets 400 naming the field path, line and
/// column; a body over the limit gets 413.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let path = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map(|u| u.0.path().to_string())
            .unwrap_or_else(|| req.uri().path().to_string());
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                tracing::warn!(%path, "refused a request body over the size limit");
                ApiError::too_large("request body is larger than the controller accepts")
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", r.body_text()))
            }
        })?;
        parse_json(&bytes).map(Body).inspect_err(|e| {
            // Refused and logged; nothing was changed. Agents' malformed messages show
            // up here too, with the agent path.
            tracing::warn!(%path, error = %e.detail(), "refused a malformed request body");
        })
    }
}

/// Parses JSON with the path of the field at fault in the error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("field `{path}`: {inner}"))
        }
    })
}

/// Query-string parameters; a wrong one gets 400 naming it.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path.is_empty() || path == "." {
                    ApiError::bad_request(format!("query string: {inner}"))
                } else {
                    ApiError::bad_request(format!("query parameter `{path}`: {inner}"))
                }
            })
    }
}
