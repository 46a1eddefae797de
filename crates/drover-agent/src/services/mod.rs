//! The service manager: the agent's side of the deploy engine.
//!
//! It executes glu's six transitions (install, configure, start, stop, unconfigure,
//! uninstall) for service instances as the controller asks, one step per command, and
//! reports every instance's truth (lifecycle state, version, health, restarts, drift).
//!
//! - **Releases** live side by side under `services/<service>/<index>/releases/<version>/`
//!   ([`release`]); `current` names the live one and is switched atomically; the newest
//!   `keep_releases` stay on disk so a rollback needs no download.
//! - **Artifacts** are fetched, verified against their SHA-256, cached by it and unpacked
//!   with care ([`artifact`]).
//! - **Processes** of `run:` services are supervised ([`supervisor`]): restarted with
//!   backoff when they exit, output to size-bounded log files ([`logs`]). Scripts
//!   services run the user's snippets ([`script`]).
//! - **Health** is probed while an instance runs ([`health`]).
//! - **Files** of each instance's release are compared with the fingerprint taken at
//!   install every [`Options::file_check`] ([`fingerprint`]); a changed or missing file
//!   is drift. Files added later (a pid file, a log) are not.
//! - **State** is kept in `state.json` per instance ([`state`]), so that a restarted
//!   agent knows what should run. Services outlive the agent: stopping the agent leaves
//!   them running, and the next agent adopts them (see
//!   `docs/decisions/0006-services-outlive-the-agent.md`).

mod artifact;
mod env;
mod fingerprint;
mod health;
mod layout;
mod logs;
mod release;
mod script;
mod state;
mod supervisor;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use drover_proto::agent::{CommandOutcome, OutputStream};
use drover_proto::deploy::{
    Health, InstanceReport, InstanceSpec, LifecycleState, Runtime, Transition,
};
use nix::unistd::Pid;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use artifact::ControllerAccess;
use artifact::Fetcher;
use fingerprint::{Fingerprint, Watch};
use health::{Checker, ProbeEnv};
use layout::{InstanceDirs, check_name, check_relative, check_sha256};
use script::ScriptEnv;
use state::{ProcessRecord, ReleaseRecord, StateFile};
use supervisor::{Event, Proc, RunSpec, Supervisor, Timing};

use crate::output::OutputBuffer;
use crate::process::group_alive;

/// How often logs are rotated and script-started processes looked at.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How often the files of live releases are checked, by default.
const FILE_CHECK: Duration = Duration::from_secs(30);
/// How long [`ServiceManager::detach`] waits for its tasks.
const DETACH_WAIT: Duration = Duration::from_secs(5);

/// Why a step failed, as it goes into the command's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepError {
    /// `Error` (could not do it), `Failed` (a script exited non-zero) or `Cancelled`.
    pub(crate) outcome: CommandOutcome,
    /// A script's exit code.
    pub(crate) exit_code: Option<i32>,
    /// The signal that killed a script.
    pub(crate) signal: Option<i32>,
    /// What went wrong, precisely.
    pub(crate) message: String,
}

impl StepError {
    /// The step could not be done.
    pub(crate) fn error(message: impl Into<String>) -> StepError {
        StepError {
            outcome: CommandOutcome::Error,
            exit_code: None,
            signal: None,
            message: message.into(),
        }
    }

    /// A script ended with `status`.
    pub(crate) fn failed(status: &ExitStatus, message: String) -> StepError {
        StepError {
            outcome: CommandOutcome::Failed,
            exit_code: status.code(),
            signal: status.signal(),
            message,
        }
    }

    /// The step was cancelled.
    pub(crate) fn cancelled(message: String) -> StepError {
        StepError {
            outcome: CommandOutcome::Cancelled,
            exit_code: None,
            signal: None,
            message,
        }
    }

    fn with_context(mut self, context: &str) -> StepError {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<String> for StepError {
    fn from(message: String) -> StepError {
        StepError::error(message)
    }
}

/// How the manager works.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The controller's artifact store (requests under its URL carry the credential).
    pub(crate) controller: Option<ControllerAccess>,
    /// Restart backoff and stop grace.
    pub(crate) timing: Timing,
    /// Size at which a log file is rotated.
    pub(crate) log_limit: u64,
    /// How often the release files of installed, stopped and running instances are
    /// compared with their fingerprint.
    pub(crate) file_check: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            controller: None,
            timing: Timing::default(),
            log_limit: logs::LOG_LIMIT,
            file_check: FILE_CHECK,
        }
    }
}

/// What the manager holds of one instance besides `state.json`.
#[derive(Debug)]
struct Data {
    file: StateFile,
    health: Health,
    pid: Option<u32>,
    /// Drift of the process (died, cannot restart…).
    drift: Option<String>,
    /// Drift of the release files (changed or missing since install).
    file_drift: Option<String>,
    /// Counts starts, so that a late event of an earlier run is ignored.
    generation: u64,
}

/// The tasks watching a running instance.
#[derive(Debug, Default)]
struct Tasks {
    supervisor: Option<Supervisor>,
    checker: Option<Checker>,
}

/// The fingerprint of the release being checked, and what the checks saw.
#[derive(Debug)]
struct FileWatch {
    version: String,
    watch: Watch,
}

/// One instance.
#[derive(Debug)]
struct Instance {
    name: String,
    dirs: InstanceDirs,
    /// One transition at a time (a file check runs only while none does).
    op: tokio::sync::Mutex<()>,
    data: Mutex<Data>,
    tasks: Mutex<Tasks>,
    files: Mutex<Option<FileWatch>>,
}

