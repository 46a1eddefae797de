//! Running one program on this machine for a caller in the same process (the controller's
//! local shell runners), with the agent's process runner: own process group, timeout and
//! cancel terminate the whole group (SIGTERM, then SIGKILL after a grace period).
//!
//! Unlike an agent command, nothing is reported to a controller: stdout and stderr are
//! kept apart, each up to [`KEPT_OUTPUT_BYTES`], and every chunk also goes to the caller
//! as it arrives.

use std::path::PathBuf;
use std::time::Duration;

use drover_proto::agent::{CommandOutcome, OutputStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::output::{MAX_BATCH, MAX_UNSENT, OutputBuffer};
use crate::process::{self, Launch};

/// Most bytes of each stream (stdout, stderr) kept in [`LocalExit`]; the rest is only
/// streamed.
pub const KEPT_OUTPUT_BYTES: usize = 1024 * 1024;

/// A program to run on this machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalRun {
    /// Program and arguments; the program is looked up in `PATH` unless it holds a `/`.
    /// No shell is involved.
    pub argv: Vec<String>,
    /// Variables added to (or replacing those of) this process's environment.
    pub env: Vec<(String, String)>,
    /// Working directory; this process's own when `None`.
    pub cwd: Option<PathBuf>,
    /// The process group is terminated once this has passed since the spawn.
    pub timeout: Option<Duration>,
    /// Text written to the program's stdin, which is then closed; `/dev/null` when `None`.
    pub stdin: Option<String>,
}

/// One piece of output, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOutput {
    /// Which pipe it came from.
    pub stream: OutputStream,
    /// The text (invalid UTF-8 replaced), usually whole lines.
    pub data: String,
}

/// How a local run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalExit {
    /// Ok, failed, timed out, cancelled, or could not run (`error` says why).
    pub outcome: CommandOutcome,
    /// Exit code, if the program exited by itself.
    pub exit_code: Option<i32>,
    /// Signal, if the program was killed by one (also after a timeout or cancel).
    pub signal: Option<i32>,
    /// Standard output, at most [`KEPT_OUTPUT_BYTES`].
    pub stdout: String,
    /// Standard error, at most [`KEPT_OUTPUT_BYTES`].
    pub stderr: String,
    /// Whether stdout or stderr was longer than what is kept.
    pub truncated: bool,
    /// From spawn to reap.
    pub duration: Duration,
    /// Why the program could not run.
    pub error: Option<String>,
}

impl LocalExit {
    fn error(text: String) -> LocalExit {
        LocalExit {
            outcome: CommandOutcome::Error,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            duration: Duration::ZERO,
            error: Some(text),
        }
    }
}

/// What is kept of both streams.
#[derive(Debug, Default)]
struct Kept {
    stdout: String,
    stderr: String,
    truncated: bool,
}

impl Kept {
    fn add(&mut self, stream: OutputStream, data: &str) {
        let kept = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        let room = KEPT_OUTPUT_BYTES.saturating_sub(kept.len());
        if data.len() <= room {
            kept.push_str(data);
            return;
        }
        let mut cut = room;
        while !data.is_char_boundary(cut) {
            cut -= 1;
        }
        kept.push_str(&data[..cut]);
        self.truncated = true;
    }
}

/// Takes every chunk out of `buffer` as soon as it is there until the buffer is closed,
/// keeping what fits and passing everything on to `on_output`.
async fn collect(
    buffer: &OutputBuffer,
    on_output: Option<mpsc::UnboundedSender<LocalOutput>>,
) -> Kept {
    let mut kept = Kept::default();
    while let Some(batch) = buffer.next_batch(MAX_BATCH, Duration::ZERO).await {
        let mut bytes = 0;
        for chunk in batch {
            bytes += chunk.data.len();
            kept.add(chunk.stream, &chunk.data);
            if let Some(tx) = &on_output {
                // A caller that stopped listening does not stop the run.
                let _ = tx.send(LocalOutput {
                    stream: chunk.stream,
                    data: chunk.data,
                });
            }
        }
        // Nothing waits for a controller here: the buffer never fills up.
        buffer.acknowledge(bytes);
    }
    kept
}

