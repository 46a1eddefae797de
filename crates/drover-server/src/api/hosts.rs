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

/// Hosts read from the store per step while filtering a page by a selector that has
/// no prefilters.
const SCAN_CHUNK: u32 = 500;
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
    // Read the store a page at a time from the cursor and keep the hosts that match,
    // until one more than the page is found. The store skips rows that cannot match
    // (the selector's prefilters) before decoding them, so the cost follows the
    // candidates, not the fleet.
    let pre = selector.prefilters();
    // With prefilters the store returns candidates that nearly always match, so a
    // page's worth is read; a selector without any (only negations, say) reads
    // bigger steps, as most rows may fail it.
    let chunk = if selector.is_all() || !pre.is_empty() {
        limit as u32 + 1
    } else {
        (limit as u32 + 1).max(SCAN_CHUNK)
    };
    let mut items: Vec<Host> = Vec::with_capacity(limit + 1);
    let mut cursor = p.after.clone();
    loop {
        let read = state
            .store
            .list_hosts_page(cursor.as_deref(), chunk, &pre)
            .await?;
        let done = read.len() < chunk as usize;
        cursor = read.last().map(|h| h.name.clone());
        items.extend(read.into_iter().filter(|h| selector.matches(h)));
        if done || items.len() > limit {
            break;
        }
    }
    let mut page = paging::page_of(items, limit as u32, |h| h.name.clone());
    enrich(&state, &mut page.items).await?;
    Ok(Json(page))
}

/// Fills in what the store does not keep on the host row: the hostclasses of the
/// applied model it belongs to, and its live instance count. Reads only these hosts'
/// instances; the model is parsed once per version.
pub(crate) async fn enrich(state: &AppState, hosts: &mut [Host]) -> ApiResult<()> {
    if hosts.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    let counts = state.store.instance_counts(&ids).await?;
    let mut classes = match state.applied.get(&state.store).await? {
        Some(model) => crate::applied::hostclasses_of(&model, hosts),
        None => Default::default(),
    };
    for h in hosts.iter_mut() {
        h.instances = counts.get(&h.id).copied().unwrap_or(0);
        h.hostclasses = classes.remove(&h.name).unwrap_or_default();
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InstanceParams {
    /// Only this host's instances (by name).
    #[serde(default)]
    host: Option<String>,
    /// Only this service's instances.
    #[serde(default)]
    service: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (`host/service/index`).
    #[serde(default)]
    after: Option<String>,
}

/// Reads an instance cursor, `host/service/index` (neither names may hold a `/`).
fn instance_cursor(a: &str) -> Result<(&str, &str, u32), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "query parameter `after`: `{a}` is not a `host/service/index` cursor"
        ))
    };
    let (host, rest) = a.split_once('/').ok_or_else(bad)?;
    let (service, idx) = rest.split_once('/').ok_or_else(bad)?;
    Ok((host, service, idx.parse().map_err(|_| bad())?))
}

/// Live instances as agents report them, by host name, service and index.
#[utoipa::path(get, path = "/instances", tag = "deploy",
    security(("api_token" = ["viewer"])),
    params(InstanceParams),
    responses(
        (status = 200, description = "A page of live instances with their hosts", body = Page<drover_store::LiveRow>),
        (status = 400, description = "Bad limit or cursor", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn instances(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<InstanceParams>,
) -> ApiResult<Json<Page<drover_store::LiveRow>>> {
    let limit = paging::limit(p.limit)?;
    let after = p.after.as_deref().map(instance_cursor).transpose()?;
    let query = drover_store::InstanceQuery {
        host: p.host.as_deref(),
        service: p.service.as_deref(),
        after,
        limit: limit + 1,
    };
    let rows = state.store.instances_page(&query).await?;
    Ok(Json(paging::page_of(rows, limit, |r| {
        format!("{}/{}/{}", r.host_name, r.report.service, r.report.index)
    })))
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
    enrich(&state, &mut found).await?;
    found
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no host named `{host}`")))
}