impl Instance {
    fn new(dirs: InstanceDirs, file: StateFile) -> Instance {
        Instance {
            name: format!("{}#{}", file.service, file.index),
            dirs,
            op: tokio::sync::Mutex::new(()),
            data: Mutex::new(Data {
                file,
                health: Health::Unknown,
                pid: None,
                drift: None,
                file_drift: None,
                generation: 0,
            }),
            tasks: Mutex::new(Tasks::default()),
            files: Mutex::new(None),
        }
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tasks(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn files(&self) -> MutexGuard<'_, Option<FileWatch>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self) -> Option<InstanceReport> {
        let d = self.data();
        (d.file.state != LifecycleState::None).then(|| InstanceReport {
            service: d.file.service.clone(),
            index: d.file.index,
            version: d.file.version.clone(),
            state: d.file.state,
            health: d.health,
            spec_hash: d.file.spec_hash.clone(),
            pid: d.pid,
            restarts: d.file.restarts,
            drift: match (&d.drift, &d.file_drift) {
                (Some(process), Some(files)) => Some(format!("{process}; {files}")),
                (process, files) => process.clone().or_else(|| files.clone()),
            },
        })
    }
}

/// Keeps an artifact from being collected while an install uses it.
struct Pin<'a> {
    inner: &'a Inner,
    sha: String,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut pinned = self.inner.pinned();
        if let Some(n) = pinned.get_mut(&self.sha) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(&self.sha);
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    fetcher: Fetcher,
    probe_client: reqwest::Client,
    options: Options,
    instances: Mutex<BTreeMap<(String, u32), Arc<Instance>>>,
    changed: watch::Sender<u64>,
    detach: CancellationToken,
    tracker: TaskTracker,
    pinned: Mutex<HashMap<String, usize>>,
    /// File checks done (one per instance and round).
    file_checks: AtomicU64,
    /// Files hashed by those checks.
    files_hashed: AtomicU64,
}

/// The service manager of one state dir. Dropping it (or [`ServiceManager::detach`])
/// stops supervising and probing but leaves the services running.
#[derive(Debug)]
pub(crate) struct ServiceManager {
    inner: Arc<Inner>,
}

