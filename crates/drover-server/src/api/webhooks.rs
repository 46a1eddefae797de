//! Webhooks: `POST /webhooks/{name}` turns a call into a `webhook` event (StackStorm's
//! `core.st2.webhook`: payload `{name, headers, headers_lower, body}`) that rules match.
//!
//! A registered webhook (`POST /webhooks`) carries its own secret, so an outside system
//! needs no API token: it sends the secret in `X-Drover-Webhook-Token`, or signs the
//! body with it (`X-Hub-Signature-256: sha256=<hex>`, as GitHub does). Any webhook may
//! also be called with an operator API token. Credentials never reach the event.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use drover_proto::auth::Role;
use drover_proto::automation::{WebhookAccepted, WebhookCreate, WebhookInfo};
use drover_proto::events::types;
use drover_proto::page::Page;
use drover_store::{NewEvent, WebhookRow};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::paging::{self, PageParams};
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Path};
use crate::state::AppState;

/// Header carrying a token webhook's secret.
pub(crate) const TOKEN_HEADER: &str = "x-drover-webhook-token";
/// Header carrying an HMAC webhook's signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Headers never copied into the event.
const HIDDEN_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    TOKEN_HEADER,
    "proxy-authorization",
    "x-api-key",
];

fn aad(name: &str) -> String {
    format!("webhook:{name}")
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "name: `{name}` is not a webhook name (1 to 128 letters, digits, `_`, `-`, `.`)"
        )))
    }
}

fn info(row: &WebhookRow, secret: Option<String>) -> WebhookInfo {
    WebhookInfo {
        name: row.name.clone(),
        auth: row.auth.clone(),
        path: format!("{}/webhooks/{}", drover_proto::API_PREFIX, row.name),
        created_at: row.created_at,
        created_by: row.created_by.clone(),
        secret,
    }
}

