//! Routes of `/api/v1`.

mod agent;
mod artifacts;
pub(crate) mod deploy;
mod events;
mod executions;
mod generators;
mod hosts;
mod inventory;
mod paging;
mod tokens;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// The whole API.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    let api = Router::new()
        .route("/health", get(health))
        .route("/login", post(tokens::login))
        .route("/whoami", get(tokens::whoami))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/hosts", get(hosts::list))
        .route("/hosts/{host}", get(hosts::get))
        .route("/hosts/{host}/history", get(inventory::history))
        .route("/hosts/{host}/{verb}", post(inventory::drain))
        .route("/providers", get(inventory::providers))
        .route("/providers/{name}/sync", post(inventory::sync))
        .route("/runs", post(executions::create_run))
        .route("/logs", post(executions::logs))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::get))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/output", get(executions::output))
        .route("/executions/{id}/stream", get(executions::stream))
        .route("/artifacts", get(artifacts::list).post(artifacts::push))
        .route("/artifacts/{sha}", get(artifacts::download))
        .route("/instances", get(hosts::instances))
        .route("/plan", post(deploy::plan_model))
        .route("/status", get(deploy::status))
        .route("/models", get(deploy::list_models))
        .route("/models/{id}", get(deploy::get_model))
        .route("/apply", post(deploy::apply))
        .route("/rollback", post(deploy::rollback))
        .route("/rollouts/{id}", get(deploy::get_rollout))
        .route("/rollouts/{id}/{verb}", post(deploy::control_rollout))
        .route("/generators", get(generators::list))
        .route("/generators/{name}/render", get(generators::render))
        .route("/generators/{name}/apply", post(generators::apply))
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/agent/enroll", post(agent::enroll))
        .route("/agent/heartbeat", post(agent::heartbeat))
        .route("/agent/poll", post(agent::poll))
        .route("/agent/commands/{id}/output", post(agent::output))
        .route("/agent/commands/{id}/status", post(agent::status))
        .fallback(not_found);
    Router::new()
        .nest(drover_proto::API_PREFIX, api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            refuse_announced_oversize(limit, req, next)
        }))
        .with_state(state)
}

/// Answers 413 at once when `Content-Length` announces more than `limit`, before a byte
/// of the body is read. Bodies without a length (chunked) are cut off by
/// [`DefaultBodyLimit`] while they are read.
async fn refuse_announced_oversize(
    limit: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = if req.uri().path() == "/api/v1/artifacts" {
        artifacts::MAX_ARTIFACT_BYTES
    } else {
        limit as u64
    };
    if announced.is_some_and(|n| n > limit) {
        tracing::warn!(path = %req.uri().path(), "refused a request body over the size limit");
        let mut resp = ApiError::too_large(format!(
            "request body of {} bytes is over the limit of {limit} bytes",
            announced.unwrap_or(0)
        ))
        .into_response();
        // The unread body makes the connection unusable: say so.
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return resp;
    }
    next.run(req).await
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": drover_proto::VERSION }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
