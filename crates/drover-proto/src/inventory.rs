//! Inventory: hosts as cloud providers and static lists describe them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One host as a provider lists it, before it is merged into drover's hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// A generator's state on one target host (`GET /generators`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeneratorHost {
    /// Host name.
    pub host: String,
    /// `pending`, `ok`, `failed` (check or reload said no; the old file stays) or
    /// `error` (not delivered).
    pub status: String,
    /// SHA-256 of the content live there.
    pub applied_sha256: Option<String>,
    /// Why the last write failed.
    pub error: Option<String>,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A generator of the applied model with its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeneratorInfo {
    /// Name.
    pub name: String,
    /// Target selector.
    pub targets: String,
    /// Destination path on the targets.
    pub path: String,
    /// Check command, as written in the model.
    pub check: Option<String>,
    /// Reload command.
    pub reload: Option<String>,
    /// Per target host (hosts it wrote on before and targets not yet written).
    pub hosts: Vec<GeneratorHost>,
}

/// What a generator would write on one host now (`GET /generators/{name}/render`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeneratorPreview {
    /// Host name.
    pub host: String,
    /// The rendered content, when the template rendered.
    pub content: Option<String>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// Why the template did not render.
    pub error: Option<String>,
    /// True when it equals what is live there.
    pub unchanged: bool,
    /// Unified diff from the live content (empty when unchanged; the whole file as
    /// added lines when nothing was written there yet).
    pub diff: String,
}

/// Answer of `POST /generators/{name}/apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeneratorApplied {
    /// `generate` executions started (empty when every target was up to date).
    pub executions: Vec<String>,
}
