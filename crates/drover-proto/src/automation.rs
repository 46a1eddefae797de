//! Automation API types: datastore keys, packs, actions, rules, webhooks, traces.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What is shown instead of a secret value.
pub const MASK: &str = "********";

/// A datastore key as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KvPair {
    /// `system`, or `user:<name>` for a user's own keys.
    pub scope: String,
    /// Key name.
    pub name: String,
    /// The value; `********` for a secret unless decryption was asked for and allowed.
    pub value: String,
    /// Whether the value is a secret (encrypted at rest).
    pub secret: bool,
    /// Whether `value` is the decrypted secret.
    #[serde(default)]
    pub decrypted: bool,
    /// When it expires (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Last change (Unix ms).
    pub updated_at: i64,
    /// Who changed it last.
    pub updated_by: String,
}

/// `PUT /kv/{scope}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KvPut {
    /// The value (text; JSON values are stored as their text).
    pub value: String,
    /// Encrypt at rest and mask everywhere.
    #[serde(default)]
    pub secret: bool,
    /// Expire after this many seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /webhooks`: register a webhook with its own secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Name: callers post to `/api/v1/webhooks/{name}`.
    pub name: String,
    /// `token` (the caller sends `X-Drover-Webhook-Token: <secret>`) or `hmac` (the caller
    /// signs the body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`, as GitHub does).
    #[serde(default = "default_auth")]
    pub auth: String,
    /// The secret; generated (and shown once) when left out.
    #[serde(default)]
    pub secret: Option<String>,
}

fn default_auth() -> String {
    "token".into()
}

/// A registered webhook (its secret is never shown again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookInfo {
    /// Name.
    pub name: String,
    /// `token` or `hmac`.
    pub auth: String,
    /// The URL path to post to.
    pub path: String,
    /// When (Unix ms).
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
    /// The secret: only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What a webhook call led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAccepted {
    /// The `webhook` event recorded (rules match it).
    pub event_id: i64,
}

/// One file of a pack, path relative to the pack's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackFileBody {
    /// E.g. `pack.yaml`, `actions/restart.yaml`, `actions/restart.sh`.
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// `POST /packs`: a pack's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackInstall {
    /// Every file of the pack.
    pub files: Vec<PackFileBody>,
}

/// A pack as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PackInfo {
    /// Name (`ref`).
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Built into drover (cannot be removed).
    pub builtin: bool,
    /// Its actions (refs).
    pub actions: Vec<String>,
    /// Its rules (refs).
    pub rules: Vec<String>,
    /// Parts of the pack drover does not run (sensors, aliases).
    #[serde(default)]
    pub ignored: Vec<String>,
    /// When it was installed (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<i64>,
    /// By whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_by: Option<String>,
}

/// What `POST /packs` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PackInstalled {
    /// The pack.
    pub pack: PackInfo,
    /// The version it replaced, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// Whether the same content was installed already (nothing changed).
    pub unchanged: bool,
}

/// One parameter of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParamInfo {
    /// Name.
    pub name: String,
    /// JSON-schema type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Must be given (or have a default).
    pub required: bool,
    /// Masked everywhere it is shown.
    pub secret: bool,
    /// Cannot be changed from its default.
    pub immutable: bool,
    /// Position among the script's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Default (secret defaults are masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "enum")]
    pub enum_: Option<Vec<serde_json::Value>>,
    /// Whether the runner (not the action) declares it.
    pub runner: bool,
}

/// An action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionSummary {
    /// `pack.name`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Pack.
    pub pack: String,
    /// Name.
    pub name: String,
    /// Runner type.
    pub runner_type: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it may run.
    pub enabled: bool,
    /// Entry point (scripts, workflows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<serde_json::Value>,
    /// Parameters, runner ones included (in `GET /actions/{ref}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParamInfo>,
}

/// `POST /actions/{ref}/run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRun {
    /// Parameter values (checked against the action's schema).
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleInfo {
    /// `pack.name`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Pack.
    pub pack: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// Trigger type (drover's name).
    pub trigger: String,
    /// Trigger type as written (e.g. `core.st2.webhook`).
    pub trigger_written: String,
    /// Trigger parameters.
    pub trigger_parameters: serde_json::Value,
    /// The action it runs.
    pub action: String,
    /// The action's parameters, as written (Jinja).
    pub action_parameters: serde_json::Value,
    /// `standard` or `backstop`.
    pub kind: String,
    /// The file it came from.
    pub file: String,
    /// Its last matches, newest first (in `GET /rules/{ref}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enforcements: Vec<EnforcementInfo>,
}

/// A rule that matched an event, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnforcementInfo {
    /// The rule.
    pub rule: String,
    /// The matched event.
    pub event_id: i64,
    /// The execution it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// `fired`, `throttled`, `rate_limited` or `failed`.
    pub status: String,
    /// Why it did not fire, or what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The execution whose completion was the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_execution: Option<String>,
    /// When (Unix ms).
    pub time: i64,
}

/// `POST /rules/{ref}/test`: a trigger payload to try the rule's criteria on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// The trigger payload (what `trigger.…` refers to).
    pub payload: serde_json::Value,
}

/// One criterion's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckInfo {
    /// The key as written (`trigger.status`, `trigger.x#2`).
    pub key: String,
    /// Operator.
    pub operator: String,
    /// The pattern (rendered).
    pub pattern: serde_json::Value,
    /// The value found, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Whether it held.
    pub passed: bool,
    /// Why, in words.
    pub reason: String,
    /// The OR group it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// What `POST /rules/{ref}/test` found (nothing runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleTestResult {
    /// The rule.
    pub rule: String,
    /// Whether the criteria pass.
    pub matches: bool,
    /// Per criterion.
    pub checks: Vec<CheckInfo>,
    /// The action's parameters rendered against the payload (when they render).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_parameters: Option<serde_json::Value>,
    /// Why they did not render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_error: Option<String>,
}

/// `GET /executions/{id}/trace`: how an execution came to be and what it led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trace {
    /// The execution.
    pub execution_id: String,
    /// Upstream, nearest first: the workflow it is a step of, the rule and event that
    /// started it (or its workflow), recursively.
    pub causes: Vec<TraceLink>,
    /// Downstream: its steps, and rules its completion fired, with their executions.
    pub effects: Vec<TraceLink>,
}

/// One link of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TraceLink {
    /// `execution`, `rule`, `event`.
    pub kind: String,
    /// Execution id, rule ref, or event id.
    pub id: String,
    /// What it is (action, event type, rule status).
    pub detail: String,
    /// Nesting depth (0 = next to the traced execution).
    pub depth: u32,
}
