//! The datastore: `GET /kv`, `GET|PUT|DELETE /kv/{scope}/{name}`.
//!
//! Scopes: `system` (shared), and `user` — the caller's own keys, stored as
//! `user:<token name>` (StackStorm's user scope). Secrets are sealed before they reach
//! the store, masked in every answer, and decrypted only when the caller asks
//! (`?decrypt=true`) and is allowed: admins for `system`, the owner for `user`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use drover_proto::auth::Role;
use drover_proto::automation::{KvPair, KvPut, MASK};
use drover_proto::page::Page;
use drover_store::{KvQuery, KvRow, KvWrite};
use serde::Deserialize;
use utoipa::IntoParams;

use super::paging;
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Path};
use crate::state::AppState;

/// Longest key name.
const MAX_NAME: usize = 255;
/// Largest value, in bytes.
const MAX_VALUE: usize = 64 * 1024;

/// The stored scope for a scope in a path (`system`, `user`), for `caller`.
pub(crate) fn stored_scope(scope: &str, caller: &str) -> Result<String, ApiError> {
    match scope {
        "system" => Ok("system".into()),
        "user" => Ok(format!("user:{caller}")),
        other => Err(ApiError::bad_request(format!(
            "scope: unknown scope `{other}`: expected `system` or `user`"
        ))),
    }
}

/// The associated data a key's secret is sealed with.
pub(crate) fn aad(scope: &str, name: &str) -> String {
    format!("kv:{scope}:{name}")
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::bad_request(format!(
            "name: must be 1 to {MAX_NAME} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(ApiError::bad_request(format!(
            "name: `{c}` is not allowed in a key name (letters, digits, `_`, `-`, `.`, `:`)"
        )));
    }
    Ok(())
}

/// May `caller` see the plaintext of secrets in `scope`?
fn may_decrypt(caller: &ApiCaller, scope: &str) -> bool {
    caller.role >= Role::Admin || scope == format!("user:{}", caller.name)
}

