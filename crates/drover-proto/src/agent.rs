//! Messages between an agent and the controller.
//!
//! The channel is HTTP: the agent always connects out. It enrolls once
//! (`POST /api/v1/agent/enroll` with a join token), then authenticates with its own
//! credential and
//! - sends heartbeats (`POST /api/v1/agent/heartbeat`),
//! - long-polls for work (`POST /api/v1/agent/poll`),
//! - streams output (`POST /api/v1/agent/commands/{id}/output`),
//! - reports progress and results (`POST /api/v1/agent/commands/{id}/status`).
//!
//! Every command has an id; the agent runs an id at most once and answers a repeated
//! delivery with the recorded result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an agent knows about its host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Facts {
    /// Kernel hostname.
    pub hostname: String,
    /// Operating system family, e.g. `linux`.
    pub os: String,
    /// Distribution name and version from `/etc/os-release`, if known.
    #[serde(default)]
    pub os_release: Option<String>,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub kernel: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// Number of online CPUs.
    pub cpus: u32,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Non-loopback IP addresses (loopback ones when there is nothing else).
    pub addresses: Vec<String>,
    /// Version of the drover agent.
    pub agent_version: String,
}

/// `POST /api/v1/agent/enroll` with `Authorization: Bearer <join token>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Name the host wants (unique in the fleet).
    pub name: String,
    /// Labels given on the agent's command line.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Facts gathered at start.
    pub facts: Facts,
}

/// Answer to enrollment: the agent's own credential, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// Stable host identity.
    pub host_id: String,
    /// Host name as stored.
    pub name: String,
    /// The agent's credential; keep it in the state dir.
    pub credential: String,
}

/// `POST /api/v1/agent/heartbeat`: sent on connect and then periodically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Current facts; sent on (re)connect and when they change, else omitted.
    #[serde(default)]
    pub facts: Option<Facts>,
    /// Current labels from the command line; sent with facts.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Ids of commands the agent is running right now.
    #[serde(default)]
    pub running: Vec<String>,
    /// Every instance on the host; sent at (re)connect and whenever one changes,
    /// else omitted.
    #[serde(default)]
    pub instances: Option<Vec<crate::deploy::InstanceReport>>,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAck {
    /// The host this credential belongs to.
    pub host_id: String,
    /// How often the controller wants heartbeats, in milliseconds.
    pub interval_ms: u64,
}

/// `POST /api/v1/agent/poll`: wait up to `wait_ms` for work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// Longest time the controller may hold the request open, in milliseconds
    /// (the controller caps it).
    pub wait_ms: u64,
}

/// Work for an agent. Empty lists mean the wait ran out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PollResponse {
    /// Commands to run (or to answer with a recorded result, if already run).
    pub commands: Vec<AgentCommand>,
    /// Ids of running commands to cancel.
    pub cancel: Vec<String>,
}

/// One command for one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentCommand {
    /// Unique command id: the unit of at-most-once execution.
    pub id: String,
    /// The execution this command belongs to.
    pub execution_id: String,
    /// What to do.
    pub spec: CommandSpec,
}

/// What a command does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandSpec {
    /// Run a program. `argv[0]` is looked up in `PATH`; no shell is involved unless the
    /// user asks for one (`sh -c …`).
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
        /// Kill the whole process group after this many milliseconds.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Move an instance one step along glu's lifecycle.
    Transition {
        /// The instance, at the version the step is for.
        instance: Box<crate::deploy::InstanceSpec>,
        /// The step.
        transition: crate::deploy::Transition,
    },
    /// Stream an instance's log files (through the command's output), then end; with
    /// `follow`, keep streaming until cancelled.
    Logs {
        /// Service name.
        service: String,
        /// Copy on this host.
        index: u32,
        /// Start with the last this many lines.
        tail: u32,
        /// Keep streaming new lines.
        follow: bool,
    },
    /// Install a generated file: stage it, check it, swap it in atomically, reload.
    ///
    /// The agent writes `content` to the staged path `<path>.drover-staged` (same
    /// directory, so the swap is an atomic rename), runs `check` on it, keeps the old
    /// file as `<path>.drover-prev`, renames the staged file over `path` and runs
    /// `reload`. Content identical to the current file changes nothing and runs neither
    /// command. The result's exit code is 0 on success (or when unchanged), the
    /// checker's or reloader's exit code (1 if it had none) when one of them failed, and
    /// 2 for a refused request (bad path, sha256 mismatch).
    WriteFile {
        /// Generator that produced it (for messages).
        generator: String,
        /// Absolute destination path (no `..` components).
        path: String,
        /// The full new content.
        content: String,
        /// SHA-256 (hex) of `content`.
        sha256: String,
        /// Shell command (`sh -c`) run on the staged file; exit 0 = valid.
        ///
        /// The staged path is always `format!("{path}.drover-staged")`, and the
        /// controller has already replaced the literal text `{staged}` in this command
        /// with it (the agent does no substitution).
        #[serde(default)]
        check: Option<String>,
        /// Shell command (`sh -c`) run after the file changed.
        #[serde(default)]
        reload: Option<String>,
        /// Kill check/reload (their whole process group) after this many milliseconds.
        timeout_ms: u64,
    },
}

impl CommandSpec {
    /// The staged path [`CommandSpec::WriteFile`] writes first and `check` validates:
    /// `<path>.drover-staged`.
    pub fn write_file_staged_path(path: &str) -> String {
        format!("{path}.drover-staged")
    }
}

/// Which pipe a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<OutputStream> {
        match s {
            "stdout" => Some(OutputStream::Stdout),
            "stderr" => Some(OutputStream::Stderr),
            _ => None,
        }
    }
}

/// A piece of a command's output. `seq` counts from 0 per command, without gaps, so the
/// controller can drop duplicates from a resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputChunk {
    /// Position of this chunk in the command's output.
    pub seq: u64,
    /// Source pipe.
    pub stream: OutputStream,
    /// The text (invalid UTF-8 is replaced with U+FFFD).
    pub data: String,
}

/// `POST /api/v1/agent/commands/{id}/output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputBatch {
    /// Chunks in order.
    pub chunks: Vec<OutputChunk>,
}

/// `POST /api/v1/agent/commands/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandUpdate {
    /// The process was started.
    Started {
        /// Process id of the leader of the command's process group.
        pid: Option<u32>,
    },
    /// The command is over; `result` is final.
    Finished {
        /// The outcome.
        result: CommandResult,
    },
}

/// How a command ended, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CommandOutcome {
    /// Exit code 0.
    Ok,
    /// Non-zero exit code or killed by a signal not sent by drover.
    Failed,
    /// Killed by the agent because its timeout ran out.
    TimedOut,
    /// Killed by the agent because the execution was cancelled.
    Cancelled,
    /// Could not be started (program not found, permission denied…), or the agent
    /// restarted while it ran.
    Error,
}

impl CommandOutcome {
    /// Kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Ok => "ok",
            CommandOutcome::Failed => "failed",
            CommandOutcome::TimedOut => "timed-out",
            CommandOutcome::Cancelled => "cancelled",
            CommandOutcome::Error => "error",
        }
    }
}

/// The result the agent records for a command id and reports (again, if asked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandResult {
    /// How it ended.
    pub outcome: CommandOutcome,
    /// Exit code, when the process exited by itself.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal number, when the process was killed by one.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Wall time from spawn to reap, in milliseconds.
    pub duration_ms: u64,
    /// Why it could not run, for `error`.
    #[serde(default)]
    pub error: Option<String>,
    /// Number of output chunks sent (the next `seq`), so the controller knows when it
    /// has all of them.
    pub chunks: u64,
}
