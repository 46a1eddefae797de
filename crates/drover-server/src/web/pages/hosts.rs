//! The host page: facts, labels, provider fields, instances, recent executions, change
//! history, and (operator and up) a form to run a command on the host.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use drover_proto::auth::Role;
use drover_proto::executions::RunRequest;
use drover_proto::hosts::Host;
use drover_store::ExecutionFilter;
use serde::Deserialize;

use super::{Chrome, ago, render, urlencode, when};
use crate::web::session::{self, Session};
use crate::web::{PageError, Web, csrf};

/// How many of the fleet's latest executions are searched for this host's.
const RECENT_EXECUTIONS: u32 = 30;
/// How many history entries are shown.
const HISTORY: u32 = 50;

struct InstanceRow {
    service: String,
    index: u32,
    version: String,
    state: String,
    health: String,
    restarts: u32,
    drift: String,
}

struct ExecRow {
    href: String,
    id: String,
    command: String,
    status: &'static str,
    target: &'static str,
    actor: String,
    created: String,
}

struct ChangeRow {
    time: String,
    kind: String,
    actor: String,
    changes: Vec<String>,
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    chrome: Chrome,
    name: String,
    run_action: String,
    status: &'static str,
    seen: String,
    facts: Vec<(&'static str, String)>,
    labels: Vec<(String, String)>,
    provider: Vec<(String, String)>,
    instances: Vec<InstanceRow>,
    executions: Vec<ExecRow>,
    history: Vec<ChangeRow>,
    can_run: bool,
    csrf: String,
    error: Option<String>,
    command: String,
    timeout: String,
}

/// The host by name (or id).
async fn load(web: &Web, name: &str) -> Result<Host, PageError> {
    let store = &web.app.store;
    let found = match store.get_host_by_name(name).await? {
        Some(h) => Some(h),
        None => store.get_host(name).await?,
    };
    found.ok_or_else(|| PageError::not_found(format!("no host named `{name}`")))
}

/// A command as the dashboard runs it: `sh -c TEXT`.
fn command_of(spec: &serde_json::Value) -> String {
    let argv: Vec<String> = spec["command"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match argv.as_slice() {
        [sh, c, text] if sh == "sh" && c == "-c" => text.clone(),
        _ => argv.join(" "),
    }
}

async fn page_of(
    web: &Web,
    s: &Session,
    name: &str,
    error: Option<String>,
    command: String,
    timeout: String,
) -> Result<HostPage, PageError> {
    let store = &web.app.store;
    let mut h = load(web, name).await?;
    // Membership is the host's own property: no need to read the fleet.
    h.hostclasses = web
        .hostclasses(std::slice::from_ref(&h))
        .await?
        .remove(&h.name)
        .unwrap_or_default();
    let f = &h.facts;
    let facts = vec![
        ("hostname", f.hostname.clone()),
        ("os", f.os.clone()),
        ("os release", f.os_release.clone().unwrap_or_default()),
        ("kernel", f.kernel.clone()),
        ("arch", f.arch.clone()),
        ("cpus", f.cpus.to_string()),
        ("memory", format!("{} MiB", f.memory_bytes / (1024 * 1024))),
        ("addresses", f.addresses.join(", ")),
        ("agent", f.agent_version.clone()),
        ("enrolled", when(&h.enrolled_at)),
    ];
    let mut provider: Vec<(String, String)> = [
        ("provider", h.provider.clone()),
        ("provider id", h.provider_id.clone()),
        ("region", h.region.clone()),
        ("address", h.address.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect();
    if h.stale {
        provider.push((
            "stale".into(),
            "yes: the provider's last sync failed".into(),
        ));
    }
    if h.drained {
        provider.push(("drained".into(), "yes".into()));
    }
    if !h.hostclasses.is_empty() {
        provider.push(("hostclasses".into(), h.hostclasses.join(", ")));
    }
    provider.extend(h.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
    let instances = store
        .host_instances(&h.id)
        .await?
        .into_iter()
        .map(|r| InstanceRow {
            service: r.report.service,
            index: r.report.index,
            version: r.report.version,
            state: r.report.state.as_str().to_string(),
            health: r.report.health.as_str().to_string(),
            restarts: r.report.restarts,
            drift: r.report.drift.unwrap_or_default(),
        })
        .collect();
    let mut executions = Vec::new();
    let recent = store
        .list_executions(&ExecutionFilter {
            limit: RECENT_EXECUTIONS,
            ..ExecutionFilter::default()
        })
        .await?;
    for e in recent {
        let Some(detail) = store.get_execution(&e.id).await? else {
            continue;
        };
        if let Some(t) = detail.targets.iter().find(|t| t.host_id == h.id) {
            executions.push(ExecRow {
                href: format!("/ui/executions/{}", urlencode(&e.id)),
                command: command_of(&e.spec),
                status: e.status.as_str(),
                target: t.status.as_str(),
                actor: e.actor.clone(),
                created: when(&e.created_at),
                id: e.id,
            });
        }
    }
    let history = match store.host_history(&h.id, None, HISTORY).await {
        Ok(changes) => changes
            .into_iter()
            .map(|c| ChangeRow {
                time: when(&c.time),
                kind: c.kind,
                actor: c.actor,
                changes: c
                    .changes
                    .iter()
                    .map(|(field, ch)| {
                        let show = |v: &Option<serde_json::Value>| match v {
                            None => "—".to_string(),
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                        };
                        format!("{field}: {} → {}", show(&ch.from), show(&ch.to))
                    })
                    .collect(),
            })
            .collect(),
        Err(drover_store::StoreError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(HostPage {
        chrome: Chrome::of("fleet", s),
        run_action: format!("/ui/hosts/{}/run", urlencode(&h.name)),
        status: h.status.as_str(),
        seen: ago(&h.last_seen_at),
        facts,
        labels: h.labels.into_iter().collect(),
        provider,
        instances,
        executions,
        history,
        can_run: s.can_operate(),
        csrf: s.csrf.clone(),
        error,
        command,
        timeout,
        name: h.name,
    })
}

/// `GET /ui/hosts/{name}`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    render(&page_of(&web, &s, &name, None, String::new(), String::new()).await?)
}

/// The run form's fields.
#[derive(Deserialize)]
pub(crate) struct RunForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
}

/// `POST /ui/hosts/{name}/run`: runs `sh -c COMMAND` on the host, like
/// `POST /api/v1/runs`, and goes to the execution's page.
pub(crate) async fn run(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    s: Session,
    Path(name): Path<String>,
    Form(f): Form<RunForm>,
) -> Result<Response, PageError> {
    session::refuse_cross_site(&headers)?;
    csrf::check(&s.csrf, f.csrf.as_deref())?;
    s.require(Role::Operator)?;
    let command = f.command.unwrap_or_default();
    let timeout = f.timeout.unwrap_or_default();
    let again = |error: String| {
        let web = web.clone();
        let s = s.clone();
        let name = name.clone();
        let command = command.clone();
        let timeout = timeout.clone();
        async move {
            let page = page_of(&web, &s, &name, Some(error), command, timeout).await?;
            let mut resp = render(&page)?;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok::<Response, PageError>(resp)
        }
    };
    if command.trim().is_empty() {
        return again("Command: type a command to run (it runs as `sh -c COMMAND`).".into()).await;
    }
    let timeout_ms = if timeout.trim().is_empty() {
        None
    } else {
        match drover_core::duration::parse_duration(timeout.trim()) {
            Ok(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Err(e) => return again(format!("Timeout `{}`: {e}", timeout.trim())).await,
        }
    };
    let host = load(&web, &name).await?;
    let req = RunRequest {
        selector: format!("name={}", host.name),
        command: vec!["sh".into(), "-c".into(), command.clone()],
        parallel: None,
        timeout_ms,
    };
    match crate::api::executions::start_run(&web.app, &s.name, req).await {
        Ok(exec) => {
            Ok(Redirect::to(&format!("/ui/executions/{}", urlencode(&exec.id))).into_response())
        }
        Err(e) => again(e.detail().to_string()).await,
    }
}
