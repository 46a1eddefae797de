//! Deploy messages: what an agent needs to manage one service instance, and what it
//! reports back. The controller turns the model into [`InstanceSpec`]s (placement,
//! ports, rendered config) so that the agent decides nothing: it executes transitions of
//! glu's lifecycle and reports the truth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// glu's lifecycle states, in order: NONE → installed → stopped → running.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleState {
    /// Nothing on the host.
    None,
    /// Release unpacked (install done), not configured.
    Installed,
    /// Configured, not running.
    Stopped,
    /// Running.
    Running,
}

/// One of glu's six transitions between adjacent lifecycle states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// None → Installed.
    Install,
    /// Installed → Stopped.
    Configure,
    /// Stopped → Running.
    Start,
    /// Running → Stopped.
    Stop,
    /// Stopped → Installed.
    Unconfigure,
    /// Installed → None.
    Uninstall,
}

impl Transition {
    /// The state this transition starts from and the one it leads to.
    pub fn edge(self) -> (LifecycleState, LifecycleState) {
        use LifecycleState::*;
        match self {
            Transition::Install => (None, Installed),
            Transition::Configure => (Installed, Stopped),
            Transition::Start => (Stopped, Running),
            Transition::Stop => (Running, Stopped),
            Transition::Unconfigure => (Stopped, Installed),
            Transition::Uninstall => (Installed, None),
        }
    }
}

/// Health as the agent's checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No check configured, or not enough results yet.
    Unknown,
    /// Passed `healthy_threshold` times in a row.
    Healthy,
    /// Failed `unhealthy_threshold` times in a row.
    Unhealthy,
}

/// Where the artifact (a `.tar.gz`) comes from, and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactRef {
    /// `file:///…`, `http(s)://…`, or the controller's artifact store
    /// (`{controller}/api/v1/artifacts/<sha256>`, fetched with the agent's credential).
    pub url: String,
    /// Hex SHA-256 the download must match; also the cache key on the host.
    pub sha256: String,
}

/// How the instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Runtime {
    /// A process the agent supervises (restart with backoff, logs to bounded files).
    Run {
        /// Program and arguments, relative to the release directory.
        argv: Vec<String>,
    },
    /// The user's own shell snippets for glu's transitions, run with `sh -c` in the
    /// release directory. A missing one is a no-op, except `start` and `stop`.
    Scripts {
        /// None → installed (after unpacking).
        #[serde(default)]
        install: Option<String>,
        /// Installed → stopped.
        #[serde(default)]
        configure: Option<String>,
        /// Stopped → running.
        start: String,
        /// Running → stopped.
        stop: String,
        /// Stopped → installed.
        #[serde(default)]
        unconfigure: Option<String>,
        /// Installed → none (before the release is removed).
        #[serde(default)]
        uninstall: Option<String>,
    },
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HealthProbe {
    /// `GET http://127.0.0.1:{port}{path}`: healthy on `status`, and when `body` is set,
    /// when the response contains it.
    Http {
        /// Port on loopback.
        port: u16,
        /// Path, starting with `/`.
        path: String,
        /// Expected status.
        status: u16,
        /// Substring the body must contain.
        #[serde(default)]
        body: Option<String>,
    },
    /// A TCP connect to `127.0.0.1:{port}`.
    Tcp {
        /// Port on loopback.
        port: u16,
    },
    /// A program run in the release directory; exit 0 is healthy.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// A health check with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthSpec {
    /// What to probe.
    pub probe: HealthProbe,
    /// Time between probes, in milliseconds.
    pub interval_ms: u64,
    /// Time a probe may take, in milliseconds.
    pub timeout_ms: u64,
    /// Consecutive passes to become healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures to become unhealthy.
    pub unhealthy_threshold: u32,
}

/// A file the controller rendered for this instance; written into the release
/// directory at install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RenderedFile {
    /// Path relative to the release directory (no `..`).
    pub path: String,
    /// Content.
    pub content: String,
}

/// Everything an agent needs to manage one instance at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceSpec {
    /// Service name.
    pub service: String,
    /// Copy on this host, from 0.
    pub index: u32,
    /// Version.
    pub version: String,
    /// The artifact.
    pub artifact: ArtifactRef,
    /// How it runs.
    pub runtime: Runtime,
    /// Environment (the agent adds `DROVER_*` variables and `PORT_<NAME>` per port).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Ports by name.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    /// Rendered config files.
    #[serde(default)]
    pub config: Vec<RenderedFile>,
    /// Health check, if any.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// Hash of what runs besides the version (see `drover_core::instance`).
    pub spec_hash: String,
    /// How many releases to keep on disk (the live one included), for rollbacks
    /// without downloads.
    pub keep_releases: u32,
}

/// An instance as the agent reports it: on every change and at every (re)connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceReport {
    /// Service name.
    pub service: String,
    /// Copy on this host.
    pub index: u32,
    /// Version of the live release (empty when `None`).
    pub version: String,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// Health.
    pub health: Health,
    /// `spec_hash` it was installed from.
    pub spec_hash: String,
    /// Process id of the supervised process or start script's process group, if running.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Restarts of the supervised process since it was started.
    #[serde(default)]
    pub restarts: u32,
    /// Why it is not in the state it was left in (process died and cannot restart,
    /// release files changed…), if so.
    #[serde(default)]
    pub drift: Option<String>,
}

macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The lower-case name, as on the wire and in YAML.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),*
                }
            }

            /// Parses the lower-case name.
            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_names!(LifecycleState {
    None => "none",
    Installed => "installed",
    Stopped => "stopped",
    Running => "running",
});

wire_names!(Transition {
    Install => "install",
    Configure => "configure",
    Start => "start",
    Stop => "stop",
    Unconfigure => "unconfigure",
    Uninstall => "uninstall",
});

wire_names!(Health {
    Unknown => "unknown",
    Healthy => "healthy",
    Unhealthy => "unhealthy",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for s in [
            LifecycleState::None,
            LifecycleState::Installed,
            LifecycleState::Stopped,
            LifecycleState::Running,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(LifecycleState::parse(s.as_str()), Some(s));
        }
        for t in [
            Transition::Install,
            Transition::Configure,
            Transition::Start,
            Transition::Stop,
            Transition::Unconfigure,
            Transition::Uninstall,
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(Transition::parse(t.as_str()), Some(t));
        }
        for h in [Health::Unknown, Health::Healthy, Health::Unhealthy] {
            assert_eq!(serde_json::to_value(h).unwrap(), h.as_str());
            assert_eq!(Health::parse(h.as_str()), Some(h));
        }
        assert_eq!(Health::parse("sick"), None);
    }
}
