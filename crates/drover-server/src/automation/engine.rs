//! The rule engine and workflow driver: reads the event log in order and commits what
//! each batch of events leads to, together with the cursor (see the store's
//! `commit_batch`): rules that fire (throttle and runaway guard applied), workflow
//! transitions when a task's execution ends, `action.finished` events (StackStorm's
//! `core.st2.generic.actiontrigger`), remote actions finished from their agents' run.
//!
//! Each step is deterministic given the store, so a batch that is read twice (a crash
//! before commit, a second controller) commits once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::automation::jinja;
use drover_core::automation::pack::PolicyKind;
use drover_core::automation::rule::Rule;
use drover_core::workflow::conductor;
use drover_core::workflow::expr::Datastore;
use drover_core::workflow::spec::{WorkflowSpec, decode_workflow};
use drover_core::workflow::state::{
    Directive, OutcomeStatus, TaskKey, TaskOutcome, WorkflowState, WorkflowStatus,
};
use drover_proto::events::{Event, types};
use drover_proto::executions::{Execution, ExecutionStatus};
use drover_store::{
    Batch, Enforcement, EventFilter, EventOrder, NewAction, NewEvent, WorkflowWrite,
};
use serde_json::{Map, Value, json};

use super::catalog::Catalog;
use super::prepare::{self, KvSnapshot};
use crate::state::AppState;

/// Events read per batch.
const BATCH: u32 = 256;
/// A rule that fires more often than this (per minute) without its own `max_rate` is
/// stopped: the runaway-loop guard.
pub(crate) const DEFAULT_MAX_PER_MINUTE: u32 = 120;

/// How long events that changed nothing may stay read but unrecorded (see [`Pending`]).
const MAX_DEFER: Duration = Duration::from_secs(1);

/// Events this controller has read past the stored cursor without recording it,
/// because they changed nothing (most events match no rule). Recording the cursor for
/// them would cost a write per event; it rides along with the next batch that changes
/// something, or is written when the engine idles or after [`MAX_DEFER`]. If another
/// controller moves the stored cursor meanwhile, this is dropped and the events are
/// read again: they changed nothing, so nothing is done twice.
#[derive(Clone, Copy)]
struct Pending {
    /// The stored cursor when reading started.
    stored: i64,
    /// The last event id read.
    read: i64,
    /// When the first unrecorded event was read.
    since: Instant,
}

/// Runs the engine until shutdown.
pub(crate) async fn run(state: Arc<AppState>) {
    let mut notices = state.store.notifier().subscribe();
    let mut pending = None;
    loop {
        match step(&state, &mut pending).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "rule engine step failed"),
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                record(&state, &mut pending).await;
                return;
            }
            _ = notices.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => record(&state, &mut pending).await,
        }
    }
}

/// Writes a deferred cursor.
async fn record(state: &Arc<AppState>, pending: &mut Option<Pending>) {
    if let Some(p) = pending.take() {
        let batch = Batch {
            from: p.stored,
            to: p.read,
            ..Batch::default()
        };
        if let Err(e) = state.store.commit_batch(&batch).await {
            tracing::warn!(error = %e, "cannot record the rule engine's cursor");
        }
    }
}

