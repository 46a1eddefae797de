//! [`CommandSpec::WriteFile`]: installing a generated file (e.g. `haproxy.cfg`) safely.
//!
//! 1. The content must match its announced SHA-256, and the path must be absolute,
//!    without `..` components, and not a symbolic link, directory or other special file
//!    (else: refused, exit code 2, nothing written).
//! 2. A current file with identical bytes is left alone: `unchanged: <path>`, exit 0,
//!    neither `check` nor `reload` runs.
//! 3. The content goes to `<path>.drover-staged` (same directory, so the swap is an
//!    atomic rename), synced, with the mode (and, if possible, the owner) of the current
//!    file, else 0644. Missing parent directories are created.
//! 4. `check` runs with `sh -c` in a process group of its own, killed after the timeout.
//!    If it fails, the staged file is deleted, the current file is untouched, `reload`
//!    does not run, and the last stderr line is `check failed: <last output line>` (the
//!    last non-empty line the checker wrote to stderr, or to stdout if none).
//! 5. The current file is copied to `<path>.drover-prev`, the staged file renamed over
//!    `path` and the directory synced: `written: <path> (<n> bytes, sha256 <12 hex>)`.
//! 6. `reload` runs like `check`; if it fails, the new file stays (it passed the check)
//!    and the last stderr line is `reload failed: <last output line>`.
//!
//! Both commands see the agent's environment plus the command's `DROVER_*` variables,
//! `DROVER_FILE` (the destination) and `DROVER_STAGED` (the staged path). Their output
//! goes into the command's output; the agent's own messages go to stderr. A failed
//! `check` or `reload` ends the command with its exit code (1 if it had none).
//!
//! Commands for the same path run one after the other.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use drover_proto::agent::{CommandOutcome, CommandSpec, OutputStream};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fsutil;
use crate::output::{MAX_BATCH, MAX_UNSENT, OutputBuffer};
use crate::process::{self, Exit};

/// Exit code of a refused request (bad path, sha256 mismatch).
pub(crate) const EXIT_REFUSED: i32 = 2;
/// Exit code of a failure of the agent's own work (I/O), or of a failed check or reload
/// that had no exit code of its own.
pub(crate) const EXIT_FAILED: i32 = 1;
/// Suffix of the copy of the file that was replaced.
pub(crate) const PREV_SUFFIX: &str = ".drover-prev";
/// Longest line (in bytes) kept for the `check failed:` / `reload failed:` message.
const MAX_MESSAGE_LINE: usize = 2048;
/// Mode of a file that did not exist before.
const DEFAULT_MODE: u32 = 0o644;

/// One [`CommandSpec::WriteFile`].
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) generator: String,
    pub(crate) path: String,
    pub(crate) content: String,
    pub(crate) sha256: String,
    pub(crate) check: Option<String>,
    pub(crate) reload: Option<String>,
    pub(crate) timeout: Duration,
}

impl Request {
    /// The request in `spec`; `None` for another kind of command.
    pub(crate) fn from_spec(spec: CommandSpec) -> Option<Request> {
        match spec {
            CommandSpec::WriteFile {
                generator,
                path,
                content,
                sha256,
                check,
                reload,
                timeout_ms,
            } => Some(Request {
                generator,
                path,
                content,
                sha256,
                check,
                reload,
                timeout: Duration::from_millis(timeout_ms),
            }),
            _ => None,
        }
    }
}

/// Runs `req`: agent messages and the output of `check` and `reload` go into `output`
/// (closed when this returns). `env` is added to the environment of both commands.
/// `cancel` terminates a running check or reload (and stops the swap if it comes
/// first); `shutdown` kills them at once.
pub(crate) async fn run(
    req: &Request,
    env: &[(String, String)],
    output: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
) -> Exit {
    let t0 = Instant::now();
    let end = run_inner(req, env, output, cancel, shutdown).await;
    output.close();
    Exit {
        outcome: end.outcome,
        exit_code: end.exit_code,
        signal: end.signal,
        duration: t0.elapsed(),
        error: end.error,
    }
}

/// How the command ends.
struct End {
    outcome: CommandOutcome,
    exit_code: Option<i32>,
    signal: Option<i32>,
    error: Option<String>,
}