/// Runs `run` in its own process group and waits for it. Each output chunk goes to
/// `on_output` (if given) as soon as it is read; stdout and stderr are also kept, up to
/// [`KEPT_OUTPUT_BYTES`] each. When the timeout runs out or `cancel` is cancelled the
/// whole group gets SIGTERM, then SIGKILL after a short grace, and the outcome says
/// which. Never panics on bad input: a missing program or working directory is an
/// [`CommandOutcome::Error`] with the reason in `error`.
pub async fn run_local(
    run: &LocalRun,
    cancel: &CancellationToken,
    on_output: Option<mpsc::UnboundedSender<LocalOutput>>,
) -> LocalExit {
    if let Some(dir) = &run.cwd {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return LocalExit::error(format!(
                    "working directory {} is not a directory",
                    dir.display()
                ));
            }
            Err(e) => {
                return LocalExit::error(format!(
                    "cannot use working directory {}: {e}",
                    dir.display()
                ));
            }
        }
    }
    let buffer = OutputBuffer::new(MAX_UNSENT);
    let launch = Launch {
        env: &run.env,
        cwd: run.cwd.as_deref(),
        stdin: run.stdin.as_deref(),
    };
    // Only the agent shuts its commands down; here the caller cancels.
    let never = CancellationToken::new();
    let (started, _) = oneshot::channel();
    let (exit, kept) = tokio::join!(
        process::execute_with(
            &run.argv,
            launch,
            run.timeout,
            &buffer,
            cancel,
            &never,
            started
        ),
        collect(&buffer, on_output),
    );
    LocalExit {
        outcome: exit.outcome,
        exit_code: exit.exit_code,
        signal: exit.signal,
        stdout: kept.stdout,
        stderr: kept.stderr,
        truncated: kept.truncated,
        duration: exit.duration,
        error: exit.error,
    }
}

#[cfg(test)]
mod tests {
    use nix::unistd::Pid;

    use super::*;

    fn sh(script: &str) -> LocalRun {
        LocalRun {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            ..LocalRun::default()
        }
    }

    async fn run(r: &LocalRun) -> LocalExit {
        run_local(r, &CancellationToken::new(), None).await
    }

