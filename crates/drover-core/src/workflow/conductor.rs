//! The conductor: a pure state machine over [`WorkflowState`] that, given a task's
//! outcome, decides what runs next ([`Directive`]s). It mirrors Orquesta's conductor:
//! transitions evaluated in order (every one whose `when` holds fires), `publish`
//! into the route's context, joins (all or N), with-items under a concurrency window,
//! retry, the engine commands `continue`/`fail`/`noop`/`retry`, pause/resume/cancel.
//!
//! The whole state is serde-serializable: the shell persists it after every call and,
//! after a crash, resumes from it; [`TaskKey`]s are stable so a finished task is never
//! run again.
//!
//! Differences from Orquesta, deliberately: when a task fails unhandled the workflow
//! first waits for the tasks still running (status stays `running`, nothing new is
//! scheduled), then fails; a join that can never be satisfied does not hold the
//! workflow open.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::decide::Run;
use super::expr::{self, Datastore, ExprError, Scope, Statuses};
use super::spec::WorkflowSpec;
use super::state::{
    Directive, OutcomeStatus, SlotStatus, TaskInstance, TaskKey, TaskOutcome, TaskStatus,
    WorkflowError, WorkflowState, WorkflowStatus,
};

/// Starts a workflow: checks and completes `input`, evaluates vars, schedules the
/// start tasks. Its expressions have no datastore; see [`start_with`].
pub fn start(
    spec: &WorkflowSpec,
    input: Map<String, Json>,
) -> Result<(WorkflowState, Vec<Directive>), WorkflowError> {
    start_with(spec, input, Datastore::default())
}

/// [`start`], with the datastore `st2kv()` reads (attached to the returned state).
pub fn start_with(
    spec: &WorkflowSpec,
    input: Map<String, Json>,
    datastore: Datastore,
) -> Result<(WorkflowState, Vec<Directive>), WorkflowError> {
    let unknown: Vec<String> = input
        .keys()
        .filter(|k| !spec.input.iter().any(|p| &p.name == *k))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(WorkflowError::UnknownInput(unknown));
    }
    let env = expr::environment();
    let mut ctx = Map::new();
    let statuses = Statuses::default();
    let mut input = input;
    for (section, params) in [("input", &spec.input), ("vars", &spec.vars)] {
        for p in params {
            let given = if section == "input" {
                input.remove(&p.name)
            } else {
                None
            };
            let value = match (given, &p.default) {
                (Some(v), _) => v,
                (None, Some(default)) => {
                    let scope = plain_scope(&ctx, &statuses, &datastore);
                    expr::render(env, default, &scope).map_err(|error| {
                        WorkflowError::Expression {
                            field: format!("{section}.{}", p.name),
                            error,
                        }
                    })?
                }
                (None, None) => Json::Null,
            };
            ctx.insert(p.name.clone(), value);
        }
    }
    let mut state = WorkflowState {
        status: WorkflowStatus::Running,
        context: ctx.clone(),
        tasks: Vec::new(),
        staged: Vec::new(),
        terminal: Map::new(),
        errors: Vec::new(),
        failing: false,
        output: Json::Null,
        datastore,
    };
    let mut run = Run::new(spec, &mut state);
    for name in spec.start_tasks() {
        run.schedule(name, ctx.clone());
    }
    run.drain();
    let out = run.finish();
    Ok((state, out))
}

/// Applies the end of one action run and returns what to do next. A key that has
/// already ended (a replay after a crash) changes nothing.
pub fn task_finished(
    spec: &WorkflowSpec,
    state: &mut WorkflowState,
    key: &TaskKey,
    outcome: TaskOutcome,
) -> Result<Vec<Directive>, WorkflowError> {
    let unknown = || WorkflowError::UnknownTask(key.to_string());
    let idx = state
        .tasks
        .iter()
        .position(|t| t.name == key.task && t.route == key.route)
        .ok_or_else(unknown)?;
    let inst = &mut state.tasks[idx];
    if key.attempt != inst.attempt || inst.status != TaskStatus::Running {
        return if key.attempt <= inst.attempt {
            Ok(Vec::new())
        } else {
            Err(unknown())
        };
    }
    let slot_idx = match (inst.items, key.item) {
        (true, Some(i)) => i as usize,
        (false, None) => 0,
        _ => return Err(unknown()),
    };
    let slot = inst.slots.get_mut(slot_idx).ok_or_else(unknown)?;
    if slot.status != SlotStatus::Running {
        return Ok(Vec::new());
    }
    slot.status = match outcome.status {
        OutcomeStatus::Succeeded => SlotStatus::Succeeded,
        OutcomeStatus::Failed => SlotStatus::Failed,
        OutcomeStatus::Timeout => SlotStatus::Timeout,
        OutcomeStatus::Canceled => SlotStatus::Canceled,
    };
    slot.result = outcome.result;
    let mut run = Run::new(spec, state);
    run.advance(idx);
    run.drain();
    Ok(run.finish())
}

/// Asks the workflow to stop: nothing new starts; once running tasks end it is
/// canceled.
pub fn cancel(state: &mut WorkflowState) -> Vec<Directive> {
    if state.status.is_finished() {
        return Vec::new();
    }
    state.status = WorkflowStatus::Canceling;
    for t in &mut state.tasks {
        for s in &mut t.slots {
            if matches!(s.status, SlotStatus::Waiting | SlotStatus::Held) {
                s.status = SlotStatus::Canceled;
            }
        }
    }
    settle(state, None)
}