impl End {
    fn ok() -> End {
        End {
            outcome: CommandOutcome::Ok,
            exit_code: Some(0),
            signal: None,
            error: None,
        }
    }

    fn failed(exit_code: i32, error: String) -> End {
        End {
            outcome: CommandOutcome::Failed,
            exit_code: Some(exit_code),
            signal: None,
            error: Some(error),
        }
    }
}

/// Pushes one agent message line to stderr.
fn say(output: &OutputBuffer, line: &str) {
    output.push(OutputStream::Stderr, format!("{line}\n"));
}

/// Says `line` and ends with `exit_code` (the error names the generator).
fn fail(output: &OutputBuffer, generator: &str, exit_code: i32, line: String) -> End {
    say(output, &line);
    End::failed(exit_code, format!("{generator}: {line}"))
}

async fn run_inner(
    req: &Request,
    env: &[(String, String)],
    output: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
) -> End {
    let generator = req.generator.as_str();
    let actual = hex::encode(Sha256::digest(req.content.as_bytes()));
    if !actual.eq_ignore_ascii_case(req.sha256.trim()) {
        return fail(
            output,
            generator,
            EXIT_REFUSED,
            format!(
                "refused: the content's sha256 is {actual}, not {} as announced; nothing written",
                req.sha256
            ),
        );
    }
    let paths = match Paths::new(&req.path) {
        Ok(p) => p,
        Err(why) => {
            return fail(
                output,
                generator,
                EXIT_REFUSED,
                format!("refused: {why}; nothing written"),
            );
        }
    };

    // One command per path at a time: they share the staged and prev files.
    let _lock = PathLock::acquire(&paths.path).await;

    let staged = {
        let (paths, content) = (paths.clone(), req.content.clone().into_bytes());
        tokio::task::spawn_blocking(move || stage(&paths, &content)).await
    };
    let staged = match staged {
        Ok(Ok(s)) => s,
        Ok(Err(Refusal::Refused(why))) => {
            return fail(
                output,
                generator,
                EXIT_REFUSED,
                format!("refused: {why}; nothing written"),
            );
        }
        Ok(Err(Refusal::Failed(why))) => {
            return fail(
                output,
                generator,
                EXIT_FAILED,
                format!("{why}; nothing changed"),
            );
        }
        Err(e) => {
            return fail(
                output,
                generator,
                EXIT_FAILED,
                format!("staging failed: {e}; nothing changed"),
            );
        }
    };
    let Staged::Written {
        old,
        mode,
        warnings,
    } = staged
    else {
        say(output, &format!("unchanged: {}", paths.path.display()));
        return End::ok();
    };
    for w in &warnings {
        say(output, &format!("{generator}: warning: {w}"));
    }

    let mut env = env.to_vec();
    env.push(("DROVER_FILE".into(), req.path.clone()));
    env.push((
        "DROVER_STAGED".into(),
        paths.staged.to_string_lossy().into_owned(),
    ));

    if let Some(check) = &req.check {
        say(
            output,
            &format!("{generator}: checking {}", paths.staged.display()),
        );
        let (exit, last) = shell(check, &env, req.timeout, output, cancel, shutdown).await;
        if exit.outcome != CommandOutcome::Ok {
            remove_quietly(&paths.staged);
            let why = describe_failure(&exit, last.as_deref(), req.timeout);
            let line = format!("check failed: {why}");
            say(output, &line);
            return End {
                outcome: exit.outcome,
                exit_code: Some(exit.exit_code.filter(|&c| c != 0).unwrap_or(EXIT_FAILED)),
                signal: exit.signal,
                error: Some(format!(
                    "{generator}: {line} ({} left unchanged)",
                    paths.path.display()
                )),
            };
        }
    }
    if cancel.is_cancelled() || shutdown.is_cancelled() {
        remove_quietly(&paths.staged);
        let line = format!(
            "cancelled before {} was replaced; nothing changed",
            paths.path.display()
        );
        say(output, &line);
        return End {
            outcome: CommandOutcome::Cancelled,
            exit_code: None,
            signal: None,
            error: Some(format!("{generator}: {line}")),
        };
    }

    let swapped = {
        let paths = paths.clone();
        tokio::task::spawn_blocking(move || swap(&paths, old.as_deref(), mode)).await
    };
    match swapped {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            remove_quietly(&paths.staged);
            return fail(
                output,
                generator,
                EXIT_FAILED,
                format!("{why}; {} left unchanged", paths.path.display()),
            );
        }
        Err(e) => {
            remove_quietly(&paths.staged);
            return fail(output, generator, EXIT_FAILED, format!("swap failed: {e}"));
        }
    }
    say(
        output,
        &format!(
            "written: {} ({} bytes, sha256 {})",
            paths.path.display(),
            req.content.len(),
            &actual[..12]
        ),
    );

    if let Some(reload) = &req.reload {
        say(output, &format!("{generator}: reloading"));
        let (exit, last) = shell(reload, &env, req.timeout, output, cancel, shutdown).await;
        if exit.outcome != CommandOutcome::Ok {
            let why = describe_failure(&exit, last.as_deref(), req.timeout);
            let line = format!("reload failed: {why}");
            say(output, &line);
            return End {
                outcome: exit.outcome,
                exit_code: Some(exit.exit_code.filter(|&c| c != 0).unwrap_or(EXIT_FAILED)),
                signal: exit.signal,
                error: Some(format!(
                    "{generator}: {line} (the new {} stays in place)",
                    paths.path.display()
                )),
            };
        }
    }
    End::ok()
}

