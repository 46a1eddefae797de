//! Token management (admin) and `login`/`whoami`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_proto::auth::{CreateTokenRequest, CreatedToken, Role, TokenInfo, TokenKind, WhoAmI};
use drover_proto::events::types;
use drover_store::{NewEvent, NewToken};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{ApiCaller, hash_secret, new_secret, new_token_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params};
use crate::state::AppState;

fn whoami_of(caller: &ApiCaller) -> WhoAmI {
    WhoAmI {
        token_id: caller.token_id.clone(),
        name: caller.name.clone(),
        role: caller.role,
    }
}

pub(crate) async fn whoami(caller: ApiCaller) -> Json<WhoAmI> {
    Json(whoami_of(&caller))
}

/// `drover login` checks its token here; the check is recorded.
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
) -> ApiResult<Json<WhoAmI>> {
    state
        .store
        .append_event(NewEvent::new(
            types::AUTH_LOGIN,
            &caller.name,
            json!({ "token_id": caller.token_id, "role": caller.role.as_str() }),
        ))
        .await?;
    Ok(Json(whoami_of(&caller)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[serde(default)]
    agents: bool,
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    caller.require(Role::Admin)?;
    Ok(Json(state.store.list_tokens(p.agents).await?))
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Body(req): Body<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require(Role::Admin)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::bad_request(
            "field `name`: must be 1 to 64 characters",
        ));
    }
    if name.starts_with("agent:") {
        return Err(ApiError::bad_request(
            "field `name`: names starting with `agent:` are reserved for agents",
        ));
    }
    let role = match req.kind {
        TokenKind::Api => Some(req.role.unwrap_or(Role::Viewer)),
        TokenKind::Join => None,
        TokenKind::Agent => {
            return Err(ApiError::bad_request(
                "field `kind`: agent credentials are issued by enrollment; create a `join` token",
            ));
        }
    };
    let secret = new_secret(req.kind);
    let token = state
        .store
        .create_token(NewToken {
            id: new_token_id(),
            name: name.to_string(),
            kind: req.kind,
            role,
            host_id: None,
            secret_hash: hash_secret(&secret),
            created_by: caller.name.clone(),
        })
        .await?;
    state
        .store
        .append_event(NewEvent::new(
            types::TOKEN_CREATED,
            &caller.name,
            json!({
                "token_id": token.id,
                "name": token.name,
                "kind": token.kind.as_str(),
                "role": token.role.map(|r| r.as_str()),
            }),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
    caller.require(Role::Admin)?;
    let before = state
        .store
        .get_token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token with id `{id}`")))?;
    let token = state
        .store
        .revoke_token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token with id `{id}`")))?;
    if before.info.revoked_at.is_none() {
        state
            .store
            .append_event(NewEvent::new(
                types::TOKEN_REVOKED,
                &caller.name,
                json!({
                    "token_id": token.id,
                    "name": token.name,
                    "kind": token.kind.as_str(),
                    "host_id": token.host_id,
                }),
            ))
            .await?;
    }
    Ok(Json(token))
}
