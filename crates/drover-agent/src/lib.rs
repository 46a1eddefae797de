//! The drover agent: the process on every host that connects out to the controller and
//! does what it is told.
//!
//! [`run`] enrolls once (or reuses the identity in the state dir), then runs two loops
//! side by side until it is shut down: heartbeats (facts and labels on every reconnect,
//! then the ids of running commands) and a long poll for work. Every command runs in a
//! task of its own, so a running command never blocks polling, and cancels arrive through
//! the poll. Each command id runs at most once: the state dir's journal answers a repeated
//! delivery with the recorded result.
//!
//! Everything the agent needs is in its state dir or in each answer from the controller,
//! so several controllers may sit behind one load balancer.

#![warn(missing_docs)]

mod backoff;
mod channel;
mod credential;
mod facts;
mod fsutil;
mod journal;
pub mod local_run;
mod output;
mod process;
mod report;
mod services;
mod write_file;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use drover_proto::agent::{
    AgentCommand, CommandOutcome, CommandResult, CommandSpec, EnrollRequest, Facts, Heartbeat,
};
use drover_proto::deploy::InstanceReport;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use facts::gather_facts;

use backoff::Backoff;
use channel::{Channel, ChannelError, Link, RawPoll};
use credential::Credential;
use journal::{Entry, Journal};
use output::{MAX_UNSENT, OutputBuffer};
use report::Delivery;
use services::{ControllerAccess, ServiceManager};

/// Heartbeat interval before the controller said otherwise.
const FIRST_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest and longest heartbeat interval accepted from the controller.
const HEARTBEAT_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));
/// How often facts are gathered again to see whether they changed.
const FACTS_REFRESH: Duration = Duration::from_secs(60);
/// A poll answered empty faster than this is followed by a pause of this length, so a
/// controller that does not hold polls open is not hammered.
const MIN_EMPTY_POLL: Duration = Duration::from_millis(250);
/// How long shutdown waits for commands to be killed and reported.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// The journal is pruned after this many new results.
const PRUNE_EVERY: u64 = 64;
/// After an instance changed, the heartbeat waits this long for more changes.
const CHANGE_DEBOUNCE: Duration = Duration::from_millis(10);
/// Shortest time between two heartbeats woken by changes.
const MIN_HEARTBEAT_GAP: Duration = Duration::from_millis(25);

/// The long-poll wait the CLI asks of the controller unless told otherwise.
pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(25);

/// How to run an agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// Base URL of the controller, e.g. `http://127.0.0.1:7070` (without `/api/v1`).
    pub controller: String,
    /// Join token, needed only if the state dir holds no credential yet.
    pub join_token: Option<String>,
    /// Host name wanted at enrollment (the CLI defaults it to the hostname).
    pub name: String,
    /// Labels of this host, sent at enrollment and with every full heartbeat.
    pub labels: BTreeMap<String, String>,
    /// Directory for the credential and the command journal (created 0700 if missing).
    pub state_dir: PathBuf,
    /// How long the controller may hold a poll open ([`DEFAULT_POLL_WAIT`] unless there
    /// is a reason to change it).
    pub poll_wait: Duration,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("controller", &self.controller)
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("state_dir", &self.state_dir)
            .field("poll_wait", &self.poll_wait)
            .finish()
    }
}

