//! The action executor: claims queued action executions and runs them by runner.
//!
//! Runs that finish inside the controller (local shell, HTTP, noop, drain) hold a
//! lease the executor renews; if the controller dies the lease runs out and another
//! claim runs them again. Workflows and remote runs drop the lease once started: the
//! rule engine drives them on from the event log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use drover_core::automation::action::{Action, Runner};
use drover_core::automation::args;
use drover_core::automation::pack::PolicyKind;
use drover_proto::executions::ExecutionStatus;
use drover_store::{ClaimedAction, Notice};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::prepare;
use crate::runners::ActionStatus;
use crate::runners::shell::{ActionContext, ShellCommand, run_shell};
use crate::state::AppState;

/// How deep workflows may nest (a workflow task running a workflow, and so on). A
/// workflow that calls itself fails at this depth instead of running away.
const MAX_WORKFLOW_NESTING: usize = 16;

/// How deep a workflow whose parent is `parent` nests: 1 at the top (no store read),
/// one more per parent up the chain.
async fn nesting(state: &AppState, parent: Option<&str>) -> anyhow::Result<usize> {
    let mut depth = 1;
    let mut at = parent.map(str::to_string);
    while let Some(p) = at {
        depth += 1;
        if depth > MAX_WORKFLOW_NESTING {
            break;
        }
        at = state.store.parent_of(&p).await?;
    }
    Ok(depth)
}

/// Lease on a claimed action; renewed every third of it.
const LEASE_MS: i64 = 30_000;
/// Actions run at once by one controller.
const SLOTS: usize = 32;
/// How long a concurrency policy with `delay` waits before trying again.
const POLICY_DELAY_MS: i64 = 1_000;