fn shown(state: &AppState, row: KvRow, decrypt: bool) -> ApiResult<KvPair> {
    let (value, decrypted) = match (row.secret, decrypt) {
        (false, _) => (row.value, false),
        (true, false) => (MASK.to_string(), false),
        (true, true) => (
            state
                .secrets
                .open(&aad(&row.scope, &row.name), &row.value)
                .map_err(ApiError::internal)?,
            true,
        ),
    };
    Ok(KvPair {
        scope: row.scope,
        name: row.name,
        value,
        secret: row.secret,
        decrypted,
        expires_at: row.expires_at,
        updated_at: row.updated_at,
        updated_by: row.updated_by,
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// `system`, `user` (the caller's own), or `all` (system and the caller's own;
    /// admins see every user's keys). Default `all`.
    #[serde(default)]
    scope: Option<String>,
    /// Only keys whose names start with this.
    #[serde(default)]
    prefix: Option<String>,
    /// Show secrets decrypted (admins; the owner for user keys).
    #[serde(default)]
    decrypt: bool,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (`scope/name`).
    #[serde(default)]
    after: Option<String>,
}

/// `GET /kv`: datastore keys, secrets masked unless decryption is asked for and allowed.
#[utoipa::path(get, path = "/kv", tag = "datastore",
    security(("api_token" = ["viewer"])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of keys, by scope and name", body = Page<KvPair>),
        (status = 400, description = "Bad scope", body = drover_proto::error::ApiError),
        (status = 403, description = "Decryption not allowed", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Page<KvPair>>> {
    let limit = paging::limit(p.limit)?;
    let own = format!("user:{}", caller.name);
    // The scopes this caller may list, so that the store pages only visible keys.
    let scopes: Option<Vec<String>> = match p.scope.as_deref() {
        None | Some("all") if caller.role >= Role::Admin => None,
        None | Some("all") => Some(vec!["system".into(), own]),
        Some(s) => Some(vec![stored_scope(s, &caller.name)?]),
    };
    let after = match p.after.as_deref() {
        None => None,
        Some(a) => Some(a.rsplit_once('/').ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter `after`: `{a}` is not a `scope/name` cursor"
            ))
        })?),
    };
    let query = KvQuery {
        scopes: scopes.as_deref(),
        prefix: p.prefix.as_deref().unwrap_or(""),
        after,
        limit: Some(limit + 1),
    };
    let rows = state.store.kv_page(&query).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let decrypt = p.decrypt && row.secret;
        if decrypt && !may_decrypt(&caller, &row.scope) {
            return Err(ApiError::forbidden(format!(
                "decrypting {} secrets needs the admin role",
                row.scope
            )));
        }
        out.push(shown(&state, row, decrypt)?);
    }
    Ok(Json(paging::page_of(out, limit, |k| {
        format!("{}/{}", k.scope, k.name)
    })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetParams {
    /// Show a secret decrypted (admins; the owner for user keys).
    #[serde(default)]
    decrypt: bool,
}

/// `GET /kv/{scope}/{name}`: one key.
#[utoipa::path(get, path = "/kv/{scope}/{name}", tag = "datastore",
    security(("api_token" = ["viewer"])),
    params(("scope" = String, Path, description = "`system` or `user`"),
        ("name" = String, Path, description = "Key name"), GetParams),
    responses(
        (status = 200, description = "The key", body = KvPair),
        (status = 400, description = "Bad scope or name", body = drover_proto::error::ApiError),
        (status = 403, description = "Decryption not allowed", body = drover_proto::error::ApiError),
        (status = 404, description = "No such key", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Path((scope, name)): Path<(String, String)>,
    Params(p): Params<GetParams>,
) -> ApiResult<Json<KvPair>> {
    let scope = stored_scope(&scope, &caller.name)?;
    check_name(&name)?;
    let row = state
        .store
        .kv_get(&scope, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no key `{name}` in scope {scope}")))?;
    let decrypt = p.decrypt && row.secret;
    if decrypt && !may_decrypt(&caller, &row.scope) {
        return Err(ApiError::forbidden(format!(
            "decrypting {} secrets needs the admin role",
            row.scope
        )));
    }
    Ok(Json(shown(&state, row, decrypt)?))
}

/// `PUT /kv/{scope}/{name}`: write a key (a secret is encrypted before it is stored).
#[utoipa::path(put, path = "/kv/{scope}/{name}", tag = "datastore",
    security(("api_token" = ["operator"])),
    params(("scope" = String, Path, description = "`system` or `user`"),
        ("name" = String, Path, description = "Key name")),
    request_body = KvPut,
    responses(
        (status = 200, description = "The key as stored (secret masked)", body = KvPair),
        (status = 400, description = "Bad scope, name, value or TTL", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn put(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path((scope, name)): Path<(String, String)>,
    Body(body): Body<KvPut>,
) -> ApiResult<Json<KvPair>> {
    let scope = stored_scope(&scope, &caller.name)?;
    check_name(&name)?;
    if body.value.len() > MAX_VALUE {
        return Err(ApiError::bad_request(format!(
            "value: {} bytes is over the limit of {MAX_VALUE}",
            body.value.len()
        )));
    }
    if body.value.contains('\0') {
        return Err(ApiError::bad_request(
            "value: must not contain NUL characters",
        ));
    }
    let expires_at = match body.ttl_seconds {
        None => None,
        Some(0) => return Err(ApiError::bad_request("ttl_seconds: must be at least 1")),
        Some(s) if s > 10 * 365 * 24 * 3600 => {
            return Err(ApiError::bad_request("ttl_seconds: at most ten years"));
        }
        Some(s) => Some(chrono::Utc::now().timestamp_millis() + (s as i64) * 1000),
    };
    let value = if body.secret {
        state.secrets.seal(&aad(&scope, &name), &body.value)
    } else {
        body.value
    };
    state
        .store
        .kv_set(
            &KvWrite {
                scope: scope.clone(),
                name: name.clone(),
                value,
                secret: body.secret,
                expires_at,
            },
            &caller.name,
        )
        .await?;
    let row = state
        .store
        .kv_get(&scope, &name)
        .await?
        .ok_or_else(|| ApiError::internal("the key vanished after it was written"))?;
    Ok(Json(shown(&state, row, false)?))
}

/// `DELETE /kv/{scope}/{name}`.
#[utoipa::path(delete, path = "/kv/{scope}/{name}", tag = "datastore",
    security(("api_token" = ["operator"])),
    params(("scope" = String, Path, description = "`system` or `user`"),
        ("name" = String, Path, description = "Key name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad scope or name", body = drover_proto::error::ApiError),
        (status = 404, description = "No such key", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path((scope, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let scope = stored_scope(&scope, &caller.name)?;
    check_name(&name)?;
    if state.store.kv_delete(&scope, &name, &caller.name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no key `{name}` in scope {scope}"
        )))
    }
}