/// Runs the agent until `shutdown` is cancelled.
///
/// Returns an error only for problems the agent cannot get past by itself: the state dir
/// is unusable, there is no credential and no join token, or the controller refused the
/// join token (401) or the enrollment request. Losing the controller is not such a
/// problem: the agent retries with backoff for as long as it runs.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    fsutil::ensure_private_dir(&config.state_dir).with_context(|| {
        format!(
            "state dir {} is unusable",
            config.state_dir.as_path().display()
        )
    })?;
    let journal = Journal::open(&config.state_dir).with_context(|| {
        format!(
            "state dir {} is unusable: cannot create its commands/ directory",
            config.state_dir.display()
        )
    })?;
    let link = Arc::new(Link::new());
    let channel = Channel::new(&config.controller, link.clone())?;

    let identity = match credential::load(&config.state_dir)? {
        Some(c) => {
            if c.name != config.name {
                tracing::warn!(
                    stored = %c.name,
                    wanted = %config.name,
                    "the state dir holds the identity of another host name; keeping the stored \
                     identity (remove credential.json to enroll under the new name)"
                );
            }
            c
        }
        None => match enroll(&config, &channel, &shutdown).await? {
            Some(c) => c,
            None => return Ok(()),
        },
    };
    tracing::info!(host_id = %identity.host_id, name = %identity.name, controller = %config.controller, "agent running");

    // Services first: those that should run are adopted or restarted at once, whether
    // or not the controller is reachable.
    let services = ServiceManager::open(
        &config.state_dir,
        services::Options {
            controller: Some(ControllerAccess {
                base: config.controller.clone(),
                credential: identity.credential.clone(),
            }),
            ..services::Options::default()
        },
    )
    .with_context(|| {
        format!(
            "state dir {} is unusable: cannot open its services",
            config.state_dir.display()
        )
    })?;

    let agent = Arc::new(Agent {
        channel: Arc::new(channel.with_credential(&identity.credential)),
        journal,
        host_id: identity.host_id.clone(),
        host_name: identity.name.clone(),
        labels: config.labels.clone(),
        poll_wait: config.poll_wait,
        active: Mutex::new(HashMap::new()),
        recorded: std::sync::atomic::AtomicU64::new(0),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        services,
    });
    agent.prune_journal().await;

    let heartbeats = tokio::spawn(agent.clone().heartbeat_loop());
    agent.clone().poll_loop().await;

    // Shutting down: command tasks see the token, kill their groups, record and report.
    agent.tracker.close();
    if tokio::time::timeout(SHUTDOWN_WAIT, agent.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("commands still reporting at shutdown; leaving them");
        for a in agent.active().values() {
            if let Some(h) = &a.abort {
                h.abort();
            }
        }
    }
    heartbeats.abort();
    let _ = heartbeats.await;
    // Services outlive the agent (docs/decisions/0006): stop watching, leave them running.
    agent.services.detach().await;
    tracing::info!("agent stopped");
    Ok(())
}

