//! Request extractors whose rejections are API errors with the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed JSON or a wrong field gets 400 naming the field path, line and
/// column; a body over the limit gets 413. Strings may not contain NUL (`\u0000`): no
/// name, selector or label needs one, and PostgreSQL cannot store one.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state, false).await.map(Body)
    }
}

/// A JSON body whose strings may contain NUL: command output, which the handler cleans.
pub(crate) struct BodyWithNul<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for BodyWithNul<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state, true).await.map(BodyWithNul)
    }
}

async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
    allow_nul: bool,
) -> Result<T, ApiError> {
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
    parse_json(&bytes)
        .and_then(|v| {
            if !allow_nul && has_nul_escape(&bytes) {
                Err(nul_in_body(&bytes))
            } else {
                Ok(v)
            }
        })
        .inspect_err(|e| {
            // Refused and logged; nothing was changed. Agents' malformed messages show
            // up here too, with the agent path.
            tracing::warn!(%path, error = %e.detail(), "refused a malformed request body");
        })
}

/// True when JSON text has a `\u0000` escape (the only way a JSON string holds NUL).
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The 400 for a body with NUL in a string, naming the field.
fn nul_in_body(bytes: &[u8]) -> ApiError {
    fn find(v: &serde_json::Value, at: String) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(at),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| find(item, format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
                let here = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if k.contains('\0') {
                    Some(here)
                } else {
                    find(item, here)
                }
            }),
            _ => None,
        }
    }
    let field = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| find(&v, String::new()))
        .filter(|f| !f.is_empty())
        .map(|f| format!("field `{}`: ", f.escape_default()))
        .unwrap_or_default();
    ApiError::bad_request(format!(
        "{field}strings must not contain NUL characters (\\u0000)"
    ))
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
        if let Some((k, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::bad_request(format!(
                "query parameter `{}`: NUL characters are not allowed",
                k.escape_default()
            )));
        }
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

/// Path parameters; one that cannot be decoded (bad percent-encoding, not UTF-8, wrong
/// type) gets 400 `{error, detail}` naming it, not axum's plain-text rejection.
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00") {
            return Err(ApiError::bad_request(
                "path: NUL characters (%00) are not allowed",
            ));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "path parameter: {}",
                e.body_text()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_and_named() {
        assert!(has_nul_escape(br#"{"a":"x\u0000"}"#));
        assert!(
            !has_nul_escape(br#"{"a":"x\\u0000"}"#),
            "an escaped backslash"
        );
        assert!(!has_nul_escape(br#"{"a":"x\u0001"}"#));
        let e = nul_in_body(br#"{"files":[{"path":"a","text":"b\u0000"}]}"#);
        assert!(e.detail().contains("`files[0].text`"), "{}", e.detail());
    }
}
