//! The event log, which is also the audit trail.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An immutable record of something that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position in the log; strictly increasing.
    pub id: i64,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// Dotted type, e.g. `host.down`, `execution.finished`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused it: a token name (`admin`), `agent:<host>`, or `system`.
    pub actor: String,
    /// Type-specific details. Never contains a secret.
    pub payload: serde_json::Value,
}

/// The event types drover itself emits. Triggers in later capabilities refer to these.
pub mod types {
    /// A new host enrolled.
    pub const HOST_REGISTERED: &str = "host.registered";
    /// A host's heartbeats came back.
    pub const HOST_UP: &str = "host.up";
    /// A host missed its heartbeats.
    pub const HOST_DOWN: &str = "host.down";
    /// A host became known (enrolled, or listed by an inventory provider).
    pub const HOST_ADDED: &str = "host.added";
    /// A host's provider fields, labels, facts or status changed (payload: `changes`).
    pub const HOST_CHANGED: &str = "host.changed";
    /// A host known only from its provider is no longer listed.
    pub const HOST_REMOVED: &str = "host.removed";
    /// A host was drained (taken out of service).
    pub const HOST_DRAINED: &str = "host.drained";
    /// A drained host was put back into service.
    pub const HOST_UNDRAINED: &str = "host.undrained";
    /// An inventory provider's sync failed (its hosts are kept, marked stale).
    pub const PROVIDER_FAILED: &str = "provider.failed";
    /// An inventory provider synced again after failing.
    pub const PROVIDER_RECOVERED: &str = "provider.recovered";
    /// An inventory provider's sync changed hosts (payload: counts).
    pub const PROVIDER_SYNCED: &str = "provider.synced";
    /// An execution was recorded.
    pub const EXECUTION_REQUESTED: &str = "execution.requested";
    /// An execution's first command was dispatched.
    pub const EXECUTION_STARTED: &str = "execution.started";
    /// Someone asked to cancel an execution.
    pub const EXECUTION_CANCEL_REQUESTED: &str = "execution.cancel_requested";
    /// An execution ended (payload has its status and per-host counts).
    pub const EXECUTION_FINISHED: &str = "execution.finished";
    /// A pack was installed or replaced.
    pub const PACK_INSTALLED: &str = "pack.installed";
    /// A pack was removed.
    pub const PACK_REMOVED: &str = "pack.removed";
    /// A rule was switched on.
    pub const RULE_ENABLED: &str = "rule.enabled";
    /// A rule was switched off.
    pub const RULE_DISABLED: &str = "rule.disabled";
    /// A rule fired more often than its rate allows and was stopped.
    pub const RULE_STOPPED: &str = "rule.stopped";
    /// A datastore key was written.
    pub const KV_SET: &str = "kv.set";
    /// A datastore key was deleted.
    pub const KV_DELETED: &str = "kv.deleted";
    /// A datastore key expired.
    pub const KV_EXPIRED: &str = "kv.expired";
    /// An action execution ended (StackStorm's `core.st2.generic.actiontrigger`).
    pub const ACTION_FINISHED: &str = "action.finished";
    /// A webhook was called.
    pub const WEBHOOK_RECEIVED: &str = "webhook";
    /// A timer fired.
    pub const TIMER_FIRED: &str = "timer";
    /// A webhook was registered or deleted.
    pub const WEBHOOK_CHANGED: &str = "webhook.changed";
    /// A token was created.
    pub const TOKEN_CREATED: &str = "token.created";
    /// A token or agent credential was revoked.
    pub const TOKEN_REVOKED: &str = "token.revoked";
    /// A request came with a missing, wrong or revoked token.
    pub const AUTH_FAILED: &str = "auth.failed";
    /// Someone checked a token with `drover login`.
    pub const AUTH_LOGIN: &str = "auth.login";
    /// An artifact was uploaded to the controller's store.
    pub const ARTIFACT_PUSHED: &str = "artifact.pushed";
    /// An instance's version, state or health changed, as its agent reports.
    pub const INSTANCE_CHANGED: &str = "instance.changed";
    /// An instance left the state it was left in (process died, files changed…).
    pub const INSTANCE_DRIFTED: &str = "instance.drifted";
    /// An instance is no longer on its host.
    pub const INSTANCE_REMOVED: &str = "instance.removed";
    /// A rollout's health gate failed and it reverts the touched instances.
    pub const ROLLOUT_REVERTING: &str = "rollout.reverting";
    /// A model version was stored by `drover apply`.
    pub const MODEL_APPLIED: &str = "model.applied";
    /// The controller started (payload: version, store kind).
    pub const CONTROLLER_STARTED: &str = "controller.started";
    /// A generator's output was written on a host (and reloaded).
    pub const GENERATOR_APPLIED: &str = "generator.applied";
    /// A generator's output was refused on a host: its check failed, the reload failed,
    /// or it could not be delivered. The old file stays.
    pub const GENERATOR_FAILED: &str = "generator.failed";
    /// A generator's template did not render; nothing was written.
    pub const GENERATOR_RENDER_FAILED: &str = "generator.render_failed";
}
