//! Token management (admin) and `login`/`whoami`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use drover_proto::auth::{CreateTokenRequest, CreatedToken, Role, TokenInfo, TokenKind, WhoAmI};
use drover_proto::events::types;
use drover_proto::page::Page;
use drover_store::{NewEvent, NewToken};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::paging;
use crate::auth::{Admin, ApiCaller, hash_secret, new_secret, new_token_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Path};
use crate::state::AppState;

fn whoami_of(caller: &ApiCaller) -> WhoAmI {
    WhoAmI {
        token_id: caller.token_id.clone(),
        name: caller.name.clone(),
        role: caller.role,
    }
}

/// Who the presented token is.
#[utoipa::path(get, path = "/whoami", tag = "tokens",
    security(("api_token" = ["viewer"])),
    responses((status = 200, description = "The token's id, name and role", body = WhoAmI)))]
pub(crate) async fn whoami(caller: ApiCaller) -> Json<WhoAmI> {
    Json(whoami_of(&caller))
}

/// `drover login` checks its token here; the check is recorded (`auth.login` event).
/// Any role may call it: it changes nothing but the event log.
#[utoipa::path(post, path = "/login", tag = "tokens",
    security(("api_token" = ["viewer"])),
    responses((status = 200, description = "The token's id, name and role", body = WhoAmI)))]
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Also list agent credentials.
    #[serde(default)]
    agents: bool,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// Every token (never a secret), oldest first.
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    security(("api_token" = ["admin"])),
    params(ListParams),
    responses((status = 200, description = "A page of tokens, oldest first", body = Page<TokenInfo>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: Admin,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Page<TokenInfo>>> {
    let limit = paging::limit(p.limit)?;
    let all = state.store.list_tokens(p.agents).await?;
    // Creation time (zero-padded so text order is time order), then id.
    Ok(Json(paging::page_after(
        all,
        p.after.as_deref(),
        limit,
        |t| format!("{:015}.{}", t.created_at.timestamp_millis(), t.id),
    )))
}

/// Creates an API token (with a role) or a join token. The secret is in this answer
/// only.
#[utoipa::path(post, path = "/tokens", tag = "tokens",
    security(("api_token" = ["admin"])),
    request_body = CreateTokenRequest,
    responses((status = 201, description = "The token and its secret", body = CreatedToken)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Body(req): Body<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
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

/// Revokes a token or an agent credential (at once; revoking twice is no error).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    security(("api_token" = ["admin"])),
    params(("id" = String, Path, description = "Token id (`tok_…`)")),
    responses(
        (status = 200, description = "The revoked token", body = TokenInfo),
        (status = 404, description = "No such token", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
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
