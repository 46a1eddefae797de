//! `local-shell-cmd` and `local-shell-script`: a shell command or a script run on the
//! controller host with the agent's process runner ([`drover_agent::local_run`]), and the
//! result mapped the way StackStorm's local runner maps it.
//!
//! StackStorm's mapping (contrib/runners/local_runner, `BaseLocalShellRunner._run`):
//! `return_code` is the exit code, or minus the signal that killed the program; a timeout
//! reports `-9` and the error `Action failed to complete in N seconds`; stdout and stderr
//! lose one trailing `\n` (then one `\r`) and are replaced by their JSON value when they
//! parse as JSON (surrounding whitespace allowed, as Python's `json.loads` allows it).
//! Status: exit 0 → succeeded, `-9` → timeout, anything else → failed (StackStorm's
//! `-15` → abandoned has no counterpart here and is failed).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_agent::local_run::{LocalExit, LocalOutput, LocalRun, run_local};
use drover_proto::agent::CommandOutcome;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::ActionStatus;

/// What StackStorm reports as the return code of a timed-out action (minus SIGKILL).
const TIMEOUT_RETURN_CODE: i64 = -9;
/// Return code of an action that could not be started at all.
const NOT_STARTED_RETURN_CODE: i64 = -1;

/// What a local shell action runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ShellCommand {
    /// `local-shell-cmd`: one command line, run by `/bin/sh -c` (StackStorm runs it with
    /// Python's `shell=True`), or by `sudo -E -- bash -c` with `sudo`.
    Cmd {
        /// The command line.
        cmd: String,
        /// Variables added to the controller's environment.
        env: Vec<(String, String)>,
        /// Working directory.
        cwd: Option<PathBuf>,
        /// Time allowed.
        timeout: Option<Duration>,
        /// Run as root through passwordless sudo.
        sudo: bool,
    },
    /// `local-shell-script`: a script executed with its arguments, each passed as is.
    Script {
        /// The script (the action's entry point).
        path: PathBuf,
        /// Its arguments, already built from the parameters.
        args: Vec<String>,
        /// Variables added to the controller's environment.
        env: Vec<(String, String)>,
        /// Working directory.
        cwd: Option<PathBuf>,
        /// Time allowed.
        timeout: Option<Duration>,
        /// Run as root through passwordless sudo.
        sudo: bool,
    },
}

impl ShellCommand {
    fn timeout(&self) -> Option<Duration> {
        match self {
            ShellCommand::Cmd { timeout, .. } | ShellCommand::Script { timeout, .. } => *timeout,
        }
    }
}

/// The execution an action runs for; its processes get these as environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionContext {
    /// The execution's id.
    pub(crate) execution_id: String,
    /// The action's reference, `pack.name`.
    pub(crate) action_ref: String,
}

impl ActionContext {
    /// `DROVER_EXECUTION_ID`, `DROVER_ACTION_REF`, and StackStorm's
    /// `ST2_ACTION_EXECUTION_ID` and `ST2_ACTION_PACK_NAME` for scripts written for it.
    fn env(&self) -> Vec<(String, String)> {
        let pack = self
            .action_ref
            .split_once('.')
            .map_or(self.action_ref.as_str(), |(pack, _)| pack);
        vec![
            ("DROVER_EXECUTION_ID".into(), self.execution_id.clone()),
            ("DROVER_ACTION_REF".into(), self.action_ref.clone()),
            ("ST2_ACTION_EXECUTION_ID".into(), self.execution_id.clone()),
            ("ST2_ACTION_PACK_NAME".into(), pack.to_string()),
        ]
    }
}

/// Runs `command` on this host and maps how it ended to StackStorm's status and result
/// (see the module doc). Output chunks go to `on_output` as they arrive. Never panics:
/// what cannot run is a failed result with an `error` field.
pub(crate) async fn run_shell(
    command: &ShellCommand,
    context: &ActionContext,
    cancel: &CancellationToken,
    on_output: Option<UnboundedSender<LocalOutput>>,
) -> (ActionStatus, Value) {
    let run = match planned_run(command, context) {
        Ok(run) => run,
        Err(reason) => return not_started(&reason),
    };
    let sudo = matches!(
        command,
        ShellCommand::Cmd { sudo: true, .. } | ShellCommand::Script { sudo: true, .. }
    ) && run.argv.first().is_some_and(|p| p == "sudo");
    let exit = run_local(&run, cancel, on_output).await;
    let (status, mut result) = shell_result(&exit, command.timeout());
    if sudo && exit.exit_code == Some(1) && sudo_refused(&exit.stderr) {
        result["error"] = Value::String(
            "sudo on the controller host refused to run the action without a password: \
             allow the controller's user passwordless sudo, or drop `sudo: true`"
                .into(),
        );
    }
    (status, result)
}

