//! The execution page: status per target and each host's output, a workflow's tasks,
//! an action's parameters and result, a rollout's progress, polled by htmx every second
//! until the execution is final; and its controls (cancel, rerun, pause, resume,
//! promote, abort, roll back), which run the API's own handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use drover_proto::executions::Execution;
use drover_store::ExecutionFilter;
use serde::Deserialize;

use super::execution_list::{duration_of, what_of};
use super::{Chrome, render, urlencode, when};
use crate::api;
use crate::extract::Path as ApiPath;
use crate::web::session::{self, Session};
use crate::web::{PageError, Web, csrf};

/// Output chunks read per page of the store (the per-host bound keeps the total small).
const OUTPUT_BATCH: u32 = 1000;
/// At most this many chunks are shown (the rest is in the API and the CLI).
const MAX_CHUNKS: usize = 20_000;
/// At most this many workflow tasks are listed.
const MAX_TASKS: u32 = 1000;

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

/// A workflow's step.
struct TaskRow {
    /// The task's name in the workflow.
    name: String,
    /// Its key (`name@route.item`).
    task: String,
    href: String,
    what: String,
    status: &'static str,
    duration: String,
}

/// A rollout's progress.
struct RolloutView {
    state: String,
    unit: i64,
    units: i64,
    model_version: i64,
    steps: String,
    error: String,
}

/// A button: the verb it posts and its label.
struct Control {
    verb: &'static str,
    label: &'static str,
}