impl Drop for ServiceManager {
    fn drop(&mut self) {
        self.inner.detach.cancel();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Writes one line of progress into a step's output.
fn say(out: &OutputBuffer, line: &str) {
    out.push(OutputStream::Stdout, format!("{line}\n"));
}

/// Whether a step may proceed.
#[derive(Debug, PartialEq)]
enum Check {
    /// Do it.
    Proceed,
    /// Already done: succeed with this message.
    Already(String),
}

fn describe(state: LifecycleState, version: &str) -> String {
    match state {
        LifecycleState::None => "none".to_string(),
        s => format!("{} at {version}", s.as_str()),
    }
}

/// Decides whether `t` may run on an instance in `cur` (`release_ok`: the release of
/// the spec's version is on disk).
fn check(
    t: Transition,
    spec: &InstanceSpec,
    name: &str,
    cur: &StateFile,
    release_ok: bool,
) -> Result<Check, String> {
    let v = &spec.version;
    let (from, to) = t.edge();
    let here = describe(cur.state, &cur.version);
    match t {
        Transition::Install => {
            if cur.state == LifecycleState::Installed
                && cur.version == *v
                && cur.spec_hash == spec.spec_hash
                && release_ok
            {
                return Ok(Check::Already(format!("{name} {v} is already installed")));
            }
            if cur.state == LifecycleState::Running {
                return Err(format!(
                    "cannot install {name} {v}: it is {here}, expected none, installed or \
                     stopped (stop it first)"
                ));
            }
            Ok(Check::Proceed)
        }
        Transition::Uninstall if cur.state == LifecycleState::None => {
            Ok(Check::Already(format!("{name} is not installed")))
        }
        _ if cur.state == from && cur.version == *v => Ok(Check::Proceed),
        _ if cur.state == to && cur.version == *v => Ok(Check::Already(format!(
            "{name} is already {}",
            describe(to, v)
        ))),
        _ => Err(format!(
            "cannot {} {name} {v}: it is {here}, expected {}",
            t.as_str(),
            describe(from, v)
        )),
    }
}

/// Checks what the agent relies on in a spec.
fn validate(spec: &InstanceSpec) -> Result<(), String> {
    check_name("service", &spec.service)?;
    check_name("version", &spec.version)?;
    check_sha256(&spec.artifact.sha256)?;
    if let Runtime::Run { argv } = &spec.runtime
        && argv.first().is_none_or(|p| p.is_empty())
    {
        return Err("run argv is empty: nothing to run".into());
    }
    for f in &spec.config {
        check_relative("config file", &f.path)?;
    }
    Ok(())
}

impl Inner {
    fn instances(&self) -> MutexGuard<'_, BTreeMap<(String, u32), Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pinned(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.pinned.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pin(&self, sha: &str) -> Pin<'_> {
        *self.pinned().entry(sha.to_string()).or_insert(0) += 1;
        Pin {
            inner: self,
            sha: sha.to_string(),
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn instance(&self, service: &str, index: u32) -> Arc<Instance> {
        self.instances()
            .entry((service.to_string(), index))
            .or_insert_with(|| {
                Arc::new(Instance::new(
                    InstanceDirs::new(&self.root, service, index),
                    StateFile::none(service, index),
                ))
            })
            .clone()
    }

    fn save(inst: &Instance, d: &Data) -> std::io::Result<()> {
        fs::create_dir_all(inst.dirs.root())?;
        state::save(&inst.dirs.state_file(), &d.file)
    }

    /// Applies `f` to the instance, writes `state.json` (an error is the step's error)
    /// and tells the heartbeat.
    fn commit(&self, inst: &Instance, f: impl FnOnce(&mut Data)) -> Result<(), StepError> {
        let result = {
            let mut d = inst.data();
            f(&mut d);
            Inner::save(inst, &d)
        };
        self.notify();
        result.map_err(|e| {
            StepError::error(format!(
                "cannot write {}: {e}",
                inst.dirs.state_file().display()
            ))
        })
    }

    /// Like [`Inner::commit`], for events outside a step: an error is logged.
    fn record(&self, inst: &Instance, f: impl FnOnce(&mut Data)) {
        if let Err(e) = self.commit(inst, f) {
            tracing::error!(instance = %inst.name, error = %e.message, "cannot keep the instance's state");
        }
    }

    fn script_env(&self, inst: &Instance, spec: &InstanceSpec, release_dir: &Path) -> ScriptEnv {
        ScriptEnv {
            release_dir: release_dir.to_path_buf(),
            env: env::service_env(spec, release_dir),
            stdout: inst.dirs.stdout_log(),
            stderr: inst.dirs.stderr_log(),
            grace: self.options.timing.stop_grace,
        }
    }

    fn run_spec(&self, inst: &Instance, spec: &InstanceSpec, argv: &[String]) -> RunSpec {
        let release_dir = inst.dirs.release(&spec.version);
        RunSpec {
            argv: argv.to_vec(),
            env: env::service_env(spec, &release_dir),
            release_dir,
            stdout: inst.dirs.stdout_log(),
            stderr: inst.dirs.stderr_log(),
        }
    }

    /// Starts watching a running instance: supervision of `proc` for `run:` services
    /// (`supervise`), health checks if the spec has some.
    fn watch(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        spec: &InstanceSpec,
        supervise: Option<(RunSpec, Option<Proc>)>,
    ) {
        let generation = inst.data().generation;
        let mut tasks = inst.tasks();
        if let Some((run, proc)) = supervise {
            let (me, i) = (Arc::downgrade(self), Arc::downgrade(inst));
            let sink: supervisor::Sink = Arc::new(move |event| {
                let (Some(me), Some(inst)) = (me.upgrade(), i.upgrade()) else {
                    return;
                };
                if inst.data().generation != generation {
                    return;
                }
                me.on_process_event(&inst, event);
            });
            tasks.supervisor = Some(Supervisor::start(
                run,
                proc,
                sink,
                self.options.timing,
                &self.detach,
                &self.tracker,
            ));
        }
        if let Some(h) = &spec.health {
            let release_dir = inst.dirs.release(&spec.version);
            let ctx = ProbeEnv {
                env: env::service_env(spec, &release_dir),
                release_dir,
                client: self.probe_client.clone(),
            };
            let (me, i) = (Arc::downgrade(self), Arc::downgrade(inst));
            let sink: health::HealthSink = Arc::new(move |h| {
                let (Some(me), Some(inst)) = (me.upgrade(), i.upgrade()) else {
                    return;
                };
                let changed = {
                    let mut d = inst.data();
                    let live =
                        d.generation == generation && d.file.state == LifecycleState::Running;
                    let changed = live && d.health != h;
                    if changed {
                        d.health = h;
                    }
                    changed
                };
                if changed {
                    tracing::info!(instance = %inst.name, health = ?h, "health changed");
                    me.notify();
                }
            });
            tasks.checker = Some(Checker::start(
                h.clone(),
                ctx,
                sink,
                &self.detach,
                &self.tracker,
            ));
        }
    }

    fn on_process_event(&self, inst: &Instance, event: Event) {
        match event {
            Event::Exited { drift } => self.record(inst, |d| {
                d.pid = None;
                d.file.process = None;
                d.drift = Some(drift);
            }),
            Event::Restarted(rec) => self.record(inst, |d| {
                d.pid = Some(rec.pid);
                d.file.process = Some(rec);
                d.file.restarts = d.file.restarts.saturating_add(1);
            }),
            Event::RestartFailed { drift } => self.record(inst, |d| d.drift = Some(drift)),
            Event::Settled => {
                let had = inst.data().drift.take().is_some();
                if had {
                    self.notify();
                }
            }
        }
    }

    /// Stops the watching tasks of an instance; stops its supervised process if any
    /// and says how it ended.
    async fn unwatch(&self, inst: &Instance) -> Option<String> {
        let (sup, checker) = {
            let mut t = inst.tasks();
            (t.supervisor.take(), t.checker.take())
        };
        if let Some(c) = checker {
            c.stop();
        }
        match sup {
            Some(s) => Some(s.stop().await),
            None => None,
        }
    }

    /// Removes every cached artifact that no release on record (nor an install under
    /// way) refers to.
    fn collect_artifacts(&self) {
        let mut keep: HashSet<String> = self.pinned().keys().cloned().collect();
        for inst in self.instances().values() {
            keep.extend(inst.data().file.releases.values().map(|r| r.sha256.clone()));
        }
        let Ok(entries) = fs::read_dir(self.fetcher.dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".tar.gz")) else {
                continue;
            };
            if sha.starts_with('.') || keep.contains(sha) {
                continue;
            }
            match fs::remove_file(e.path()) {
                Ok(()) => tracing::debug!(sha256 = sha, "removed an artifact no release uses"),
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a cached artifact")
                }
            }
        }
    }

    /// Removes releases beyond `keep_releases` (never the live one, nor `also`), and
    /// release directories without a record.
    fn prune(&self, inst: &Instance, keep: u32, also: &str) {
        let live = release::current_version(&inst.dirs);
        let mut protect = vec![also];
        if let Some(l) = live.as_deref() {
            protect.push(l);
        }
        let (doomed, strays) = {
            let d = inst.data();
            (
                release::to_prune(&d.file.releases, keep, &protect),
                release::unrecorded(&inst.dirs, &d.file.releases, &protect),
            )
        };
        for v in doomed.iter().chain(strays.iter()) {
            match release::remove(&inst.dirs, v) {
                Ok(()) => {
                    tracing::info!(instance = %inst.name, version = %v, "pruned an old release")
                }
                Err(e) => {
                    tracing::warn!(instance = %inst.name, version = %v, error = %e, "cannot prune a release");
                    continue;
                }
            }
        }
        if !doomed.is_empty() {
            self.record(inst, |d| {
                for v in &doomed {
                    d.file.releases.remove(v);
                }
            });
        }
        self.sweep_fingerprints(inst);
    }

    /// Removes the fingerprint files that no release on record names.
    fn sweep_fingerprints(&self, inst: &Instance) {
        let keep: HashSet<String> = inst
            .data()
            .file
            .releases
            .iter()
            .filter_map(|(v, r)| {
                r.fingerprint
                    .as_ref()
                    .map(|f| layout::fingerprint_name(v, f))
            })
            .collect();
        let Ok(entries) = fs::read_dir(inst.dirs.fingerprints()) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| keep.contains(n)) {
                continue;
            }
            if let Err(err) = fs::remove_file(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove an old fingerprint");
            }
        }
    }

    /// Checks every instance's release files (see [`Inner::check_files`]), skipping
    /// instances in a transition.
    fn check_all_files(&self) {
        let instances: Vec<Arc<Instance>> = self.instances().values().cloned().collect();
        for inst in instances {
            if self.detach.is_cancelled() {
                return;
            }
            // A transition under way changes the files; the next round looks.
            let Ok(_op) = inst.op.try_lock() else {
                continue;
            };
            self.check_files(&inst);
        }
    }

    /// Compares the files of the instance's release with its fingerprint and sets the
    /// file drift. The caller holds the instance's `op`. Blocks (it may hash files).
    fn check_files(&self, inst: &Instance) {
        let (state, version, digest) = {
            let d = inst.data();
            let digest = d
                .file
                .releases
                .get(&d.file.version)
                .and_then(|r| r.fingerprint.clone());
            (d.file.state, d.file.version.clone(), digest)
        };
        let drift = match digest {
            Some(digest) if state != LifecycleState::None => {
                self.files_drift(inst, &version, &digest)
            }
            // Nothing installed, or a release installed by an agent that did not
            // fingerprint releases yet: nothing to compare with.
            _ => {
                *inst.files() = None;
                None
            }
        };
        self.set_file_drift(inst, drift);
        self.file_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// What has changed in the files of release `version` (fingerprint `digest`).
    fn files_drift(&self, inst: &Instance, version: &str, digest: &str) -> Option<String> {
        let dir = inst.dirs.release(version);
        if !dir.is_dir() {
            *inst.files() = None;
            return Some(format!("release directory releases/{version} is missing"));
        }
        if check_sha256(digest).ok().as_deref() != Some(digest) {
            return Some(format!(
                "cannot check the release files: state.json records a bad fingerprint \
                 {digest:?} for release {version}"
            ));
        }
        let mut slot = inst.files();
        let loaded = slot
            .as_ref()
            .is_some_and(|w| w.version == version && w.watch.base().sha256 == digest);
        if !loaded {
            match fingerprint::load(&inst.dirs.fingerprint(version, digest), digest) {
                Ok(fp) => {
                    *slot = Some(FileWatch {
                        version: version.to_string(),
                        watch: Watch::new(fp),
                    })
                }
                Err(e) => {
                    *slot = None;
                    return Some(format!("cannot check the release files: {e}"));
                }
            }
        }
        let w = slot.as_mut()?;
        let verdict = w.watch.check(&dir, SystemTime::now());
        self.files_hashed
            .fetch_add(verdict.hashed, Ordering::Relaxed);
        if verdict.settled {
            // Remember the settled stamps, so that a restarted agent need not hash again.
            let path = inst.dirs.fingerprint(version, digest);
            if let Err(e) = fingerprint::save(&path, w.watch.base()) {
                tracing::warn!(path = %path.display(), error = %e, "cannot update a fingerprint");
            }
        }
        verdict.drift()
    }

    /// Sets the file drift; wakes the heartbeat if it changed.
    fn set_file_drift(&self, inst: &Instance, drift: Option<String>) {
        let changed = {
            let mut d = inst.data();
            let changed = d.file_drift != drift;
            if changed {
                match &drift {
                    Some(text) => tracing::warn!(instance = %inst.name, "{text}"),
                    None => {
                        tracing::info!(instance = %inst.name, "release files match their fingerprint again")
                    }
                }
                d.file_drift = drift;
            }
            changed
        };
        if changed {
            self.notify();
        }
    }

    /// Starts checking the files of release `version` against `fp`, just taken.
    fn watch_files(inst: &Instance, version: &str, fp: Fingerprint) {
        *inst.files() = Some(FileWatch {
            version: version.to_string(),
            watch: Watch::new(fp),
        });
    }

    /// At manager start: picks an instance that should be running up again — adopting
    /// its process if it still runs, restarting it otherwise.
    fn resume(self: &Arc<Self>, inst: &Arc<Instance>) {
        let (file, spec) = {
            let d = inst.data();
            (d.file.clone(), d.file.spec.clone())
        };
        if file.state != LifecycleState::Running {
            return;
        }
        let Some(spec) = spec else {
            inst.data().drift = Some("state.json says running but records no spec".into());
            return;
        };
        inst.data().generation += 1;
        match &spec.runtime {
            Runtime::Run { argv } => {
                let run = self.run_spec(inst, &spec, argv);
                let proc = match file.process.filter(ProcessRecord::is_alive) {
                    Some(rec) => {
                        tracing::info!(instance = %inst.name, pid = rec.pid, "adopted a running service");
                        inst.data().pid = Some(rec.pid);
                        Some(Proc::Adopted(rec))
                    }
                    None => match supervisor::spawn(&run) {
                        Ok((child, rec)) => {
                            tracing::warn!(instance = %inst.name, pid = rec.pid, "the service was not running when the agent started; restarted it");
                            self.record(inst, |d| {
                                d.pid = Some(rec.pid);
                                d.file.process = Some(rec.clone());
                                d.file.restarts = d.file.restarts.saturating_add(1);
                                d.drift = Some(
                                    "process was not running when the agent started; restarted"
                                        .into(),
                                );
                            });
                            Some(Proc::Child(child, rec))
                        }
                        Err(e) => {
                            tracing::warn!(instance = %inst.name, error = %e, "cannot restart the service");
                            self.record(inst, |d| {
                                d.file.process = None;
                                d.drift = Some(format!(
                                    "process was not running when the agent started and cannot \
                                     be restarted: {e}; retrying"
                                ));
                            });
                            None
                        }
                    },
                };
                self.watch(inst, &spec, Some((run, proc)));
            }
            Runtime::Scripts { .. } => {
                match &file.process {
                    Some(rec) if rec.is_alive() => inst.data().pid = Some(rec.pid),
                    Some(_) => inst.data().drift = Some(scripts_gone()),
                    None => {}
                }
                self.watch(inst, &spec, None);
            }
        }
    }

    /// Rotates logs; notices script-started processes that are gone.
    fn housekeeping(&self) {
        let instances: Vec<Arc<Instance>> = self.instances().values().cloned().collect();
        for inst in instances {
            for p in [inst.dirs.stdout_log(), inst.dirs.stderr_log()] {
                match logs::rotate_if_needed(&p, self.options.log_limit) {
                    Ok(true) => tracing::debug!(path = %p.display(), "rotated a log"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "cannot rotate a log")
                    }
                }
            }
            let gone = {
                let d = inst.data();
                d.file.state == LifecycleState::Running
                    && d.pid.is_some()
                    && matches!(
                        d.file.spec.as_ref().map(|s| &s.runtime),
                        Some(Runtime::Scripts { .. })
                    )
                    && !d.file.process.as_ref().is_some_and(ProcessRecord::is_alive)
            };
            if gone {
                tracing::warn!(instance = %inst.name, "the processes the start script left are gone");
                let mut d = inst.data();
                d.pid = None;
                d.drift = Some(scripts_gone());
                drop(d);
                self.notify();
            }
        }
    }
}

