//! Fleet commands (`POST /runs`) and executions: list, detail, cancel, output, live stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use drover_proto::agent::CommandSpec;
use drover_proto::executions::{
    Execution, ExecutionStatus, HostOutput, RunRequest, Target, TargetStatus, stream_events,
};
use drover_proto::page::Page;
use drover_store::{ExecutionFilter, NewExecution, NewTarget, Notice};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::hosts::parse_selector;
use super::paging;
use crate::auth::{ApiCaller, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Path};
use crate::monitor;
use crate::state::AppState;

/// Longest per-host timeout a run may ask for (7 days).
const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;

/// Runs a command on every host the selector matches.
#[utoipa::path(post, path = "/runs", tag = "executions",
    security(("api_token" = ["operator"])),
    request_body = RunRequest,
    responses(
        (status = 201, description = "The execution, as recorded", body = Execution),
        (status = 422, description = "The selector matches no host", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn create_run(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Body(req): Body<RunRequest>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let exec = start_run(&state, &caller.name, req).await?;
    Ok((StatusCode::CREATED, Json(exec)))
}

/// Records a run for `actor` (checks the request, resolves the selector, creates the
/// execution with its event) and dispatches it. Shared by `POST /runs` and the
/// dashboard's run form; the caller has checked the operator role.
pub(crate) async fn start_run(
    state: &Arc<AppState>,
    actor: &str,
    req: RunRequest,
) -> ApiResult<Execution> {
    start_run_on(state, actor, req, None, None).await
}

/// [`start_run`], optionally on exactly the hosts `names` (any of them, instead of the
/// selector) and as the remote part of the action execution `parent` (id, key).
pub(crate) async fn start_run_on(
    state: &Arc<AppState>,
    actor: &str,
    req: RunRequest,
    names: Option<&[String]>,
    parent: Option<(String, String)>,
) -> ApiResult<Execution> {
    if req.command.is_empty() || req.command[0].is_empty() {
        return Err(ApiError::bad_request(
            "field `command`: must name a program (e.g. [\"uptime\"])",
        ));
    }
    if req.parallel == Some(0) {
        return Err(ApiError::bad_request(
            "field `parallel`: must be at least 1",
        ));
    }
    if let Some(t) = req.timeout_ms
        && (t == 0 || t > MAX_TIMEOUT_MS)
    {
        return Err(ApiError::bad_request(format!(
            "field `timeout_ms`: must be 1 to {MAX_TIMEOUT_MS}"
        )));
    }
    let selector = parse_selector("field `selector`", &req.selector)?;
    // By name: every host, to name the unknown ones. By selector: only the rows its
    // prefilters leave (the selector decides on them below).
    let hosts = match names {
        Some(_) => state.store.list_hosts().await?,
        None => state.store.list_hosts_where(&selector.prefilters()).await?,
    };
    if let Some(names) = names {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !hosts.iter().any(|h| &h.name == *n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "no host named {}",
                missing.join(", ")
            )));
        }
    }
    let targets: Vec<NewTarget> = hosts
        .into_iter()
        .filter(|h| match names {
            Some(names) => names.contains(&h.name),
            None => selector.matches(h),
        })
        .map(|h| NewTarget {
            host_id: h.id,
            host_name: h.name,
            command: None,
        })
        .collect();
    if targets.is_empty() {
        let known: u64 = state
            .store
            .host_status_counts()
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        return Err(ApiError::unprocessable(format!(
            "selector `{}` matches no host ({known} known)",
            req.selector
        )));
    }
    let id = uuid::Uuid::now_v7().to_string();
    state
        .store
        .create_execution(&NewExecution {
            id: id.clone(),
            kind: "run".to_string(),
            actor: actor.to_string(),
            selector: selector.to_string(),
            spec: serde_json::to_value(&req).map_err(ApiError::internal)?,
            command: CommandSpec::Exec {
                argv: req.command.clone(),
                timeout_ms: req.timeout_ms,
            },
            parallel: req.parallel,
            timeout_ms: req.timeout_ms,
            targets,
            parent,
        })
        .await?;
    monitor::dispatch(state, &id).await;
    state
        .store
        .get_execution(&id)
        .await?
        .ok_or_else(|| ApiError::internal("execution vanished after creation"))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this kind (`run`, `logs`, `deploy`, `generate`).
    #[serde(default)]
    kind: Option<String>,
    /// Only this status.
    #[serde(default)]
    #[param(value_type = Option<ExecutionStatus>)]
    status: Option<String>,
    /// Only executions this token name asked for.
    #[serde(default)]
    actor: Option<String>,
    /// Only the steps of this workflow execution.
    #[serde(default)]
    parent: Option<String>,
    /// RFC 3339 time: only executions created since then.
    #[serde(default)]
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339 time: only executions created before then.
    #[serde(default)]
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (an execution id).
    #[serde(default)]
    after: Option<String>,
}

