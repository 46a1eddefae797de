//! The decisions of one conductor call: creating task instances (action, input,
//! items, delay rendered), handing out runs within the with-items window, retry,
//! transitions with their publish and engine commands, and joins.

use std::collections::VecDeque;

use minijinja::Environment;
use serde_json::{Map, Value as Json, json};

use super::conductor::{error_entry, latest_statuses, plain_scope, run_directive, settle};
use super::expr::{self, ExprError, Scope, Statuses};
use super::spec::{Join, TaskSpec, WorkflowSpec};
use super::state::{
    Directive, Slot, SlotStatus, StagedJoin, TaskInstance, TaskStatus, WorkflowState,
    WorkflowStatus,
};

/// One call's work: the spec, the state, the directives so far, and the instances
/// whose runs all ended and whose transitions are still to evaluate.
pub(super) struct Run<'a> {
    spec: &'a WorkflowSpec,
    state: &'a mut WorkflowState,
    env: &'static Environment<'static>,
    out: Vec<Directive>,
    done: VecDeque<usize>,
}

impl<'a> Run<'a> {
    pub(super) fn new(spec: &'a WorkflowSpec, state: &'a mut WorkflowState) -> Run<'a> {
        Run {
            spec,
            state,
            env: expr::environment(),
            out: Vec::new(),
            done: VecDeque::new(),
        }
    }

    pub(super) fn finish(mut self) -> Vec<Directive> {
        let spec = self.spec;
        self.out.extend(settle(self.state, Some(spec)));
        self.out
    }

    pub(super) fn drain(&mut self) {
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
    pub(super) fn advance(&mut self, idx: usize) {
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
    pub(super) fn schedule(&mut self, name: &str, ctx: Map<String, Json>) {
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
        let statuses = Statuses::new(latest_statuses(self.state));
        let scope = plain_scope(ctx, &statuses, &self.state.datastore);
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
        let statuses = Statuses::new(statuses);
        let kv = self.state.datastore.clone();
        let scope = Scope {
            ctx: &ctx,
            result: Some(&result),
            status: Some(status.as_str()),
            statuses: &statuses,
            item: None,
            kv: &kv,
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
            // A run canceled from outside cancels the workflow (as in Orquesta); runs
            // left out because the workflow is failing leave it failing.
            if !self.state.failing {
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