/// The destination and its sibling files.
#[derive(Debug, Clone, PartialEq)]
struct Paths {
    path: PathBuf,
    dir: PathBuf,
    staged: PathBuf,
    prev: PathBuf,
}

impl Paths {
    /// Checks `path` (absolute, no `..`, names a file) and derives its siblings.
    fn new(path: &str) -> Result<Paths, String> {
        if path.is_empty() {
            return Err("the path is empty".into());
        }
        if path.contains('\0') {
            return Err(format!("the path {path:?} contains a NUL byte"));
        }
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(format!("the path {path:?} is not absolute"));
        }
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(format!("the path {path:?} contains a `..` component"));
        }
        if path.ends_with('/') || path.ends_with("/.") {
            return Err(format!("the path {path:?} does not name a file"));
        }
        let (Some(dir), Some(_)) = (p.parent(), p.file_name()) else {
            return Err(format!("the path {path:?} does not name a file"));
        };
        Ok(Paths {
            path: p.to_path_buf(),
            dir: dir.to_path_buf(),
            staged: PathBuf::from(CommandSpec::write_file_staged_path(path)),
            prev: PathBuf::from(format!("{path}{PREV_SUFFIX}")),
        })
    }
}

/// Why staging did not happen.
enum Refusal {
    /// The request cannot be carried out as asked (exit code 2).
    Refused(String),
    /// An I/O failure (exit code 1).
    Failed(String),
}

/// What staging did.
enum Staged {
    /// The current file already has the content.
    Unchanged,
    /// The staged file is written and synced.
    Written {
        /// The current file's bytes, if there is one.
        old: Option<Vec<u8>>,
        /// The mode given to the staged file.
        mode: u32,
        /// Things that did not work but do not stop the install.
        warnings: Vec<String>,
    },
}

