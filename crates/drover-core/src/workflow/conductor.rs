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

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::expr::{self, ExprError, Scope};
use super::spec::{Join, TaskSpec, WorkflowSpec};

/// A workflow's status (Orquesta's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Not started.
    Requested,
    /// Tasks are being run.
    Running,
    /// Pause asked; waiting for running tasks to end.
    Pausing,
    /// Paused: nothing runs until resumed.
    Paused,
    /// Cancel asked; waiting for running tasks to end.
    Canceling,
    /// Canceled.
    Canceled,
    /// Every task done, none failed unhandled.
    Succeeded,
    /// A task failed unhandled, an expression failed, or `fail` was run.
    Failed,
}

impl WorkflowStatus {
    /// Whether the workflow is over.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Canceled | Self::Succeeded | Self::Failed)
    }
}

/// How one action run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// It succeeded.
    Succeeded,
    /// It failed.
    Failed,
    /// It ran out of time.
    Timeout,
    /// It was canceled.
    Canceled,
}

/// What the shell reports when an action run ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// How it ended.
    pub status: OutcomeStatus,
    /// Its result (the action's output).
    pub result: Json,
}

/// One action run of one task: `task@route#item.attempt` (`#item` only inside
/// with-items). `route` counts the task's instances (0 first; cycles add more).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskKey {
    /// Task name.
    pub task: String,
    /// Which instance of the task.
    pub route: u32,
    /// Item index inside with-items.
    pub item: Option<u32>,
    /// Attempt (0 first; retries add one).
    pub attempt: u32,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.task, self.route)?;
        if let Some(i) = self.item {
            write!(f, "#{i}")?;
        }
        write!(f, ".{}", self.attempt)
    }
}

impl FromStr for TaskKey {
    type Err = String;

    fn from_str(s: &str) -> Result<TaskKey, String> {
        let bad = || format!("`{s}` is no task key (task@route[#item].attempt)");
        let (task, rest) = s.rsplit_once('@').ok_or_else(bad)?;
        let (rest, attempt) = rest.rsplit_once('.').ok_or_else(bad)?;
        let (route, item) = match rest.split_once('#') {
            Some((r, i)) => (r, Some(i.parse().map_err(|_| bad())?)),
            None => (rest, None),
        };
        Ok(TaskKey {
            task: task.to_string(),
            route: route.parse().map_err(|_| bad())?,
            item,
            attempt: attempt.parse().map_err(|_| bad())?,
        })
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Directive {
    /// Run `action` with `input` after `delay_ms`, and report its end as `key`.
    RunAction {
        /// The run's key.
        key: TaskKey,
        /// Action ref.
        action: String,
        /// Rendered input.
        input: Json,
        /// Wait this long first.
        delay_ms: u64,
    },
    /// The workflow is over.
    Finished {
        /// Succeeded, failed or canceled.
        status: WorkflowStatus,
        /// Rendered `output` (null unless succeeded).
        output: Json,
        /// Orquesta-shaped error entries.
        errors: Vec<Json>,
    },
}

/// Why a call was refused (the workflow state is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// Input names the workflow does not declare.
    #[error("unknown input {}", .0.join(", "))]
    UnknownInput(Vec<String>),
    /// An input default or a var could not be evaluated.
    #[error("{field}: {error}")]
    Expression {
        /// `input.name` or `vars.name`.
        field: String,
        /// What failed.
        error: ExprError,
    },
    /// No such run in this workflow.
    #[error("no task run `{0}` in this workflow")]
    UnknownTask(String),
}

/// Where one action run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Not started yet (with-items window full).
    Waiting,
    /// Decided but not handed out (workflow paused).
    Held,
    /// Handed to the shell.
    Running,
    /// Ended so.
    Succeeded,
    /// Ended so.
    Failed,
    /// Ended so.
    Timeout,
    /// Ended so.
    Canceled,
}

impl SlotStatus {
    fn is_active(self) -> bool {
        matches!(self, Self::Waiting | Self::Held | Self::Running)
    }
}

/// One action run of a task instance (one per item inside with-items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// Where it stands.
    pub status: SlotStatus,
    /// Rendered input.
    pub input: Json,
    /// Result once ended.
    pub result: Json,
}

/// A task instance's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Some slot still active.
    Running,
    /// Done, every slot succeeded.
    Succeeded,
    /// Done, some slot failed.
    Failed,
    /// Done, some slot timed out.
    Timeout,
    /// Done, canceled.
    Canceled,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
        }
    }
}

