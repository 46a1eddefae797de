//! Routes of `/api/v1`.

mod agent;
mod artifacts;
pub(crate) mod automation;
pub(crate) mod deploy;
mod events;
pub(crate) mod executions;
mod generators;
mod hosts;
mod inventory;
mod kv;
pub(crate) use kv::aad as kv_aad;
pub(crate) mod openapi;
mod paging;
mod tokens;
pub(crate) mod trace;
mod webhooks;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// Every endpoint of `/api/v1`, each registered together with its OpenAPI operation:
/// this list is both the router and the document's paths, so the two cannot drift.
/// Register routes here only with `.routes(routes!(…))`; a plain `.route(…)` would be
/// served but missing from the document (a test refuses it).
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    let api = OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .routes(routes!(tokens::login))
        .routes(routes!(tokens::whoami))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(hosts::list))
        .routes(routes!(hosts::get))
        .routes(routes!(inventory::history))
        .routes(routes!(inventory::drain))
        .routes(routes!(inventory::providers))
        .routes(routes!(inventory::sync))
        .routes(routes!(executions::create_run))
        .routes(routes!(executions::logs))
        .routes(routes!(executions::list))
        .routes(routes!(executions::get))
        .routes(routes!(executions::cancel))
        .routes(routes!(trace::trace))
        .routes(routes!(trace::rerun))
        .routes(routes!(trace::pause_resume))
        .routes(routes!(executions::output))
        .routes(routes!(executions::stream))
        .routes(routes!(artifacts::list, artifacts::push))
        .routes(routes!(artifacts::download))
        .routes(routes!(hosts::instances))
        .routes(routes!(deploy::plan_model))
        .routes(routes!(deploy::status))
        .routes(routes!(deploy::list_models))
        .routes(routes!(deploy::get_model))
        .routes(routes!(deploy::apply))
        .routes(routes!(deploy::rollback))
        .routes(routes!(deploy::get_rollout))
        .routes(routes!(deploy::control_rollout))
        .routes(routes!(generators::list))
        .routes(routes!(generators::render))
        .routes(routes!(generators::apply))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .routes(routes!(automation::list_packs, automation::install_pack))
        .routes(routes!(automation::remove_pack))
        .routes(routes!(automation::list_actions))
        .routes(routes!(automation::get_action))
        .routes(routes!(automation::run))
        .routes(routes!(automation::list_rules))
        .routes(routes!(automation::get_rule))
        .routes(routes!(automation::switch_rule))
        .routes(routes!(automation::test_rule))
        .routes(routes!(kv::list))
        .routes(routes!(kv::get, kv::put, kv::delete))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::delete, webhooks::receive))
        .routes(routes!(agent::enroll))
        .routes(routes!(agent::heartbeat))
        .routes(routes!(agent::poll))
        .routes(routes!(agent::output))
        .routes(routes!(agent::status));
    OpenApiRouter::new().nest(drover_proto::API_PREFIX, api)
}

/// The whole API.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    let (api, _doc) = routes().split_for_parts();
    api.fallback(not_found)
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

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthInfo {
    /// Always `ok`.
    status: &'static str,
    /// The controller's version.
    version: &'static str,
}

/// Liveness; needs no token.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "The controller is up", body = HealthInfo)))]
async fn health() -> Json<HealthInfo> {
    Json(HealthInfo {
        status: "ok",
        version: drover_proto::VERSION,
    })
}

/// This document; needs no token.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of `/api/v1`",
        content_type = "application/json", body = Object)))]
async fn openapi_json() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::json(),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