/// The live part: status, controls, targets, tasks and output.
struct Live {
    id: String,
    live_url: String,
    status: &'static str,
    done: bool,
    counts: String,
    csrf: String,
    controls: Vec<Control>,
    targets: Vec<TargetRow>,
    outputs: Vec<HostOutput>,
    tasks: Vec<TaskRow>,
    /// An action's parameters (secrets masked, as stored) and result, as JSON.
    parameters: Option<String>,
    result: Option<String>,
    rollout: Option<RolloutView>,
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

/// What an operator may do to `e` now (nothing for a viewer).
async fn controls_of(
    web: &Web,
    s: &Session,
    e: &Execution,
    workflow: Option<&str>,
    rollout: Option<&RolloutView>,
) -> Result<Vec<Control>, PageError> {
    let mut controls = Vec::new();
    if !s.can_operate() {
        return Ok(controls);
    }
    let c = |verb, label| Control { verb, label };
    if let Some(r) = rollout {
        match r.state.as_str() {
            "awaiting-promotion" => controls.push(c("promote", "Promote")),
            "running" => controls.push(c("pause", "Pause")),
            "paused" => controls.push(c("resume", "Resume")),
            _ => {}
        }
        if matches!(
            r.state.as_str(),
            "awaiting-promotion" | "running" | "paused"
        ) {
            controls.push(c("abort", "Abort"));
        }
        let current = web.app.store.current_model_version().await?;
        if e.status.is_final() && current.is_some_and(|v| v.id == r.model_version) {
            controls.push(c("rollback", "Roll back the model"));
        }
        return Ok(controls);
    }
    if !e.status.is_final() {
        match workflow {
            Some("paused" | "pausing") => controls.push(c("resume", "Resume")),
            Some("running" | "requested") => controls.push(c("pause", "Pause")),
            _ => {}
        }
        controls.push(c("cancel", "Cancel"));
    } else if matches!(e.kind.as_str(), "run" | "action") {
        controls.push(c("rerun", "Run again"));
    }
    Ok(controls)
}

async fn live_of(web: &Web, s: &Session, e: &Execution) -> Result<Live, PageError> {
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
    let store = &web.app.store;
    let workflow = store
        .workflow_state(&e.id)
        .await?
        .map(|(_, state)| state["status"].as_str().unwrap_or("running").to_string());
    let mut tasks = Vec::new();
    if e.kind == "action" {
        let children = store
            .list_executions(&ExecutionFilter {
                parent_id: Some(e.id.clone()),
                limit: MAX_TASKS,
                ..ExecutionFilter::default()
            })
            .await?;
        for child in children.iter().rev() {
            let key = child
                .action
                .as_ref()
                .and_then(|a| a.task_key.clone())
                .unwrap_or_else(|| child.kind.clone());
            tasks.push(TaskRow {
                // `name@route.item`: the name is what the workflow file says.
                name: key.split('@').next().unwrap_or(&key).to_string(),
                task: key,
                href: format!("/ui/executions/{}", urlencode(&child.id)),
                what: child
                    .action
                    .as_ref()
                    .map(|a| a.action_ref.clone())
                    .unwrap_or_else(|| what_of(child)),
                status: child.status.as_str(),
                duration: duration_of(child),
            });
        }
    }
    let rollout = if e.kind == "deploy" {
        store.rollout_detail(&e.id).await?.map(|d| {
            let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
            for step in &d.steps {
                *by_status.entry(step.status.as_str()).or_default() += 1;
            }
            RolloutView {
                state: d.rollout.state.clone(),
                unit: d.rollout.unit,
                units: d.rollout.units,
                model_version: d.rollout.model_version,
                steps: by_status
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                error: d.rollout.error.clone().unwrap_or_default(),
            }
        })
    } else {
        None
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let c = &e.counts;
    Ok(Live {
        id: e.id.clone(),
        csrf: s.csrf.clone(),
        controls: controls_of(web, s, e, workflow.as_deref(), rollout.as_ref()).await?,
        tasks,
        parameters: e.action.as_ref().map(|a| pretty(&a.parameters)),
        result: e
            .action
            .as_ref()
            .and_then(|a| a.result.as_ref())
            .map(pretty),
        rollout,
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
    let command = what_of(&e);
    render(&ExecutionPage {
        chrome: Chrome::of("", &s),
        live: live_of(&web, &s, &e).await?,
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
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let e = load(&web, &id).await?;
    render(&LiveFragment {
        live: live_of(&web, &s, &e).await?,
    })
}

/// The control form's fields.
#[derive(Deserialize)]
pub(crate) struct ControlForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /ui/executions/{id}/{verb}`: a control, through the API handler that does the
/// same (so rules, events and refusals are the API's); back to the execution, or to
/// the new one for rerun and roll back. A refusal (say, the rollout moved on) is the
/// error page with the API's reason and status.
pub(crate) async fn control(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    s: Session,
    Path((id, verb)): Path<(String, String)>,
    Form(f): Form<ControlForm>,
) -> Result<Response, PageError> {
    session::refuse_cross_site(&headers)?;
    csrf::check(&s.csrf, f.csrf.as_deref())?;
    let caller = s.operator()?;
    let app = web.app.clone();
    let e = load(&web, &id).await?;
    let back =
        |to: &str| Redirect::to(&format!("/ui/executions/{}", urlencode(to))).into_response();
    match (e.kind.as_str(), verb.as_str()) {
        (_, "cancel") => {
            let _changed = api::executions::cancel(State(app), caller, ApiPath(id.clone())).await?;
        }
        (_, "rerun") => {
            let (_, Json(new)) = api::trace::rerun(State(app), caller, ApiPath(id)).await?;
            return Ok(back(&new.id));
        }
        ("deploy", "rollback") => {
            let (_, Json(applied)) = api::deploy::rollback(State(app), caller).await?;
            return Ok(back(applied.execution_id.as_deref().unwrap_or(&id)));
        }
        ("deploy", "promote" | "pause" | "resume" | "abort") => {
            let _changed =
                api::deploy::control_rollout(State(app), caller, ApiPath((id.clone(), verb)))
                    .await?;
        }
        ("action", "pause" | "resume") => {
            let _changed =
                api::trace::pause_resume(State(app), caller, ApiPath((id.clone(), verb))).await?;
        }
        (kind, other) => {
            return Err(PageError::not_found(format!(
                "no `{other}` on a `{kind}` execution"
            )));
        }
    }
    Ok(back(&id))
}
