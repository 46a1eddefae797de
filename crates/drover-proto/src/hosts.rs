//! Hosts as the API shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::Facts;

/// Whether the controller hears from a host's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Heartbeats arrive.
    Up,
    /// Heartbeats stopped for longer than the controller's `--down-after`.
    Down,
    /// Known from an inventory provider; no agent ever enrolled on it.
    Missing,
}

impl HostStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Up => "up",
            HostStatus::Down => "down",
            HostStatus::Missing => "missing",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<HostStatus> {
        match s {
            "up" => Some(HostStatus::Up),
            "down" => Some(HostStatus::Down),
            "missing" => Some(HostStatus::Missing),
            _ => None,
        }
    }
}

/// A host drover knows of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    /// Stable identity, kept across agent restarts.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Up, down, or missing (known from a provider only).
    pub status: HostStatus,
    /// Labels (`key=value`): the provider's, overridden by those given to the agent.
    pub labels: BTreeMap<String, String>,
    /// Facts the agent reported last.
    pub facts: Facts,
    /// When the host first enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When the controller last heard from it.
    pub last_seen_at: DateTime<Utc>,
    /// Address other hosts reach it at, as its provider lists it.
    #[serde(default)]
    pub address: Option<String>,
    /// Inventory provider that lists it (none for a host known from its agent only).
    #[serde(default)]
    pub provider: Option<String>,
    /// The provider's id for it.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Region, zone or datacenter, as its provider lists it.
    #[serde(default)]
    pub region: Option<String>,
    /// Its provider's last sync failed: the provider fields are the last good ones.
    #[serde(default)]
    pub stale: bool,
    /// Taken out of service by an operator.
    #[serde(default)]
    pub drained: bool,
    /// Provider attributes (instance type, state, image…).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Hostclasses of the applied model it belongs to (filled in by the API).
    #[serde(default)]
    pub hostclasses: Vec<String>,
    /// Live instances on it (filled in by the API).
    #[serde(default)]
    pub instances: u32,
}

/// One field's value before and after a change (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// Value before.
    pub from: Option<serde_json::Value>,
    /// Value after.
    pub to: Option<serde_json::Value>,
}

/// One recorded change of a host: its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostChange {
    /// Position in the history; strictly increasing.
    pub id: i64,
    /// The host's id (kept after the host is removed).
    pub host_id: String,
    /// The host's name at the time.
    pub host_name: String,
    /// When it changed.
    pub time: DateTime<Utc>,
    /// `added`, `changed`, `removed`, `up`, `down`, `drained` or `undrained`.
    pub kind: String,
    /// Who changed it: a token name, `agent:<host>`, `provider:<name>` or `system`.
    pub actor: String,
    /// Changed fields (`labels.role`, `address`, `status`…) with their old and new values.
    #[serde(default)]
    pub changes: BTreeMap<String, FieldChange>,
}