/// Reads the current file and, unless its bytes are `content`, writes the staged file.
fn stage(paths: &Paths, content: &[u8]) -> Result<Staged, Refusal> {
    let path = paths.path.display();
    let current = match fs::symlink_metadata(&paths.path) {
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_symlink() {
                return Err(Refusal::Refused(format!(
                    "{path} is a symbolic link (give the path of the file itself)"
                )));
            }
            if !kind.is_file() {
                return Err(Refusal::Refused(format!("{path} is not a regular file")));
            }
            let bytes = fs::read(&paths.path)
                .map_err(|e| Refusal::Failed(format!("cannot read {path}: {e}")))?;
            Some((bytes, meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Refusal::Failed(format!("cannot look at {path}: {e}"))),
    };
    if current.as_ref().is_some_and(|(bytes, _)| bytes == content) {
        return Ok(Staged::Unchanged);
    }
    fs::create_dir_all(&paths.dir).map_err(|e| {
        Refusal::Failed(format!(
            "cannot create the directory {}: {e}",
            paths.dir.display()
        ))
    })?;
    let mode = current
        .as_ref()
        .map(|(_, meta)| meta.mode() & 0o7777)
        .unwrap_or(DEFAULT_MODE);
    let owner = current.as_ref().map(|(_, meta)| (meta.uid(), meta.gid()));
    let mut warnings = Vec::new();
    if let Err(e) = write_staged(paths, content, mode, owner, &mut warnings) {
        remove_quietly(&paths.staged);
        return Err(Refusal::Failed(format!(
            "cannot write {}: {e}",
            paths.staged.display()
        )));
    }
    Ok(Staged::Written {
        old: current.map(|(bytes, _)| bytes),
        mode,
        warnings,
    })
}

/// Writes and syncs the staged file with `mode` and (if possible) `owner`.
fn write_staged(
    paths: &Paths,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    warnings: &mut Vec<String>,
) -> io::Result<()> {
    // A leftover from an earlier run (the agent may have died while checking).
    match fs::remove_file(&paths.staged) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&paths.staged)?;
    if let Some((uid, gid)) = owner {
        let meta = f.metadata()?;
        if (meta.uid(), meta.gid()) != (uid, gid)
            && let Err(e) = std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
        {
            warnings.push(format!(
                "cannot give {} the owner of {} ({uid}:{gid}): {e}",
                paths.staged.display(),
                paths.path.display()
            ));
        }
    }
    // After the chown (which may clear set-id bits), and exactly: the umask took some.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(content)?;
    f.sync_all()
}

/// Keeps `old` as the prev file, renames the staged file over the destination and syncs
/// the directory.
fn swap(paths: &Paths, old: Option<&[u8]>, mode: u32) -> Result<(), String> {
    if let Some(old) = old {
        fsutil::write_atomic(&paths.prev, old, mode).map_err(|e| {
            format!(
                "cannot keep the current file as {}: {e}",
                paths.prev.display()
            )
        })?;
    }
    fs::rename(&paths.staged, &paths.path).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            paths.staged.display(),
            paths.path.display()
        )
    })?;
    if let Ok(d) = File::open(&paths.dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the staged file");
        }
        _ => {}
    }
}

/// Runs `sh -c <command>` like an exec command (process group, timeout, cancel, kill on
/// shutdown), copying its output into `output` (left open). Returns how it ended and
/// the last non-empty line of its output.
async fn shell(
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
    output: &Arc<OutputBuffer>,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
) -> (Exit, Option<String>) {
    // `process::execute` closes the buffer it writes to: give it one of its own and
    // forward its chunks.
    let own = OutputBuffer::new(MAX_UNSENT);
    let forward = {
        let (own, output) = (own.clone(), output.clone());
        tokio::spawn(async move {
            let mut last = LastLine::default();
            while let Some(batch) = own.next_batch(MAX_BATCH, Duration::ZERO).await {
                let mut bytes = 0;
                for chunk in batch {
                    bytes += chunk.data.len();
                    last.feed(chunk.stream, &chunk.data);
                    output.push(chunk.stream, chunk.data);
                }
                own.acknowledge(bytes);
            }
            last.finish()
        })
    };
    let argv = ["sh".to_string(), "-c".to_string(), command.to_string()];
    let (started, _) = oneshot::channel();
    let exit = process::execute(&argv, env, Some(timeout), &own, cancel, shutdown, started).await;
    let last = forward.await.unwrap_or_default();
    (exit, last)
}

/// Why a check or reload failed, for the `… failed:` line.
fn describe_failure(exit: &Exit, last: Option<&str>, timeout: Duration) -> String {
    let plain = match (exit.exit_code, exit.signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "failed".to_string(),
    };
    match exit.outcome {
        CommandOutcome::TimedOut => {
            let base = format!("timed out after {} ms", timeout.as_millis());
            match last {
                Some(l) => format!("{base} (last output: {l})"),
                None => base,
            }
        }
        CommandOutcome::Cancelled => "cancelled".to_string(),
        CommandOutcome::Error => exit
            .error
            .clone()
            .unwrap_or_else(|| "could not be run".to_string()),
        CommandOutcome::Failed | CommandOutcome::Ok => last.map(str::to_string).unwrap_or(plain),
    }
}

