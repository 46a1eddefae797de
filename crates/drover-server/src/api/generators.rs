//! Generators: list with their outputs, preview a render with its diff, apply now.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use drover_proto::inventory::{GeneratorApplied, GeneratorHost, GeneratorInfo, GeneratorPreview};
use drover_proto::page::Page;
use serde::Deserialize;
use utoipa::IntoParams;

use super::paging::{self, PageParams};
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Path};
use crate::generators::{self, context};
use crate::state::AppState;

async fn current_model(state: &AppState) -> ApiResult<drover_core::model::Model> {
    match super::deploy::applied_model(state)
        .await
        .map_err(ApiError::internal)?
    {
        Some(model) => Ok(model),
        // No model applied yet: the empty model (which always loads).
        None => drover_core::model::load(&[])
            .map_err(|_| ApiError::internal("the empty model did not load")),
    }
}

/// `GET /generators`: every generator of the applied model and its state per host.
#[utoipa::path(get, path = "/generators", tag = "generators",
    security(("api_token" = ["viewer"])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of generators, by name, with their outputs", body = Page<GeneratorInfo>),
        (status = 422, description = "The stored model no longer loads", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(q): Params<PageParams>,
) -> ApiResult<Json<Page<GeneratorInfo>>> {
    let limit = paging::limit(q.limit)?;
    let model = current_model(&state).await?;
    let hosts = state.store.list_hosts().await?;
    let outputs = state.store.generator_outputs(None).await?;
    let mut out = Vec::new();
    for g in model.generators.values() {
        let mut rows: Vec<GeneratorHost> = outputs
            .iter()
            .filter(|o| o.generator == g.name)
            .map(|o| GeneratorHost {
                host: o.host_name.clone(),
                status: o.status.clone(),
                applied_sha256: o.applied_sha.clone(),
                error: o.error.clone(),
                updated_at: o.updated_at,
            })
            .collect();
        for h in context::targets(g, &hosts) {
            if !rows.iter().any(|r| r.host == h.name) {
                rows.push(GeneratorHost {
                    host: h.name.clone(),
                    status: "new".into(),
                    applied_sha256: None,
                    error: None,
                    updated_at: 0,
                });
            }
        }
        rows.sort_by(|a, b| a.host.cmp(&b.host));
        out.push(GeneratorInfo {
            name: g.name.clone(),
            targets: g.targets.clone(),
            path: g.path.clone(),
            check: g.check.clone(),
            reload: g.reload.clone(),
            hosts: rows,
        });
    }
    Ok(Json(paging::page_after(
        out,
        q.after.as_deref(),
        limit,
        |g| g.name.clone(),
    )))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RenderParams {
    /// Only this target host (default: every target).
    #[serde(default)]
    host: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (a host name).
    #[serde(default)]
    after: Option<String>,
}

/// `GET /generators/{name}/render[?host=H]`: what would be written, and the diff
/// against what is live. Writes nothing.
#[utoipa::path(get, path = "/generators/{name}/render", tag = "generators",
    security(("api_token" = ["viewer"])),
    params(("name" = String, Path, description = "Generator name"), RenderParams),
    responses(
        (status = 200, description = "A page of previews, one per target host, by host name", body = Page<GeneratorPreview>),
        (status = 404, description = "No such generator or host", body = drover_proto::error::ApiError),
        (status = 422, description = "The stored model no longer loads", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn render(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(name): Path<String>,
    Params(p): Params<RenderParams>,
) -> ApiResult<Json<Page<GeneratorPreview>>> {
    let limit = paging::limit(p.limit)?;
    if let Some(h) = &p.host
        && state.store.get_host_by_name(h).await?.is_none()
    {
        return Err(ApiError::not_found(format!("no host `{h}`")));
    }
    let previews = generators::preview(&state, &name, p.host.as_deref())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found(format!("no generator `{name}` in the applied model"))
        })?;
    // Diffs are computed for this page's hosts only.
    let page = paging::page_after(previews, p.after.as_deref(), limit, |pv| pv.host.clone());
    Ok(Json(Page {
        next: page.next,
        items: page
            .items
            .into_iter()
            .map(|pv| {
                let live = pv.live.clone().unwrap_or_default();
                match pv.rendered {
                    Ok(r) => {
                        let unchanged = pv.live.as_deref() == Some(r.content.as_str());
                        let diff = if unchanged {
                            String::new()
                        } else {
                            similar::TextDiff::from_lines(live.as_str(), r.content.as_str())
                                .unified_diff()
                                .context_radius(3)
                                .header(&format!("{}:live", pv.host), &format!("{}:new", pv.host))
                                .to_string()
                        };
                        GeneratorPreview {
                            host: pv.host,
                            content: Some(r.content),
                            sha256: Some(r.sha256),
                            error: None,
                            unchanged,
                            diff,
                        }
                    }
                    Err(e) => GeneratorPreview {
                        host: pv.host,
                        content: None,
                        sha256: None,
                        error: Some(e),
                        unchanged: false,
                        diff: String::new(),
                    },
                }
            })
            .collect(),
    }))
}

/// `POST /generators/{name}/apply`: render and write now (also bytes a check refused
/// before: for after the cause was fixed on the host).
#[utoipa::path(post, path = "/generators/{name}/apply", tag = "generators",
    security(("api_token" = ["operator"])),
    params(("name" = String, Path, description = "Generator name")),
    responses(
        (status = 200, description = "The executions started", body = GeneratorApplied),
        (status = 404, description = "No such generator", body = drover_proto::error::ApiError),
        (status = 422, description = "The stored model no longer loads", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn apply(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path(name): Path<String>,
) -> ApiResult<Json<GeneratorApplied>> {
    let model = current_model(&state).await?;
    if !model.generators.contains_key(&name) {
        return Err(ApiError::not_found(format!(
            "no generator `{name}` in the applied model"
        )));
    }
    let executions = generators::pass(&state, Some(&name), &caller.name, true)
        .await
        .map_err(ApiError::internal)?
        .started;
    Ok(Json(GeneratorApplied { executions }))
}
