//! Supervision of a `run:` process: spawned in a process group of its own with its
//! output appended to the instance's log files, restarted with exponential backoff
//! when it exits while it should run, and stopped as a group (SIGTERM, a grace period,
//! SIGKILL). A process started by an earlier agent is adopted: watched through `/proc`
//! (it is no child of this agent, so its exit status is unknown), stopped the same way.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::env;
use super::logs;
use super::state::ProcessRecord;
use crate::process::{group_alive, signal_group};

/// How often an adopted process is looked at.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
/// Longest wait for the rest of a group whose leader exited, before SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// Timing of supervision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// First delay before a restart.
    pub(crate) restart_base: Duration,
    /// Longest delay before a restart.
    pub(crate) restart_cap: Duration,
    /// A process that ran this long resets the backoff (and clears the drift).
    pub(crate) restart_reset: Duration,
    /// Time between SIGTERM and SIGKILL at stop.
    pub(crate) stop_grace: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            restart_base: Duration::from_secs(1),
            restart_cap: Duration::from_secs(60),
            restart_reset: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
        }
    }
}

impl Timing {
    /// Delay before restart number `failures + 1` of a run of failures.
    pub(crate) fn restart_delay(&self, failures: u32) -> Duration {
        self.restart_base
            .saturating_mul(1u32 << failures.min(20))
            .min(self.restart_cap)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    /// Program and arguments.
    pub(crate) argv: Vec<String>,
    /// Release directory (working directory).
    pub(crate) release_dir: PathBuf,
    /// Complete environment.
    pub(crate) env: Vec<(String, String)>,
    /// Log file for stdout.
    pub(crate) stdout: PathBuf,
    /// Log file for stderr.
    pub(crate) stderr: PathBuf,
}

/// Spawns the process; returns it and its record.
pub(crate) fn spawn(spec: &RunSpec) -> Result<(Child, ProcessRecord), String> {
    let mut cmd = env::command(&spec.argv, &spec.release_dir, &spec.env)?;
    let out = logs::open_append(&spec.stdout)
        .map_err(|e| format!("cannot open {}: {e}", spec.stdout.display()))?;
    let err = logs::open_append(&spec.stderr)
        .map_err(|e| format!("cannot open {}: {e}", spec.stderr.display()))?;
    cmd.stdout(out).stderr(err);
    let program = spec.argv.first().map(String::as_str).unwrap_or("");
    let child = cmd.spawn().map_err(|e| spawn_error_text(&e, program))?;
    let pid = child
        .id()
        .ok_or_else(|| format!("lost the process of {program} right after spawning it"))?;
    let record = ProcessRecord::of(pid)
        .map_err(|e| format!("cannot read /proc/{pid}/stat of the new process: {e}"))?;
    Ok((child, record))
}

/// `No such file or directory: bin/server`.
fn spawn_error_text(e: &std::io::Error, program: &str) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{}: {program}", nix::errno::Errno::from_raw(code).desc()),
        None => format!("{e}: {program}"),
    }
}

/// "exited with code 3", "was killed by signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("was killed by signal {sig} ({})", s.as_str()),
            Err(_) => format!("was killed by signal {sig}"),
        },
        (None, None) => "ended".to_string(),
    }
}

/// The process being supervised.
#[derive(Debug)]
pub(crate) enum Proc {
    /// Started by this agent.
    Child(Child, ProcessRecord),
    /// Started by an earlier agent.
    Adopted(ProcessRecord),
}

impl Proc {
    fn pgid(&self) -> Pid {
        let pid = match self {
            Proc::Child(_, r) | Proc::Adopted(r) => r.pid,
        };
        Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
    }

