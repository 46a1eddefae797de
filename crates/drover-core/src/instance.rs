//! Instances: one service on one host, desired (from the model) and live (from agents).
//! These are the inputs of the delta; `model` produces [`DesiredInstance`]s, agents
//! report [`LiveInstance`]s, and `delta`/`plan` compare them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Identity of an instance: which service, on which host, which copy on that host
/// (`index` counts from 0 when a service runs several instances per host).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct InstanceKey {
    /// Service name.
    pub service: String,
    /// Host name.
    pub host: String,
    /// Copy on that host, from 0.
    pub index: u32,
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.service, self.host, self.index)
    }
}

pub use drover_proto::deploy::{Health, LifecycleState, Transition};

/// How a service is spread over several instances during a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Batches of `max_parallel`.
    Rolling,
    /// One at a time (`max_parallel` is ignored).
    Serial,
    /// Everything in one batch.
    AllAtOnce,
}

/// `max_parallel`: a count, or a percentage of the service's instances (rounded down,
/// at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxParallel {
    /// At most this many instances.
    Count(u32),
    /// At most this percentage (1–100) of the service's desired instances.
    Percent(u8),
}

impl MaxParallel {
    /// The effective count for a service with `total` desired instances (≥ 1).
    pub fn resolve(self, total: u32) -> u32 {
        match self {
            MaxParallel::Count(n) => n.max(1),
            MaxParallel::Percent(p) => ((u64::from(total) * u64::from(p)) / 100).max(1) as u32,
        }
    }
}

/// A service's rollout policy (Nomad's words where they fit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutPolicy {
    /// How instances are grouped into batches.
    pub strategy: Strategy,
    /// Most instances out of service at once.
    pub max_parallel: MaxParallel,
    /// First batch of this many instances only; then wait for promotion.
    pub canary: u32,
    /// Continue after the canary batch without `drover rollout promote`.
    pub auto_promote: bool,
    /// An instance must stay healthy this long to pass its health gate.
    #[schema(value_type = DurationValue)]
    pub min_healthy_time: Duration,
    /// An instance that is not healthy this long after its change fails the gate.
    #[schema(value_type = DurationValue)]
    pub healthy_deadline: Duration,
    /// A rollout that makes no progress this long fails.
    #[schema(value_type = DurationValue)]
    pub progress_deadline: Duration,
    /// On a failed gate, bring every touched instance back to the last good version.
    pub auto_revert: bool,
}

/// How a `Duration` is written on the wire: whole seconds and the nanoseconds beyond.
#[derive(utoipa::ToSchema)]
#[schema(as = Duration)]
pub struct DurationValue {
    /// Whole seconds.
    pub secs: u64,
    /// Nanoseconds beyond `secs` (below 1 000 000 000).
    pub nanos: u32,
}

impl Default for RolloutPolicy {
    fn default() -> RolloutPolicy {
        RolloutPolicy {
            strategy: Strategy::Rolling,
            max_parallel: MaxParallel::Count(1),
            canary: 0,
            auto_promote: false,
            min_healthy_time: Duration::from_secs(10),
            healthy_deadline: Duration::from_secs(5 * 60),
            progress_deadline: Duration::from_secs(10 * 60),
            auto_revert: true,
        }
    }
}

/// What the model wants for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DesiredInstance {
    /// Which instance.
    pub key: InstanceKey,
    /// Version to run.
    pub version: String,
    /// State to be in: `Running` (default), `Stopped` or `Installed`.
    pub state: LifecycleState,
    /// Hash of everything besides version that changes what runs (artifact digest,
    /// rendered config, env, ports, command): a difference means a redeploy.
    pub spec_hash: String,
    /// Ports of this instance, by name (already offset for `index`).
    pub ports: BTreeMap<String, u16>,
}

/// What an agent reports for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveInstance {
    /// Which instance.
    pub key: InstanceKey,
    /// Version installed (the live release).
    pub version: String,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// Health.
    pub health: Health,
    /// `spec_hash` of the desired instance it was deployed from.
    pub spec_hash: String,
}