/// One instance of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInstance {
    /// Task name.
    pub name: String,
    /// Which instance of the task (see [`TaskKey::route`]).
    pub route: u32,
    /// Current attempt.
    pub attempt: u32,
    /// Status.
    pub status: TaskStatus,
    /// The context it started with.
    pub context: Map<String, Json>,
    /// Action ref (rendered); empty for a task without action.
    pub action: String,
    /// Whether it runs with items.
    pub items: bool,
    /// With-items concurrency.
    pub concurrency: Option<usize>,
    /// Delay before each run of the current attempt.
    pub delay_ms: u64,
    /// The runs (one, or one per item).
    pub slots: Vec<Slot>,
    /// The result once done (a list in item order with items).
    pub result: Json,
}

/// Inbound transitions gathered for a join not yet satisfied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedJoin {
    /// The joining task.
    pub task: String,
    /// Tasks whose transitions arrived.
    pub sources: Vec<String>,
    /// Their contexts, in arrival order.
    pub contexts: Vec<Map<String, Json>>,
}

/// Everything about a running workflow; persist it after every call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// Status.
    pub status: WorkflowStatus,
    /// The starting context (input and vars).
    pub context: Map<String, Json>,
    /// Task instances, in creation order.
    pub tasks: Vec<TaskInstance>,
    /// Joins waiting for more inbound transitions.
    pub staged: Vec<StagedJoin>,
    /// Context merged from the routes that ended (what `output` sees).
    pub terminal: Map<String, Json>,
    /// Orquesta-shaped error entries.
    pub errors: Vec<Json>,
    /// The workflow will fail once running tasks end.
    pub failing: bool,
    /// Rendered output once succeeded.
    pub output: Json,
}

/// Starts a workflow: checks and completes `input`, evaluates vars, schedules the
/// start tasks.
pub fn start(
    spec: &WorkflowSpec,
    input: Map<String, Json>,
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
    let statuses = BTreeMap::new();
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
                    let scope = plain_scope(&ctx, &statuses);
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

fn key_of(t: &TaskInstance, slot: usize) -> TaskKey {
    TaskKey {
        task: t.name.clone(),
        route: t.route,
        item: t.items.then_some(slot as u32),
        attempt: t.attempt,
    }
}

fn run_directive(t: &TaskInstance, slot: usize, input: &Json) -> Directive {
    Directive::RunAction {
        key: key_of(t, slot),
        action: t.action.clone(),
        input: input.clone(),
        delay_ms: t.delay_ms,
    }
}

fn running_slots(state: &WorkflowState) -> usize {
    state
        .tasks
        .iter()
        .flat_map(|t| &t.slots)
        .filter(|s| s.status == SlotStatus::Running)
        .count()
}

fn plain_scope<'a>(
    ctx: &'a Map<String, Json>,
    statuses: &'a BTreeMap<String, String>,
) -> Scope<'a> {
    Scope {
        ctx,
        result: None,
        status: None,
        statuses,
        item: None,
    }
}