/// Executions, newest first, a page at a time.
#[utoipa::path(get, path = "/executions", tag = "executions",
    security(("api_token" = ["viewer"])),
    params(ListParams),
    responses((status = 200, description = "A page of executions (without targets)", body = Page<Execution>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Page<Execution>>> {
    let status = match &p.status {
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter `status`: unknown status `{s}` \
                 (requested, running, succeeded, failed, cancelled)"
            ))
        })?),
        None => None,
    };
    let limit = paging::limit(p.limit)?;
    let items = state
        .store
        .list_executions(&ExecutionFilter {
            kind: p.kind,
            status,
            actor: p.actor,
            before: p.after,
            parent_id: p.parent,
            since_ms: super::events::parse_time("since", p.since.as_deref())?,
            until_ms: super::events::parse_time("until", p.until.as_deref())?,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(paging::page_of(items, limit, |e| e.id.clone())))
}

pub(crate) async fn load(state: &AppState, id: &str) -> ApiResult<Execution> {
    state
        .store
        .get_execution(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution `{id}`")))
}

/// One execution with its targets.
#[utoipa::path(get, path = "/executions/{id}", tag = "executions",
    security(("api_token" = ["viewer"])),
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The execution with its targets", body = Execution),
        (status = 404, description = "No such execution", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Execution>> {
    Ok(Json(load(&state, &id).await?))
}

/// Cancels an execution: pending targets are cancelled, running ones killed.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions",
    security(("api_token" = ["operator"])),
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The execution", body = Execution),
        (status = 404, description = "No such execution", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Execution>> {
    let exec = load(&state, &id).await?;
    if exec.kind == "action" {
        // Its runner, workflow or remote run stops it (see the automation runtime).
        state.store.cancel_action(&id, &caller.name).await?;
        return Ok(Json(load(&state, &id).await?));
    }
    let settled = state
        .store
        .request_cancel(&id, &caller.name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution `{id}`")))?;
    monitor::after_settle(&state, settled).await;
    Ok(Json(load(&state, &id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutputParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page.
    #[serde(default)]
    after: Option<i64>,
}

/// Stored output of every host, in the order it was stored, a page at a time.
#[utoipa::path(get, path = "/executions/{id}/output", tag = "executions",
    security(("api_token" = ["viewer"])),
    params(("id" = String, Path, description = "Execution id"), OutputParams),
    responses(
        (status = 200, description = "A page of output chunks", body = Page<HostOutput>),
        (status = 404, description = "No such execution", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn output(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(id): Path<String>,
    Params(p): Params<OutputParams>,
) -> ApiResult<Json<Page<HostOutput>>> {
    load(&state, &id).await?;
    let limit = paging::limit(p.limit)?;
    let rows = state
        .store
        .list_output(&id, p.after.unwrap_or(0), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|(row, _)| row.to_string()))
        .flatten();
    Ok(Json(Page {
        items: rows.into_iter().map(|(_, o)| o).collect(),
        next,
    }))
}

fn sse_json<T: serde::Serialize>(name: &str, value: &T) -> SseEvent {
    SseEvent::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| SseEvent::default().comment("unserialisable"))
}

/// Live view of an execution: replays stored output, then streams new output and target
/// changes as they happen, and ends with the final execution.
#[utoipa::path(get, path = "/executions/{id}/stream", tag = "executions",
    security(("api_token" = ["viewer"])),
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "Server-sent events: `output` (a HostOutput), `target` (a Target), \
                        and last `execution` (the final Execution)"),
        (status = 404, description = "No such execution", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn stream(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    // Subscribe before reading, so nothing that happens in between is missed.
    let notices = state.store.notifier().subscribe();
    load(&state, &id).await?;
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(async move {
        if let Err(e) = follow(state, id, notices, tx).await {
            tracing::warn!(error = %e, "execution stream ended with an error");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok(ev), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// What a stream has sent so far.
struct Sent {
    /// Row id of the last stored output replayed.
    cursor: i64,
    /// Next expected `seq` per host.
    next_seq: HashMap<String, u64>,
    /// Last target status sent per host.
    status: HashMap<String, TargetStatus>,
}

impl Sent {
    fn fresh(&mut self, chunk: &HostOutput) -> bool {
        let next = self.next_seq.entry(chunk.host_id.clone()).or_insert(0);
        if chunk.seq >= *next {
            *next = chunk.seq + 1;
            true
        } else {
            false
        }
    }
}

type Closed = mpsc::error::SendError<SseEvent>;

async fn follow(
    state: Arc<AppState>,
    id: String,
    mut notices: tokio::sync::broadcast::Receiver<Notice>,
    tx: mpsc::Sender<SseEvent>,
) -> anyhow::Result<()> {
    let mut sent = Sent {
        cursor: 0,
        next_seq: HashMap::new(),
        status: HashMap::new(),
    };
    if replay_stored(&state, &id, &mut sent, &tx).await.is_err() {
        return Ok(());
    }
    loop {
        let exec = state
            .store
            .get_execution(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("execution {id} vanished"))?;
        if send_targets(&exec.targets, &mut sent, &tx).await.is_err() {
            return Ok(());
        }
        if exec.status.is_final() {
            if replay_stored(&state, &id, &mut sent, &tx).await.is_err() {
                return Ok(());
            }
            let _ = tx.send(sse_json(stream_events::EXECUTION, &exec)).await;
            return Ok(());
        }
        // Wait for something about this execution; re-read at least every second.
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(Notice::Output { execution_id, chunk }) if execution_id == id => match chunk {
                        Some(c) if sent.fresh(&c) => {
                            if tx.send(sse_json(stream_events::OUTPUT, &c)).await.is_err() {
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                        None => {
                            if replay_stored(&state, &id, &mut sent, &tx).await.is_err() {
                                return Ok(());
                            }
                        }
                    },
                    Ok(Notice::Execution { execution_id }) if execution_id == id => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if replay_stored(&state, &id, &mut sent, &tx).await.is_err() {
                            return Ok(());
                        }
                        break;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = &mut tick => break,
                _ = tx.closed() => return Ok(()),
                _ = state.shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

/// Sends stored output not sent yet.
async fn replay_stored(
    state: &AppState,
    id: &str,
    sent: &mut Sent,
    tx: &mpsc::Sender<SseEvent>,
) -> Result<(), Closed> {
    loop {
        let rows = match state.store.list_output(id, sent.cursor, 1000).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored output");
                return Ok(());
            }
        };
        let full = rows.len() == 1000;
        for (row, chunk) in rows {
            sent.cursor = row;
            let next = sent.next_seq.get(&chunk.host_id).copied().unwrap_or(0);
            // The truncation marker shares the seq of the chunk it follows.
            let is_marker =
                chunk.data == drover_proto::executions::TRUNCATION_MARKER && chunk.seq + 1 == next;
            if sent.fresh(&chunk) || is_marker {
                tx.send(sse_json(stream_events::OUTPUT, &chunk)).await?;
            }
        }
        if !full {
            return Ok(());
        }
    }
}

async fn send_targets(
    targets: &[Target],
    sent: &mut Sent,
    tx: &mpsc::Sender<SseEvent>,
) -> Result<(), Closed> {
    for t in targets {
        if sent.status.get(&t.host_id) != Some(&t.status) {
            sent.status.insert(t.host_id.clone(), t.status);
            tx.send(sse_json(stream_events::TARGET, t)).await?;
        }
    }
    Ok(())
}

/// `POST /logs`: stream one instance's log files from its agent.
#[derive(Debug, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsRequest {
    /// Host name.
    host: String,
    /// Service.
    service: String,
    /// Copy on the host.
    #[serde(default)]
    index: u32,
    /// Start with the last this many lines.
    #[serde(default = "default_tail")]
    #[schema(maximum = 100_000)]
    tail: u32,
    /// Keep streaming until cancelled.
    #[serde(default)]
    follow: bool,
}

fn default_tail() -> u32 {
    100
}

/// Streams one instance's log files from its agent, as a `logs` execution (follow it
/// with `GET /executions/{id}/stream`).
#[utoipa::path(post, path = "/logs", tag = "executions",
    security(("api_token" = ["operator"])),
    request_body = LogsRequest,
    responses(
        (status = 201, description = "The `logs` execution", body = Execution),
        (status = 404, description = "No such host", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn logs(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Body(req): Body<LogsRequest>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    if req.tail > 100_000 {
        return Err(ApiError::bad_request("field `tail`: at most 100000 lines"));
    }
    let host = state
        .store
        .get_host_by_name(&req.host)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no host named `{}`", req.host)))?;
    let id = uuid::Uuid::now_v7().to_string();
    state
        .store
        .create_execution(&NewExecution {
            id: id.clone(),
            kind: "logs".to_string(),
            actor: caller.name.clone(),
            selector: format!("name={}", host.name),
            spec: serde_json::to_value(&req).map_err(ApiError::internal)?,
            command: CommandSpec::Logs {
                service: req.service.clone(),
                index: req.index,
                tail: req.tail,
                follow: req.follow,
            },
            parallel: None,
            timeout_ms: None,
            targets: vec![NewTarget {
                host_id: host.id,
                host_name: host.name,
                command: None,
            }],
            parent: None,
        })
        .await?;
    monitor::dispatch(&state, &id).await;
    let exec = load(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(exec)))
}
