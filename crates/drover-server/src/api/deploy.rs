//! Deploy views: the plan a model would produce against the live fleet (`POST /plan`),
//! the delta of the applied model (`GET /status`), and stored model versions.
//!
//! All decisions come from `drover_core` (model, delta, plan); this module only gathers
//! the live inputs from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use drover_core::delta::{DeltaSummary, InstanceDelta, delta};
use drover_core::instance::{InstanceKey, LiveInstance};
use drover_core::model::{Model, ModelFile};
use drover_core::plan::{Plan, ServiceRollout, plan};
use drover_proto::hosts::{Host, HostStatus};
use drover_proto::page::Page;
use drover_store::{ModelVersion, StoredFile};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::hosts::parse_selector;
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Path};
use crate::state::AppState;

/// `POST /plan`: a model to compare with the live fleet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"files": [{"path": "web.yaml", "text": MODEL_EXAMPLE}]})))]
pub(crate) struct PlanRequest {
    /// The model's files (`*.yaml`, with paths as they should appear in errors).
    files: Vec<ModelFile>,
}

/// The model of the `POST /plan` example: one service on the hosts labelled `role=web`.
const MODEL_EXAMPLE: &str = "kind: hostclass
name: web
selector: label.role=web
---
kind: service
name: hello
version: \"1.0.0\"
artifact:
  url: https://artifacts.example.com/hello-1.0.0.tar.gz
  sha256: 30727946d0ec8ad557c5ff2f0a309c27dc5ca0614544dcb8196edc4bcbf31904
placement:
  hostclass: web
ports:
  http: 8080
run: [\"./bin/hello\", \"--port\", \"{{ ports.http }}\"]
";

/// The plan, as data and as text.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlanResponse {
    /// Content hash of the model.
    model_hash: String,
    /// Delta counts before the plan.
    summary: DeltaSummary,
    /// The plan.
    plan: Plan,
    /// The plan rendered like a Terraform plan.
    text: String,
}

/// Loads a model, turning its errors into one 422 that lists every one of them.
pub(crate) fn load_model(files: &[ModelFile]) -> ApiResult<Model> {
    drover_core::model::load(files).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        ApiError::unprocessable(format!(
            "the model has {} error{}:\n{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            lines.join("\n")
        ))
    })
}

/// Everything the delta needs from the store.
pub(crate) struct LiveView {
    /// Known hosts.
    pub hosts: Vec<Host>,
    /// Live instances, keyed by host name.
    pub live: Vec<LiveInstance>,
    /// Names of hosts that are down.
    pub unreachable: BTreeSet<String>,
}

pub(crate) async fn live_view(state: &AppState) -> ApiResult<LiveView> {
    let hosts = state.store.list_hosts().await?;
    let unreachable = hosts
        .iter()
        .filter(|h| h.status != HostStatus::Up)
        .map(|h| h.name.clone())
        .collect();
    let live = state
        .store
        .list_instances()
        .await?
        .into_iter()
        .map(|row| LiveInstance {
            key: InstanceKey {
                service: row.report.service,
                host: row.host_name,
                index: row.report.index,
            },
            version: row.report.version,
            state: row.report.state,
            health: row.report.health,
            spec_hash: row.report.spec_hash,
        })
        .collect();
    Ok(LiveView {
        hosts,
        live,
        unreachable,
    })
}

/// Rollout policies and dependencies of every service of a model.
pub(crate) fn rollouts(model: &Model) -> BTreeMap<String, ServiceRollout> {
    model
        .services
        .values()
        .map(|s| {
            (
                s.name.clone(),
                ServiceRollout {
                    policy: s.rollout.clone(),
                    depends_on: s.depends_on.clone(),
                },
            )
        })
        .collect()
}

/// The delta of `model` against the live view. Hosts the model names that never
/// enrolled count as unreachable: nothing can be done there, and nothing is ok.
pub(crate) fn model_delta(model: &Model, view: &LiveView) -> Vec<InstanceDelta> {
    let desired = drover_core::model::desired_instances(model, &view.hosts);
    let known: BTreeSet<&str> = view.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut unreachable = view.unreachable.clone();
    unreachable.extend(
        desired
            .iter()
            .filter(|d| !known.contains(d.key.host.as_str()))
            .map(|d| d.key.host.clone()),
    );
    delta(&desired, &view.live, &unreachable)
}