/// An Orquesta-shaped error entry.
fn error_entry(task: Option<&str>, message: String, extra: Option<(&str, Json)>) -> Json {
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
fn settle(state: &mut WorkflowState, spec: Option<&WorkflowSpec>) -> Vec<Directive> {
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

fn render_output(spec: &WorkflowSpec, state: &WorkflowState) -> Result<Json, ExprError> {
    let env = expr::environment();
    let statuses = latest_statuses(state);
    let mut ctx = state.context.clone();
    ctx.extend(state.terminal.clone());
    let mut output = Map::new();
    for (name, value) in &spec.output {
        let v = expr::render(env, value, &plain_scope(&ctx, &statuses))?;
        ctx.insert(name.clone(), v.clone());
        output.insert(name.clone(), v);
    }
    Ok(Json::Object(output))
}

fn latest_statuses(state: &WorkflowState) -> BTreeMap<String, String> {
    state
        .tasks
        .iter()
        .map(|t| (t.name.clone(), t.status.as_str().to_string()))
        .collect()
}

/// One call's work: the spec, the state, the directives so far, and the instances
/// whose runs all ended and whose transitions are still to evaluate.
struct Run<'a> {
    spec: &'a WorkflowSpec,
    state: &'a mut WorkflowState,
    env: &'static Environment<'static>,
    out: Vec<Directive>,
    done: VecDeque<usize>,
}

impl<'a> Run<'a> {
    fn new(spec: &'a WorkflowSpec, state: &'a mut WorkflowState) -> Run<'a> {
        Run {
            spec,
            state,
            env: expr::environment(),
            out: Vec::new(),
            done: VecDeque::new(),
        }
    }

    fn finish(mut self) -> Vec<Directive> {
        let spec = self.spec;
        self.out.extend(settle(self.state, Some(spec)));
        self.out
    }

    fn drain(&mut self) {
        while let Some(idx) = self.done.pop_front() {
            self.complete(idx);
        }
    }

    fn fail(&mut self, task: Option<&str>, message: String, expression: Option<&str>) {
        self.state.failing = true;
        self.state.errors.push(error_entry(
            task,
            message,
            expression.map(|e| ("expression", json!(e))),
        ));
    }

    fn fail_expr(&mut self, task: &str, field: &str, e: ExprError) {
        let message = format!(
            "{field}: unable to evaluate `{}`: {}",
            e.expression, e.reason
        );
        self.fail(Some(task), message, Some(&e.expression.clone()));
    }

    fn may_start(&self) -> bool {
        !self.state.failing && !matches!(self.state.status, WorkflowStatus::Canceling)
    }

    /// Hands out waiting runs within the concurrency window, or marks the instance
    /// done when none are active.
    fn advance(&mut self, idx: usize) {
        let may_start = self.may_start();
        let hold = matches!(
            self.state.status,
            WorkflowStatus::Pausing | WorkflowStatus::Paused
        );
        let inst = &mut self.state.tasks[idx];
        let mut active = inst
            .slots
            .iter()
            .filter(|s| matches!(s.status, SlotStatus::Held | SlotStatus::Running))
            .count();
        let window = inst.concurrency.unwrap_or(usize::MAX).max(1);
        for i in 0..inst.slots.len() {
            if inst.slots[i].status != SlotStatus::Waiting {
                continue;
            }
            if !may_start {
                inst.slots[i].status = SlotStatus::Canceled;
                continue;
            }
            if active >= window {
                break;
            }
            active += 1;
            if hold {
                inst.slots[i].status = SlotStatus::Held;
            } else {
                inst.slots[i].status = SlotStatus::Running;
                let d = run_directive(inst, i, &inst.slots[i].input);
                self.out.push(d);
            }
        }
        if !inst.slots.iter().any(|s| s.status.is_active()) {
            self.done.push_back(idx);
        }
    }

    /// Creates an instance of task `name` with context `ctx` and starts it.
    fn schedule(&mut self, name: &str, ctx: Map<String, Json>) {
        if !self.may_start() {
            return;
        }
        let spec = self.spec;
        let Some(task) = spec.task(name) else {
            return;
        };
        let route = self.state.tasks.iter().filter(|t| t.name == name).count() as u32;
        match self.prepare(task, &ctx) {
            Ok((action, items, slots, concurrency, delay_ms)) => {
                self.state.tasks.push(TaskInstance {
                    name: name.to_string(),
                    route,
                    attempt: 0,
                    status: TaskStatus::Running,
                    context: ctx,
                    action,
                    items,
                    concurrency,
                    delay_ms,
                    slots,
                    result: Json::Null,
                });
                let idx = self.state.tasks.len() - 1;
                if task.action.is_none() {
                    // A task without action succeeds at once.
                    for s in &mut self.state.tasks[idx].slots {
                        s.status = SlotStatus::Succeeded;
                    }
                }
                self.advance(idx);
            }
            Err((field, e)) => self.fail_expr(name, &field, e),
        }
    }

    /// Renders a task's action, items, input, concurrency and delay.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        task: &TaskSpec,
        ctx: &Map<String, Json>,
    ) -> Result<(String, bool, Vec<Slot>, Option<usize>, u64), (String, ExprError)> {
        let statuses = latest_statuses(self.state);
        let scope = plain_scope(ctx, &statuses);
        let f = |field: &str| format!("tasks.{}.{field}", task.name);
        let action = match &task.action {
            Some(a) => match expr::evaluate(self.env, a, &scope).map_err(|e| (f("action"), e))? {
                Json::String(s) => s,
                other => {
                    return Err((
                        f("action"),
                        ExprError {
                            expression: a.clone(),
                            reason: format!("expected an action ref, found {other}"),
                        },
                    ));
                }
            },
            None => String::new(),
        };
        let delay_ms = match &task.delay {
            Some(d) => seconds_ms(self.env, d, &scope).map_err(|e| (f("delay"), e))?,
            None => 0,
        };
        let waiting = |input: Json| Slot {
            status: SlotStatus::Waiting,
            input,
            result: Json::Null,
        };
        let Some(with) = &task.with else {
            let input = expr::render(self.env, &task.input, &scope).map_err(|e| (f("input"), e))?;
            return Ok((action, false, vec![waiting(input)], None, delay_ms));
        };
        let items = match expr::evaluate(self.env, &with.items, &scope)
            .map_err(|e| (f("with.items"), e))?
        {
            Json::Array(items) => items,
            other => {
                return Err((
                    f("with.items"),
                    ExprError {
                        expression: with.items.clone(),
                        reason: format!("expected a list of items, found {other}"),
                    },
                ));
            }
        };
        let concurrency = match &with.concurrency {
            Some(c) => {
                match expr::render(self.env, c, &scope).map_err(|e| (f("with.concurrency"), e))? {
                    Json::Number(n) if n.as_u64().is_some() => n.as_u64().map(|n| n as usize),
                    Json::String(s) if s.parse::<usize>().is_ok() => s.parse().ok(),
                    Json::Null => None,
                    other => {
                        return Err((
                            f("with.concurrency"),
                            ExprError {
                                expression: c.to_string(),
                                reason: format!("expected a count, found {other}"),
                            },
                        ));
                    }
                }
            }
            None => None,
        };
        let mut slots = Vec::with_capacity(items.len());
        for item in &items {
            let item = bind_item(&with.vars, item);
            let scope = Scope {
                item: Some(&item),
                ..scope
            };
            let input = expr::render(self.env, &task.input, &scope).map_err(|e| (f("input"), e))?;
            slots.push(waiting(input));
        }
        Ok((action, true, slots, concurrency, delay_ms))
    }

    /// An instance whose runs all ended: retry, then transitions.
    fn complete(&mut self, idx: usize) {
        let spec = self.spec;
        let inst = &self.state.tasks[idx];
        let Some(task) = spec.task(&inst.name) else {
            return;
        };
        let status = if inst.slots.iter().any(|s| s.status == SlotStatus::Canceled) {
            TaskStatus::Canceled
        } else if inst.slots.iter().any(|s| s.status == SlotStatus::Failed) {
            TaskStatus::Failed
        } else if inst.slots.iter().any(|s| s.status == SlotStatus::Timeout) {
            TaskStatus::Timeout
        } else {
            TaskStatus::Succeeded
        };
        let result = if inst.items {
            Json::Array(inst.slots.iter().map(|s| s.result.clone()).collect())
        } else {
            inst.slots.first().map_or(Json::Null, |s| s.result.clone())
        };
        let name = inst.name.clone();
        let ctx = inst.context.clone();
        let mut statuses = latest_statuses(self.state);
        statuses.insert(name.clone(), status.as_str().to_string());
        let scope = Scope {
            ctx: &ctx,
            result: Some(&result),
            status: Some(status.as_str()),
            statuses: &statuses,
            item: None,
        };

        if status != TaskStatus::Canceled && self.may_start() {
            match self.should_retry(task, idx, &scope) {
                Ok(Some(delay_ms)) => {
                    self.restart(idx, delay_ms);
                    return;
                }
                Ok(None) => {}
                Err((field, e)) => self.fail_expr(&name, &field, e),
            }
        }

        let inst = &mut self.state.tasks[idx];
        inst.status = status;
        inst.result = result.clone();
        if status == TaskStatus::Canceled {
            if !matches!(self.state.status, WorkflowStatus::Canceling) {
                self.state.status = WorkflowStatus::Canceling;
            }
            return;
        }
        if matches!(self.state.status, WorkflowStatus::Canceling) {
            return;
        }

        let mut handled = false;
        let mut retry = false;
        let mut fired = false;
        for (i, t) in task.next.iter().enumerate() {
            let field = format!("next[{i}]");
            if let Some(when) = &t.when {
                match expr::holds(self.env, when, &scope) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.fail_expr(&name, &format!("{field}.when"), e);
                        continue;
                    }
                }
            }
            fired = true;
            let mut out_ctx = ctx.clone();
            let mut publish_failed = false;
            for (var, value) in &t.publish {
                let s = Scope {
                    ctx: &out_ctx,
                    ..scope
                };
                match expr::render(self.env, value, &s) {
                    Ok(v) => {
                        out_ctx.insert(var.clone(), v);
                    }
                    Err(e) => {
                        self.fail_expr(&name, &format!("{field}.publish.{var}"), e);
                        publish_failed = true;
                        break;
                    }
                }
            }
            if publish_failed {
                continue;
            }
            let mut leads_on = false;
            for target in &t.targets {
                match target.as_str() {
                    "continue" => {}
                    "noop" => handled = true,
                    "fail" => self.fail(
                        Some(&name),
                        format!("Execution failed by the `fail` command of {field}."),
                        None,
                    ),
                    "retry" => retry = true,
                    next => {
                        handled = true;
                        leads_on = true;
                        self.arrive(next, &name, out_ctx.clone());
                    }
                }
            }
            if !leads_on {
                self.state.terminal.extend(out_ctx);
            }
        }
        if !fired {
            self.state.terminal.extend(ctx);
        }
        if retry && self.may_start() {
            self.restart(idx, 0);
            return;
        }
        if matches!(status, TaskStatus::Failed | TaskStatus::Timeout) && !handled {
            let message = if status == TaskStatus::Timeout {
                "Execution timed out. See result for details."
            } else {
                "Execution failed. See result for details."
            };
            self.fail(Some(&name), message.to_string(), None);
            if let Some(last) = self.state.errors.last_mut() {
                last["result"] = result;
            }
        }
    }

    /// `Some(delay)` when the task's `retry` asks for another attempt.
    fn should_retry(
        &self,
        task: &TaskSpec,
        idx: usize,
        scope: &Scope<'_>,
    ) -> Result<Option<u64>, (String, ExprError)> {
        let Some(retry) = &task.retry else {
            return Ok(None);
        };
        let f = |field: &str| format!("tasks.{}.retry.{field}", task.name);
        let count =
            match expr::render(self.env, &retry.count, scope).map_err(|e| (f("count"), e))? {
                Json::Number(n) => n.as_u64().unwrap_or(0),
                Json::String(s) => s.trim().parse().unwrap_or(0),
                _ => 0,
            };
        if u64::from(self.state.tasks[idx].attempt) >= count {
            return Ok(None);
        }
        // Without `when`, a failure is retried; with it, whatever it says (so a task
        // can be polled until its result is right).
        let again = match &retry.when {
            Some(when) => expr::holds(self.env, when, scope).map_err(|e| (f("when"), e))?,
            None => scope.status.is_some_and(|s| s != "succeeded"),
        };
        if !again {
            return Ok(None);
        }
        let delay = match &retry.delay {
            Some(d) => seconds_ms(self.env, d, scope).map_err(|e| (f("delay"), e))?,
            None => 0,
        };
        Ok(Some(delay))
    }

    /// Runs the instance again as its next attempt.
    fn restart(&mut self, idx: usize, delay_ms: u64) {
        let inst = &mut self.state.tasks[idx];
        inst.attempt += 1;
        inst.delay_ms = delay_ms;
        inst.status = TaskStatus::Running;
        for s in &mut inst.slots {
            s.status = SlotStatus::Waiting;
            s.result = Json::Null;
        }
        self.advance(idx);
    }

    /// A transition from `from` reached `target` with context `ctx`.
    fn arrive(&mut self, target: &str, from: &str, ctx: Map<String, Json>) {
        let spec = self.spec;
        let Some(task) = spec.task(target) else {
            return;
        };
        let Some(join) = task.join else {
            self.schedule(target, ctx);
            return;
        };
        let pos = match self.state.staged.iter().position(|s| s.task == target) {
            Some(p) => p,
            None => {
                self.state.staged.push(StagedJoin {
                    task: target.to_string(),
                    sources: Vec::new(),
                    contexts: Vec::new(),
                });
                self.state.staged.len() - 1
            }
        };
        let staged = &mut self.state.staged[pos];
        if !staged.sources.iter().any(|s| s == from) {
            staged.sources.push(from.to_string());
        }
        staged.contexts.push(ctx);
        let needed = match join {
            Join::All => spec.inbound(target).len(),
            Join::Count(n) => n as usize,
        };
        if staged.sources.len() >= needed {
            let staged = self.state.staged.remove(pos);
            let mut merged = Map::new();
            for c in staged.contexts {
                merged.extend(c);
            }
            self.schedule(target, merged);
        }
    }
}

/// The item as `item()` sees it: with `x, y in …`, a mapping of those names to the
/// item's elements (or `{x: item}` for one name); the item itself otherwise.
fn bind_item(vars: &[String], item: &Json) -> Json {
    match (vars, item) {
        ([], _) => item.clone(),
        (_, Json::Array(values)) if vars.len() > 1 => {
            Json::Object(vars.iter().cloned().zip(values.iter().cloned()).collect())
        }
        ([one], _) => json!({ one.clone(): item.clone() }),
        _ => item.clone(),
    }
}

/// Seconds (a number or an expression) as milliseconds.
fn seconds_ms(env: &Environment<'_>, value: &Json, scope: &Scope<'_>) -> Result<u64, ExprError> {
    let v = expr::render(env, value, scope)?;
    let secs = match &v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s >= 0.0 && s.is_finite() => Ok((s * 1000.0).round() as u64),
        _ => Err(ExprError {
            expression: value.to_string(),
            reason: format!("expected a number of seconds, found {v}"),
        }),
    }
}