/// Follows both streams of a command's output and remembers the last non-empty line of
/// each. The message is the one of stderr, where checkers put their complaints (the
/// order of lines across the two pipes is not reliable), else the one of stdout.
#[derive(Debug, Default)]
struct LastLine {
    /// Unfinished line of stdout and of stderr.
    partial: [String; 2],
    /// Last complete non-empty line of stdout and of stderr.
    last: [Option<String>; 2],
}

impl LastLine {
    fn feed(&mut self, stream: OutputStream, data: &str) {
        let i = match stream {
            OutputStream::Stdout => 0,
            OutputStream::Stderr => 1,
        };
        let mut rest = data;
        while let Some(n) = rest.find('\n') {
            let mut line = std::mem::take(&mut self.partial[i]);
            push_bounded(&mut line, &rest[..n]);
            self.note(i, &line);
            rest = &rest[n + 1..];
        }
        push_bounded(&mut self.partial[i], rest);
    }

    fn note(&mut self, i: usize, line: &str) {
        let line = line.trim();
        if !line.is_empty() {
            self.last[i] = Some(line.to_string());
        }
    }

    fn finish(mut self) -> Option<String> {
        for i in 0..2 {
            let line = std::mem::take(&mut self.partial[i]);
            self.note(i, &line);
        }
        let [stdout, stderr] = self.last;
        stderr.or(stdout)
    }
}

/// Appends as much of `s` to `buf` as fits in [`MAX_MESSAGE_LINE`] bytes.
fn push_bounded(buf: &mut String, s: &str) {
    let room = MAX_MESSAGE_LINE.saturating_sub(buf.len());
    let mut end = room.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.push_str(&s[..end]);
}

/// Serialises commands for one destination path within this agent.
struct PathLock {
    path: PathBuf,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

type LockMap = Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;

static LOCKS: LazyLock<LockMap> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn locks() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>> {
    LOCKS.lock().unwrap_or_else(|e| e.into_inner())
}

impl PathLock {
    async fn acquire(path: &Path) -> PathLock {
        let mutex = locks().entry(path.to_path_buf()).or_default().clone();
        PathLock {
            path: path.to_path_buf(),
            _guard: mutex.lock_owned().await,
        }
    }
}

impl Drop for PathLock {
    fn drop(&mut self) {
        let mut map = locks();
        // Only the map still holds it (our guard holds a clone too, hence 2): nobody waits.
        if map
            .get(&self.path)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_without_dotdot_and_name_a_file() {
        let p = Paths::new("/etc/haproxy/haproxy.cfg").expect("ok");
        assert_eq!(p.dir, PathBuf::from("/etc/haproxy"));
        assert_eq!(
            p.staged,
            PathBuf::from("/etc/haproxy/haproxy.cfg.drover-staged")
        );
        assert_eq!(
            p.prev,
            PathBuf::from("/etc/haproxy/haproxy.cfg.drover-prev")
        );
        for bad in [
            "",
            "haproxy.cfg",
            "etc/haproxy.cfg",
            "./haproxy.cfg",
            "/etc/../haproxy.cfg",
            "/etc/haproxy/..",
            "/etc/haproxy/",
            "/etc/haproxy/.",
            "/",
            "/etc/a\0b",
        ] {
            assert!(Paths::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn last_line_spans_chunks_and_streams() {
        let mut l = LastLine::default();
        l.feed(OutputStream::Stdout, "one\ntw");
        l.feed(OutputStream::Stderr, "err 1\nerr");
        l.feed(OutputStream::Stdout, "o\n");
        l.feed(OutputStream::Stderr, " 2\n\n  \n");
        assert_eq!(l.finish().as_deref(), Some("err 2"), "stderr first");

        let mut l = LastLine::default();
        l.feed(OutputStream::Stdout, "one\ntw");
        l.feed(OutputStream::Stdout, "o\n\n");
        assert_eq!(l.finish().as_deref(), Some("two"), "else stdout");

        let mut l = LastLine::default();
        l.feed(OutputStream::Stderr, "first\nno newline at the end");
        assert_eq!(l.finish().as_deref(), Some("no newline at the end"));

        assert_eq!(LastLine::default().finish(), None);

        let mut l = LastLine::default();
        l.feed(OutputStream::Stdout, &"é".repeat(MAX_MESSAGE_LINE));
        let last = l.finish().expect("line");
        assert!(last.len() <= MAX_MESSAGE_LINE);
    }
}