    /// Waits until it exits; says how.
    async fn exited(&mut self) -> String {
        match self {
            Proc::Child(c, _) => match c.wait().await {
                Ok(s) => format!("process {}", describe_exit(&s)),
                Err(e) => format!("cannot wait for the process: {e}"),
            },
            Proc::Adopted(r) => {
                while r.is_alive() {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                "process exited (exit status unknown: an earlier agent started it)".to_string()
            }
        }
    }
}

/// SIGTERM to the group; SIGKILL to what is left after `grace`. Says how it ended.
pub(crate) async fn terminate(proc: &mut Proc, grace: Duration) -> String {
    let pgid = proc.pgid();
    signal_group(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let status = match proc {
        Proc::Child(c, _) => tokio::time::timeout_at(deadline, c.wait())
            .await
            .ok()
            .and_then(Result::ok),
        Proc::Adopted(r) => {
            while r.is_alive() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        }
    };
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = group_alive(pgid);
    if killed {
        signal_group(pgid, Signal::SIGKILL);
    }
    let status = match (status, proc) {
        (Some(s), _) => Some(s),
        (None, Proc::Child(c, _)) => c.wait().await.ok(),
        (None, Proc::Adopted(_)) => None,
    };
    match (status, killed) {
        (Some(s), false) => format!("process {}", describe_exit(&s)),
        (Some(s), true) => format!(
            "process {}; SIGKILL after {} s for what was left of its group",
            describe_exit(&s),
            grace.as_secs()
        ),
        (None, true) => format!("process killed with SIGKILL after {} s", grace.as_secs()),
        (None, false) => "process stopped".to_string(),
    }
}

/// SIGTERM to what is left of group `pgid`, SIGKILL after `grace`.
async fn clear_group(pgid: Pid, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if group_alive(pgid) {
        signal_group(pgid, Signal::SIGKILL);
    }
}

/// What happens to a supervised process, for the instance to record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// It exited while it should run; `drift` says how (and that it restarts).
    Exited {
        /// E.g. "process exited with code 1; restarting".
        drift: String,
    },
    /// It was started again.
    Restarted(ProcessRecord),
    /// It could not be started again (will be retried).
    RestartFailed {
        /// Why.
        drift: String,
    },
    /// It ran long enough: the backoff is reset and the drift is over.
    Settled,
}

/// Receives [`Event`]s.
pub(crate) type Sink = Arc<dyn Fn(Event) + Send + Sync>;

/// A running supervision.
#[derive(Debug)]
pub(crate) struct Supervisor {
    stop: CancellationToken,
    task: JoinHandle<String>,
}

impl Supervisor {
    /// Supervises `proc` (or, if `None`, starts the process after the first backoff
    /// delay). Ends, leaving the process alone, when `detach` is cancelled.
    pub(crate) fn start(
        spec: RunSpec,
        proc: Option<Proc>,
        sink: Sink,
        timing: Timing,
        detach: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Supervisor {
        let stop = CancellationToken::new();
        let task = tracker.spawn(supervise(
            spec,
            proc,
            sink,
            timing,
            stop.clone(),
            detach.clone(),
        ));
        Supervisor { stop, task }
    }

    /// Stops the process (if running) and the supervision; says how it ended.
    pub(crate) async fn stop(self) -> String {
        self.stop.cancel();
        self.task
            .await
            .unwrap_or_else(|e| format!("supervision failed: {e}"))
    }
}

async fn supervise(
    spec: RunSpec,
    mut proc: Option<Proc>,
    sink: Sink,
    timing: Timing,
    stop: CancellationToken,
    detach: CancellationToken,
) -> String {
    let mut failures: u32 = 0;
    let mut started = Instant::now();
    let mut settled = false;
    loop {
        if let Some(p) = proc.as_mut() {
            let settle_at = started + timing.restart_reset;
            let how = tokio::select! {
                how = p.exited() => how,
                _ = stop.cancelled() => return terminate(p, timing.stop_grace).await,
                _ = detach.cancelled() => return "left running: the agent is shutting down".into(),
                _ = tokio::time::sleep_until(settle_at), if !settled => {
                    settled = true;
                    failures = 0;
                    sink(Event::Settled);
                    continue;
                }
            };
            // What the leader left behind in its group (a wrapper's child holding the
            // port…) would stand in the way of the next start.
            clear_group(p.pgid(), timing.stop_grace.min(LEFTOVER_GRACE)).await;
            proc = None;
            tracing::warn!(
                ran_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                program = ?spec.argv.first(),
                "{how}; restarting"
            );
            sink(Event::Exited {
                drift: format!("{how}; restarting"),
            });
        }
        let delay = timing.restart_delay(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return "process stopped (it was not running)".into(),
            _ = detach.cancelled() => return "left: the agent is shutting down".into(),
        }
        match spawn(&spec) {
            Ok((child, record)) => {
                tracing::info!(pid = record.pid, program = ?spec.argv.first(), "restarted a supervised process");
                sink(Event::Restarted(record.clone()));
                proc = Some(Proc::Child(child, record));
                started = Instant::now();
                settled = false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot restart a supervised process");
                sink(Event::RestartFailed {
                    drift: format!("cannot restart the process: {e}; retrying"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_up_to_the_cap() {
        let t = Timing::default();
        let secs: Vec<u64> = (0..9).map(|f| t.restart_delay(f).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(t.restart_delay(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn exits_are_described() {
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(3 << 8)),
            "exited with code 3"
        );
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
    }
}