fn scripts_gone() -> String {
    "the processes the start script left running are gone (scripts are not restarted by \
     the agent)"
        .to_string()
}

/// A record for the process group a start script left behind.
fn group_record(pgid: u32) -> Option<ProcessRecord> {
    let pid = Pid::from_raw(i32::try_from(pgid).ok()?);
    group_alive(pid).then(|| ProcessRecord {
        pid: pgid,
        start_ticks: 0,
        boot_id: state::boot_id(),
        group: true,
    })
}

impl ServiceManager {
    /// Opens the manager of `state_dir`: reads every instance's `state.json`, adopts the
    /// processes of running instances that still run and restarts those that do not.
    /// Must be called within a Tokio runtime.
    pub(crate) fn open(state_dir: &Path, options: Options) -> anyhow::Result<ServiceManager> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = state_dir.join("services");
        let artifacts = state_dir.join("artifacts");
        for d in [&root, &artifacts] {
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let fetcher =
            Fetcher::new(artifacts, options.controller.as_ref()).map_err(anyhow::Error::msg)?;
        let probe_client = health::client().map_err(anyhow::Error::msg)?;
        let (changed, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            root: root.clone(),
            fetcher,
            probe_client,
            options,
            instances: Mutex::new(BTreeMap::new()),
            changed,
            detach: CancellationToken::new(),
            tracker: TaskTracker::new(),
            pinned: Mutex::new(HashMap::new()),
            file_checks: AtomicU64::new(0),
            files_hashed: AtomicU64::new(0),
        });
        for inst in load_instances(&root) {
            let inst = Arc::new(inst);
            let key = {
                let d = inst.data();
                (d.file.service.clone(), d.file.index)
            };
            inner.instances().insert(key, inst.clone());
            inner.resume(&inst);
        }
        let me = Arc::downgrade(&inner);
        let detach = inner.detach.clone();
        inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = detach.cancelled() => return,
                    _ = tokio::time::sleep(HOUSEKEEPING) => {}
                }
                let Some(inner) = me.upgrade() else { return };
                let work = inner.clone();
                let _ = tokio::task::spawn_blocking(move || work.housekeeping()).await;
            }
        });
        let me = Arc::downgrade(&inner);
        let detach = inner.detach.clone();
        let every = inner.options.file_check;
        inner.tracker.spawn(async move {
            loop {
                let Some(inner) = me.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || inner.check_all_files()).await;
                tokio::select! {
                    _ = detach.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
        Ok(ServiceManager { inner })
    }

    /// File checks done so far and the files they hashed.
    #[cfg(test)]
    pub(crate) fn file_stats(&self) -> (u64, u64) {
        (
            self.inner.file_checks.load(Ordering::Relaxed),
            self.inner.files_hashed.load(Ordering::Relaxed),
        )
    }

    /// A receiver that changes whenever some instance's report may have changed.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Every instance on the host (those in state `none` are left out), by service and
    /// index.
    pub(crate) fn reports(&self) -> Vec<InstanceReport> {
        let instances: Vec<Arc<Instance>> = self.inner.instances().values().cloned().collect();
        instances.iter().filter_map(|i| i.report()).collect()
    }

    /// Stops supervising and probing, leaving every service process running (the next
    /// agent adopts them).
    pub(crate) async fn detach(&self) {
        self.inner.detach.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(DETACH_WAIT, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("service tasks still busy at shutdown; leaving them");
        }
    }

    /// Runs transition `t` of `spec`'s instance. Progress goes to `out`; the `Ok` text
    /// says what was done.
    pub(crate) async fn transition(
        &self,
        spec: &InstanceSpec,
        t: Transition,
        out: &Arc<OutputBuffer>,
        cancel: &CancellationToken,
    ) -> Result<String, StepError> {
        validate(spec).map_err(|e| StepError::error(format!("invalid instance spec: {e}")))?;
        let inner = &self.inner;
        let inst = inner.instance(&spec.service, spec.index);
        let _op = inst.op.lock().await;
        let verdict = {
            let d = inst.data();
            let release_ok = inst.dirs.release(&spec.version).is_dir();
            check(t, spec, &inst.name, &d.file, release_ok)
        };
        let result = match verdict.map_err(StepError::error)? {
            Check::Already(text) => Ok(text),
            Check::Proceed => {
                let step = Step {
                    inner,
                    inst: &inst,
                    spec,
                    out,
                    cancel,
                };
                match t {
                    Transition::Install => step.install().await,
                    Transition::Configure => step.configure().await,
                    Transition::Start => step.start().await,
                    Transition::Stop => step.stop().await,
                    Transition::Unconfigure => step.unconfigure().await,
                    Transition::Uninstall => step.uninstall().await,
                }
            }
        };
        match &result {
            Ok(text) => {
                say(out, text);
                tracing::info!(instance = %inst.name, transition = t.as_str(), version = %spec.version, "{text}");
            }
            Err(e) => {
                tracing::warn!(instance = %inst.name, transition = t.as_str(), version = %spec.version, error = %e.message, "transition failed");
            }
        }
        result
    }

    /// Streams the last `tail` lines of an instance's logs into `out` (stderr.log as
    /// stderr), then with `follow` new lines until `cancel`.
    pub(crate) async fn logs(
        &self,
        service: &str,
        index: u32,
        tail: u32,
        follow: bool,
        out: &Arc<OutputBuffer>,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        check_name("service", service)?;
        let dirs = InstanceDirs::new(&self.inner.root, service, index);
        if !dirs.root().is_dir() {
            return Err(StepError::error(format!(
                "no instance {service}#{index} on this host"
            )));
        }
        let end = logs::stream(
            dirs.stdout_log(),
            dirs.stderr_log(),
            tail as usize,
            follow,
            out.clone(),
            cancel.clone(),
        )
        .await
        .map_err(|e| StepError::error(format!("cannot read the logs of {service}#{index}: {e}")))?;
        match end {
            logs::StreamEnd::Done => Ok(()),
            logs::StreamEnd::Cancelled => Err(StepError::cancelled(format!(
                "stopped following the logs of {service}#{index}"
            ))),
        }
    }
}

/// Reads every `services/<service>/<index>/state.json`.
fn load_instances(root: &Path) -> Vec<Instance> {
    let mut found = Vec::new();
    let Ok(services) = fs::read_dir(root) else {
        return found;
    };
    for s in services.flatten() {
        let Some(service) = s.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if check_name("service", &service).is_err() {
            continue;
        }
        let Ok(indexes) = fs::read_dir(s.path()) else {
            continue;
        };
        for i in indexes.flatten() {
            let Some(index) = i.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let dirs = InstanceDirs::new(root, &service, index);
            match state::load(&dirs.state_file()) {
                Ok(Some(file)) if file.service == service && file.index == index => {
                    release::clean_temporaries(&dirs);
                    found.push(Instance::new(dirs, file));
                }
                Ok(Some(_)) => tracing::error!(
                    path = %dirs.state_file().display(),
                    "state.json names another instance; ignoring it"
                ),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    path = %dirs.state_file().display(),
                    error = %e,
                    "cannot read the instance's state; ignoring the instance"
                ),
            }
        }
    }
    found
}

