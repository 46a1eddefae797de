//! Executions: fleet-wide command runs (and, later, plans, actions and workflows).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::OutputStream;

/// `POST /api/v1/runs`: run a command on every host the selector matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Host selector (`all`, `name=web-*`, `label.role=db`, comma for AND).
    #[serde(default = "default_selector")]
    pub selector: String,
    /// Program and arguments.
    #[schema(min_items = 1)]
    pub command: Vec<String>,
    /// At most this many hosts run at once (default: all of them).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub parallel: Option<u32>,
    /// Per-host timeout in milliseconds; the process group is killed when it runs out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604_800_000)]
    pub timeout_ms: Option<u64>,
}

fn default_selector() -> String {
    "all".to_string()
}

/// Lifecycle of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Recorded, nothing dispatched yet.
    Requested,
    /// At least one target dispatched.
    Running,
    /// Every target succeeded.
    Succeeded,
    /// At least one target failed, timed out or was unreachable.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

impl ExecutionStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Requested => "requested",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        match s {
            "requested" => Some(ExecutionStatus::Requested),
            "running" => Some(ExecutionStatus::Running),
            "succeeded" => Some(ExecutionStatus::Succeeded),
            "failed" => Some(ExecutionStatus::Failed),
            "cancelled" => Some(ExecutionStatus::Cancelled),
            _ => None,
        }
    }

    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }
}

/// State of one host within an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetStatus {
    /// Waiting for a parallel slot.
    Pending,
    /// Handed to the agent's queue, not yet started.
    Dispatched,
    /// The agent started it.
    Running,
    /// Exit code 0.
    Ok,
    /// Non-zero exit, or the program could not start.
    Failed,
    /// Killed at its timeout.
    TimedOut,
    /// The host was down, or went down while running.
    Unreachable,
    /// Cancelled before or while running.
    Cancelled,
}

impl TargetStatus {
    /// Kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Pending => "pending",
            TargetStatus::Dispatched => "dispatched",
            TargetStatus::Running => "running",
            TargetStatus::Ok => "ok",
            TargetStatus::Failed => "failed",
            TargetStatus::TimedOut => "timed-out",
            TargetStatus::Unreachable => "unreachable",
            TargetStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<TargetStatus> {
        match s {
            "pending" => Some(TargetStatus::Pending),
            "dispatched" => Some(TargetStatus::Dispatched),
            "running" => Some(TargetStatus::Running),
            "ok" => Some(TargetStatus::Ok),
            "failed" => Some(TargetStatus::Failed),
            "timed-out" => Some(TargetStatus::TimedOut),
            "unreachable" => Some(TargetStatus::Unreachable),
            "cancelled" => Some(TargetStatus::Cancelled),
            _ => None,
        }
    }

    /// True once the host's part is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            TargetStatus::Pending | TargetStatus::Dispatched | TargetStatus::Running
        )
    }
}

/// One host's part of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    /// Host id.
    pub host_id: String,
    /// Host name at the time of the run.
    pub host_name: String,
    /// Where it stands.
    pub status: TargetStatus,
    /// Exit code, when the process exited by itself.
    pub exit_code: Option<i32>,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// Why it failed without an exit code.
    pub error: Option<String>,
    /// When the agent started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time on the agent.
    pub duration_ms: Option<u64>,
    /// Output bytes stored (bounded; see `truncated`).
    pub output_bytes: u64,
    /// True when the stored output hit the per-host bound and the rest was dropped.
    pub truncated: bool,
}

/// Counts of targets per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetCounts {
    /// Number of targets.
    pub total: u32,
    /// Targets not yet over.
    pub pending: u32,
    /// Targets that succeeded.
    pub ok: u32,
    /// Targets that failed (including timed out and unreachable).
    pub failed: u32,
    /// Targets cancelled.
    pub cancelled: u32,
}

/// An execution: who ran what, where, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Execution {
    /// Unique id (time-ordered).
    pub id: String,
    /// What kind of execution: `run` for fleet commands.
    pub kind: String,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// Who asked for it.
    pub actor: String,
    /// The selector given.
    pub selector: String,
    /// The request as given (command, parallel, timeout).
    pub spec: serde_json::Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it was started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Target counts.
    pub counts: TargetCounts,
    /// Per-host detail; filled by the detail endpoint, empty in lists.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// For action and workflow executions: the action, what started it, its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionInfo>,
}

/// What an action execution ran, what started it, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionInfo {
    /// The action (`pack.name`).
    pub action_ref: String,
    /// The workflow (or remote action) execution this one is a step of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Its task in the parent workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_key: Option<String>,
    /// The rule that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_ref: Option<String>,
    /// The event that rule matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<i64>,
    /// Parameters as run, secrets masked.
    pub parameters: serde_json::Value,
    /// The runner's result (StackStorm's shape for the runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// How many times it was started (a retry policy or a resumed controller).
    pub attempt: u32,
}

/// A chunk of one host's output, as stored and streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostOutput {
    /// Host id.
    pub host_id: String,
    /// Host name.
    pub host_name: String,
    /// Position in that host's output.
    pub seq: u64,
    /// Source pipe.
    pub stream: OutputStream,
    /// Text.
    pub data: String,
}

/// Server-sent events on `GET /api/v1/executions/{id}/stream`.
///
/// SSE event names: `output` ([`HostOutput`]), `target` ([`Target`]), `execution`
/// ([`Execution`], sent last, when it is final).
pub mod stream_events {
    /// A chunk of output.
    pub const OUTPUT: &str = "output";
    /// A target changed status.
    pub const TARGET: &str = "target";
    /// The execution is final; the stream ends after this.
    pub const EXECUTION: &str = "execution";
}

/// Marker appended to stored output when a host's output exceeded the bound.
pub const TRUNCATION_MARKER: &str =
    "\n[drover: output truncated, stored output is limited to 1 MiB per host]\n";

/// Stored output bound per host, in bytes.
pub const STORED_OUTPUT_LIMIT: u64 = 1024 * 1024;
