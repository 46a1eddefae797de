//! Routes of `/api/v1`.

mod agent;
mod events;
mod executions;
mod hosts;
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
        .route("/runs", post(executions::create_run))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::get))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/output", get(executions::output))
        .route("/executions/{id}/stream", get(executions::stream))
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
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": drover_proto::VERSION }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