/// Runs the executor until shutdown.
pub(crate) async fn run(state: Arc<AppState>) {
    let controller = state.automation.controller_id.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(SLOTS));
    let mut notices = state.store.notifier().subscribe();
    let mut renew = tokio::time::interval(Duration::from_millis((LEASE_MS / 3) as u64));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let free = slots.available_permits() as u32;
        if free > 0 {
            match state.store.claim_actions(&controller, LEASE_MS, free).await {
                Ok(claimed) => {
                    for c in claimed {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let s = state.clone();
                        tokio::spawn(async move {
                            let id = c.id.clone();
                            if let Err(e) = run_one(&s, c).await {
                                tracing::warn!(execution = %id, error = %e, "action failed to run");
                                let _ = s
                                    .store
                                    .finish_action(
                                        &id,
                                        ExecutionStatus::Failed,
                                        &json!({ "error": e.to_string() }),
                                    )
                                    .await;
                            }
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim actions"),
            }
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = renew.tick() => {
                if let Err(e) = state.store.renew_action_claims(&controller, LEASE_MS).await {
                    tracing::warn!(error = %e, "cannot renew action leases");
                }
                match state.store.requeue_abandoned_actions().await {
                    Ok(ids) if !ids.is_empty() => {
                        tracing::info!(count = ids.len(), "queued again actions whose controller stopped");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot requeue abandoned actions"),
                }
            }
            n = notices.recv() => {
                if !matches!(n, Ok(Notice::Actions) | Err(_)) {
                    continue;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

fn text(values: &Map<String, Value>, name: &str) -> Option<String> {
    match values.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn seconds(values: &Map<String, Value>, name: &str) -> Option<Duration> {
    values
        .get(name)
        .and_then(Value::as_f64)
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
}

fn env_of(values: &Map<String, Value>) -> Vec<(String, String)> {
    values
        .get("env")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Watches the store for a cancel request of `id`.
fn cancel_watch(
    state: &Arc<AppState>,
    id: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let t = token.clone();
    let s = state.clone();
    let id = id.to_string();
    let handle = tokio::spawn(async move {
        let mut notices = s.store.notifier().subscribe();
        loop {
            if s.store.cancel_requested(&id).await.unwrap_or(false) {
                t.cancel();
                return;
            }
            tokio::select! {
                _ = t.cancelled() => return,
                _ = s.shutdown.cancelled() => return,
                _ = notices.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    (token, handle)
}

fn status_of(s: ActionStatus) -> ExecutionStatus {
    match s {
        ActionStatus::Succeeded => ExecutionStatus::Succeeded,
        ActionStatus::Canceled => ExecutionStatus::Cancelled,
        ActionStatus::Failed | ActionStatus::Timeout => ExecutionStatus::Failed,
    }
}

/// Where a script action's entry point is written on the controller.
fn script_path(state: &AppState, action: &Action) -> PathBuf {
    let entry = action.entry_point.clone().unwrap_or_default();
    state
        .config
        .data_dir
        .join("packs")
        .join(&action.pack)
        .join("actions")
        .join(entry.trim_start_matches("./").replace("..", "_"))
}

async fn write_script(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("drover-tmp");
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).await?;
    tokio::fs::rename(&tmp, path).await?;
    Ok(())
}

/// Whether a JSON value holds a string anywhere.
fn has_text(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(items) => items.iter().any(has_text),
        Value::Object(m) => m.values().any(has_text),
        _ => false,
    }
}

/// Runs one claimed action to its end (or hands it to the event log).
async fn run_one(state: &Arc<AppState>, c: ClaimedAction) -> anyhow::Result<()> {
    let catalog = state.automation.catalog.get(state).await?;
    let Some(action) = catalog.actions.get(&c.action_ref).cloned() else {
        state
            .store
            .finish_action(
                &c.id,
                ExecutionStatus::Failed,
                &json!({ "error": format!("action `{}` is not installed", c.action_ref) }),
            )
            .await?;
        return Ok(());
    };
    // Concurrency policies: too many running → wait or cancel.
    for p in catalog.policies.get(&c.action_ref).into_iter().flatten() {
        if !p.enabled {
            continue;
        }
        if let PolicyKind::Concurrency {
            threshold,
            action: what,
        } = &p.kind
        {
            let running = state.store.running_actions(&c.action_ref).await?;
            // `running` counts this one.
            if running > i64::from(*threshold) {
                if what == "cancel" {
                    state
                        .store
                        .finish_action(
                            &c.id,
                            ExecutionStatus::Cancelled,
                            &json!({ "error": format!(
                                "policy {}: {} already running (threshold {threshold})",
                                p.name, running - 1) }),
                        )
                        .await?;
                } else {
                    state
                        .store
                        .delay_action(
                            &c.id,
                            chrono::Utc::now().timestamp_millis() + POLICY_DELAY_MS,
                        )
                        .await?;
                }
                return Ok(());
            }
        }
    }
    let values = prepare::open_params(state, &c.id, &c.params)?;
    let mut secrets = prepare::secret_values(&action, &values);
    let context = ActionContext {
        execution_id: c.id.clone(),
        action_ref: c.action_ref.clone(),
    };
    let (status, result) = match action.runner {
        Runner::Noop => (ActionStatus::Succeeded, json!({})),
        Runner::LocalShellCmd | Runner::LocalShellScript => {
            let command = if action.runner == Runner::LocalShellCmd {
                ShellCommand::Cmd {
                    cmd: text(&values, "cmd").unwrap_or_default(),
                    env: env_of(&values),
                    cwd: text(&values, "cwd").map(PathBuf::from),
                    timeout: seconds(&values, "timeout"),
                    sudo: values.get("sudo").and_then(Value::as_bool).unwrap_or(false),
                }
            } else {
                let script = catalog
                    .scripts
                    .get(&c.action_ref)
                    .cloned()
                    .unwrap_or_default();
                let path = script_path(state, &action);
                write_script(&path, &script).await?;
                let runner = drover_core::automation::action::runner_parameters(action.runner);
                let own = args::action_values(&runner, &values);
                let kwarg_op = text(&values, "kwarg_op").unwrap_or_else(|| "--".into());
                ShellCommand::Script {
                    path,
                    args: args::script_arguments(&action.effective_parameters(), &own, &kwarg_op),
                    env: env_of(&values),
                    cwd: text(&values, "cwd").map(PathBuf::from),
                    timeout: seconds(&values, "timeout"),
                    sudo: values.get("sudo").and_then(Value::as_bool).unwrap_or(false),
                }
            };
            let (cancel, watch) = cancel_watch(state, &c.id);
            let out = run_shell(&command, &context, &cancel, None).await;
            watch.abort();
            out
        }
        Runner::HttpRequest => {
            let (cancel, watch) = cancel_watch(state, &c.id);
            let out = crate::runners::http::run_http(&values, &cancel).await;
            watch.abort();
            out
        }
        Runner::RemoteShellCmd | Runner::RemoteShellScript | Runner::DroverRun => {
            let hosts = text(&values, "hosts").unwrap_or_else(|| "all".into());
            let argv = if action.runner == Runner::RemoteShellScript {
                let script = catalog
                    .scripts
                    .get(&c.action_ref)
                    .cloned()
                    .unwrap_or_default();
                let runner = drover_core::automation::action::runner_parameters(action.runner);
                let own = args::action_values(&runner, &values);
                let kwarg_op = text(&values, "kwarg_op").unwrap_or_else(|| "--".into());
                let mut argv = vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    super::remote::SCRIPT_WRAPPER.to_string(),
                    script,
                ];
                argv.extend(args::script_arguments(
                    &action.effective_parameters(),
                    &own,
                    &kwarg_op,
                ));
                argv
            } else {
                vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    text(&values, "cmd").unwrap_or_default(),
                ]
            };
            let timeout_ms = seconds(&values, "timeout").map(|d| d.as_millis() as u64);
            let parallel = values
                .get("parallel")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0);
            match super::remote::start(state, &c.id, &c.actor, &hosts, argv, timeout_ms, parallel)
                .await
            {
                Ok(_) => {
                    state.store.release_action_claim(&c.id).await?;
                    return Ok(());
                }
                Err(e) => (ActionStatus::Failed, json!({ "error": e })),
            }
        }
        Runner::Orquesta => {
            let Some(wf) = catalog.workflows.get(&c.action_ref).cloned() else {
                state
                    .store
                    .finish_action(
                        &c.id,
                        ExecutionStatus::Failed,
                        &json!({ "error": format!("workflow of `{}` is missing", c.action_ref) }),
                    )
                    .await?;
                return Ok(());
            };
            let depth = nesting(state, c.parent_id.as_deref()).await?;
            if depth > MAX_WORKFLOW_NESTING {
                state
                    .store
                    .finish_action(
                        &c.id,
                        ExecutionStatus::Failed,
                        &json!({ "error": format!(
                            "workflows nest {depth} deep, more than {MAX_WORKFLOW_NESTING}: \
                             does `{}` call itself?", c.action_ref) }),
                    )
                    .await?;
                return Ok(());
            }
            state.store.release_action_claim(&c.id).await?;
            if state.store.workflow_state(&c.id).await?.is_none() {
                // The workflow's input is the action's own parameters, not the runner's.
                let runner = drover_core::automation::action::runner_parameters(action.runner);
                let input = args::action_values(&runner, &values);
                super::engine::start_workflow(state, &c.id, &c.actor, &wf, input).await?;
            }
            return Ok(());
        }
        Runner::DroverDrain | Runner::DroverUndrain => {
            let drained = action.runner == Runner::DroverDrain;
            let host = text(&values, "host").unwrap_or_default();
            match state.store.set_host_drained(&host, drained, &c.actor).await {
                Ok(h) => {
                    state.store.bump_drain_epoch().await?;
                    (
                        ActionStatus::Succeeded,
                        json!({ "host": h.name, "drained": drained }),
                    )
                }
                Err(e) => (ActionStatus::Failed, json!({ "error": e.to_string() })),
            }
        }
        Runner::DroverApply if values.get("dry_run").and_then(Value::as_bool) == Some(true) => {
            match super::builtin::plan_latest(state).await {
                Ok(v) => (ActionStatus::Succeeded, v),
                Err(e) => (ActionStatus::Failed, json!({ "error": e })),
            }
        }
        Runner::DroverApply => {
            let message = text(&values, "message")
                .unwrap_or_else(|| format!("applied by action execution {}", c.id));
            match super::builtin::apply_latest(state, &c.actor, &message).await {
                Ok(v) => (ActionStatus::Succeeded, v),
                Err(e) => (ActionStatus::Failed, json!({ "error": e })),
            }
        }
    };
    tracing::debug!(execution = %c.id, action = %c.action_ref, status = status.as_str(), "action finished");
    // Only text can carry a secret: a result without any (noop's `{}`) needs no
    // datastore read to be masked.
    if has_text(&result) {
        secrets.extend(prepare::KvSnapshot::load(state).await?.secret_values());
    }
    let mut result = prepare::scrub_json(&result, &secrets);
    if status == ActionStatus::Timeout
        && let Value::Object(m) = &mut result
    {
        m.insert("timed_out".into(), Value::Bool(true));
    }
    state
        .store
        .finish_action(&c.id, status_of(status), &result)
        .await?;
    Ok(())
}