/// One batch. Returns whether there may be more right away.
async fn step(state: &Arc<AppState>, pending: &mut Option<Pending>) -> anyhow::Result<bool> {
    let stored = state.store.automation_cursor().await?;
    let from = match *pending {
        Some(p) if p.stored == stored => p.read,
        _ => {
            *pending = None;
            stored
        }
    };
    let events = state
        .store
        .list_events(&EventFilter {
            cursor: Some(from),
            order: EventOrder::Asc,
            limit: BATCH,
            ..EventFilter::default()
        })
        .await?;
    let Some(last) = events.last() else {
        return Ok(false);
    };
    let catalog = state.automation.catalog.get(state).await?;
    let mut work = Work::new(state, &catalog, stored, last.id);
    for ev in &events {
        if let Err(e) = work.event(ev).await {
            tracing::warn!(event = ev.id, kind = %ev.kind, error = %e, "automation could not handle an event");
        }
    }
    let Work { batch, stopped, .. } = work;
    let full = events.len() as u32 == BATCH;
    let since = pending.map(|p| p.since).unwrap_or_else(Instant::now);
    if batch.is_empty() && stopped.is_empty() && since.elapsed() < MAX_DEFER {
        *pending = Some(Pending {
            stored,
            read: last.id,
            since,
        });
        return Ok(full);
    }
    *pending = None;
    if state.store.commit_batch(&batch).await? {
        for (rule, reason, ev) in stopped {
            state.store.set_rule_enabled(&rule, false, "system").await?;
            // The event that tipped it over rides along, so a rule on `rule.stopped`
            // can act on it (quarantine the host that keeps failing).
            state
                .store
                .append_event(NewEvent::new(
                    types::RULE_STOPPED,
                    "system",
                    json!({
                        "rule": rule,
                        "reason": reason,
                        "event": { "id": ev.id, "type": ev.kind, "payload": ev.payload },
                    }),
                ))
                .await?;
        }
    }
    Ok(full)
}

/// A workflow loaded during a batch.
struct LoadedWorkflow {
    spec: Arc<WorkflowSpec>,
    state: WorkflowState,
    /// The definition, when it still has to be written.
    text: Option<String>,
    actor: String,
}

struct Work<'a> {
    state: &'a Arc<AppState>,
    catalog: &'a Catalog,
    batch: Batch,
    kv: Option<KvSnapshot>,
    /// Workflows touched in this batch, by execution id.
    workflows: HashMap<String, LoadedWorkflow>,
    /// Firings per rule in this batch (throttle keys, rate).
    fired: HashMap<String, Vec<(Option<String>, i64)>>,
    /// Rules to stop after commit: the rule, why, and the event that tipped it over.
    stopped: Vec<(String, String, Event)>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// StackStorm's `core.st2.generic.actiontrigger` payload for a finished action.
pub(crate) fn action_trigger(exec: &Execution, runner: &str) -> Value {
    let info = exec.action.as_ref();
    let action_ref = info.map(|a| a.action_ref.clone()).unwrap_or_default();
    json!({
        "execution_id": exec.id,
        "status": exec.status.as_str(),
        "start_timestamp": exec.started_at.map(|t| t.to_rfc3339()),
        "action_name": action_ref.split_once('.').map(|(_, n)| n).unwrap_or(&action_ref),
        "action_ref": action_ref,
        "runner_ref": runner,
        "parameters": info.map(|a| a.parameters.clone()).unwrap_or(Value::Null),
        "result": info.and_then(|a| a.result.clone()).unwrap_or(Value::Null),
        "parent_id": info.and_then(|a| a.parent_id.clone()),
        "rule": info.and_then(|a| a.rule_ref.clone()),
    })
}

fn outcome_of(exec: &Execution) -> TaskOutcome {
    let result = exec
        .action
        .as_ref()
        .and_then(|a| a.result.clone())
        .unwrap_or(Value::Null);
    let timed_out = result.get("timed_out").and_then(Value::as_bool) == Some(true);
    TaskOutcome {
        status: match exec.status {
            ExecutionStatus::Succeeded => OutcomeStatus::Succeeded,
            ExecutionStatus::Cancelled => OutcomeStatus::Canceled,
            _ if timed_out => OutcomeStatus::Timeout,
            _ => OutcomeStatus::Failed,
        },
        result,
    }
}

fn workflow_status(s: WorkflowStatus) -> ExecutionStatus {
    match s {
        WorkflowStatus::Succeeded => ExecutionStatus::Succeeded,
        WorkflowStatus::Canceled => ExecutionStatus::Cancelled,
        _ => ExecutionStatus::Failed,
    }
}