/// Whether sudo's own message says it would not run the command.
fn sudo_refused(stderr: &str) -> bool {
    stderr.contains("sudo: a password is required")
        || stderr.contains("is not in the sudoers file")
        || stderr.contains("is not allowed to execute")
}

/// The program to run for `command`, or why it cannot run.
fn planned_run(command: &ShellCommand, context: &ActionContext) -> Result<LocalRun, String> {
    let (argv, env, cwd, timeout, sudo) = match command {
        ShellCommand::Cmd {
            cmd,
            env,
            cwd,
            timeout,
            sudo,
        } => {
            let argv = if *sudo {
                vec!["bash".into(), "-c".into(), cmd.clone()]
            } else {
                vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
            };
            (argv, env, cwd, timeout, *sudo)
        }
        ShellCommand::Script {
            path,
            args,
            env,
            cwd,
            timeout,
            sudo,
        } => {
            let mut argv = script_argv(path, cwd.as_deref())?;
            argv.extend(args.iter().cloned());
            (argv, env, cwd, timeout, *sudo)
        }
    };
    let argv = if sudo && !running_as_root() {
        if !in_path("sudo") {
            return Err(
                "the action asks for sudo, but sudo is not installed on the controller host".into(),
            );
        }
        // -n: fail at once instead of waiting for a password nobody will type.
        let mut with_sudo: Vec<String> = ["sudo", "-n", "-E", "--"].map(String::from).into();
        with_sudo.extend(argv);
        with_sudo
    } else {
        argv
    };
    let mut all_env = env.clone();
    all_env.extend(context.env());
    Ok(LocalRun {
        argv,
        env: all_env,
        cwd: cwd.clone(),
        timeout: *timeout,
        stdin: None,
    })
}

/// How to start the script at `path`: itself when executable, else its `#!`
/// interpreter, else `bash`.
fn script_argv(path: &Path, cwd: Option<&Path>) -> Result<Vec<String>, String> {
    let resolved = match cwd {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    let meta = std::fs::metadata(&resolved)
        .map_err(|e| format!("cannot run script {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "cannot run script {}: not a regular file",
            path.display()
        ));
    }
    let text = path.to_string_lossy().into_owned();
    // A bare name would be looked up in PATH.
    let text = if path.components().count() == 1 && path.is_relative() {
        format!("./{text}")
    } else {
        text
    };
    if meta.permissions().mode() & 0o111 != 0 {
        return Ok(vec![text]);
    }
    let mut argv = shebang(&resolved).unwrap_or_else(|| vec!["bash".into()]);
    argv.push(text);
    Ok(argv)
}

/// The interpreter (and its one optional argument, as the kernel reads it) named on the
/// script's `#!` line.
fn shebang(path: &Path) -> Option<Vec<String>> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].split(|&b| b == b'\n').next()?;
    let rest = std::str::from_utf8(line.strip_prefix(b"#!")?).ok()?.trim();
    let (interpreter, arg) = match rest.split_once([' ', '\t']) {
        Some((i, a)) => (i, a.trim()),
        None => (rest, ""),
    };
    if interpreter.is_empty() {
        return None;
    }
    let mut argv = vec![interpreter.to_string()];
    if !arg.is_empty() {
        argv.push(arg.to_string());
    }
    Some(argv)
}

