//! Deploy views: the plan a model would produce against the live fleet (`POST /plan`),
//! the delta of the applied model (`GET /status`), and stored model versions.
//!
//! All decisions come from `drover_core` (model, delta, plan); this module only gathers
//! the live inputs from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use drover_core::delta::{DeltaSummary, InstanceDelta, delta};
use drover_core::instance::{InstanceKey, LiveInstance};
use drover_core::model::{Model, ModelFile};
use drover_core::plan::{Plan, ServiceRollout, plan};
use drover_proto::hosts::{Host, HostStatus};
use drover_store::{ModelVersion, StoredFile};
use serde::{Deserialize, Serialize};

use super::hosts::parse_selector;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params};
use crate::state::AppState;

/// `POST /plan`: a model to compare with the live fleet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRequest {
    /// The model's files.
    files: Vec<ModelFile>,
}

/// The plan, as data and as text.
#[derive(Debug, Serialize)]
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
        .filter(|h| h.status == HostStatus::Down)
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusParams {
    /// Only instances on hosts matching this selector.
    #[serde(default)]
    selector: Option<String>,
    /// Only this service.
    #[serde(default)]
    service: Option<String>,
}

/// The delta of the applied model.
#[derive(Debug, Serialize)]
pub(crate) struct StatusResponse {
    /// The applied model version, if any.
    model_version: Option<i64>,
    /// Counts per status (after filtering).
    summary: DeltaSummary,
    /// One row per instance.
    instances: Vec<InstanceDelta>,
}

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

pub(crate) async fn list_models(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
) -> ApiResult<Json<Vec<ModelVersion>>> {
    Ok(Json(state.store.list_model_versions(1000).await?))
}

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