/// Delta and plan of `model` against the live view.
pub(crate) fn compare(model: &Model, view: &LiveView) -> ApiResult<(Vec<InstanceDelta>, Plan)> {
    let deltas = model_delta(model, view);
    let plan = plan(&deltas, &rollouts(model))
        .map_err(|e| ApiError::unprocessable(format!("cannot plan: {e}")))?;
    Ok((deltas, plan))
}

/// The plan a model would produce against the live fleet. Changes nothing (any role).
#[utoipa::path(post, path = "/plan", tag = "deploy",
    security(("api_token" = ["viewer"])),
    request_body = PlanRequest,
    responses(
        (status = 200, description = "The plan", body = PlanResponse),
        (status = 422, description = "The model has errors (every one is listed)", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn plan_model(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Body(req): Body<PlanRequest>,
) -> ApiResult<Json<PlanResponse>> {
    let model = load_model(&req.files)?;
    let view = live_view(&state).await?;
    let (deltas, plan) = compare(&model, &view)?;
    Ok(Json(PlanResponse {
        model_hash: model.content_hash.clone(),
        summary: DeltaSummary::of(&deltas),
        text: plan.to_string(),
        plan,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusParams {
    /// Only instances on hosts matching this selector.
    #[serde(default)]
    selector: Option<String>,
    /// Only this service.
    #[serde(default)]
    service: Option<String>,
}

/// The delta of the applied model.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusResponse {
    /// The applied model version, if any.
    model_version: Option<i64>,
    /// Counts per status (after filtering).
    summary: DeltaSummary,
    /// One row per instance.
    instances: Vec<InstanceDelta>,
}

/// The delta of the applied model against the live fleet.
#[utoipa::path(get, path = "/status", tag = "deploy",
    security(("api_token" = ["viewer"])),
    params(StatusParams),
    responses(
        (status = 200, description = "The delta", body = StatusResponse),
        (status = 422, description = "The stored model no longer loads", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<StatusParams>,
) -> ApiResult<Json<StatusResponse>> {
    let selector = p
        .selector
        .as_deref()
        .map(|s| parse_selector("query parameter `selector`", s))
        .transpose()?;
    let current = state.store.current_model_version().await?;
    let view = live_view(&state).await?;
    let model = match &current {
        Some(v) => load_model(&to_model_files(&v.files))?,
        None => drover_core::model::load(&[]).map_err(|_| ApiError::internal("empty model"))?,
    };
    let mut deltas = model_delta(&model, &view);
    if let Some(sel) = &selector {
        let chosen: BTreeSet<&str> = view
            .hosts
            .iter()
            .filter(|h| sel.matches(*h))
            .map(|h| h.name.as_str())
            .collect();
        deltas.retain(|d| chosen.contains(d.key.host.as_str()));
    }
    if let Some(service) = &p.service {
        deltas.retain(|d| &d.key.service == service);
    }
    Ok(Json(StatusResponse {
        model_version: current.map(|v| v.id),
        summary: DeltaSummary::of(&deltas),
        instances: deltas,
    }))
}

/// The applied model, parsed; `None` before the first apply.
pub(crate) async fn applied_model(state: &AppState) -> anyhow::Result<Option<Model>> {
    let Some(version) = state.store.current_model_version().await? else {
        return Ok(None);
    };
    load_model(&to_model_files(&version.files))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("stored model: {}", e.detail()))
}

/// Stored files as model files.
pub(crate) fn to_model_files(files: &[StoredFile]) -> Vec<ModelFile> {
    files
        .iter()
        .map(|f| ModelFile {
            path: f.path.clone(),
            text: f.text.clone(),
        })
        .collect()
}

/// `GET /models`'s query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ModelListParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (a version number).
    #[serde(default)]
    after: Option<String>,
}

/// Stored model versions (without files), newest first, a page at a time.
#[utoipa::path(get, path = "/models", tag = "deploy",
    security(("api_token" = ["viewer"])),
    params(ModelListParams),
    responses(
        (status = 200, description = "A page of model versions", body = Page<ModelVersion>),
        (status = 400, description = "Bad limit or cursor", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn list_models(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<ModelListParams>,
) -> ApiResult<Json<Page<ModelVersion>>> {
    let limit = super::paging::limit(p.limit)?;
    let before = super::paging::id_cursor(p.after.as_deref(), "a version number")?;
    let items = state.store.list_model_versions(before, limit + 1).await?;
    Ok(Json(super::paging::page_of(items, limit, |v| {
        v.id.to_string()
    })))
}

/// One model version with its files.
#[utoipa::path(get, path = "/models/{id}", tag = "deploy",
    security(("api_token" = ["viewer"])),
    params(("id" = i64, Path, description = "Model version number")),
    responses(
        (status = 200, description = "The model version", body = ModelVersion),
        (status = 404, description = "No such version", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get_model(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<ModelVersion>> {
    let n: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a model version number")))?;
    state
        .store
        .get_model_version(n)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no model version {n}")))
}

/// `POST /apply`: store a model version and roll it out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyRequest {
    /// The model's files.
    files: Vec<ModelFile>,
    /// Why (kept with the version).
    #[serde(default)]
    message: String,
    /// Allow a model that wants nothing (undeploys everything).
    #[serde(default)]
    allow_empty: bool,
}

/// What `apply` did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Applied {
    /// The stored model version.
    pub model_version: i64,
    /// The rollout's execution id, when there was something to change.
    pub execution_id: Option<String>,
    /// The plan as text.
    pub plan_text: String,
}

/// Stores a model version and rolls it out.
#[utoipa::path(post, path = "/apply", tag = "deploy",
    security(("api_token" = ["operator"])),
    request_body = ApplyRequest,
    responses(
        (status = 201, description = "Stored, and a rollout started", body = Applied),
        (status = 200, description = "Stored; nothing to change", body = Applied),
        (status = 409, description = "A rollout is running", body = drover_proto::error::ApiError),
        (status = 422, description = "The model has errors, or is empty without `allow_empty`", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn apply(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Body(req): Body<ApplyRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<Applied>)> {
    let message = if req.message.trim().is_empty() {
        "applied with drover apply".to_string()
    } else {
        req.message.trim().to_string()
    };
    apply_files(&state, &caller.name, &req.files, &message, req.allow_empty).await
}

/// Stores `files` as a new model version and starts its rollout.
pub(crate) async fn apply_files(
    state: &Arc<AppState>,
    actor: &str,
    files: &[ModelFile],
    message: &str,
    allow_empty: bool,
) -> ApiResult<(axum::http::StatusCode, Json<Applied>)> {
    let model = load_model(files)?;
    if model.services.is_empty() && !allow_empty {
        return Err(ApiError::unprocessable(
            "the model has no services: applying it would undeploy everything; \
             pass allow_empty (drover apply --allow-empty) if that is what you want",
        ));
    }
    if let Some(id) = state.store.active_rollouts().await?.first() {
        let detail = state.store.rollout_detail(id).await?;
        let st = detail.map(|d| d.rollout.state).unwrap_or_default();
        return Err(ApiError::conflict(format!(
            "rollout {id} is {st}: wait for it, or `drover rollout abort {id}`"
        )));
    }
    let view = live_view(state).await?;
    let (_, plan) = compare(&model, &view)?;
    let previous = state.store.current_model_version().await?;
    let older = crate::rollout::stored_models(state, None)
        .await
        .map_err(ApiError::internal)?;
    let models = crate::rollout::Models::new(model.clone(), older, &view);
    let units = crate::rollout::build_units(state, &plan, &models, &view)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let stored_files: Vec<StoredFile> = files
        .iter()
        .map(|f| StoredFile {
            path: f.path.clone(),
            text: f.text.clone(),
        })
        .collect();
    let version = state
        .store
        .add_model_version(&model.content_hash, actor, message, &stored_files)
        .await?;
    let plan_text = plan.to_string();
    if units.is_empty() {
        return Ok((
            axum::http::StatusCode::OK,
            Json(Applied {
                model_version: version.id,
                execution_id: None,
                plan_text,
            }),
        ));
    }
    let execution_id = uuid::Uuid::now_v7().to_string();
    state
        .store
        .create_rollout(&drover_store::NewRollout {
            execution_id: execution_id.clone(),
            actor: actor.to_string(),
            model_version: version.id,
            previous_version: previous.map(|p| p.id),
            plan_text: plan_text.clone(),
            counts: serde_json::to_value(plan.counts).unwrap_or_default(),
            units,
        })
        .await?;
    let st = state.clone();
    let id = execution_id.clone();
    tokio::spawn(async move { crate::rollout::tick(&st, &id).await });
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Applied {
            model_version: version.id,
            execution_id: Some(execution_id),
            plan_text,
        }),
    ))
}

/// A rollout's detail, or 404.
async fn rollout_or_404(
    state: &AppState,
    id: &str,
) -> ApiResult<Json<drover_store::RolloutDetail>> {
    state
        .store
        .rollout_detail(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no rollout `{id}`")))
}

/// A rollout with its units, instances and steps.
#[utoipa::path(get, path = "/rollouts/{id}", tag = "deploy",
    security(("api_token" = ["viewer"])),
    params(("id" = String, Path, description = "The rollout's execution id, or `latest`")),
    responses(
        (status = 200, description = "The rollout", body = drover_store::RolloutDetail),
        (status = 404, description = "No such rollout", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get_rollout(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<drover_store::RolloutDetail>> {
    let id = if id == "latest" {
        state
            .store
            .latest_rollout()
            .await?
            .ok_or_else(|| ApiError::not_found("no rollout yet"))?
    } else {
        id
    };
    rollout_or_404(&state, &id).await
}

/// What `POST /rollouts/{id}/{action}` does.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RolloutAction {
    /// Go on after the canary (`awaiting-promotion` → `running`).
    Promote,
    /// Stop starting new steps (`running` → `paused`).
    Pause,
    /// Go on (`paused` → `running`).
    Resume,
    /// Stop for good (→ `aborted`).
    Abort,
}

/// `POST /rollouts/{id}/{promote|pause|resume|abort}`.
#[utoipa::path(post, path = "/rollouts/{id}/{action}", tag = "deploy",
    security(("api_token" = ["operator"])),
    params(
        ("id" = String, Path, description = "The rollout's execution id"),
        ("action" = RolloutAction, Path, description = "What to do"),
    ),
    responses(
        (status = 200, description = "The rollout", body = drover_store::RolloutDetail),
        (status = 404, description = "No such rollout or action", body = drover_proto::error::ApiError),
        (status = 409, description = "The rollout is in a state the action does not apply to", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn control_rollout(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path((id, verb)): Path<(String, String)>,
) -> ApiResult<Json<drover_store::RolloutDetail>> {
    let (from, to): (&[&str], &str) =
        match serde_json::from_value::<RolloutAction>(verb.clone().into()) {
            Ok(RolloutAction::Promote) => (&["awaiting-promotion"], "running"),
            Ok(RolloutAction::Pause) => (&["running"], "paused"),
            Ok(RolloutAction::Resume) => (&["paused"], "running"),
            Ok(RolloutAction::Abort) => (&["running", "paused", "awaiting-promotion"], "aborted"),
            Err(_) => {
                return Err(ApiError::not_found(format!(
                    "no rollout action `{verb}` (promote, pause, resume, abort)"
                )));
            }
        };
    let Json(detail) = rollout_or_404(&state, &id).await?;
    if !state
        .store
        .set_rollout_state(&id, from, to, None, None, &caller.name)
        .await?
    {
        return Err(ApiError::conflict(format!(
            "rollout {id} is {}: cannot {verb} it",
            detail.rollout.state
        )));
    }
    if to == "running" {
        let st = state.clone();
        let rid = id.clone();
        tokio::spawn(async move { crate::rollout::tick(&st, &rid).await });
    }
    rollout_or_404(&state, &id).await
}

/// `POST /rollback`: apply the model version before the current one again.
#[utoipa::path(post, path = "/rollback", tag = "deploy",
    security(("api_token" = ["operator"])),
    responses(
        (status = 201, description = "Stored again, and a rollout started", body = Applied),
        (status = 200, description = "Stored again; nothing to change", body = Applied),
        (status = 409, description = "A rollout is running", body = drover_proto::error::ApiError),
        (status = 422, description = "Fewer than two model versions are stored", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn rollback(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
) -> ApiResult<(axum::http::StatusCode, Json<Applied>)> {
    let versions = state.store.list_model_versions(None, 2).await?;
    let (Some(current), Some(prev)) = (versions.first(), versions.get(1)) else {
        return Err(ApiError::unprocessable(
            "nothing to roll back to: fewer than two model versions are stored",
        ));
    };
    let prev = state
        .store
        .get_model_version(prev.id)
        .await?
        .ok_or_else(|| ApiError::internal("model version vanished"))?;
    apply_files(
        &state,
        &caller.name,
        &to_model_files(&prev.files),
        &format!(
            "rollback from version {} to version {}",
            current.id, prev.id
        ),
        true,
    )
    .await
}
