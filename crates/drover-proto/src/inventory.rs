//! Inventory: hosts as cloud providers and static lists describe them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One host as a provider lists it, before it is merged into drover's hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredHost {
    /// The provider's stable id for it (EC2 instance id, Nova server id, or for
    /// `static` and `exec` what the mapping says; the name when nothing else).
    pub id: String,
    /// Host name, as drover will show it and as selectors match it.
    pub name: String,
    /// Address other hosts reach it at (private IP), when known.
    pub address: Option<String>,
    /// Region, availability zone or datacenter, when known.
    pub region: Option<String>,
    /// Labels from the provider (EC2 tags, Nova metadata, static labels).
    pub labels: BTreeMap<String, String>,
    /// Other provider attributes (instance type, state, image…), shown as facts
    /// under `provider.*`.
    pub attributes: BTreeMap<String, String>,
}

/// One provider's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderState {
    /// Provider name (from the model).
    pub name: String,
    /// `ok` when the last sync succeeded, `stale` when it failed (the last good
    /// inventory is kept), `pending` before the first sync.
    pub status: String,
    /// Hosts it listed in its last good sync.
    pub host_count: u64,
    /// Error of the last failed sync, cleared by a good one.
    pub error: Option<String>,
    /// Last sync attempt (Unix ms).
    pub last_attempt_at: Option<i64>,
    /// Last good sync (Unix ms).
    pub last_ok_at: Option<i64>,
}