    /// Waits until no live process is left in group `pgid`.
    async fn assert_group_gone(pgid: i32) {
        for _ in 0..100 {
            if process::live_members(Pid::from_raw(pgid)).expect("/proc") == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("processes of group {pgid} survived");
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_kept_apart_with_the_exit_code() {
        let exit = run(&sh(
            "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3",
        ))
        .await;
        assert_eq!(exit.outcome, CommandOutcome::Failed);
        assert_eq!(exit.exit_code, Some(3));
        assert_eq!(exit.signal, None);
        assert_eq!(exit.stdout, "out1\nout2\n");
        assert_eq!(exit.stderr, "err1\nerr2\n");
        assert!(!exit.truncated);
        assert_eq!(exit.error, None);
    }

    #[tokio::test]
    async fn exit_codes_map_to_outcomes() {
        let cases = [
            ("exit 0", CommandOutcome::Ok, Some(0), None),
            ("exit 1", CommandOutcome::Failed, Some(1), None),
            ("exit 255", CommandOutcome::Failed, Some(255), None),
            ("kill -9 $$", CommandOutcome::Failed, None, Some(9)),
        ];
        for (script, outcome, code, signal) in cases {
            let exit = run(&sh(script)).await;
            assert_eq!(
                (exit.outcome, exit.exit_code, exit.signal),
                (outcome, code, signal),
                "{script}"
            );
        }
    }

    #[tokio::test]
    async fn timeout_terminates_the_whole_group() {
        let mut r = sh("echo $$; sleep 30 & sleep 30; echo never");
        r.timeout = Some(Duration::from_millis(300));
        let exit = run(&r).await;
        assert_eq!(exit.outcome, CommandOutcome::TimedOut);
        assert_eq!(exit.exit_code, None);
        assert_eq!(exit.signal, Some(15));
        assert!(
            exit.duration < Duration::from_secs(5),
            "{:?}",
            exit.duration
        );
        assert!(!exit.stdout.contains("never"));
        let pgid: i32 = exit.stdout.trim().parse().expect("pid");
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn a_group_ignoring_sigterm_is_killed() {
        let mut r = sh("trap '' TERM; echo $$; sleep 30");
        r.timeout = Some(Duration::from_millis(200));
        let exit = run(&r).await;
        assert_eq!(exit.outcome, CommandOutcome::TimedOut);
        let pgid: i32 = exit.stdout.trim().parse().expect("pid");
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn cancel_terminates_the_run() {
        let cancel = CancellationToken::new();
        let r = sh("echo $$; sleep 30");
        let task = {
            let cancel = cancel.clone();
            tokio::spawn(async move { run_local(&r, &cancel, None).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
        let exit = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("cancel ends the run")
            .expect("join");
        assert_eq!(exit.outcome, CommandOutcome::Cancelled);
        let pgid: i32 = exit.stdout.trim().parse().expect("pid");
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn output_arrives_live_before_the_exit() {
        let cancel = CancellationToken::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = sh("echo first; echo oops >&2; sleep 30");
        let task = {
            let cancel = cancel.clone();
            tokio::spawn(async move { run_local(&r, &cancel, Some(tx)).await })
        };
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let chunk = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a chunk while the program still runs")
                .expect("channel open");
            seen.push(chunk);
        }
        assert!(!task.is_finished());
        seen.sort_by_key(|c| c.stream.as_str());
        assert_eq!(
            seen,
            vec![
                LocalOutput {
                    stream: OutputStream::Stderr,
                    data: "oops\n".into()
                },
                LocalOutput {
                    stream: OutputStream::Stdout,
                    data: "first\n".into()
                },
            ]
        );
        cancel.cancel();
        let exit = task.await.expect("join");
        assert_eq!(exit.outcome, CommandOutcome::Cancelled);
        assert_eq!(exit.stdout, "first\n");
    }

    #[tokio::test]
    async fn cwd_env_and_stdin_reach_the_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path().canonicalize().expect("canonical");
        let r = LocalRun {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "pwd; echo \"$DROVER_TEST_VAR\"; cat".into(),
            ],
            env: vec![("DROVER_TEST_VAR".into(), "a value with spaces".into())],
            cwd: Some(dir.clone()),
            timeout: Some(Duration::from_secs(10)),
            stdin: Some("from stdin\n".into()),
        };
        let exit = run(&r).await;
        assert_eq!(exit.outcome, CommandOutcome::Ok, "{exit:?}");
        assert_eq!(
            exit.stdout,
            format!("{}\na value with spaces\nfrom stdin\n", dir.display())
        );
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_streamed_but_not_kept() {
        let total = KEPT_OUTPUT_BYTES + 300_000;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = sh(&format!("head -c {total} /dev/zero | tr '\\0' a"));
        let exit = run_local(&r, &CancellationToken::new(), Some(tx)).await;
        assert_eq!(exit.outcome, CommandOutcome::Ok);
        assert!(exit.truncated);
        assert_eq!(exit.stdout.len(), KEPT_OUTPUT_BYTES);
        assert!(exit.stdout.bytes().all(|b| b == b'a'));
        let mut streamed = 0;
        while let Ok(chunk) = rx.try_recv() {
            streamed += chunk.data.len();
        }
        assert_eq!(streamed, total);
    }

    #[tokio::test]
    async fn what_cannot_run_is_an_error_with_the_reason() {
        let exit = run(&LocalRun {
            argv: vec!["nosuchprog-drover-local".into()],
            ..LocalRun::default()
        })
        .await;
        assert_eq!(exit.outcome, CommandOutcome::Error);
        assert_eq!(
            exit.error.as_deref(),
            Some("No such file or directory: nosuchprog-drover-local")
        );

        let exit = run(&LocalRun::default()).await;
        assert_eq!(exit.outcome, CommandOutcome::Error);
        assert_eq!(exit.error.as_deref(), Some("argv is empty: nothing to run"));

        let mut r = sh("true");
        r.cwd = Some(PathBuf::from("/nonexistent-drover-dir"));
        let exit = run(&r).await;
        assert_eq!(exit.outcome, CommandOutcome::Error);
        assert_eq!(
            exit.error.as_deref(),
            Some(
                "cannot use working directory /nonexistent-drover-dir: No such file or directory (os error 2)"
            )
        );
    }
}