impl<'a> Work<'a> {
    /// Work for the batch of events `(from, to]` (`-1, -1`: not tied to the cursor).
    fn new(state: &'a Arc<AppState>, catalog: &'a Catalog, from: i64, to: i64) -> Work<'a> {
        Work {
            state,
            catalog,
            batch: Batch {
                from,
                to,
                ..Batch::default()
            },
            kv: None,
            workflows: HashMap::new(),
            fired: HashMap::new(),
            stopped: Vec::new(),
        }
    }

    async fn kv(&mut self) -> anyhow::Result<KvSnapshot> {
        if self.kv.is_none() {
            self.kv = Some(KvSnapshot::load(self.state).await?);
        }
        Ok(self
            .kv
            .clone()
            .unwrap_or_else(|| unreachable!("just loaded")))
    }

    async fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        match ev.kind.as_str() {
            types::EXECUTION_FINISHED => self.execution_finished(ev).await?,
            types::EXECUTION_CANCEL_REQUESTED => self.cancel_requested(ev).await?,
            "execution.pause_requested" | "execution.resume_requested" => {
                self.pause_or_resume(ev).await?
            }
            _ => {}
        }
        self.rules(ev).await
    }

    /// Matches the event against the enabled rules.
    async fn rules(&mut self, ev: &Event) -> anyhow::Result<()> {
        if self.catalog.rules.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut matched: Vec<Rule> = self
            .catalog
            .ruleset
            .matching(&ev.kind, &ev.payload, now)
            .into_iter()
            .filter(|r| trigger_params_match(r, ev))
            .cloned()
            .collect();
        let templated: Vec<Rule> = self
            .catalog
            .templated
            .iter()
            .filter(|r| {
                drover_core::automation::rule::trigger_matches(&r.trigger.kind, &ev.kind)
                    && trigger_params_match(r, ev)
            })
            .cloned()
            .collect();
        if !templated.is_empty() {
            let kv = self.kv().await?;
            let env = jinja::shared();
            let ctx = minijinja::context! {
                trigger => minijinja::Value::from(minijinja::value::Serde(&ev.payload)),
                st2kv => jinja::st2kv(kv.for_user("system")),
            };
            for r in templated {
                let mut render =
                    |t: &str| jinja::eval_native(env, t, &ctx).map_err(|e| e.to_string());
                match r.criteria.render(&mut render) {
                    Ok(c) if c.evaluate(&ev.payload, now) => matched.push(r),
                    Ok(_) => {}
                    Err(e) => self.batch.enforcements.push(Enforcement {
                        rule_ref: r.reference(),
                        event_id: ev.id,
                        execution_id: None,
                        status: "failed".into(),
                        reason: Some(format!("criteria: {e}")),
                        throttle_key: None,
                        source_execution: None,
                    }),
                }
            }
        }
        for rule in matched {
            self.fire(&rule, ev, now).await?;
        }
        Ok(())
    }

    async fn fire(&mut self, rule: &Rule, ev: &Event, now: i64) -> anyhow::Result<()> {
        let reference = rule.reference();
        let source_execution = ev
            .payload
            .get("execution_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut enforcement = Enforcement {
            rule_ref: reference.clone(),
            event_id: ev.id,
            execution_id: None,
            status: "fired".into(),
            reason: None,
            throttle_key: None,
            source_execution,
        };
        let kv = self.kv().await?;
        let env = jinja::shared();
        let ctx = minijinja::context! {
            trigger => minijinja::Value::from(minijinja::value::Serde(&ev.payload)),
            st2kv => jinja::st2kv(kv.for_user(&format!("rule:{reference}"))),
            rule => minijinja::context! { ref => reference.clone(), name => rule.name.clone(), pack => rule.pack.clone() },
            event => minijinja::context! { id => ev.id, type => ev.kind.clone(), actor => ev.actor.clone() },
        };
        // Throttle: at most one firing per key within the window.
        if let Some(t) = &rule.throttle {
            let key =
                jinja::render_text(env, &t.key, &ctx).unwrap_or_else(|e| format!("<{}>", e.reason));
            let window = i64::try_from(t.window.as_millis()).unwrap_or(i64::MAX);
            let in_batch = self.fired.get(&reference).is_some_and(|f| {
                f.iter()
                    .any(|(k, at)| k.as_deref() == Some(&key) && now - at < window)
            });
            let stored = self.state.store.last_fired(&reference, &key).await?;
            enforcement.throttle_key = Some(key.clone());
            if in_batch || stored.is_some_and(|at| now - at < window) {
                enforcement.status = "throttled".into();
                enforcement.reason = Some(format!(
                    "fired for key `{key}` less than {} ago",
                    drover_core::duration::format_duration(t.window)
                ));
                self.batch.enforcements.push(enforcement);
                return Ok(());
            }
        }
        // Runaway guard.
        let (count, per) = match &rule.max_rate {
            Some(m) => (m.count, m.per),
            None => (DEFAULT_MAX_PER_MINUTE, Duration::from_secs(60)),
        };
        let per_ms = i64::try_from(per.as_millis()).unwrap_or(i64::MAX);
        let recent = self
            .state
            .store
            .fired_since(&reference, now - per_ms)
            .await?
            + self.fired.get(&reference).map_or(0, |f| {
                f.iter().filter(|(_, at)| now - at < per_ms).count() as i64
            });
        if recent >= i64::from(count) {
            let reason = format!(
                "fired {recent} times within {}: over its limit of {count}; the rule is \
                 stopped (drover rules enable {reference} to start it again)",
                drover_core::duration::format_duration(per)
            );
            enforcement.status = "rate_limited".into();
            enforcement.reason = Some(reason.clone());
            self.batch.enforcements.push(enforcement);
            if !self.stopped.iter().any(|(r, _, _)| r == &reference) {
                self.stopped.push((reference, reason, ev.clone()));
            }
            return Ok(());
        }
        // Render the action's parameters and check them.
        let Some(action) = self.catalog.actions.get(&rule.action.reference) else {
            enforcement.status = "failed".into();
            enforcement.reason = Some(format!(
                "action `{}` is not installed",
                rule.action.reference
            ));
            self.batch.enforcements.push(enforcement);
            return Ok(());
        };
        let given = match jinja::render_json(env, &rule.action.parameters, &ctx, true) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            Ok(other) => {
                enforcement.status = "failed".into();
                enforcement.reason = Some(format!(
                    "action.parameters rendered to {other}, not a mapping"
                ));
                self.batch.enforcements.push(enforcement);
                return Ok(());
            }
            Err(e) => {
                enforcement.status = "failed".into();
                enforcement.reason = Some(format!("action.parameters: {e}"));
                self.batch.enforcements.push(enforcement);
                return Ok(());
            }
        };
        let id = uuid::Uuid::now_v7().to_string();
        let actor = format!("rule:{reference}");
        match prepare::prepare(self.state, action, &given, &kv, &actor, &id) {
            Ok(p) => {
                self.batch.actions.push(NewAction {
                    id: id.clone(),
                    action_ref: action.reference(),
                    actor,
                    spec: p.spec,
                    params: p.params,
                    rule_ref: Some(reference.clone()),
                    event_id: Some(ev.id),
                    ..NewAction::default()
                });
                enforcement.execution_id = Some(id);
                self.fired
                    .entry(reference)
                    .or_default()
                    .push((enforcement.throttle_key.clone(), now));
            }
            Err(e) => {
                enforcement.status = "failed".into();
                enforcement.reason = Some(e);
            }
        }
        self.batch.enforcements.push(enforcement);
        Ok(())
    }

    async fn execution_finished(&mut self, ev: &Event) -> anyhow::Result<()> {
        let Some(id) = ev.payload.get("execution_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let Some(exec) = self.state.store.get_execution(id).await? else {
            return Ok(());
        };
        match (exec.kind.as_str(), &exec.action) {
            ("action", Some(info)) => {
                let runner = self
                    .catalog
                    .actions
                    .get(&info.action_ref)
                    .map(|a| a.runner.as_str())
                    .unwrap_or("unknown");
                self.batch.events.push(NewEvent::new(
                    types::ACTION_FINISHED,
                    &exec.actor,
                    action_trigger(&exec, runner),
                ));
                if info.parent_id.is_none() {
                    self.retry_policy(&exec).await?;
                }
                if let Some(parent) = info.parent_id.clone()
                    && let Some(key) = info.task_key.as_deref()
                {
                    let key: TaskKey = key.parse().map_err(|e: String| anyhow::anyhow!("{e}"))?;
                    self.task_finished(&parent, &key, outcome_of(&exec)).await?;
                }
            }
            ("run", _) => {
                // The remote part of a remote-shell action: finish the action from the
                // agents' results.
                if let Some(parent) = self.state.store.parent_of(id).await? {
                    let result = super::remote::result_of(self.state, &exec).await?;
                    let status = exec.status;
                    self.batch.finishes.push((parent, status, result));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// StackStorm's `action.retry` policy: a failed (or timed out) execution is run
    /// again as a new execution, up to `max_retry_count` times, after `delay` seconds.
    async fn retry_policy(&mut self, exec: &Execution) -> anyhow::Result<()> {
        let Some(info) = &exec.action else {
            return Ok(());
        };
        let Some(action) = self.catalog.actions.get(&info.action_ref) else {
            return Ok(());
        };
        let timed_out = info
            .result
            .as_ref()
            .and_then(|r| r.get("timed_out"))
            .and_then(Value::as_bool)
            == Some(true);
        let done = exec.spec.get("retry").and_then(Value::as_u64).unwrap_or(0);
        for p in self
            .catalog
            .policies
            .get(&info.action_ref)
            .into_iter()
            .flatten()
        {
            let PolicyKind::Retry {
                retry_on,
                max_retry_count,
                delay,
            } = &p.kind
            else {
                continue;
            };
            let hit = match retry_on.as_str() {
                "timeout" => timed_out,
                _ => exec.status == ExecutionStatus::Failed && !timed_out,
            };
            if !p.enabled || !hit || done >= u64::from(*max_retry_count) {
                continue;
            }
            let params = self
                .state
                .store
                .action_params(&exec.id)
                .await?
                .unwrap_or(Value::Null);
            let values = prepare::open_params(self.state, &exec.id, &params)?;
            let kv = self.kv().await?;
            let id = uuid::Uuid::now_v7().to_string();
            let prepared = prepare::prepare(self.state, action, &values, &kv, &exec.actor, &id)
                .map_err(|e| anyhow::anyhow!("retry of {}: {e}", exec.id))?;
            let mut spec = prepared.spec;
            spec["retry"] = json!(done + 1);
            spec["retry_of"] = json!(exec.id);
            spec["policy"] = json!(p.name);
            self.batch.actions.push(NewAction {
                id,
                action_ref: info.action_ref.clone(),
                actor: exec.actor.clone(),
                spec,
                params: prepared.params,
                rule_ref: info.rule_ref.clone(),
                event_id: info.event_id,
                not_before: Some(now_ms() + i64::from(*delay) * 1000),
                ..NewAction::default()
            });
            break;
        }
        Ok(())
    }

    async fn load_workflow(&mut self, id: &str) -> anyhow::Result<bool> {
        if self.workflows.contains_key(id) {
            return Ok(true);
        }
        let Some((text, state)) = self.state.store.workflow_state(id).await? else {
            return Ok(false);
        };
        let mut state: WorkflowState = serde_json::from_value(state)?;
        let cache = &self.state.automation.workflows;
        let (spec, actor) = match cache.get(id) {
            Some(known) => known,
            None => {
                let spec = decode_workflow("workflow", &text).map_err(|e| {
                    anyhow::anyhow!(
                        "stored workflow no longer decodes: {}",
                        e.first().map(|e| e.to_string()).unwrap_or_default()
                    )
                })?;
                let actor = self
                    .state
                    .store
                    .get_execution(id)
                    .await?
                    .map(|e| e.actor)
                    .unwrap_or_else(|| "system".into());
                let spec = Arc::new(spec);
                cache.put(id, spec.clone(), &actor);
                (spec, actor)
            }
        };
        // `st2kv()` in its expressions reads this batch's datastore snapshot (read only
        // for workflows that call it: a snapshot reads and decrypts every key).
        if uses_st2kv(&text) {
            state.datastore = Datastore(Some(self.kv().await?.for_user(&actor)));
        }
        self.workflows.insert(
            id.to_string(),
            LoadedWorkflow {
                spec,
                state,
                text: None,
                actor,
            },
        );
        Ok(true)
    }

    async fn task_finished(
        &mut self,
        workflow: &str,
        key: &TaskKey,
        outcome: TaskOutcome,
    ) -> anyhow::Result<()> {
        if !self.load_workflow(workflow).await? {
            return Ok(());
        }
        let Some(wf) = self.workflows.get_mut(workflow) else {
            return Ok(());
        };
        let directives = match conductor::task_finished(&wf.spec, &mut wf.state, key, outcome) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(workflow, task = %key, error = %e, "workflow transition failed");
                conductor::cancel(&mut wf.state)
            }
        };
        self.apply(workflow, directives).await
    }

    /// Turns directives into executions (and immediate failures for tasks whose
    /// action or input is wrong), until none are left; records the state.
    pub(crate) async fn apply(
        &mut self,
        workflow: &str,
        mut directives: Vec<Directive>,
    ) -> anyhow::Result<()> {
        while let Some(d) = directives.pop() {
            match d {
                Directive::RunAction {
                    key,
                    action,
                    input,
                    delay_ms,
                } => {
                    let kv = self.kv().await?;
                    let Some(wf) = self.workflows.get(workflow) else {
                        break;
                    };
                    let actor = format!("workflow:{workflow}");
                    let given = input.as_object().cloned().unwrap_or_default();
                    let id = uuid::Uuid::now_v7().to_string();
                    let prepared = match self.catalog.actions.get(&action) {
                        None => Err(format!("action `{action}` is not installed")),
                        Some(a) => prepare::prepare(self.state, a, &given, &kv, &wf.actor, &id),
                    };
                    match prepared {
                        Ok(p) => self.batch.actions.push(NewAction {
                            id,
                            action_ref: action.clone(),
                            actor,
                            spec: p.spec,
                            params: p.params,
                            parent_id: Some(workflow.to_string()),
                            task_key: Some(key.to_string()),
                            not_before: (delay_ms > 0)
                                .then(|| now_ms() + i64::try_from(delay_ms).unwrap_or(0)),
                            ..NewAction::default()
                        }),
                        Err(reason) => {
                            let Some(wf) = self.workflows.get_mut(workflow) else {
                                break;
                            };
                            let more = conductor::task_finished(
                                &wf.spec,
                                &mut wf.state,
                                &key,
                                TaskOutcome {
                                    status: OutcomeStatus::Failed,
                                    result: json!({ "error": reason }),
                                },
                            )
                            .unwrap_or_default();
                            directives.extend(more);
                        }
                    }
                }
                Directive::Finished {
                    status,
                    output,
                    errors,
                } => {
                    self.state.automation.workflows.forget(workflow);
                    self.batch.finishes.push((
                        workflow.to_string(),
                        workflow_status(status),
                        json!({ "output": output, "errors": errors }),
                    ));
                }
            }
        }
        if let Some(wf) = self.workflows.get_mut(workflow) {
            self.batch.workflows.retain(|w| w.execution_id != workflow);
            self.batch.workflows.push(WorkflowWrite {
                execution_id: workflow.to_string(),
                spec: wf.text.clone(),
                state: serde_json::to_value(&wf.state)?,
            });
        }
        Ok(())
    }

    async fn cancel_requested(&mut self, ev: &Event) -> anyhow::Result<()> {
        let Some(id) = ev.payload.get("execution_id").and_then(Value::as_str) else {
            return Ok(());
        };
        if self.load_workflow(id).await? {
            let children = self.state.store.child_executions(id).await?;
            self.batch
                .cancels
                .extend(children.into_iter().map(|child| (child, ev.actor.clone())));
            let Some(wf) = self.workflows.get_mut(id) else {
                return Ok(());
            };
            let directives = conductor::cancel(&mut wf.state);
            return self.apply(id, directives).await;
        }
        // A remote action: cancel its run on the agents.
        for child in self.state.store.child_executions(id).await? {
            if let Err(e) = self.state.store.request_cancel(&child, &ev.actor).await {
                tracing::warn!(execution = child, error = %e, "cannot cancel the remote run");
            }
        }
        Ok(())
    }

    async fn pause_or_resume(&mut self, ev: &Event) -> anyhow::Result<()> {
        let Some(id) = ev.payload.get("execution_id").and_then(Value::as_str) else {
            return Ok(());
        };
        if !self.load_workflow(id).await? {
            return Ok(());
        }
        let Some(wf) = self.workflows.get_mut(id) else {
            return Ok(());
        };
        let directives = if ev.kind == "execution.pause_requested" {
            conductor::pause(&mut wf.state);
            Vec::new()
        } else {
            let spec = wf.spec.clone();
            conductor::resume(&spec, &mut wf.state)
        };
        self.apply(id, directives).await
    }
}

/// Whether a workflow's text calls `st2kv(`: only those get a datastore snapshot.
fn uses_st2kv(text: &str) -> bool {
    text.contains("st2kv")
}

/// Starts a workflow execution (the executor calls this when it claims one): the
/// conductor's first directives and state, written at once.
pub(crate) async fn start_workflow(
    state: &Arc<AppState>,
    id: &str,
    actor: &str,
    workflow: &super::catalog::Workflow,
    input: Map<String, Value>,
) -> anyhow::Result<()> {
    let catalog = state.automation.catalog.get(state).await?;
    // Not tied to the cursor: a claimed workflow starts once (see `commit_batch`).
    let mut work = Work::new(state, &catalog, -1, -1);
    let datastore = if uses_st2kv(&workflow.text) {
        Datastore(Some(work.kv().await?.for_user(actor)))
    } else {
        Datastore::default()
    };
    match conductor::start_with(&workflow.spec, input, datastore) {
        Ok((wf_state, directives)) => {
            work.workflows.insert(
                id.to_string(),
                LoadedWorkflow {
                    spec: workflow.spec.clone(),
                    state: wf_state,
                    text: Some(workflow.text.clone()),
                    actor: actor.to_string(),
                },
            );
            work.apply(id, directives).await?;
        }
        Err(e) => {
            work.batch.finishes.push((
                id.to_string(),
                ExecutionStatus::Failed,
                json!({ "output": null, "errors": [{ "message": e.to_string() }] }),
            ));
        }
    }
    state.store.commit_batch(&work.batch).await?;
    Ok(())
}

/// Whether the event is for this rule's trigger instance: the webhook it names, the
/// timer it owns.
fn trigger_params_match(rule: &Rule, ev: &Event) -> bool {
    match rule.trigger.kind.as_str() {
        "webhook" => {
            let want = rule
                .trigger
                .parameters
                .get("url")
                .and_then(Value::as_str)
                .map(|u| u.trim_start_matches('/'));
            ev.payload.get("name").and_then(Value::as_str) == want
        }
        k if k.starts_with("timer.") => {
            ev.payload.get("rule").and_then(Value::as_str) == Some(rule.reference().as_str())
        }
        _ => true,
    }
}
