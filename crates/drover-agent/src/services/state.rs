//! `state.json`: what the agent knows of one instance, kept on disk so that a restarted
//! agent knows the truth — the lifecycle state the last transition left, the version and
//! spec it refers to, the releases on disk, and the process it started.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use drover_proto::deploy::{InstanceSpec, LifecycleState};
use serde::{Deserialize, Serialize};

use crate::fsutil;

/// The content of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateFile {
    /// Service name.
    pub(crate) service: String,
    /// Copy on this host.
    pub(crate) index: u32,
    /// The state the last transition left the instance in (what it should be in).
    pub(crate) state: LifecycleState,
    /// Version the state refers to (empty when `None`).
    pub(crate) version: String,
    /// `spec_hash` of that version's spec (empty when `None`).
    pub(crate) spec_hash: String,
    /// The spec that version was installed from.
    #[serde(default)]
    pub(crate) spec: Option<InstanceSpec>,
    /// Releases on disk, by version.
    #[serde(default)]
    pub(crate) releases: BTreeMap<String, ReleaseRecord>,
    /// The process the agent started for it (supervised process, or the group of the
    /// start script), while it should be running.
    #[serde(default)]
    pub(crate) process: Option<ProcessRecord>,
    /// Restarts of the supervised process since the instance was started.
    #[serde(default)]
    pub(crate) restarts: u32,
}

impl StateFile {
    /// The state of an instance with nothing on the host.
    pub(crate) fn none(service: &str, index: u32) -> StateFile {
        StateFile {
            service: service.to_string(),
            index,
            state: LifecycleState::None,
            version: String::new(),
            spec_hash: String::new(),
            spec: None,
            releases: BTreeMap::new(),
            process: None,
            restarts: 0,
        }
    }
}

/// One complete release on disk. An install in progress has no record, so a release
/// directory without one is never reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReleaseRecord {
    /// `spec_hash` it was installed from (config files included).
    pub(crate) spec_hash: String,
    /// Digest of its artifact.
    pub(crate) sha256: String,
    /// When it was installed, in milliseconds since the epoch (newest are kept).
    pub(crate) installed_ms: u64,
    /// Digest of its files as installed (see [`super::fingerprint`]); the file list is
    /// in `fingerprints/<version>-<digest>.json`. `None` in records of agents that did
    /// not fingerprint releases yet: such a release is not checked for changed files.
    #[serde(default)]
    pub(crate) fingerprint: Option<String>,
}

/// Identity of a process that survives an agent restart: a pid alone may be reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRecord {
    /// Process id (and process group id: the agent starts each in a group of its own).
    pub(crate) pid: u32,
    /// Start time in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
    pub(crate) start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was recorded.
    pub(crate) boot_id: String,
    /// Only the process group counts (what a start script left running): alive while
    /// some process of group `pid` is.
    #[serde(default)]
    pub(crate) group: bool,
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// State letter (`R`, `S`, `Z`…).
    pub(crate) state: char,
    /// Start time in clock ticks after boot.
    pub(crate) start_ticks: u64,
}

/// Parses the content of `/proc/<pid>/stat`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    // "pid (comm) state ppid pgrp … starttime(22) …"; comm may hold anything.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

/// Reads `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: u32) -> io::Result<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse /proc/{pid}/stat"),
        )
    })
}

/// This boot's id (empty if unknown).
pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl ProcessRecord {
    /// Records process `pid`, which must be alive.
    pub(crate) fn of(pid: u32) -> io::Result<ProcessRecord> {
        let stat = proc_stat(pid)?;
        Ok(ProcessRecord {
            pid,
            start_ticks: stat.start_ticks,
            boot_id: boot_id(),
            group: false,
        })
    }

    /// Whether this very process is still alive (same boot, same start time, not a
    /// zombie); for a group record, whether the group still has a live member.
    pub(crate) fn is_alive(&self) -> bool {
        if self.boot_id != boot_id() {
            return false;
        }
        if self.group {
            let pgid = i32::try_from(self.pid).unwrap_or(i32::MAX);
            return crate::process::group_alive(nix::unistd::Pid::from_raw(pgid));
        }
        match proc_stat(self.pid) {
            Ok(s) => s.start_ticks == self.start_ticks && s.state != 'Z' && s.state != 'X',
            Err(_) => false,
        }
    }
}

/// Reads `state.json`; `Ok(None)` if there is none.
pub(crate) fn load(path: &Path) -> io::Result<Option<StateFile>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Writes `state.json` atomically.
pub(crate) fn save(path: &Path, state: &StateFile) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    fsutil::write_atomic(path, &bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_command_name() {
        let text = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 \
                    1 0 987654 1000 10 18446744073709551615";
        let s = parse_stat(text).expect("parsed");
        assert_eq!(s.state, 'S');
        assert_eq!(s.start_ticks, 987654);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessRecord::of(std::process::id()).expect("record");
        assert!(me.is_alive());
        let reused = ProcessRecord {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused.is_alive());
        let other_boot = ProcessRecord {
            boot_id: "another-boot".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.json");
        assert_eq!(load(&p).expect("load"), None);
        let mut s = StateFile::none("web", 1);
        s.state = LifecycleState::Installed;
        s.version = "2".into();
        s.releases.insert(
            "2".into(),
            ReleaseRecord {
                spec_hash: "h".into(),
                sha256: "d".into(),
                installed_ms: 5,
                fingerprint: Some("f".into()),
            },
        );
        save(&p, &s).expect("save");
        assert_eq!(load(&p).expect("load"), Some(s));
        std::fs::write(&p, "{").expect("write");
        assert!(load(&p).is_err());
    }

    #[test]
    fn state_of_an_older_agent_is_read() {
        // Written before releases had fingerprints.
        let old = r#"{"service":"web","index":0,"state":"installed","version":"1",
            "spec_hash":"h","releases":{"1":{"spec_hash":"h","sha256":"d","installed_ms":5}}}"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.json");
        std::fs::write(&p, old).expect("write");
        let s = load(&p).expect("load").expect("some");
        assert_eq!(s.releases["1"].fingerprint, None);
        assert_eq!(s.state, LifecycleState::Installed);
    }
}