/// `GET /webhooks`: registered webhooks (without secrets).
#[utoipa::path(get, path = "/webhooks", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(PageParams),
    responses((status = 200, description = "A page of registered webhooks, by name", body = Page<WebhookInfo>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(q): Params<PageParams>,
) -> ApiResult<Json<Page<WebhookInfo>>> {
    let limit = paging::limit(q.limit)?;
    let rows = state.store.list_webhooks().await?;
    let all = rows.iter().map(|r| info(r, None)).collect();
    Ok(Json(paging::page_after(
        all,
        q.after.as_deref(),
        limit,
        |w| w.name.clone(),
    )))
}

/// `POST /webhooks`: register (or replace) a webhook with its own secret; the answer
/// shows the secret once.
#[utoipa::path(post, path = "/webhooks", tag = "automation",
    security(("api_token" = ["operator"])),
    request_body = WebhookCreate,
    responses(
        (status = 201, description = "Registered; `secret` is shown this once", body = WebhookInfo),
        (status = 400, description = "Bad name, auth or secret", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Body(req): Body<WebhookCreate>,
) -> ApiResult<(StatusCode, Json<WebhookInfo>)> {
    check_name(&req.name)?;
    if req.auth != "token" && req.auth != "hmac" {
        return Err(ApiError::bad_request(format!(
            "auth: unknown `{}`: expected `token` or `hmac`",
            req.auth
        )));
    }
    let secret = match req.secret {
        Some(s) if s.len() < 16 => {
            return Err(ApiError::bad_request(
                "secret: must be at least 16 characters",
            ));
        }
        Some(s) if s.len() > 1024 || s.contains('\0') => {
            return Err(ApiError::bad_request(
                "secret: at most 1024 characters, no NUL",
            ));
        }
        Some(s) => s,
        None => hex::encode(rand::random::<[u8; 32]>()),
    };
    let sealed = state.secrets.seal(&aad(&req.name), &secret);
    state
        .store
        .put_webhook(&req.name, &req.auth, &sealed, &caller.name)
        .await?;
    let row = state
        .store
        .get_webhook(&req.name)
        .await?
        .ok_or_else(|| ApiError::internal("the webhook vanished after it was written"))?;
    Ok((StatusCode::CREATED, Json(info(&row, Some(secret)))))
}

/// `DELETE /webhooks/{name}`: unregister.
#[utoipa::path(delete, path = "/webhooks/{name}", tag = "automation",
    security(("api_token" = ["operator"])),
    params(("name" = String, Path, description = "Webhook name")),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 404, description = "No such webhook", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if state.store.delete_webhook(&name, &caller.name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no webhook `{name}`")))
    }
}

/// Whether the call carries the registered webhook's own credential.
fn own_credential(
    state: &AppState,
    hook: &WebhookRow,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<bool> {
    let secret = state.secrets.open(&aad(&hook.name), &hook.secret).ok()?;
    match hook.auth.as_str() {
        "token" => {
            let given = headers.get(TOKEN_HEADER)?.as_bytes();
            Some(bool::from(given.ct_eq(secret.as_bytes())))
        }
        "hmac" => {
            let given = headers.get(SIGNATURE_HEADER)?.to_str().ok()?;
            let given = given.strip_prefix("sha256=").unwrap_or(given);
            let Ok(given) = hex::decode(given.trim()) else {
                return Some(false);
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
            mac.update(body);
            Some(mac.verify_slice(&given).is_ok())
        }
        _ => Some(false),
    }
}

/// The event payload: StackStorm's `{headers, body}` plus `name` and `headers_lower`.
fn payload(name: &str, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut shown = serde_json::Map::new();
    let mut lower = serde_json::Map::new();
    for (k, v) in headers {
        let key = k.as_str();
        if HIDDEN_HEADERS.contains(&key) {
            continue;
        }
        let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
        lower.insert(key.to_string(), json!(value));
        // HTTP/1 header names arrive lower-cased; keep them so, as StackStorm's
        // `headers` keeps what it got.
        shown.insert(key.to_string(), json!(value));
    }
    let text = String::from_utf8_lossy(body);
    let body = if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str::<Value>(&text).unwrap_or_else(|_| json!(text))
    };
    json!({ "name": name, "headers": shown, "headers_lower": lower, "body": body })
}

/// `POST /webhooks/{name}`: record a `webhook` event for the rules. Authenticated by the
/// webhook's own secret (registered webhooks) or an operator API token.
#[utoipa::path(post, path = "/webhooks/{name}", tag = "automation",
    security(("api_token" = ["operator"]), ("webhook_secret" = [])),
    params(("name" = String, Path, description = "Webhook name")),
    request_body(content = Object, description = "Any JSON (or text) body; it becomes `trigger.body`"),
    responses(
        (status = 202, description = "Recorded", body = WebhookAccepted),
        (status = 404, description = "No rule listens and no webhook is registered by that name", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn receive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<WebhookAccepted>)> {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|e| ApiError::too_large(format!("cannot read the body: {e}")))?;
    let headers: HeaderMap = parts.headers.clone();
    check_name(&name)?;
    let hook = state.store.get_webhook(&name).await?;
    let actor = match hook
        .as_ref()
        .and_then(|h| own_credential(&state, h, &headers, &body))
    {
        Some(true) => format!("webhook:{name}"),
        Some(false) => {
            return Err(ApiError::unauthorized(format!(
                "the credential for webhook `{name}` is wrong"
            )));
        }
        None => {
            // Only now, with no webhook credential, is an API token required (asking
            // earlier would record a failed login for every signed call).
            let caller = ApiCaller::from_request_parts(&mut parts, &state).await?;
            caller.require(Role::Operator)?;
            if hook.is_none() && !crate::automation::listens_on_webhook(&state, &name).await {
                return Err(ApiError::not_found(format!(
                    "no webhook `{name}`: no enabled rule listens on it and none is registered"
                )));
            }
            caller.name
        }
    };
    let id = state
        .store
        .append_event(NewEvent::new(
            types::WEBHOOK_RECEIVED,
            &actor,
            payload(&name, &headers, &body),
        ))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(WebhookAccepted { event_id: id })))
}
