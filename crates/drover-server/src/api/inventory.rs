//! Inventory: providers, host history, host drain.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use drover_proto::auth::Role;
use drover_proto::hosts::{Host, HostChange};
use drover_proto::inventory::ProviderState;
use serde::Deserialize;

use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::state::AppState;

/// `GET /providers`: every provider's last sync.
pub(crate) async fn providers(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
) -> ApiResult<Json<Vec<ProviderState>>> {
    Ok(Json(state.store.providers().await?))
}

/// `POST /providers/{name}/sync`: sync now (at the next round, within a second).
pub(crate) async fn sync(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<ProviderState>> {
    caller.require(Role::Operator)?;
    let known = state.store.providers().await?;
    let Some(p) = known.into_iter().find(|p| p.name == name) else {
        return Err(ApiError::not_found(format!(
            "no provider `{name}` (providers are declared in the model)"
        )));
    };
    state.store.request_provider_sync(&name).await?;
    Ok(Json(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /hosts/{host}/history`: what changed on a host, newest first (also for a
/// host that was removed).
pub(crate) async fn history(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(host): Path<String>,
    Params(p): Params<HistoryParams>,
) -> ApiResult<Json<Vec<HostChange>>> {
    let limit = super::paging::limit(p.limit)?;
    let changes = state.store.host_history(&host, limit).await?;
    if changes.is_empty()
        && state.store.get_host_by_name(&host).await?.is_none()
        && state.store.get_host(&host).await?.is_none()
    {
        return Err(ApiError::not_found(format!("no host named `{host}`")));
    }
    Ok(Json(changes))
}

/// `POST /hosts/{host}/drain` and `/undrain`: take a host out of every load-balancer
/// pool (its instances render as `drain` in every generator), or put it back.
pub(crate) async fn drain(
    State(state): State<Arc<AppState>>,
    caller: ApiCaller,
    Path((host, verb)): Path<(String, String)>,
) -> ApiResult<Json<Host>> {
    caller.require(Role::Operator)?;
    let drained = match verb.as_str() {
        "drain" => true,
        "undrain" => false,
        other => {
            return Err(ApiError::not_found(format!(
                "no action `{other}` on hosts; use drain or undrain"
            )));
        }
    };
    let h = state
        .store
        .set_host_drained(&host, drained, &caller.name)
        .await?;
    // Every generator renders again (and a rollout waiting on one sees it).
    state.store.bump_drain_epoch().await?;
    Ok(Json(h))
}
