//! The local shell runners against real processes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ActionStatus;
use super::shell::{ActionContext, ShellCommand, run_shell};

fn context() -> ActionContext {
    ActionContext {
        execution_id: "exec-1".into(),
        action_ref: "mypack.myaction".into(),
    }
}

fn cmd(cmd: &str) -> ShellCommand {
    ShellCommand::Cmd {
        cmd: cmd.into(),
        env: Vec::new(),
        cwd: None,
        timeout: Some(Duration::from_secs(20)),
        sudo: false,
    }
}

fn script(path: &Path, args: &[&str]) -> ShellCommand {
    ShellCommand::Script {
        path: path.to_path_buf(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        cwd: None,
        timeout: Some(Duration::from_secs(20)),
        sudo: false,
    }
}

async fn run(command: &ShellCommand) -> (ActionStatus, Value) {
    run_shell(command, &context(), &CancellationToken::new(), None).await
}

fn write_script(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test]
async fn a_command_gets_stackstorms_result_with_json_parsed() {
    let cases = [
        (
            "echo '{\"a\": [1, 2]}'",
            ActionStatus::Succeeded,
            json!({"succeeded": true, "failed": false, "return_code": 0,
                   "stdout": {"a": [1, 2]}, "stderr": ""}),
        ),
        (
            "echo plain text; echo oops >&2; exit 4",
            ActionStatus::Failed,
            json!({"succeeded": false, "failed": true, "return_code": 4,
                   "stdout": "plain text", "stderr": "oops"}),
        ),
        (
            "printf '  [true]  \\n\\n'; printf '\"e\"\\r\\n' >&2",
            ActionStatus::Succeeded,
            json!({"succeeded": true, "failed": false, "return_code": 0,
                   "stdout": [true], "stderr": "e"}),
        ),
    ];
    for (line, status, expected) in cases {
        let (got, result) = run(&cmd(line)).await;
        assert_eq!((got, result), (status, expected), "{line}");
    }
    // Like StackStorm, a missing command is the shell's exit 127, not an error of ours.
    let (status, result) = run(&cmd("nosuchcommand-drover")).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(result["return_code"], json!(127));
    let stderr = result["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("nosuchcommand-drover") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(result.get("error").is_none());
}

#[tokio::test]
async fn a_timeout_reports_minus_nine_and_stackstorms_error() {
    let mut command = cmd("echo started; sleep 30");
    if let ShellCommand::Cmd { timeout, .. } = &mut command {
        *timeout = Some(Duration::from_millis(300));
    }
    let t0 = std::time::Instant::now();
    let (status, result) = run(&command).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(status, ActionStatus::Timeout);
    assert_eq!(result["return_code"], json!(-9));
    assert_eq!(result["succeeded"], json!(false));
    assert_eq!(result["stdout"], json!("started"));
    assert_eq!(
        result["error"],
        json!("Action failed to complete in 0.3 seconds")
    );
}

#[tokio::test]
async fn cancel_gives_canceled() {
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { run_shell(&cmd("sleep 30"), &context(), &cancel, None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let (status, result) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cancel ends the run")
        .unwrap();
    assert_eq!(status, ActionStatus::Canceled);
    assert_eq!(result["return_code"], json!(-15));
}

#[tokio::test]
async fn script_arguments_arrive_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_script(
        dir.path(),
        "echo args.sh",
        "#!/bin/sh\nprintf '%s\\n' \"$@\"\n",
        0o755,
    );
    let args = [
        "--name=a value with spaces",
        "it's \"quoted\"",
        "$HOME * `x`",
        "",
        "last",
    ];
    let (status, result) = run(&script(&path, &args)).await;
    assert_eq!(status, ActionStatus::Succeeded, "{result}");
    assert_eq!(result["stdout"], json!(args.join("\n")));
}

#[tokio::test]
async fn a_script_without_exec_permission_runs_with_its_interpreter_or_bash() {
    let dir = tempfile::tempdir().unwrap();
    let shebang = write_script(dir.path(), "s.sh", "#!/bin/sh\necho \"sh:$1\"\n", 0o644);
    let bare = write_script(
        dir.path(),
        "b.sh",
        "echo \"${BASH_VERSION:+bash}:$1\"\n",
        0o644,
    );
    let (status, result) = run(&script(&shebang, &["x y"])).await;
    assert_eq!(
        (status, &result["stdout"]),
        (ActionStatus::Succeeded, &json!("sh:x y"))
    );
    let (status, result) = run(&script(&bare, &["z"])).await;
    assert_eq!(
        (status, &result["stdout"]),
        (ActionStatus::Succeeded, &json!("bash:z"))
    );
}

#[tokio::test]
async fn cwd_env_and_execution_variables_reach_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let path = write_script(
        &dir_path,
        "env.sh",
        "#!/bin/sh\necho \"{\\\"cwd\\\": \\\"$(pwd)\\\", \\\"mine\\\": \\\"$MINE\\\", \\\"id\\\": \\\"$DROVER_EXECUTION_ID\\\", \\\"ref\\\": \\\"$DROVER_ACTION_REF\\\", \\\"st2\\\": \\\"$ST2_ACTION_EXECUTION_ID $ST2_ACTION_PACK_NAME\\\"}\"\n",
        0o755,
    );
    let command = ShellCommand::Script {
        path: PathBuf::from("env.sh"),
        args: Vec::new(),
        env: vec![("MINE".into(), "my value".into())],
        cwd: Some(dir_path.clone()),
        timeout: None,
        sudo: false,
    };
    let (status, result) = run(&command).await;
    assert_eq!(status, ActionStatus::Succeeded, "{result}");
    assert_eq!(
        result["stdout"],
        json!({"cwd": dir_path.display().to_string(), "mine": "my value", "id": "exec-1",
               "ref": "mypack.myaction", "st2": "exec-1 mypack"})
    );
    assert!(path.exists());

    let mut in_dir = cmd("pwd");
    if let ShellCommand::Cmd { cwd, .. } = &mut in_dir {
        *cwd = Some(dir_path.clone());
    }
    let (_, result) = run(&in_dir).await;
    assert_eq!(result["stdout"], json!(dir_path.display().to_string()));
}

#[tokio::test]
async fn what_cannot_start_is_failed_with_the_reason() {
    let (status, result) = run(&script(Path::new("/nonexistent/drover.sh"), &[])).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(result["return_code"], json!(-1));
    assert_eq!(
        result["error"],
        json!("cannot run script /nonexistent/drover.sh: No such file or directory (os error 2)")
    );

    let mut bad_cwd = cmd("true");
    if let ShellCommand::Cmd { cwd, .. } = &mut bad_cwd {
        *cwd = Some(PathBuf::from("/nonexistent-drover"));
    }
    let (status, result) = run(&bad_cwd).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(
        result["error"],
        json!(
            "cannot use working directory /nonexistent-drover: No such file or directory (os error 2)"
        )
    );
}

#[tokio::test]
async fn sudo_runs_the_command_with_bash_or_says_why_not() {
    let command = ShellCommand::Cmd {
        cmd: "echo \"${BASH_VERSION:+bash}\"".into(),
        env: Vec::new(),
        cwd: None,
        timeout: Some(Duration::from_secs(20)),
        sudo: true,
    };
    let (status, result) = run(&command).await;
    if super::shell::running_as_root() {
        // Root needs no sudo: the command runs as StackStorm runs it under sudo, with bash.
        assert_eq!(status, ActionStatus::Succeeded, "{result}");
        assert_eq!(result["stdout"], json!("bash"));
    } else if status == ActionStatus::Failed {
        let error = result["error"].as_str().unwrap_or_default();
        assert!(error.contains("sudo"), "{result}");
    } else {
        // Passwordless sudo is configured here.
        assert_eq!(result["stdout"], json!("bash"));
    }
}
