//! Bearer-token authentication and roles.
//!
//! Secrets are `drover_<kind>_<64 hex digits>` (256 random bits). Only their SHA-256 is
//! stored; a request's token is hashed and looked up. A refused request is answered 401
//! and recorded as an `auth.failed` event (never with the token itself).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use drover_proto::auth::{Role, TokenKind};
use drover_proto::events::types;
use drover_store::{NewEvent, TokenRecord};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// A fresh secret of the given kind.
pub(crate) fn new_secret(kind: TokenKind) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("drover_{}_{}", kind.as_str(), hex::encode(bytes))
}

/// Hex SHA-256 of a secret, as stored.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh public token id.
pub(crate) fn new_token_id() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    format!("tok_{}", hex::encode(bytes))
}

/// A person or script with an API token.
#[derive(Debug, Clone)]
pub(crate) struct ApiCaller {
    /// Token id.
    pub token_id: String,
    /// Token name: the actor of events this caller causes.
    pub name: String,
    /// What the token may do.
    pub role: Role,
}

impl ApiCaller {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; token `{}` has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

/// An API caller with at least the operator role. The role is checked while the request
/// line and headers are read, so a viewer gets 403 before its body is looked at.
#[derive(Debug, Clone)]
pub(crate) struct Operator(pub ApiCaller);

/// An API caller with the admin role (403 otherwise, before the body is read).
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub ApiCaller);

/// An agent, authenticated by its own credential.
#[derive(Debug, Clone)]
pub(crate) struct AgentCaller {
    /// The host the credential belongs to.
    pub host_id: String,
    /// Actor name (`agent:<host name>`).
    pub name: String,
}

/// A holder of a join token (enrollment only).
#[derive(Debug, Clone)]
pub(crate) struct JoinCaller {
    /// Token name.
    pub name: String,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Checks the bearer token against the store and the expected kind; records refusals.
async fn authenticate(
    state: &Arc<AppState>,
    parts: &Parts,
    kinds: &[TokenKind],
) -> Result<TokenRecord, ApiError> {
    let refuse = |reason: &str, token_id: Option<&str>| {
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        let payload = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "reason": reason,
            "token_id": token_id,
            "remote": remote,
        });
        let detail = format!("{reason}: send `Authorization: Bearer <token>` with a valid token");
        (payload, ApiError::unauthorized(detail))
    };
    let (payload, err) = match bearer(parts) {
        None => refuse("missing bearer token", None),
        Some(secret) => {
            let hash = hash_secret(secret);
            match state.store.find_token_by_hash(&hash).await? {
                None => refuse("unknown token", None),
                Some(rec) if !bool::from(rec.secret_hash.as_bytes().ct_eq(hash.as_bytes())) => {
                    refuse("unknown token", None)
                }
                Some(rec) if rec.info.revoked_at.is_some() => {
                    refuse("revoked token", Some(&rec.info.id))
                }
                Some(rec) if !kinds.contains(&rec.info.kind) => refuse(
                    &format!(
                        "a {} token cannot be used here (this endpoint takes {})",
                        rec.info.kind.as_str(),
                        kinds
                            .iter()
                            .map(|k| format!("a {} token", k.as_str()))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                    Some(&rec.info.id),
                ),
                Some(rec) => {
                    if let Err(e) = state.store.touch_token(&rec.info.id).await {
                        tracing::warn!(error = %e, "could not record token use");
                    }
                    return Ok(rec);
                }
            }
        }
    };
    state
        .store
        .append_event(NewEvent::new(types::AUTH_FAILED, "anonymous", payload))
        .await?;
    Err(err)
}

impl FromRequestParts<Arc<AppState>> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let rec = authenticate(state, parts, &[TokenKind::Api]).await?;
        Ok(ApiCaller {
            token_id: rec.info.id,
            name: rec.info.name,
            role: rec.info.role.unwrap_or(Role::Viewer),
        })
    }
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = ApiCaller::from_request_parts(parts, state).await?;
        caller.require(Role::Operator)?;
        Ok(Operator(caller))
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = ApiCaller::from_request_parts(parts, state).await?;
        caller.require(Role::Admin)?;
        Ok(Admin(caller))
    }
}

impl FromRequestParts<Arc<AppState>> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let rec = authenticate(state, parts, &[TokenKind::Agent]).await?;
        let host_id = rec
            .info
            .host_id
            .ok_or_else(|| ApiError::unauthorized("agent credential is bound to no host"))?;
        Ok(AgentCaller {
            host_id,
            name: rec.info.name,
        })
    }
}

impl FromRequestParts<Arc<AppState>> for JoinCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let rec = authenticate(state, parts, &[TokenKind::Join]).await?;
        Ok(JoinCaller {
            name: rec.info.name,
        })
    }
}

/// A person (any API token) or an agent: for reads both need, such as artifact
/// downloads.
#[derive(Debug, Clone)]
pub(crate) struct ReaderCaller {
    /// Token name or `agent:<host>`.
    pub name: String,
}

impl FromRequestParts<Arc<AppState>> for ReaderCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let rec = authenticate(state, parts, &[TokenKind::Api, TokenKind::Agent]).await?;
        Ok(ReaderCaller {
            name: rec.info.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_prefixed_and_hash_stably() {
        let a = new_secret(TokenKind::Api);
        let b = new_secret(TokenKind::Api);
        assert_ne!(a, b);
        assert!(a.starts_with("drover_api_"));
        assert_eq!(a.len(), "drover_api_".len() + 64);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn roles_are_ordered() {
        let caller = ApiCaller {
            token_id: "t".into(),
            name: "n".into(),
            role: Role::Operator,
        };
        assert!(caller.require(Role::Viewer).is_ok());
        assert!(caller.require(Role::Operator).is_ok());
        assert!(caller.require(Role::Admin).is_err());
    }
}