/// Enrolls with the join token; `Ok(None)` if shut down meanwhile.
async fn enroll(
    config: &AgentConfig,
    channel: &Channel,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Credential>> {
    let Some(token) = config.join_token.as_deref().filter(|t| !t.is_empty()) else {
        anyhow::bail!(
            "no credential in {} and no join token: give the agent a join token to enroll",
            credential::path(&config.state_dir).display()
        );
    };
    let facts = gather_facts_async().await;
    let req = EnrollRequest {
        name: config.name.clone(),
        labels: config.labels.clone(),
        facts,
    };
    let mut backoff = Backoff::new();
    let resp = loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = channel.enroll(token, &req) => r,
        };
        match attempt {
            Ok(r) => break r,
            Err(ChannelError::Unauthorized(detail)) => {
                anyhow::bail!(
                    "the controller refused the join token (401): {detail}; \
                     ask an operator for a valid join token"
                );
            }
            Err(e @ ChannelError::Rejected { .. }) => {
                anyhow::bail!("enrollment as {:?} failed: {e}", config.name);
            }
            Err(e) => {
                if backoff.ceiling() == backoff::BASE {
                    tracing::warn!(error = %e, "cannot enroll yet; retrying with backoff");
                } else {
                    tracing::debug!(error = %e, "enrollment failed; retrying");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    };
    let cred = Credential {
        host_id: resp.host_id,
        name: resp.name,
        credential: resp.credential,
    };
    credential::save(&config.state_dir, &cred).with_context(|| {
        format!(
            "enrolled as host {} but cannot keep the credential; the state dir is unusable",
            cred.host_id
        )
    })?;
    tracing::info!(host_id = %cred.host_id, name = %cred.name, "enrolled");
    Ok(Some(cred))
}

async fn gather_facts_async() -> Facts {
    tokio::task::spawn_blocking(gather_facts)
        .await
        .unwrap_or_default()
}

/// A command id the agent is busy with (running it, or reporting it).
struct Active {
    cancel: CancellationToken,
    abort: Option<AbortHandle>,
}

/// The running agent, shared by its loops and command tasks.
struct Agent {
    channel: Arc<Channel>,
    journal: Journal,
    host_id: String,
    /// The host name this agent enrolled as (given to commands as `DROVER_HOST`).
    host_name: String,
    labels: BTreeMap<String, String>,
    poll_wait: Duration,
    active: Mutex<HashMap<String, Active>>,
    recorded: std::sync::atomic::AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// The service instances on this host.
    services: ServiceManager,
}

impl Agent {
    fn active(&self) -> MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.active().keys().cloned().collect();
        ids.sort();
        ids
    }

    async fn prune_journal(&self) {
        let journal = self.journal.clone();
        let exclude: HashSet<String> = self.active().keys().cloned().collect();
        let pruned =
            tokio::task::spawn_blocking(move || journal.prune(journal::KEEP, &exclude)).await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(removed = n, "pruned the command journal"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune the command journal"),
            Err(e) => tracing::warn!(error = %e, "journal pruning failed"),
        }
    }

    /// Records `result` for `id`; returns whether it was written.
    fn record(&self, id: &str, result: &CommandResult) -> bool {
        match self.journal.record(id, result) {
            Ok(()) => {
                self.recorded
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::error!(command = id, error = %e, "cannot record the command's result");
                false
            }
        }
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut interval = FIRST_HEARTBEAT_INTERVAL;
        let mut backoff = Backoff::new();
        let mut facts = gather_facts_async().await;
        let mut gathered_at = Instant::now();
        let mut sent_facts: Option<Facts> = None;
        let mut full_epoch: Option<u64> = None;
        let mut warned_host = false;
        let mut changes = self.services.subscribe();
        let mut watching = true;
        let mut sent_instances: Option<Vec<InstanceReport>> = None;
        loop {
            if gathered_at.elapsed() >= FACTS_REFRESH {
                facts = gather_facts_async().await;
                gathered_at = Instant::now();
            }
            let full = full_epoch != Some(self.channel.link().epoch())
                || sent_facts.as_ref() != Some(&facts);
            changes.borrow_and_update();
            let reports = self.services.reports();
            let instances = (full || sent_instances.as_ref() != Some(&reports)).then_some(reports);
            let hb = Heartbeat {
                facts: full.then(|| facts.clone()),
                labels: full.then(|| self.labels.clone()),
                running: self.running_ids(),
                instances,
            };
            let sent_at = Instant::now();
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = self.channel.heartbeat(&hb) => r,
            };
            let wait = match result {
                Ok(ack) => {
                    backoff.reset();
                    if let Some(i) = hb.instances {
                        sent_instances = Some(i);
                    }
                    if full {
                        sent_facts = Some(facts.clone());
                        full_epoch = Some(self.channel.link().epoch());
                    }
                    if ack.host_id != self.host_id && !warned_host {
                        tracing::warn!(
                            stored = %self.host_id,
                            controller = %ack.host_id,
                            "the controller knows this credential under another host id"
                        );
                        warned_host = true;
                    }
                    interval = Duration::from_millis(ack.interval_ms)
                        .clamp(HEARTBEAT_INTERVAL_RANGE.0, HEARTBEAT_INTERVAL_RANGE.1);
                    interval
                }
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat failed");
                    full_epoch = None;
                    sent_instances = None;
                    match e {
                        // Refused: only the capped backoff, whatever the interval.
                        ChannelError::Unauthorized(_) => backoff.next_delay(),
                        // Away: no slower than the usual interval.
                        _ => backoff.next_delay().min(interval),
                    }
                }
            };
            // An instance that changes wakes the heartbeat (unless the controller is
            // away: then the backoff rules).
            let woken = full_epoch.is_some() && watching;
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                r = changes.changed(), if woken => {
                    if r.is_err() {
                        watching = false;
                    }
                    let earliest = (sent_at + MIN_HEARTBEAT_GAP).max(Instant::now() + CHANGE_DEBOUNCE);
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep_until(earliest) => {}
                    }
                }
            }
        }
    }

    async fn poll_loop(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        loop {
            let asked = Instant::now();
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = self.channel.poll(self.poll_wait) => r,
            };
            let pause = match result {
                Ok(work) => {
                    backoff.reset();
                    let empty = work.is_empty();
                    self.handle(work).await;
                    let quick = asked.elapsed() < MIN_EMPTY_POLL;
                    (empty && quick).then_some(MIN_EMPTY_POLL)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "poll failed");
                    Some(backoff.next_delay())
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    async fn handle(self: &Arc<Self>, work: RawPoll) {
        let cancel: HashSet<String> = work
            .cancel
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for id in &cancel {
            if let Some(a) = self.active().get(id) {
                tracing::info!(command = %id, "cancel requested");
                a.cancel.cancel();
            }
        }
        for raw in work.commands {
            self.dispatch(raw, &cancel);
        }
        let recorded = self.recorded.load(std::sync::atomic::Ordering::Relaxed);
        if recorded >= PRUNE_EVERY {
            self.recorded
                .fetch_sub(recorded, std::sync::atomic::Ordering::Relaxed);
            self.prune_journal().await;
        }
    }

    /// Decides what to do with one delivered command.
    fn dispatch(self: &Arc<Self>, raw: serde_json::Value, cancel: &HashSet<String>) {
        let parsed = serde_json::from_value::<AgentCommand>(raw.clone());
        let id = match &parsed {
            Ok(c) => c.id.clone(),
            Err(e) => match raw.get("id").and_then(|v| v.as_str()) {
                Some(id) => id.to_string(),
                None => {
                    tracing::error!(error = %e, "the controller sent a command without an id; ignoring it");
                    return;
                }
            },
        };
        if let Err(why) = Journal::check_id(&id) {
            tracing::error!(command = %id, reason = %why, "refusing a command whose id cannot be journaled");
            self.spawn_report(id, error_result(why), false);
            return;
        }
        if self.active().contains_key(&id) {
            tracing::debug!(command = %id, "delivered again while in progress; ignoring");
            return;
        }
        match self.journal.lookup(&id) {
            Err(e) => {
                tracing::error!(command = %id, error = %e, "cannot read the command journal; not running it");
                let result = error_result(format!("cannot read the agent's command journal: {e}"));
                self.spawn_report(id, result, false);
            }
            Ok(Entry::Finished(result)) => {
                tracing::info!(command = %id, "delivered again; sending the recorded result");
                self.spawn_report(id, result, false);
            }
            Ok(Entry::Started) => {
                tracing::warn!(command = %id, "the agent stopped while this command ran; reporting it as an error");
                let result = match self.journal.resolve_interrupted(&id) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(command = %id, error = %e, "cannot record the command's result");
                        Journal::interrupted_result()
                    }
                };
                self.spawn_report(id, result, false);
            }
            Ok(Entry::New) => match parsed {
                Err(e) => {
                    tracing::error!(command = %id, error = %e, "cannot read the command");
                    let result = error_result(format!("the agent cannot read this command: {e}"));
                    self.spawn_report(id, result, true);
                }
                Ok(_) if cancel.contains(&id) => {
                    tracing::info!(command = %id, "cancelled before it started");
                    let result = CommandResult {
                        outcome: CommandOutcome::Cancelled,
                        exit_code: None,
                        signal: None,
                        duration_ms: 0,
                        error: None,
                        chunks: 0,
                    };
                    self.spawn_report(id, result, true);
                }
                Ok(cmd) => self.start(cmd),
            },
        }
    }

    /// Registers `id` as active and spawns `task` for it (which must deregister itself).
    fn spawn_tracked<F>(&self, id: String, cancel: CancellationToken, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut active = self.active();
        let handle = self.tracker.spawn(task);
        active.insert(
            id,
            Active {
                cancel,
                abort: Some(handle.abort_handle()),
            },
        );
    }

    /// Sends `Finished{result}` for `id` (recording it first if `record`).
    fn spawn_report(self: &Arc<Self>, id: String, result: CommandResult, record: bool) {
        if record {
            self.record(&id, &result);
        }
        let agent = self.clone();
        let task_id = id.clone();
        self.spawn_tracked(id, CancellationToken::new(), async move {
            report::send_finished(&*agent.channel, &task_id, result, &agent.shutdown).await;
            agent.active().remove(&task_id);
        });
    }

    fn start(self: &Arc<Self>, cmd: AgentCommand) {
        let AgentCommand {
            id,
            execution_id,
            spec,
        } = cmd;
        let (argv, timeout) = match spec {
            CommandSpec::Exec { argv, timeout_ms } => (argv, timeout_ms.map(Duration::from_millis)),
            write @ CommandSpec::WriteFile { .. } => {
                if let Some(req) = write_file::Request::from_spec(write) {
                    self.start_write_file(id, execution_id, req);
                }
                return;
            }
            other => {
                self.start_service_command(id, execution_id, other);
                return;
            }
        };
        if let Err(e) = self.journal.mark_started(&id) {
            tracing::error!(command = %id, error = %e, "cannot journal the command; not running it");
            let result = error_result(format!("cannot write the agent's command journal: {e}"));
            self.spawn_report(id, result, false);
            return;
        }
        tracing::info!(
            command = %id,
            execution = %execution_id,
            program = argv.first().map(String::as_str).unwrap_or(""),
            "running command"
        );
        let cancel = CancellationToken::new();
        let agent = self.clone();
        let task_id = id.clone();
        let task_cancel = cancel.clone();
        self.spawn_tracked(id, cancel, async move {
            let env = agent.command_env(execution_id, &task_id);
            agent
                .run_command(&task_id, argv, &env, timeout, task_cancel)
                .await;
            agent.active().remove(&task_id);
        });
    }

    /// The variables a command's processes get on top of the agent's environment.
    fn command_env(&self, execution_id: String, id: &str) -> Vec<(String, String)> {
        vec![
            ("DROVER_HOST".to_string(), self.host_name.clone()),
            ("DROVER_HOST_ID".to_string(), self.host_id.clone()),
            ("DROVER_EXECUTION_ID".to_string(), execution_id),
            ("DROVER_COMMAND_ID".to_string(), id.to_string()),
        ]
    }

    async fn run_command(
        self: &Arc<Self>,
        id: &str,
        argv: Vec<String>,
        env: &[(String, String)],
        timeout: Option<Duration>,
        cancel: CancellationToken,
    ) {
        let (output, started_tx, reporting) = self.open_report(id);
        let exit = process::execute(
            &argv,
            env,
            timeout,
            &output,
            &cancel,
            &self.shutdown,
            started_tx,
        )
        .await;
        let result = exit.into_result(output.next_seq());
        self.conclude(id, result, reporting).await;
    }

    /// Starts installing a generated file ([`CommandSpec::WriteFile`]) in a task of its
    /// own; at most once, like every command.
    fn start_write_file(
        self: &Arc<Self>,
        id: String,
        execution_id: String,
        req: write_file::Request,
    ) {
        if let Err(e) = self.journal.mark_started(&id) {
            tracing::error!(command = %id, error = %e, "cannot journal the command; not running it");
            let result = error_result(format!("cannot write the agent's command journal: {e}"));
            self.spawn_report(id, result, false);
            return;
        }
        tracing::info!(
            command = %id,
            execution = %execution_id,
            generator = %req.generator,
            path = %req.path,
            "installing a generated file"
        );
        let cancel = CancellationToken::new();
        let agent = self.clone();
        let task_id = id.clone();
        let task_cancel = cancel.clone();
        self.spawn_tracked(id, cancel, async move {
            let env = agent.command_env(execution_id, &task_id);
            agent
                .run_write_file(&task_id, &req, &env, task_cancel)
                .await;
            agent.active().remove(&task_id);
        });
    }

    async fn run_write_file(
        self: &Arc<Self>,
        id: &str,
        req: &write_file::Request,
        env: &[(String, String)],
        cancel: CancellationToken,
    ) {
        let (output, started_tx, reporting) = self.open_report(id);
        // The agent does the work itself (check and reload are children of the step).
        let _ = started_tx.send(None);
        let exit = write_file::run(req, env, &output, &cancel, &self.shutdown).await;
        let result = exit.into_result(output.next_seq());
        self.conclude(id, result, reporting).await;
    }

    /// Starts a deploy command (a transition or a log stream), run by the service
    /// manager in a task of its own.
    fn start_service_command(
        self: &Arc<Self>,
        id: String,
        execution_id: String,
        spec: CommandSpec,
    ) {
        if let Err(e) = self.journal.mark_started(&id) {
            tracing::error!(command = %id, error = %e, "cannot journal the command; not running it");
            let result = error_result(format!("cannot write the agent's command journal: {e}"));
            self.spawn_report(id, result, false);
            return;
        }
        let what = match &spec {
            CommandSpec::Transition {
                instance,
                transition,
            } => format!(
                "{} {}#{} {}",
                transition.as_str(),
                instance.service,
                instance.index,
                instance.version
            ),
            CommandSpec::Logs { service, index, .. } => format!("logs {service}#{index}"),
            CommandSpec::Exec { .. } => "exec".to_string(),
            CommandSpec::WriteFile { path, .. } => format!("write-file {path}"),
        };
        tracing::info!(command = %id, execution = %execution_id, step = %what, "running deploy command");
        let cancel = CancellationToken::new();
        let agent = self.clone();
        let task_id = id.clone();
        let task_cancel = cancel.clone();
        self.spawn_tracked(id, cancel, async move {
            agent.run_service_command(&task_id, spec, task_cancel).await;
            agent.active().remove(&task_id);
        });
    }

    async fn run_service_command(
        self: &Arc<Self>,
        id: &str,
        spec: CommandSpec,
        cancel: CancellationToken,
    ) {
        let (output, started_tx, reporting) = self.open_report(id);
        // The agent does the work itself: no process of its own to name.
        let _ = started_tx.send(None);
        // Cancelled by the controller or by the agent's shutdown.
        let stop = self.shutdown.child_token();
        let forward = {
            let (cancel, stop) = (cancel.clone(), stop.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                stop.cancel();
            })
        };
        let t0 = Instant::now();
        let done = match spec {
            CommandSpec::Transition {
                instance,
                transition,
            } => self
                .services
                .transition(&instance, transition, &output, &stop)
                .await
                .map(|_| ()),
            CommandSpec::Logs {
                service,
                index,
                tail,
                follow,
            } => {
                self.services
                    .logs(&service, index, tail, follow, &output, &stop)
                    .await
            }
            CommandSpec::Exec { .. } | CommandSpec::WriteFile { .. } => Err(
                services::StepError::error("not a deploy command".to_string()),
            ),
        };
        forward.abort();
        output.close();
        let duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let result = match done {
            Ok(()) => CommandResult {
                outcome: CommandOutcome::Ok,
                exit_code: None,
                signal: None,
                duration_ms,
                error: None,
                chunks: output.next_seq(),
            },
            Err(e) => CommandResult {
                outcome: e.outcome,
                exit_code: e.exit_code,
                signal: e.signal,
                duration_ms,
                error: Some(e.message),
                chunks: output.next_seq(),
            },
        };
        self.conclude(id, result, reporting).await;
    }

    /// Starts the ordered sender of command `id`'s output and result. Returns the
    /// output buffer, where to say the command started (its pid, if any), and what
    /// [`conclude`](Self::conclude) needs.
    fn open_report(
        &self,
        id: &str,
    ) -> (Arc<OutputBuffer>, oneshot::Sender<Option<u32>>, Reporting) {
        let output = OutputBuffer::new(MAX_UNSENT);
        let (started_tx, started_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        let sender = tokio::spawn(report::send_in_order(
            self.channel.clone(),
            id.to_string(),
            started_rx,
            output.clone(),
            result_rx,
            self.shutdown.clone(),
        ));
        (output, started_tx, (result_tx, sender))
    }

    /// Records `result`, hands it to the command's ordered sender and waits for the
    /// delivery.
    async fn conclude(&self, id: &str, result: CommandResult, (result_tx, sender): Reporting) {
        tracing::info!(
            command = id,
            outcome = result.outcome.as_str(),
            exit_code = result.exit_code,
            signal = result.signal,
            duration_ms = result.duration_ms,
            error = result.error.as_deref(),
            "command over"
        );
        self.record(id, &result);
        let _ = result_tx.send(result);
        match sender.await {
            Ok(Delivery::Accepted | Delivery::Refused) => {}
            Ok(Delivery::Abandoned) => {
                tracing::warn!(
                    command = id,
                    "result not reported; the controller gets it when it asks again"
                );
            }
            Err(e) => tracing::warn!(command = id, error = %e, "reporting task failed"),
        }
    }
}

/// Where a command's result goes, and the task that delivers it in order.
type Reporting = (
    oneshot::Sender<CommandResult>,
    tokio::task::JoinHandle<Delivery>,
);

fn error_result(error: String) -> CommandResult {
    CommandResult {
        outcome: CommandOutcome::Error,
        exit_code: None,
        signal: None,
        duration_ms: 0,
        error: Some(error),
        chunks: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_join_token() {
        let config = AgentConfig {
            controller: "http://127.0.0.1:7070".into(),
            join_token: Some("very-secret".into()),
            name: "web-1".into(),
            labels: BTreeMap::new(),
            state_dir: PathBuf::from("/var/lib/drover"),
            poll_wait: DEFAULT_POLL_WAIT,
        };
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("web-1"));
    }
}