pub(super) fn running_as_root() -> bool {
    // /proc/self belongs to the effective user of this process.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The result of an action that could not be started.
fn not_started(reason: &str) -> (ActionStatus, Value) {
    (
        ActionStatus::Failed,
        json!({
            "succeeded": false,
            "failed": true,
            "return_code": NOT_STARTED_RETURN_CODE,
            "stdout": "",
            "stderr": "",
            "error": reason,
        }),
    )
}

/// StackStorm's status and result for a finished local run; `timeout` is the one the run
/// had (named in the timeout error).
pub(crate) fn shell_result(exit: &LocalExit, timeout: Option<Duration>) -> (ActionStatus, Value) {
    if exit.outcome == CommandOutcome::Error {
        return not_started(exit.error.as_deref().unwrap_or("the action could not run"));
    }
    let return_code = match exit.outcome {
        CommandOutcome::TimedOut => TIMEOUT_RETURN_CODE,
        _ => match (exit.exit_code, exit.signal) {
            (Some(code), _) => i64::from(code),
            (None, Some(signal)) => -i64::from(signal),
            (None, None) => NOT_STARTED_RETURN_CODE,
        },
    };
    let status = match exit.outcome {
        CommandOutcome::TimedOut => ActionStatus::Timeout,
        CommandOutcome::Cancelled => ActionStatus::Canceled,
        _ if return_code == 0 => ActionStatus::Succeeded,
        _ if return_code == TIMEOUT_RETURN_CODE => ActionStatus::Timeout,
        _ => ActionStatus::Failed,
    };
    let succeeded = return_code == 0;
    let mut result = json!({
        "succeeded": succeeded,
        "failed": !succeeded,
        "return_code": return_code,
        "stdout": output_value(&exit.stdout),
        "stderr": output_value(&exit.stderr),
    });
    if exit.outcome == CommandOutcome::TimedOut {
        let seconds = timeout.unwrap_or(exit.duration);
        result["error"] = Value::String(format!(
            "Action failed to complete in {} seconds",
            seconds_text(seconds)
        ));
    }
    (status, result)
}

/// `60` for whole seconds, `1.5` otherwise.
fn seconds_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// One stream as StackStorm reports it: without its last line end, and as JSON when it
/// is JSON.
pub(crate) fn output_value(text: &str) -> Value {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(outcome: CommandOutcome, code: Option<i32>, signal: Option<i32>) -> LocalExit {
        LocalExit {
            outcome,
            exit_code: code,
            signal,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            duration: Duration::from_millis(5),
            error: None,
        }
    }

    #[test]
    fn output_is_parsed_as_json_when_it_is_json() {
        let cases = [
            ("{\"a\": 1}\n", json!({"a": 1})),
            ("  [1, 2]  \n\n", json!([1, 2])),
            ("\n{\"a\": \"b\"}\r\n", json!({"a": "b"})),
            ("42\n", json!(42)),
            ("true", json!(true)),
            ("\"quoted\"\n", json!("quoted")),
            ("null\n", Value::Null),
            ("hello world\n", json!("hello world")),
            ("two\nlines\n\n", json!("two\nlines\n")),
            ("line\r\n", json!("line")),
            ("{\"a\": 1} trailing\n", json!("{\"a\": 1} trailing")),
            ("", json!("")),
            ("\n", json!("")),
            ("  padded  \n", json!("  padded  ")),
        ];
        for (text, expected) in cases {
            assert_eq!(output_value(text), expected, "{text:?}");
        }
    }

    #[test]
    fn outcomes_map_to_stackstorm_statuses_and_return_codes() {
        let cases = [
            (
                exit(CommandOutcome::Ok, Some(0), None),
                ActionStatus::Succeeded,
                0,
            ),
            (
                exit(CommandOutcome::Failed, Some(2), None),
                ActionStatus::Failed,
                2,
            ),
            (
                exit(CommandOutcome::Failed, None, Some(9)),
                ActionStatus::Timeout,
                -9,
            ),
            (
                exit(CommandOutcome::Failed, None, Some(15)),
                ActionStatus::Failed,
                -15,
            ),
            (
                exit(CommandOutcome::TimedOut, None, Some(15)),
                ActionStatus::Timeout,
                -9,
            ),
            (
                exit(CommandOutcome::Cancelled, None, Some(15)),
                ActionStatus::Canceled,
                -15,
            ),
        ];
        for (exit, status, code) in cases {
            let (got, result) = shell_result(&exit, None);
            assert_eq!(got, status, "{exit:?}");
            assert_eq!(result["return_code"], json!(code), "{exit:?}");
            assert_eq!(result["succeeded"], json!(code == 0));
            assert_eq!(result["failed"], json!(code != 0));
        }
    }

    #[test]
    fn a_timeout_names_the_seconds_like_stackstorm() {
        let e = exit(CommandOutcome::TimedOut, None, Some(15));
        let (_, result) = shell_result(&e, Some(Duration::from_secs(60)));
        assert_eq!(
            result["error"],
            json!("Action failed to complete in 60 seconds")
        );
        let (_, result) = shell_result(&e, Some(Duration::from_millis(1500)));
        assert_eq!(
            result["error"],
            json!("Action failed to complete in 1.5 seconds")
        );
    }

    #[test]
    fn a_run_that_could_not_start_is_failed_with_the_reason() {
        let mut e = exit(CommandOutcome::Error, None, None);
        e.error = Some("No such file or directory: nope".into());
        let (status, result) = shell_result(&e, None);
        assert_eq!(status, ActionStatus::Failed);
        assert_eq!(
            result,
            json!({"succeeded": false, "failed": true, "return_code": -1, "stdout": "",
                   "stderr": "", "error": "No such file or directory: nope"})
        );
    }

    #[test]
    fn shebang_lines_are_read_like_the_kernel_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("#!/bin/sh\necho\n", Some(vec!["/bin/sh"])),
            (
                "#! /usr/bin/env python3 \n",
                Some(vec!["/usr/bin/env", "python3"]),
            ),
            (
                "#!/usr/bin/env -S a b\n",
                Some(vec!["/usr/bin/env", "-S a b"]),
            ),
            ("echo no shebang\n", None),
            ("#!\n", None),
        ];
        for (i, (text, expected)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("s{i}"));
            std::fs::write(&path, text).unwrap();
            let expected =
                expected.map(|v| v.into_iter().map(String::from).collect::<Vec<String>>());
            assert_eq!(shebang(&path), expected, "{text:?}");
        }
    }
}
