//! Running one program: its own process group, output captured, killed as a group on
//! timeout, cancel or agent shutdown.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use drover_proto::agent::{CommandOutcome, CommandResult, OutputStream};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::output::{OutputBuffer, pump};

/// How long a group gets between SIGTERM and SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the pipes are still read after the leader is gone.
pub(crate) const DRAIN: Duration = Duration::from_millis(500);

/// How a run ended, before the output count is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exit {
    /// How it ended.
    pub(crate) outcome: CommandOutcome,
    /// Exit code, if the leader exited.
    pub(crate) exit_code: Option<i32>,
    /// Signal, if the leader was killed by one.
    pub(crate) signal: Option<i32>,
    /// From spawn to reap.
    pub(crate) duration: Duration,
    /// Why it could not run.
    pub(crate) error: Option<String>,
}

impl Exit {
    fn error(text: String) -> Exit {
        Exit {
            outcome: CommandOutcome::Error,
            exit_code: None,
            signal: None,
            duration: Duration::ZERO,
            error: Some(text),
        }
    }

    /// The result to record, with `chunks` output chunks.
    pub(crate) fn into_result(self, chunks: u64) -> CommandResult {
        CommandResult {
            outcome: self.outcome,
            exit_code: self.exit_code,
            signal: self.signal,
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            error: self.error,
            chunks,
        }
    }
}

/// Text for a failed spawn, e.g. `No such file or directory: nosuchprog`.
fn spawn_error_text(e: &io::Error, program: &str) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{}: {program}", Errno::from_raw(code).desc()),
        None => format!("{e}: {program}"),
    }
}

/// Sends `signal` to process group `pgid`; a group already gone is fine.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = pgid.as_raw(), ?signal, error = %e, "cannot signal the process group")
        }
    }
}

/// Whether some process of group `pgid` is still alive (zombies do not count: nobody may
/// be reaping orphans on this machine).
pub(crate) fn group_alive(pgid: Pid) -> bool {
    match killpg(pgid, None) {
        Err(Errno::ESRCH) => false,
        Err(_) => true,
        Ok(()) => live_members(pgid).map(|n| n > 0).unwrap_or(true),
    }
}

/// Number of live (not zombie) processes in group `pgid`, from `/proc`.
pub(crate) fn live_members(pgid: Pid) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // gone meanwhile
        };
        // "pid (comm) state ppid pgrp ..."; comm may hold anything, so parse after ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        if pgrp == Some(pgid.as_raw()) && state != "Z" && state != "X" {
            n += 1;
        }
    }
    Ok(n)
}