/// Asks the workflow to pause: running tasks finish, nothing new is handed out.
pub fn pause(state: &mut WorkflowState) {
    if matches!(state.status, WorkflowStatus::Running) {
        state.status = if running_slots(state) > 0 {
            WorkflowStatus::Pausing
        } else {
            WorkflowStatus::Paused
        };
    }
}

/// Resumes a paused workflow: hands out the work decided while paused.
pub fn resume(spec: &WorkflowSpec, state: &mut WorkflowState) -> Vec<Directive> {
    if !matches!(
        state.status,
        WorkflowStatus::Pausing | WorkflowStatus::Paused
    ) {
        return Vec::new();
    }
    state.status = WorkflowStatus::Running;
    let mut out = Vec::new();
    for t in &mut state.tasks {
        for i in 0..t.slots.len() {
            if t.slots[i].status == SlotStatus::Held {
                t.slots[i].status = SlotStatus::Running;
                out.push(run_directive(t, i, &t.slots[i].input));
            }
        }
    }
    out.extend(settle(state, Some(spec)));
    out
}

/// The runs handed to the shell and not ended: what to watch after a restart.
pub fn pending_actions(state: &WorkflowState) -> Vec<TaskKey> {
    state
        .tasks
        .iter()
        .flat_map(|t| {
            t.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.status == SlotStatus::Running)
                .map(move |(i, _)| key_of(t, i))
        })
        .collect()
}

pub(super) fn key_of(t: &TaskInstance, slot: usize) -> TaskKey {
    TaskKey {
        task: t.name.clone(),
        route: t.route,
        item: t.items.then_some(slot as u32),
        attempt: t.attempt,
    }
}

pub(super) fn run_directive(t: &TaskInstance, slot: usize, input: &Json) -> Directive {
    Directive::RunAction {
        key: key_of(t, slot),
        action: t.action.clone(),
        input: input.clone(),
        delay_ms: t.delay_ms,
    }
}

pub(super) fn running_slots(state: &WorkflowState) -> usize {
    state
        .tasks
        .iter()
        .flat_map(|t| &t.slots)
        .filter(|s| s.status == SlotStatus::Running)
        .count()
}

pub(super) fn plain_scope<'a>(
    ctx: &'a Map<String, Json>,
    statuses: &'a Statuses,
    kv: &'a Datastore,
) -> Scope<'a> {
    Scope {
        ctx,
        result: None,
        status: None,
        statuses,
        item: None,
        kv,
    }
}

/// An Orquesta-shaped error entry.
pub(super) fn error_entry(
    task: Option<&str>,
    message: String,
    extra: Option<(&str, Json)>,
) -> Json {
    let mut e = json!({"type": "error", "message": message});
    if let Some(t) = task {
        e["task_id"] = json!(t);
    }
    if let Some((k, v)) = extra {
        e[k] = v;
    }
    e
}

/// Moves pausing → paused, canceling → canceled, and ends the workflow when nothing is
/// left to do. Output is evaluated when `spec` is given and the workflow succeeded.
pub(super) fn settle(state: &mut WorkflowState, spec: Option<&WorkflowSpec>) -> Vec<Directive> {
    let running = running_slots(state);
    let active = state
        .tasks
        .iter()
        .flat_map(|t| &t.slots)
        .any(|s| s.status.is_active());
    match state.status {
        WorkflowStatus::Pausing if running == 0 => state.status = WorkflowStatus::Paused,
        WorkflowStatus::Running if !active => {
            state.status = if state.failing {
                WorkflowStatus::Failed
            } else {
                WorkflowStatus::Succeeded
            };
        }
        WorkflowStatus::Canceling if !active => state.status = WorkflowStatus::Canceled,
        _ => return Vec::new(),
    }
    if !state.status.is_finished() {
        return Vec::new();
    }
    if state.status == WorkflowStatus::Succeeded
        && let Some(spec) = spec
    {
        match render_output(spec, state) {
            Ok(output) => state.output = output,
            Err(e) => {
                state.status = WorkflowStatus::Failed;
                state.errors.push(error_entry(
                    None,
                    format!("Unable to render output: {e}"),
                    Some(("expression", json!(e.expression))),
                ));
            }
        }
    }
    vec![Directive::Finished {
        status: state.status,
        output: state.output.clone(),
        errors: state.errors.clone(),
    }]
}

pub(super) fn render_output(spec: &WorkflowSpec, state: &WorkflowState) -> Result<Json, ExprError> {
    let env = expr::environment();
    let statuses = Statuses::new(latest_statuses(state));
    let mut ctx = state.context.clone();
    ctx.extend(state.terminal.clone());
    let mut output = Map::new();
    for (name, value) in &spec.output {
        let v = expr::render(env, value, &plain_scope(&ctx, &statuses, &state.datastore))?;
        ctx.insert(name.clone(), v.clone());
        output.insert(name.clone(), v);
    }
    Ok(Json::Object(output))
}

pub(super) fn latest_statuses(state: &WorkflowState) -> BTreeMap<String, String> {
    state
        .tasks
        .iter()
        .map(|t| (t.name.clone(), t.status.as_str().to_string()))
        .collect()
}
