//! The execution page: status per target and each host's output, polled by htmx every
//! second until the execution is final.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use drover_proto::executions::Execution;

use super::{Chrome, render, urlencode, when};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Output chunks read per page of the store (the per-host bound keeps the total small).
const OUTPUT_BATCH: u32 = 1000;
/// At most this many chunks are shown (the rest is in the API and the CLI).
const MAX_CHUNKS: usize = 20_000;

struct TargetRow {
    host: String,
    href: String,
    status: &'static str,
    exit: String,
    duration: String,
    error: String,
}

struct HostOutput {
    host: String,
    text: String,
    truncated: bool,
}

/// The live part: status, targets and output.
struct Live {
    live_url: String,
    status: &'static str,
    done: bool,
    counts: String,
    targets: Vec<TargetRow>,
    outputs: Vec<HostOutput>,
}

/// The live fragment alone (what htmx polls).
#[derive(Template)]
#[template(path = "execution_live.html")]
struct LiveFragment {
    live: Live,
}

#[derive(Template)]
#[template(path = "execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    id: String,
    kind: String,
    command: String,
    selector: String,
    actor: String,
    created: String,
    live: Live,
}

async fn load(web: &Web, id: &str) -> Result<Execution, PageError> {
    web.app
        .store
        .get_execution(id)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no execution `{id}`")))
}

async fn live_of(web: &Web, e: &Execution) -> Result<Live, PageError> {
    let mut by_host: BTreeMap<String, String> = BTreeMap::new();
    let mut cursor = 0;
    let mut seen = 0usize;
    loop {
        let rows = web
            .app
            .store
            .list_output(&e.id, cursor, OUTPUT_BATCH)
            .await?;
        let full = rows.len() == OUTPUT_BATCH as usize;
        for (row, chunk) in rows {
            cursor = row;
            seen += 1;
            by_host
                .entry(chunk.host_name)
                .or_default()
                .push_str(&chunk.data);
        }
        if !full || seen >= MAX_CHUNKS {
            break;
        }
    }
    let c = &e.counts;
    Ok(Live {
        live_url: format!("/ui/executions/{}/live", urlencode(&e.id)),
        status: e.status.as_str(),
        done: e.status.is_final(),
        counts: format!(
            "{} hosts: {} ok, {} failed, {} cancelled, {} pending",
            c.total, c.ok, c.failed, c.cancelled, c.pending
        ),
        targets: e
            .targets
            .iter()
            .map(|t| TargetRow {
                host: t.host_name.clone(),
                href: format!("/ui/hosts/{}", urlencode(&t.host_name)),
                status: t.status.as_str(),
                exit: match (t.exit_code, t.signal) {
                    (Some(code), _) => code.to_string(),
                    (None, Some(sig)) => format!("signal {sig}"),
                    _ => String::new(),
                },
                duration: t
                    .duration_ms
                    .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                    .unwrap_or_default(),
                error: t.error.clone().unwrap_or_default(),
            })
            .collect(),
        outputs: e
            .targets
            .iter()
            .map(|t| HostOutput {
                text: by_host.remove(&t.host_name).unwrap_or_default(),
                host: t.host_name.clone(),
                truncated: t.truncated,
            })
            .collect(),
    })
}

/// `GET /ui/executions/{id}`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let e = load(&web, &id).await?;
    let command = e.spec["command"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| e.kind.clone());
    render(&ExecutionPage {
        chrome: Chrome::of("", &s),
        live: live_of(&web, &e).await?,
        id: e.id.clone(),
        kind: e.kind.clone(),
        command,
        selector: e.selector.clone(),
        actor: e.actor.clone(),
        created: when(&e.created_at),
    })
}

/// `GET /ui/executions/{id}/live`: the fragment; it stops polling once final.
pub(crate) async fn live(
    State(web): State<Arc<Web>>,
    _s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let e = load(&web, &id).await?;
    render(&LiveFragment {
        live: live_of(&web, &e).await?,
    })
}