/// SIGTERM to the group; once the leader is gone and the group empty, or after
/// [`TERM_GRACE`], SIGKILL to whatever is left. Returns the leader's status.
async fn terminate(child: &mut Child, pgid: Pid) -> io::Result<ExitStatus> {
    signal_group(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    let status = tokio::time::timeout_at(deadline, child.wait()).await.ok();
    if status.is_some() {
        while group_alive(pgid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if group_alive(pgid) {
        signal_group(pgid, Signal::SIGKILL);
    }
    match status {
        Some(s) => s,
        None => child.wait().await,
    }
}

/// SIGKILL to the group at once. Returns the leader's status.
async fn kill_now(child: &mut Child, pgid: Pid) -> io::Result<ExitStatus> {
    signal_group(pgid, Signal::SIGKILL);
    child.wait().await
}

enum Why {
    Exited(io::Result<ExitStatus>),
    Timeout,
    Cancel,
    Shutdown,
}

/// Where and with what a program starts, beyond its argv.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Launch<'a> {
    /// Variables added to the agent's environment.
    pub(crate) env: &'a [(String, String)],
    /// Working directory; the agent's own when `None`.
    pub(crate) cwd: Option<&'a Path>,
    /// Text written to the program's stdin (then closed); stdin is `/dev/null` when `None`.
    pub(crate) stdin: Option<&'a str>,
}

/// Runs `argv` (with `env` added to the agent's environment) in its own process group,
/// feeding its output into `output` (closed when
/// this returns). Sends the leader's pid on `started` after the spawn. The group is
/// terminated when `timeout` runs out or `cancel` is cancelled (SIGTERM, then SIGKILL
/// after [`TERM_GRACE`]), and killed at once when `shutdown` is cancelled.
pub(crate) async fn execute(
    argv: &[String],
    env: &[(String, String)],
    timeout: Option<Duration>,
    output: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
    started: oneshot::Sender<Option<u32>>,
) -> Exit {
    let launch = Launch {
        env,
        ..Launch::default()
    };
    execute_with(argv, launch, timeout, output, cancel, shutdown, started).await
}

/// [`execute`] with a working directory and stdin text as well (see [`Launch`]).
pub(crate) async fn execute_with(
    argv: &[String],
    launch: Launch<'_>,
    timeout: Option<Duration>,
    output: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
    started: oneshot::Sender<Option<u32>>,
) -> Exit {
    let exit = execute_inner(argv, launch, timeout, output, cancel, shutdown, started).await;
    output.close();
    exit
}

async fn execute_inner(
    argv: &[String],
    launch: Launch<'_>,
    timeout: Option<Duration>,
    output: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
    started: oneshot::Sender<Option<u32>>,
) -> Exit {
    let Some((program, args)) = argv.split_first() else {
        return Exit::error("argv is empty: nothing to run".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .process_group(0)
        .stdin(if launch.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    if let Some(dir) = launch.cwd {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Exit::error(spawn_error_text(&e, program)),
    };
    let spawned_at = Instant::now();
    let Some(pid) = child.id() else {
        // Only possible if it was already reaped, which nobody did.
        return Exit::error(format!(
            "lost the process of {program} right after spawning it"
        ));
    };
    let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let _ = started.send(Some(pid));
    if let (Some(text), Some(mut pipe)) = (launch.stdin, child.stdin.take()) {
        // A program that exits without reading its input is fine: the write just fails.
        let bytes = text.as_bytes().to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
        });
    }

    let stop = CancellationToken::new();
    let out_pump = child
        .stdout
        .take()
        .map(|r| tokio::spawn(pump(r, OutputStream::Stdout, output.clone(), stop.clone())));
    let err_pump = child
        .stderr
        .take()
        .map(|r| tokio::spawn(pump(r, OutputStream::Stderr, output.clone(), stop.clone())));

    let deadline = timeout.map(|t| spawned_at + t);
    let why = tokio::select! {
        s = child.wait() => Why::Exited(s),
        _ = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        } => Why::Timeout,
        _ = cancel.cancelled() => Why::Cancel,
        _ = shutdown.cancelled() => Why::Shutdown,
    };
    // A leader that exited just as the timer fired exited by itself.
    let why = match why {
        Why::Exited(s) => Why::Exited(s),
        other => match child.try_wait() {
            Ok(Some(s)) => Why::Exited(Ok(s)),
            _ => other,
        },
    };
    let (status, killed) = match why {
        Why::Exited(s) => (s, None),
        Why::Timeout => {
            tracing::info!(pid, "command timed out; terminating its process group");
            (
                terminate(&mut child, pgid).await,
                Some(CommandOutcome::TimedOut),
            )
        }
        Why::Cancel => {
            tracing::info!(pid, "command cancelled; terminating its process group");
            (
                terminate(&mut child, pgid).await,
                Some(CommandOutcome::Cancelled),
            )
        }
        Why::Shutdown => {
            tracing::info!(
                pid,
                "agent shutting down; killing the command's process group"
            );
            (
                kill_now(&mut child, pgid).await,
                Some(CommandOutcome::Cancelled),
            )
        }
    };
    let duration = spawned_at.elapsed();

    // Drain what the pipes still hold; a background process may keep them open.
    let pumps = futures::future::join(
        async {
            if let Some(p) = out_pump {
                let _ = p.await;
            }
        },
        async {
            if let Some(p) = err_pump {
                let _ = p.await;
            }
        },
    );
    let mut pumps = std::pin::pin!(pumps);
    if tokio::time::timeout(DRAIN, &mut pumps).await.is_err() {
        stop.cancel();
        pumps.await;
    }

    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return Exit {
                duration,
                ..Exit::error(format!("cannot wait for {program}: {e}"))
            };
        }
    };
    let outcome = match (killed, status.code()) {
        (Some(o), _) => o,
        (None, Some(0)) => CommandOutcome::Ok,
        (None, _) => CommandOutcome::Failed,
    };
    Exit {
        outcome,
        exit_code: status.code(),
        signal: status.signal(),
        duration,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use drover_proto::agent::CommandUpdate;

    use super::*;
    use crate::output::MAX_UNSENT;
    use crate::report::testing::MemReporter;
    use crate::report::{Delivery, send_in_order};

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    struct Run {
        exit: Exit,
        reporter: Arc<MemReporter>,
        chunks: u64,
        pid: Option<u32>,
    }

    /// Runs `argv` through `execute` and the ordered sender, like the agent does.
    async fn run_with(
        argv: Vec<String>,
        timeout: Option<Duration>,
        cancel: CancellationToken,
        shutdown: CancellationToken,
    ) -> Run {
        let reporter = Arc::new(MemReporter::default());
        let output = OutputBuffer::new(MAX_UNSENT);
        let (stx, srx) = oneshot::channel();
        let (rtx, rrx) = oneshot::channel();
        let sender = tokio::spawn(send_in_order(
            reporter.clone(),
            "c".into(),
            srx,
            output.clone(),
            rrx,
            CancellationToken::new(),
        ));
        let exit = execute(&argv, &[], timeout, &output, &cancel, &shutdown, stx).await;
        let chunks = output.next_seq();
        let _ = rtx.send(exit.clone().into_result(chunks));
        assert_eq!(sender.await.expect("join"), Delivery::Accepted);
        let pid = reporter.statuses().iter().find_map(|u| match u {
            CommandUpdate::Started { pid } => *pid,
            _ => None,
        });
        Run {
            exit,
            reporter,
            chunks,
            pid,
        }
    }

    async fn run(argv: Vec<String>) -> Run {
        run_with(
            argv,
            None,
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .await
    }

    fn assert_contiguous(r: &Run) {
        let seqs: Vec<u64> = r.reporter.chunks().iter().map(|c| c.seq).collect();
        let expected: Vec<u64> = (0..r.chunks).collect();
        assert_eq!(seqs, expected);
        match r.reporter.statuses().last() {
            Some(CommandUpdate::Finished { result }) => assert_eq!(result.chunks, r.chunks),
            other => panic!("last status is {other:?}"),
        }
    }

    /// Waits until no live process is left in group `pgid`.
    async fn assert_group_gone(pgid: u32) {
        let pgid = Pid::from_raw(pgid as i32);
        for _ in 0..100 {
            if live_members(pgid).expect("/proc") == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("processes of group {pgid} survived");
    }

    #[tokio::test]
    async fn exit_codes_map_to_outcomes() {
        let r = run(argv(&["true"])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Ok);
        assert_eq!(r.exit.exit_code, Some(0));
        assert!(r.pid.is_some());

        let r = run(argv(&["sh", "-c", "exit 3"])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Failed);
        assert_eq!(r.exit.exit_code, Some(3));
        assert_eq!(r.exit.signal, None);
        assert_contiguous(&r);
    }

    #[tokio::test]
    async fn killed_by_a_foreign_signal_is_failed_with_the_signal() {
        let r = run(argv(&["sh", "-c", "kill -9 $$"])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Failed);
        assert_eq!(r.exit.exit_code, None);
        assert_eq!(r.exit.signal, Some(9));
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_captured_with_contiguous_seq() {
        let script = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done";
        let r = run(argv(&["sh", "-c", script])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Ok);
        assert_eq!(
            r.reporter.text(OutputStream::Stdout),
            "out1\nout2\nout3\nout4\nout5\n"
        );
        assert_eq!(
            r.reporter.text(OutputStream::Stderr),
            "err1\nerr2\nerr3\nerr4\nerr5\n"
        );
        assert!(r.chunks >= 2);
        assert_contiguous(&r);
        // Started first, Finished last.
        let statuses = r.reporter.statuses();
        assert!(matches!(
            statuses.first(),
            Some(CommandUpdate::Started { .. })
        ));
    }

    #[tokio::test]
    async fn argv_is_passed_without_a_shell_and_program_found_in_path() {
        let r = run(argv(&["printf", "%s|", "a b", "$HOME", "*"])).await;
        assert_eq!(r.reporter.text(OutputStream::Stdout), "a b|$HOME|*|");
    }

    #[tokio::test]
    async fn spawn_error_for_a_missing_program() {
        let r = run(argv(&["nosuchprog-drover-test"])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Error);
        assert_eq!(
            r.exit.error.as_deref(),
            Some("No such file or directory: nosuchprog-drover-test")
        );
        assert_eq!(r.pid, None, "no Started for a failed spawn");
        assert_eq!(r.chunks, 0);
        assert_eq!(r.reporter.statuses().len(), 1);
    }

    #[tokio::test]
    async fn empty_argv_is_an_error() {
        let r = run(vec![]).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Error);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let t0 = std::time::Instant::now();
        let r = run_with(
            argv(&["sh", "-c", "sleep 300 & sleep 300; "]),
            Some(Duration::from_millis(300)),
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.exit.outcome, CommandOutcome::TimedOut);
        assert_eq!(r.exit.signal, Some(15));
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(r.exit.duration >= Duration::from_millis(300));
        assert_group_gone(r.pid.expect("pid")).await;
    }

    #[tokio::test]
    async fn sigterm_ignored_means_sigkill_after_the_grace() {
        let t0 = std::time::Instant::now();
        // The leader and its background child ignore SIGTERM.
        let r = run_with(
            argv(&["sh", "-c", "trap '' TERM; sleep 300 & sleep 300; "]),
            Some(Duration::from_millis(100)),
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.exit.outcome, CommandOutcome::TimedOut);
        assert_eq!(r.exit.signal, Some(9));
        assert!(t0.elapsed() >= TERM_GRACE);
        assert_group_gone(r.pid.expect("pid")).await;
    }

    #[tokio::test]
    async fn cancel_terminates_the_group() {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let r = run_with(
            argv(&["sh", "-c", "echo begin; sleep 300 & sleep 300; "]),
            None,
            cancel,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.exit.outcome, CommandOutcome::Cancelled);
        assert_eq!(r.reporter.text(OutputStream::Stdout), "begin\n");
        assert_group_gone(r.pid.expect("pid")).await;
    }

    #[tokio::test]
    async fn shutdown_kills_the_group_at_once() {
        let shutdown = CancellationToken::new();
        let s2 = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s2.cancel();
        });
        let t0 = std::time::Instant::now();
        let r = run_with(
            argv(&["sh", "-c", "trap '' TERM; sleep 300 & sleep 300; "]),
            None,
            CancellationToken::new(),
            shutdown,
        )
        .await;
        assert_eq!(r.exit.outcome, CommandOutcome::Cancelled);
        assert_eq!(r.exit.signal, Some(9));
        assert!(t0.elapsed() < TERM_GRACE);
        assert_group_gone(r.pid.expect("pid")).await;
    }

    #[tokio::test]
    async fn a_background_child_holding_the_pipes_does_not_hold_the_command() {
        let t0 = std::time::Instant::now();
        let r = run(argv(&["sh", "-c", "echo done; sleep 3 & exit 0"])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Ok);
        assert_eq!(r.reporter.text(OutputStream::Stdout), "done\n");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        // Not ours to kill: it was left running in the background.
        if let Some(pid) = r.pid {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    #[tokio::test]
    async fn large_output_is_delivered_fully_and_in_order() {
        // 5 MB on stdout: 50 000 numbered lines of 100 bytes, and a little on stderr.
        let script = "awk 'BEGIN { for (i = 0; i < 50000; i++) printf \"%09d %s\\n\", i, \
                      substr(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", 1, 89) }'; \
                      echo tail >&2";
        let r = run(argv(&["sh", "-c", script])).await;
        assert_eq!(r.exit.outcome, CommandOutcome::Ok);
        let out = r.reporter.text(OutputStream::Stdout);
        assert_eq!(out.len(), 5_000_000);
        for (i, line) in out.lines().enumerate() {
            assert_eq!(&line[..9], format!("{i:09}"), "line {i} out of order");
            assert_eq!(line.len(), 99);
        }
        assert_eq!(r.reporter.text(OutputStream::Stderr), "tail\n");
        assert!(
            r.reporter
                .chunks()
                .iter()
                .all(|c| c.data.len() <= crate::output::MAX_CHUNK)
        );
        assert_contiguous(&r);
    }

    #[tokio::test]
    async fn invalid_utf8_output_is_replaced() {
        let r = run(argv(&["printf", "a\\377b\\n"])).await;
        assert_eq!(r.reporter.text(OutputStream::Stdout), "a\u{FFFD}b\n");
    }

    #[tokio::test]
    async fn a_partial_line_is_sent_while_the_command_still_runs() {
        let reporter = Arc::new(MemReporter::default());
        let output = OutputBuffer::new(MAX_UNSENT);
        let (stx, srx) = oneshot::channel();
        let (rtx, rrx) = oneshot::channel();
        let sender = tokio::spawn(send_in_order(
            reporter.clone(),
            "c".into(),
            srx,
            output.clone(),
            rrx,
            CancellationToken::new(),
        ));
        let cancel = CancellationToken::new();
        let shutdown = CancellationToken::new();
        let argv = argv(&["sh", "-c", "printf 'prompt> '; sleep 300"]);
        let exec = tokio::spawn({
            let (output, cancel) = (output.clone(), cancel.clone());
            async move { execute(&argv, &[], None, &output, &cancel, &shutdown, stx).await }
        });
        let mut seen = false;
        for _ in 0..100 {
            if reporter.text(OutputStream::Stdout) == "prompt> " {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        let exit = exec.await.expect("join");
        let _ = rtx.send(exit.into_result(output.next_seq()));
        let _ = sender.await;
        assert!(seen, "partial line not sent while running");
    }
}