/// One transition being carried out.
struct Step<'a> {
    inner: &'a Arc<Inner>,
    inst: &'a Arc<Instance>,
    spec: &'a InstanceSpec,
    out: &'a Arc<OutputBuffer>,
    cancel: &'a CancellationToken,
}

impl Step<'_> {
    fn release_dir(&self) -> PathBuf {
        self.inst.dirs.release(&self.spec.version)
    }

    fn require_release(&self) -> Result<PathBuf, StepError> {
        let dir = self.release_dir();
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(StepError::error(format!(
                "release {} of {} is missing: {} does not exist",
                self.spec.version,
                self.inst.name,
                dir.display()
            )))
        }
    }

    /// Takes the fingerprint of the release again after an install or configure script
    /// ran in it (what those scripts change is part of the install, not drift), over
    /// the same list of files. A failure is reported in the step's output and leaves
    /// the old fingerprint (the file check then reports what differs).
    async fn retake(&self) -> Option<Fingerprint> {
        let (inst, inner, v) = (self.inst, self.inner, &self.spec.version);
        let old = inst
            .data()
            .file
            .releases
            .get(v)
            .and_then(|r| r.fingerprint.clone())?;
        let (dirs, dir, version) = (inst.dirs.clone(), self.release_dir(), v.clone());
        let taken = tokio::task::spawn_blocking(move || {
            let base = fingerprint::load(&dirs.fingerprint(&version, &old), &old)?;
            let fp = fingerprint::take(&dir, base.files.keys(), SystemTime::now())
                .map_err(|e| format!("cannot fingerprint {}: {e}", dir.display()))?;
            let path = dirs.fingerprint(&version, &fp.sha256);
            fingerprint::save(&path, &fp)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok::<_, String>(fp)
        })
        .await
        .map_err(|e| format!("fingerprinting failed: {e}"))
        .and_then(|r| r);
        let fp = match taken {
            Ok(fp) => fp,
            Err(e) => {
                tracing::warn!(instance = %inst.name, error = %e, "cannot fingerprint the release again after its script");
                say(
                    self.out,
                    &format!("warning: the release's fingerprint was not taken again: {e}"),
                );
                return None;
            }
        };
        let sha = fp.sha256.clone();
        if let Err(e) = inner.commit(inst, |d| {
            if let Some(r) = d.file.releases.get_mut(v) {
                r.fingerprint = Some(sha);
            }
        }) {
            tracing::warn!(instance = %inst.name, error = %e.message, "cannot record the release's new fingerprint");
            return None;
        }
        Some(fp)
    }

    /// Checks the instance's release files now (the step holds `op`).
    async fn check_files(&self) {
        let (inner, inst) = (self.inner.clone(), self.inst.clone());
        let _ = tokio::task::spawn_blocking(move || inner.check_files(&inst)).await;
    }

    /// Runs the snippet of a Scripts runtime picked by `pick`, if there is one.
    async fn script(
        &self,
        name: &str,
        pick: impl FnOnce(&Runtime) -> Option<&String>,
        release_dir: &Path,
    ) -> Result<Option<u32>, StepError> {
        let Some(snippet) = pick(&self.spec.runtime) else {
            return Ok(None);
        };
        say(self.out, &format!("running the {name} script"));
        let ctx = self.inner.script_env(self.inst, self.spec, release_dir);
        script::run(name, snippet, &ctx, self.out, self.cancel)
            .await
            .map(Some)
    }

    async fn install(&self) -> Result<String, StepError> {
        let (spec, inst, inner) = (self.spec, self.inst, self.inner);
        let v = &spec.version;
        let sha = check_sha256(&spec.artifact.sha256)?;
        let dirs = &inst.dirs;
        fs::create_dir_all(dirs.releases())
            .map_err(|e| format!("cannot create {}: {e}", dirs.releases().display()))?;
        release::clean_temporaries(dirs);
        let _pin = inner.pin(&sha);
        // The fingerprint of the files just installed (a reused release keeps its own).
        let mut fresh: Option<Fingerprint> = None;
        let reuse = {
            let d = inst.data();
            d.file.releases.get(v).is_some_and(|r| {
                r.spec_hash == spec.spec_hash && r.sha256 == sha && self.release_dir().is_dir()
            })
        };
        if reuse {
            say(
                self.out,
                &format!("release {v} is already on disk; reusing it"),
            );
        } else {
            let (archive, fetched) = inner
                .fetcher
                .fetch(&spec.artifact, self.cancel)
                .await
                .map_err(StepError::error)?;
            say(
                self.out,
                &if fetched {
                    format!("fetched artifact {} (sha256 {sha})", spec.artifact.url)
                } else {
                    format!("artifact sha256 {sha} is in the cache")
                },
            );
            let staged = release::staging_dir(dirs)
                .map_err(|e| format!("cannot create a staging directory: {e}"))?;
            let (config, s) = (spec.config.clone(), staged.clone());
            let unpacked = tokio::task::spawn_blocking(move || {
                let n = artifact::unpack(&archive, &s)?;
                release::write_config(&s, &config)?;
                let fp = fingerprint::take_all(&s, SystemTime::now())
                    .map_err(|e| format!("cannot fingerprint the release: {e}"))?;
                Ok::<_, String>((n, fp))
            })
            .await
            .map_err(|e| format!("unpacking failed: {e}"))
            .and_then(|r| r);
            let (entries, fp) = match unpacked {
                Ok(done) => done,
                Err(e) => {
                    let _ = fs::remove_dir_all(&staged);
                    return Err(StepError::error(format!(
                        "cannot install {} {v}: {e}",
                        inst.name
                    )));
                }
            };
            say(
                self.out,
                &format!(
                    "unpacked {entries} entries and wrote {} config file(s); fingerprint of \
                     its {} files: {}",
                    spec.config.len(),
                    fp.files.len(),
                    fp.sha256
                ),
            );
            // An interrupted install must leave no record, so its tree is never reused.
            inner.commit(inst, |d| {
                d.file.releases.remove(v);
            })?;
            if let Err(e) = release::place(dirs, v, &staged) {
                let _ = fs::remove_dir_all(&staged);
                return Err(StepError::error(format!(
                    "cannot move the release into {}: {e}",
                    self.release_dir().display()
                )));
            }
            // The file list goes beside state.json before the record that names it.
            let fp_path = dirs.fingerprint(v, &fp.sha256);
            fingerprint::save(&fp_path, &fp)
                .map_err(|e| format!("cannot write {}: {e}", fp_path.display()))?;
            inner.commit(inst, |d| {
                d.file.releases.insert(
                    v.clone(),
                    ReleaseRecord {
                        spec_hash: spec.spec_hash.clone(),
                        sha256: sha.clone(),
                        installed_ms: now_ms(),
                        fingerprint: Some(fp.sha256.clone()),
                    },
                );
            })?;
            fresh = Some(fp);
        }
        let release_dir = self.release_dir();
        let ran = match self
            .script(
                "install",
                |r| match r {
                    Runtime::Scripts { install, .. } => install.as_ref(),
                    Runtime::Run { .. } => None,
                },
                &release_dir,
            )
            .await
        {
            Ok(ran) => ran.is_some(),
            Err(e) => {
                let live = release::current_version(dirs);
                if !reuse && live.as_deref() != Some(v.as_str()) {
                    let _ = release::remove(dirs, v);
                    inner.record(inst, |d| {
                        d.file.releases.remove(v);
                    });
                }
                return Err(e);
            }
        };
        if ran && let Some(fp) = self.retake().await {
            fresh = Some(fp);
        }
        let baselined = fresh.is_some();
        if let Some(fp) = fresh {
            Inner::watch_files(inst, v, fp);
        }
        inner.commit(inst, |d| {
            d.file.state = LifecycleState::Installed;
            d.file.version = v.clone();
            d.file.spec_hash = spec.spec_hash.clone();
            d.file.spec = Some(spec.clone());
            d.file.process = None;
            d.file.restarts = 0;
            d.pid = None;
            d.health = Health::Unknown;
            d.drift = None;
            d.file_drift = None;
        })?;
        if !baselined {
            // A reused release: its files may have changed while it was not live.
            self.check_files().await;
        }
        inner.prune(inst, spec.keep_releases, v);
        inner.collect_artifacts();
        Ok(format!(
            "installed {} {v} in {}",
            inst.name,
            release_dir.display()
        ))
    }

    async fn configure(&self) -> Result<String, StepError> {
        let (spec, inst, inner) = (self.spec, self.inst, self.inner);
        let v = &spec.version;
        let release_dir = self.require_release()?;
        let before = release::current_version(&inst.dirs);
        release::switch_current(&inst.dirs, v).map_err(|e| {
            format!(
                "cannot switch {} to {v}: {e}",
                inst.dirs.current().display()
            )
        })?;
        say(self.out, &format!("current -> releases/{v}"));
        let ran = match self
            .script(
                "configure",
                |r| match r {
                    Runtime::Scripts { configure, .. } => configure.as_ref(),
                    Runtime::Run { .. } => None,
                },
                &release_dir,
            )
            .await
        {
            Ok(ran) => ran.is_some(),
            Err(e) => {
                let restored = match &before {
                    Some(b) => release::switch_current(&inst.dirs, b),
                    None => release::remove_current(&inst.dirs),
                };
                if let Err(r) = restored {
                    tracing::error!(instance = %inst.name, error = %r, "cannot switch current back");
                }
                return Err(e);
            }
        };
        let fresh = if ran { self.retake().await } else { None };
        let retaken = fresh.is_some();
        if let Some(fp) = fresh {
            Inner::watch_files(inst, v, fp);
        }
        inner.commit(inst, |d| {
            d.file.state = LifecycleState::Stopped;
            if retaken {
                d.file_drift = None;
            }
        })?;
        inner.prune(inst, spec.keep_releases, v);
        inner.collect_artifacts();
        Ok(format!(
            "configured {} {v}: current is releases/{v}",
            inst.name
        ))
    }

    async fn start(&self) -> Result<String, StepError> {
        let (spec, inst, inner) = (self.spec, self.inst, self.inner);
        let v = &spec.version;
        let release_dir = self.require_release()?;
        match &spec.runtime {
            Runtime::Run { argv } => {
                // Running first: a crash right after the spawn restarts (not orphans) it.
                inner.commit(inst, |d| {
                    d.file.state = LifecycleState::Running;
                    d.file.process = None;
                    d.file.restarts = 0;
                    d.file.spec = Some(spec.clone());
                    d.health = Health::Unknown;
                    d.drift = None;
                    d.generation += 1;
                })?;
                let run = inner.run_spec(inst, spec, argv);
                match supervisor::spawn(&run) {
                    Err(e) => {
                        inner.record(inst, |d| d.file.state = LifecycleState::Stopped);
                        Err(StepError::error(format!(
                            "cannot start {} {v}: {e}",
                            inst.name
                        )))
                    }
                    Ok((child, rec)) => {
                        let pid = rec.pid;
                        inner.commit(inst, |d| {
                            d.pid = Some(pid);
                            d.file.process = Some(rec.clone());
                        })?;
                        inner.watch(inst, spec, Some((run, Some(Proc::Child(child, rec)))));
                        Ok(format!("started {} {v}: pid {pid}", inst.name))
                    }
                }
            }
            Runtime::Scripts { start, .. } => {
                say(self.out, "running the start script");
                let ctx = inner.script_env(inst, spec, &release_dir);
                let pgid = script::run("start", start, &ctx, self.out, self.cancel).await?;
                let rec = group_record(pgid);
                inner.commit(inst, |d| {
                    d.file.state = LifecycleState::Running;
                    d.file.process = rec.clone();
                    d.file.restarts = 0;
                    d.file.spec = Some(spec.clone());
                    d.pid = rec.as_ref().map(|r| r.pid);
                    d.health = Health::Unknown;
                    d.drift = None;
                    d.generation += 1;
                })?;
                inner.watch(inst, spec, None);
                Ok(match rec {
                    Some(r) => format!(
                        "started {} {v}: the start script left process group {} running",
                        inst.name, r.pid
                    ),
                    None => format!("started {} {v}: the start script succeeded", inst.name),
                })
            }
        }
    }

    async fn stop(&self) -> Result<String, StepError> {
        let (spec, inst, inner) = (self.spec, self.inst, self.inner);
        let v = &spec.version;
        // Stop what runs, as it was started (the recorded spec), whatever the command says.
        let running = inst.data().file.spec.clone();
        let running = running.as_ref().unwrap_or(spec);
        let how = match &running.runtime {
            Runtime::Run { .. } => match inner.unwatch(inst).await {
                Some(how) => how,
                None => {
                    // Not supervised (should not happen): stop the recorded process.
                    let rec = inst.data().file.process.clone();
                    match rec.filter(ProcessRecord::is_alive) {
                        Some(r) => {
                            supervisor::terminate(
                                &mut Proc::Adopted(r),
                                inner.options.timing.stop_grace,
                            )
                            .await
                        }
                        None => "process was not running".to_string(),
                    }
                }
            },
            Runtime::Scripts { stop, .. } => {
                let release_dir = self.require_release()?;
                say(self.out, "running the stop script");
                let ctx = inner.script_env(inst, running, &release_dir);
                script::run("stop", stop, &ctx, self.out, self.cancel).await?;
                inner.unwatch(inst).await;
                "the stop script succeeded".to_string()
            }
        };
        inner.commit(inst, |d| {
            d.file.state = LifecycleState::Stopped;
            d.file.process = None;
            d.pid = None;
            d.health = Health::Unknown;
            d.drift = None;
            d.generation += 1;
        })?;
        Ok(format!("stopped {} {v}: {how}", inst.name))
    }

    async fn unconfigure(&self) -> Result<String, StepError> {
        let (spec, inst, inner) = (self.spec, self.inst, self.inner);
        let release_dir = self.require_release()?;
        self.script(
            "unconfigure",
            |r| match r {
                Runtime::Scripts { unconfigure, .. } => unconfigure.as_ref(),
                Runtime::Run { .. } => None,
            },
            &release_dir,
        )
        .await?;
        inner.commit(inst, |d| d.file.state = LifecycleState::Installed)?;
        Ok(format!("unconfigured {} {}", inst.name, spec.version))
    }

    async fn uninstall(&self) -> Result<String, StepError> {
        let (spec, inst, inner) = (self.spec, self.inst, self.inner);
        let v = &spec.version;
        let release_dir = self.release_dir();
        if release_dir.is_dir() {
            self.script(
                "uninstall",
                |r| match r {
                    Runtime::Scripts { uninstall, .. } => uninstall.as_ref(),
                    Runtime::Run { .. } => None,
                },
                &release_dir,
            )
            .await?;
        }
        if release::current_version(&inst.dirs).as_deref() == Some(v.as_str()) {
            release::remove_current(&inst.dirs)
                .map_err(|e| format!("cannot remove {}: {e}", inst.dirs.current().display()))?;
        }
        inner.commit(inst, |d| {
            d.file.releases.remove(v);
        })?;
        release::remove(&inst.dirs, v)
            .map_err(|e| format!("cannot remove {}: {e}", release_dir.display()))
            .map_err(|e: String| StepError::error(e).with_context("uninstall"))?;
        inner.commit(inst, |d| {
            let (service, index) = (d.file.service.clone(), d.file.index);
            let releases = std::mem::take(&mut d.file.releases);
            d.file = StateFile::none(&service, index);
            d.file.releases = releases;
            d.pid = None;
            d.health = Health::Unknown;
            d.drift = None;
            d.file_drift = None;
        })?;
        *inst.files() = None;
        inner.sweep_fingerprints(inst);
        inner.collect_artifacts();
        Ok(format!("uninstalled {} {v}", inst.name))
    }
}
