//! Inventory: providers, host history, host drain.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use drover_proto::hosts::{Host, HostChange};
use drover_proto::inventory::ProviderState;
use drover_proto::page::Page;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::paging::{self, PageParams};
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Path};
use crate::state::AppState;

/// `GET /providers`: every provider's last sync.
#[utoipa::path(get, path = "/providers", tag = "inventory",
    security(("api_token" = ["viewer"])),
    params(PageParams),
    responses((status = 200, description = "A page of the applied model's providers, by name", body = Page<ProviderState>)))]
pub(crate) async fn providers(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(q): Params<PageParams>,
) -> ApiResult<Json<Page<ProviderState>>> {
    let limit = paging::limit(q.limit)?;
    let all = state.store.providers().await?;
    Ok(Json(paging::page_after(
        all,
        q.after.as_deref(),
        limit,
        |p| p.name.clone(),
    )))
}

/// `POST /providers/{name}/sync`: sync now (at the next round, within a second).
#[utoipa::path(post, path = "/providers/{name}/sync", tag = "inventory",
    security(("api_token" = ["operator"])),
    params(("name" = String, Path, description = "Provider name (from the model)")),
    responses(
        (status = 200, description = "The provider's state before the sync", body = ProviderState),
        (status = 404, description = "No such provider", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn sync(
    State(state): State<Arc<AppState>>,
    _caller: Operator,
    Path(name): Path<String>,
) -> ApiResult<Json<ProviderState>> {
    let known = state.store.providers().await?;
    let Some(p) = known.into_iter().find(|p| p.name == name) else {
        return Err(ApiError::not_found(format!(
            "no provider `{name}` (providers are declared in the model)"
        )));
    };
    state.store.request_provider_sync(&name).await?;
    Ok(Json(p))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (a change id).
    #[serde(default)]
    after: Option<String>,
}

/// What `POST /hosts/{host}/{action}` does.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HostAction {
    /// Take the host out of every load-balancer pool.
    Drain,
    /// Put it back.
    Undrain,
}

/// `GET /hosts/{host}/history`: what changed on a host, newest first (also for a
/// host that was removed).
#[utoipa::path(get, path = "/hosts/{host}/history", tag = "hosts",
    security(("api_token" = ["viewer"])),
    params(("host" = String, Path, description = "Host name or id"), HistoryParams),
    responses(
        (status = 200, description = "A page of changes, newest first", body = Page<HostChange>),
        (status = 400, description = "Bad limit or cursor", body = drover_proto::error::ApiError),
        (status = 404, description = "No such host", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn history(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(host): Path<String>,
    Params(p): Params<HistoryParams>,
) -> ApiResult<Json<Page<HostChange>>> {
    let limit = super::paging::limit(p.limit)?;
    let before = super::paging::id_cursor(p.after.as_deref(), "a change id")?;
    let changes = state.store.host_history(&host, before, limit + 1).await?;
    if changes.is_empty()
        && state.store.get_host_by_name(&host).await?.is_none()
        && state.store.get_host(&host).await?.is_none()
    {
        return Err(ApiError::not_found(format!("no host named `{host}`")));
    }
    Ok(Json(super::paging::page_of(changes, limit, |c| {
        c.id.to_string()
    })))
}

/// `POST /hosts/{host}/drain` and `/undrain`: take a host out of every load-balancer
/// pool (its instances render as `drain` in every generator), or put it back.
#[utoipa::path(post, path = "/hosts/{host}/{action}", tag = "hosts",
    security(("api_token" = ["operator"])),
    params(
        ("host" = String, Path, description = "Host name"),
        ("action" = HostAction, Path, description = "`drain` or `undrain`"),
    ),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 404, description = "No such host or action", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn drain(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path((host, verb)): Path<(String, String)>,
) -> ApiResult<Json<Host>> {
    let drained = match serde_json::from_value::<HostAction>(verb.clone().into()) {
        Ok(HostAction::Drain) => true,
        Ok(HostAction::Undrain) => false,
        Err(_) => {
            return Err(ApiError::not_found(format!(
                "no action `{verb}` on hosts; use drain or undrain"
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
