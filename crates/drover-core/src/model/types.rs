//! The typed model: what [`load`](super::load) produces from valid YAML.
//!
//! Every type here is plain data that serializes (the controller stores the model
//! and sends service specs to agents). Names are unique per kind, and maps are
//! ordered by name, so equal models serialize identically.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::instance::{LifecycleState, RolloutPolicy};

/// A loaded, valid model: every service, hostclass and host pin, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Hostclasses by name.
    pub hostclasses: BTreeMap<String, Hostclass>,
    /// Host pins (`kind: host`) by host name.
    pub hosts: BTreeMap<String, HostPin>,
    /// Inventory providers (`kind: provider`) by name.
    #[serde(default)]
    pub providers: BTreeMap<String, super::inventory_types::Provider>,
    /// Config generators (`kind: generator`) by name.
    #[serde(default)]
    pub generators: BTreeMap<String, super::inventory_types::Generator>,
    /// SHA-256 (lowercase hex) of the model's meaning: see [`content_hash`](super::content_hash).
    pub content_hash: String,
}

/// Where a document was written: its `name` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// File path, as handed to `load`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A named group of hosts (`kind: hostclass`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hostclass {
    /// Unique hostclass name.
    pub name: String,
    /// Members by selector, canonical form (see [`crate::selector`]); `None` when the
    /// hostclass only has pinned hosts.
    pub selector: Option<String>,
    /// Labels shared by the hostclass's hosts (for templates and display; they do
    /// not change membership).
    pub labels: BTreeMap<String, String>,
    /// Where it was declared.
    pub source: Source,
}

/// A host put into a hostclass by name (`kind: host`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPin {
    /// Host name.
    pub name: String,
    /// The hostclass it belongs to (and no other).
    pub hostclass: String,
    /// Where it was declared.
    pub source: Source,
}

/// Something deployable (`kind: service`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Unique service name.
    pub name: String,
    /// Version to run (a string, also a directory name on hosts).
    pub version: String,
    /// The release tarball and its digest.
    pub artifact: Artifact,
    /// Which hosts, how many instances each.
    pub placement: Placement,
    /// Base ports by name; instance `i` on a host gets `base + i`.
    pub ports: BTreeMap<String, u16>,
    /// Environment of the process and the scripts.
    pub env: BTreeMap<String, String>,
    /// Files rendered per instance, in declaration order.
    pub config: Vec<ConfigFile>,
    /// Health check, if any.
    pub health: Option<HealthCheck>,
    /// Services that must be deployed and healthy first, in declaration order.
    pub depends_on: Vec<String>,
    /// How a new version is rolled out.
    pub rollout: RolloutPolicy,
    /// How it runs: a supervised command or the user's lifecycle scripts.
    pub exec: Exec,
    /// Desired lifecycle state (glu's `entryState`).
    pub state: LifecycleState,
    /// Whether drift is fixed automatically.
    pub reconcile: Reconcile,
    /// The load balancer in front of it: rollouts drain an instance from it before
    /// stopping it, and add it back once healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Where it was declared.
    pub source: Source,
}

impl Service {
    /// Ports of instance `index` (base + index), by name.
    pub fn instance_ports(&self, index: u32) -> BTreeMap<String, u16> {
        self.ports
            .iter()
            .map(|(name, &base)| {
                let port = u32::from(base) + index;
                (name.clone(), u16::try_from(port).unwrap_or(u16::MAX))
            })
            .collect()
    }
}

/// A service's load balancer (`load_balancer:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoadBalancer {
    /// The generator that renders its config.
    pub generator: String,
    /// Drain instances before they stop (default true; `false` only to measure
    /// what draining prevents).
    pub drain: bool,
    /// After the pool config without the instance is live, wait this long for
    /// open connections to end before stopping it.
    pub drain_grace: Duration,
}

/// A release tarball (`.tar.gz`) and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Artifact {
    /// `file:///abs/path`, `http://…`, `https://…` or `store:<sha256>`.
    pub url: String,
    /// Lowercase hex SHA-256 the download is verified against.
    pub sha256: String,
}

/// Where an [`Artifact`] comes from, parsed from its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSource<'a> {
    /// A local file (absolute path).
    File(&'a str),
    /// An `http://` or `https://` URL.
    Http(&'a str),
    /// The controller's content-addressed artifact store, by SHA-256.
    Store(&'a str),
}

impl Artifact {
    /// Where to fetch it from (`None` only for a URL that did not pass validation).
    pub fn source(&self) -> Option<ArtifactSource<'_>> {
        let url = self.url.as_str();
        if let Some(path) = url.strip_prefix("file://") {
            Some(ArtifactSource::File(path))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            Some(ArtifactSource::Http(url))
        } else {
            url.strip_prefix("store:").map(ArtifactSource::Store)
        }
    }
}

/// Which hosts a service runs on, and how many instances on each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    /// The hosts.
    pub target: Target,
    /// Instances per host (1–64).
    pub per_host: u32,
}

/// The hosts of a [`Placement`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every member of a hostclass.
    Hostclass(String),
    /// These hosts, by name (whether or not they are known yet).
    Hosts(Vec<String>),
    /// Every live host matching a selector (canonical form).
    Selector(String),
}

/// A file rendered per instance, relative to the instance's directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfigFile {
    /// Clean relative path (no `..`, no `.`, no empty component).
    pub path: String,
    /// Template text, rendered by the agent with the instance's ports, version,
    /// host facts and labels.
    pub template: String,
}

/// A health check and its timing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthCheck {
    /// What is checked.
    pub probe: Probe,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Passes in a row to become healthy.
    pub healthy_threshold: u32,
    /// Failures in a row to become unhealthy.
    pub unhealthy_threshold: u32,
}

/// What a [`HealthCheck`] does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// `GET http://127.0.0.1:PORT/PATH`: healthy on `status` and, if given, a body
    /// containing `body`.
    Http {
        /// Name of a port in the service's `ports`.
        port: String,
        /// Request path, starting with `/`.
        path: String,
        /// Expected status code.
        status: u16,
        /// Substring the response body must contain.
        body: Option<String>,
    },
    /// A TCP connection to `127.0.0.1:PORT` succeeds.
    Tcp {
        /// Name of a port in the service's `ports`.
        port: String,
    },
    /// The command exits 0 (run in the instance's directory).
    Exec {
        /// Program and arguments.
        command: Vec<String>,
    },
}

/// How a service runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exec {
    /// A command (program and arguments) that the agent starts and supervises.
    Run(Vec<String>),
    /// The user's shell snippets for glu's transitions.
    Scripts(Scripts),
}

/// Shell snippets for glu's six transitions; a missing one does nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scripts {
    /// NONE → installed (after the release is unpacked).
    pub install: Option<String>,
    /// installed → stopped.
    pub configure: Option<String>,
    /// stopped → running.
    pub start: String,
    /// running → stopped.
    pub stop: String,
    /// stopped → installed.
    pub unconfigure: Option<String>,
    /// installed → NONE (before the release is removed).
    pub uninstall: Option<String>,
}

/// What happens when an instance drifts from its desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reconcile {
    /// Drift is shown, never fixed silently.
    Manual,
    /// Drift is fixed by a plan drover runs on its own.
    Auto,
}
