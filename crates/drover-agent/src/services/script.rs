//! The user's shell snippets for glu's transitions (`Runtime::Scripts`): `sh -c` in the
//! release directory with the service's environment, in a process group of its own,
//! output appended to the instance's log files (a start script may leave a daemon
//! behind that keeps writing there; a pipe to the agent would tie it to the agent's
//! life) and copied into the command's output once the snippet is over.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drover_proto::agent::OutputStream;
use tokio_util::sync::CancellationToken;

use super::StepError;
use super::logs;
use super::state::ProcessRecord;
use super::supervisor::{Proc, describe_exit, terminate};
use crate::output::OutputBuffer;

/// Most bytes of one stream of a script's output copied into the command's output
/// (the log file has all of it).
const COPY_LIMIT: u64 = 1024 * 1024;

/// Where and how a snippet runs.
#[derive(Debug, Clone)]
pub(crate) struct ScriptEnv {
    /// Working directory.
    pub(crate) release_dir: PathBuf,
    /// Complete environment.
    pub(crate) env: Vec<(String, String)>,
    /// Log file for stdout.
    pub(crate) stdout: PathBuf,
    /// Log file for stderr.
    pub(crate) stderr: PathBuf,
    /// Time between SIGTERM and SIGKILL when cancelled.
    pub(crate) grace: Duration,
}

/// Copies what was appended to `path` since `from` into `out`.
fn copy_new_output(path: &Path, from: u64, stream: OutputStream, out: &OutputBuffer) {
    let now = logs::size(path);
    // Rotated meanwhile: what is there now is all new.
    let from = if now < from { 0 } else { from };
    let start = from.max(now.saturating_sub(COPY_LIMIT));
    if now <= start {
        return;
    }
    let read = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(now - start).read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(bytes) => {
            if start > from {
                out.push(
                    OutputStream::Stderr,
                    format!(
                        "[drover-agent: {} earlier bytes are in {}]\n",
                        start - from,
                        path.display()
                    ),
                );
            }
            logs::push_text(out, stream, &bytes);
        }
        Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot copy script output"),
    }
}

/// Runs the `name` snippet. Returns the pid (= process group) of its shell, which the
/// caller may keep watching for what the snippet left running. A non-zero exit is
/// `Failed`, a cancel `Cancelled`, a spawn error `Error`.
pub(crate) async fn run(
    name: &str,
    snippet: &str,
    ctx: &ScriptEnv,
    out: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
) -> Result<u32, StepError> {
    let argv = vec!["sh".to_string(), "-c".to_string(), snippet.to_string()];
    let mut cmd =
        super::env::command(&argv, &ctx.release_dir, &ctx.env).map_err(StepError::error)?;
    let stdout = logs::open_append(&ctx.stdout)
        .map_err(|e| StepError::error(format!("cannot open {}: {e}", ctx.stdout.display())))?;
    let stderr = logs::open_append(&ctx.stderr)
        .map_err(|e| StepError::error(format!("cannot open {}: {e}", ctx.stderr.display())))?;
    let before_out = logs::size(&ctx.stdout);
    let before_err = logs::size(&ctx.stderr);
    cmd.stdout(stdout).stderr(stderr);
    let mut child = cmd
        .spawn()
        .map_err(|e| StepError::error(format!("cannot run the {name} script: {e}")))?;
    let Some(pid) = child.id() else {
        return Err(StepError::error(format!(
            "lost the process of the {name} script right after spawning it"
        )));
    };
    let status = tokio::select! {
        s = child.wait() => s,
        _ = cancel.cancelled() => {
            let record = ProcessRecord { pid, start_ticks: 0, boot_id: String::new(), group: false };
            let how = terminate(&mut Proc::Child(child, record), ctx.grace).await;
            copy_new_output(&ctx.stdout, before_out, OutputStream::Stdout, out);
            copy_new_output(&ctx.stderr, before_err, OutputStream::Stderr, out);
            return Err(StepError::cancelled(format!("the {name} script was cancelled ({how})")));
        }
    };
    copy_new_output(&ctx.stdout, before_out, OutputStream::Stdout, out);
    copy_new_output(&ctx.stderr, before_err, OutputStream::Stderr, out);
    let status =
        status.map_err(|e| StepError::error(format!("cannot wait for the {name} script: {e}")))?;
    if status.success() {
        Ok(pid)
    } else {
        Err(StepError::failed(
            &status,
            format!("the {name} script {}", describe_exit(&status)),
        ))
    }
}
