//! Executions as automation sees them: the trace of what caused one and what it led
//! to, rerun, and pause/resume of workflows.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use drover_proto::automation::{Trace, TraceLink};
use drover_proto::executions::{Execution, RunRequest};
use drover_store::NewEvent;
use serde_json::{Value, json};

use super::executions::load;
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::state::AppState;

/// Deepest a trace goes either way.
const MAX_DEPTH: u32 = 8;

fn describe(e: &Execution) -> String {
    match &e.action {
        Some(a) => format!("{} {} ({})", e.kind, a.action_ref, e.status.as_str()),
        None => format!("{} {} ({})", e.kind, e.selector, e.status.as_str()),
    }
}

/// `GET /executions/{id}/trace`: upstream (workflow, rule, event, the execution whose
/// end was that event…) and downstream (steps, rules its end fired, their executions).
#[utoipa::path(get, path = "/executions/{id}/trace", tag = "executions",
    security(("api_token" = ["viewer"])),
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The chain both ways", body = Trace),
        (status = 404, description = "No such execution", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn trace(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Trace>> {
    let exec = load(&state, &id).await?;
    let mut causes = Vec::new();
    let mut current = exec.clone();
    for depth in 0..MAX_DEPTH {
        let Some(info) = current.action.clone() else {
            break;
        };
        if let Some(parent) = &info.parent_id {
            let p = load(&state, parent).await?;
            causes.push(TraceLink {
                kind: "execution".into(),
                id: p.id.clone(),
                detail: format!("workflow step of {}", describe(&p)),
                depth,
            });
            current = p;
            continue;
        }
        let (Some(rule), Some(event_id)) = (&info.rule_ref, info.event_id) else {
            break;
        };
        causes.push(TraceLink {
            kind: "rule".into(),
            id: rule.clone(),
            detail: "fired".into(),
            depth,
        });
        let events = state
            .store
            .list_events(&drover_store::EventFilter {
                cursor: Some(event_id - 1),
                limit: 1,
                ..Default::default()
            })
            .await?;
        let Some(ev) = events.into_iter().find(|e| e.id == event_id) else {
            break;
        };
        causes.push(TraceLink {
            kind: "event".into(),
            id: ev.id.to_string(),
            detail: format!("{} by {}", ev.kind, ev.actor),
            depth,
        });
        let Some(source) = ev.payload.get("execution_id").and_then(Value::as_str) else {
            break;
        };
        let Ok(s) = load(&state, source).await else {
            break;
        };
        causes.push(TraceLink {
            kind: "execution".into(),
            id: s.id.clone(),
            detail: describe(&s),
            depth,
        });
        current = s;
    }
    let mut effects = Vec::new();
    let mut frontier = vec![(exec.id.clone(), 0u32)];
    while let Some((at, depth)) = frontier.pop() {
        if depth >= MAX_DEPTH {
            continue;
        }
        for child in state.store.child_executions(&at).await? {
            let c = load(&state, &child).await?;
            effects.push(TraceLink {
                kind: "execution".into(),
                id: c.id.clone(),
                detail: format!("step: {}", describe(&c)),
                depth,
            });
            frontier.push((c.id, depth + 1));
        }
        for e in state.store.enforcements_of(&at).await? {
            if e.source_execution.as_deref() != Some(at.as_str()) {
                continue;
            }
            effects.push(TraceLink {
                kind: "rule".into(),
                id: e.rule_ref.clone(),
                detail: match &e.reason {
                    Some(r) => format!("{}: {r}", e.status),
                    None => e.status.clone(),
                },
                depth,
            });
            if let Some(x) = e.execution_id {
                let c = load(&state, &x).await?;
                effects.push(TraceLink {
                    kind: "execution".into(),
                    id: c.id.clone(),
                    detail: describe(&c),
                    depth,
                });
                frontier.push((c.id, depth + 1));
            }
        }
    }
    Ok(Json(Trace {
        execution_id: id,
        causes,
        effects,
    }))
}

/// `POST /executions/{id}/rerun`: the same request again, as a new execution.
#[utoipa::path(post, path = "/executions/{id}/rerun", tag = "executions",
    security(("api_token" = ["operator"])),
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 201, description = "The new execution", body = Execution),
        (status = 404, description = "No such execution", body = drover_proto::error::ApiError),
        (status = 422, description = "This kind cannot be rerun", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn rerun(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let exec = load(&state, &id).await?;
    let new = match (exec.kind.as_str(), &exec.action) {
        ("action", Some(info)) => {
            let params = state.store.action_params(&id).await?.unwrap_or(json!({}));
            let values = crate::automation::prepare::open_params(&state, &id, &params)
                .map_err(ApiError::internal)?;
            super::automation::run_action(&state, &caller.name, &info.action_ref, values).await?
        }
        ("run", _) => {
            let req: RunRequest = serde_json::from_value(exec.spec.clone()).map_err(|_| {
                ApiError::unprocessable("this run's request cannot be read back to rerun it")
            })?;
            super::executions::start_run(&state, &caller.name, req).await?
        }
        (kind, _) => {
            return Err(ApiError::unprocessable(format!(
                "a `{kind}` execution cannot be rerun (apply the model again instead)"
            )));
        }
    };
    Ok((StatusCode::CREATED, Json(new)))
}

/// `POST /executions/{id}/{pause|resume}`: pause a running workflow (running tasks
/// finish, nothing new starts) or resume it.
#[utoipa::path(post, path = "/executions/{id}/{verb}", tag = "executions",
    security(("api_token" = ["operator"])),
    params(("id" = String, Path, description = "Execution id"),
        ("verb" = String, Path, description = "`pause` or `resume`")),
    responses(
        (status = 202, description = "Asked; the workflow changes when the engine reads it", body = Execution),
        (status = 404, description = "No such execution or verb", body = drover_proto::error::ApiError),
        (status = 409, description = "Not a running workflow", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn pause_resume(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path((id, verb)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let kind = match verb.as_str() {
        "pause" => "execution.pause_requested",
        "resume" => "execution.resume_requested",
        other => {
            return Err(ApiError::not_found(format!(
                "no `{other}` on executions; use pause or resume (or cancel)"
            )));
        }
    };
    let exec = load(&state, &id).await?;
    if exec.status.is_final() || state.store.workflow_state(&id).await?.is_none() {
        return Err(ApiError::conflict(format!(
            "execution {id} is not a running workflow"
        )));
    }
    state
        .store
        .append_event(NewEvent::new(
            kind,
            &caller.name,
            json!({ "execution_id": id }),
        ))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(exec)))
}
