//! The conductor's state and vocabulary: statuses, task keys, outcomes, directives,
//! task instances. All of it is serde-serializable: the shell persists
//! [`WorkflowState`] after every conductor call.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::expr::ExprError;

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
    pub(super) fn is_active(self) -> bool {
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
    pub(super) fn as_str(self) -> &'static str {
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
    /// The datastore the expressions read (`st2kv()`): attached by the shell before
    /// each call, never persisted.
    #[serde(skip)]
    pub datastore: super::expr::Datastore,
}
