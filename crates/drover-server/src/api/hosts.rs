//! Hosts: list with a selector, and one host.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use drover_core::selector::Selector;
use drover_proto::hosts::Host;
use drover_proto::page::Page;
use serde::Deserialize;
use utoipa::IntoParams;

use super::paging;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Path};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Host selector (`name=web-*,label.role=db,fact.os!=darwin`); default all hosts.
    #[serde(default)]
    selector: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (a host name).
    #[serde(default)]
    after: Option<String>,
}

/// Parses a selector given in a request, as a 400 naming the column.
pub(crate) fn parse_selector(field: &str, text: &str) -> Result<Selector, ApiError> {
    drover_core::selector::parse(text)
        .map_err(|e| ApiError::bad_request(format!("{field} `{text}`: {e}")))
}

/// Hosts matching a selector, by name, a page at a time.
#[utoipa::path(get, path = "/hosts", tag = "hosts",
    security(("api_token" = ["viewer"])),
    params(ListParams),
    responses((status = 200, description = "A page of hosts", body = Page<Host>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Page<Host>>> {
    let selector = match &p.selector {
        Some(s) => parse_selector("query parameter `selector`", s)?,
        None => Selector::all(),
    };
    let limit = paging::limit(p.limit)? as usize;
    let all = state.store.list_hosts().await?;
    let mut items: Vec<Host> = all
        .iter()
        .filter(|h| selector.matches(*h))
        .filter(|h| {
            p.after
                .as_ref()
                .is_none_or(|a| h.name.as_str() > a.as_str())
        })
        .take(limit + 1)
        .cloned()
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|h| h.name.clone())
    } else {
        None
    };
    enrich(&state, &mut items, Some(&all)).await?;
    Ok(Json(Page { items, next }))
}

/// Fills in what the store does not keep on the host row: the hostclasses of the
/// applied model it belongs to, and its live instance count.
/// `all` is every host, when the caller has read them already.
pub(crate) async fn enrich(
    state: &AppState,
    hosts: &mut [Host],
    all: Option<&[Host]>,
) -> ApiResult<()> {
    if hosts.is_empty() {
        return Ok(());
    }
    let mut counts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for row in state.store.list_instances().await? {
        *counts.entry(row.host_id).or_default() += 1;
    }
    // A stored model that no longer loads only costs the hostclasses.
    let model = super::deploy::applied_model(state).await.ok().flatten();
    let mut classes: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    if let Some(model) = model.as_ref().filter(|m| !m.hostclasses.is_empty()) {
        // Membership by selector needs every live host (a pin wins over selectors).
        let read;
        let all = match all {
            Some(all) => all,
            None => {
                read = state.store.list_hosts().await?;
                &read[..]
            }
        };
        for class in model.hostclasses.keys() {
            for name in drover_core::model::hostclass_members(model, class, all) {
                classes.entry(name).or_default().push(class.clone());
            }
        }
    }
    for h in hosts.iter_mut() {
        h.instances = counts.get(&h.id).copied().unwrap_or(0);
        h.hostclasses = classes.remove(&h.name).unwrap_or_default();
    }
    Ok(())
}

/// Every live instance, as agents report them.
#[utoipa::path(get, path = "/instances", tag = "deploy",
    security(("api_token" = ["viewer"])),
    responses((status = 200, description = "Live instances with their hosts", body = Vec<drover_store::LiveRow>)))]
pub(crate) async fn instances(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
) -> ApiResult<Json<Vec<drover_store::LiveRow>>> {
    Ok(Json(state.store.list_instances().await?))
}

/// One host, by name or id.
#[utoipa::path(get, path = "/hosts/{host}", tag = "hosts",
    security(("api_token" = ["viewer"])),
    params(("host" = String, Path, description = "Host name or id")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 404, description = "No such host", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(host): Path<String>,
) -> ApiResult<Json<Host>> {
    let found = match state.store.get_host_by_name(&host).await? {
        Some(h) => Some(h),
        None => state.store.get_host(&host).await?,
    };
    let mut found: Vec<Host> = found.into_iter().collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!("no host named `{host}`")));
    }
    enrich(&state, &mut found, None).await?;
    found
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no host named `{host}`")))
}
