//! `CommandSpec::WriteFile` through a real agent against a small in-test controller
//! (axum), with real files and real check and reload processes: new file, unchanged
//! content, changed content, failing check (a shell one and a real `haproxy -c`), hung
//! check, sha256 mismatch, bad paths, failing reload, and at-most-once re-delivery.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drover_agent::{AgentConfig, run};
use drover_proto::agent::{
    AgentCommand, CommandOutcome, CommandResult, CommandSpec, CommandUpdate, EnrollRequest,
    EnrollResponse, Heartbeat, HeartbeatAck, OutputBatch, OutputChunk, OutputStream, PollRequest,
    PollResponse,
};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const JOIN_TOKEN: &str = "join-ok";
const CREDENTIAL: &str = "cred-1";
const HAPROXY: &str = "/usr/sbin/haproxy";

// ---------------------------------------------------------------------------------------
// A controller that hands out queued work and records reports.

#[derive(Debug, Clone)]
enum Msg {
    Output(OutputBatch),
    Status(CommandUpdate),
}

#[derive(Default)]
struct Fake {
    work: Mutex<VecDeque<PollResponse>>,
    work_ready: Notify,
    log: Mutex<Vec<(String, Msg)>>,
}

impl Fake {
    fn authorized(headers: &HeaderMap, token: &str) -> bool {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {token}"))
    }

    fn push_work(&self, work: PollResponse) {
        self.work.lock().expect("lock").push_back(work);
        self.work_ready.notify_one();
    }

    fn messages(&self, id: &str) -> Vec<Msg> {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn finished(&self, id: &str) -> Vec<CommandResult> {
        self.messages(id)
            .into_iter()
            .filter_map(|m| match m {
                Msg::Status(CommandUpdate::Finished { result }) => Some(result),
                _ => None,
            })
            .collect()
    }

    fn chunks(&self, id: &str) -> Vec<OutputChunk> {
        self.messages(id)
            .into_iter()
            .filter_map(|m| match m {
                Msg::Output(b) => Some(b.chunks),
                Msg::Status(_) => None,
            })
            .flatten()
            .collect()
    }

    fn text(&self, id: &str, stream: OutputStream) -> String {
        self.chunks(id)
            .into_iter()
            .filter(|c| c.stream == stream)
            .map(|c| c.data)
            .collect()
    }
}

fn unauthorized() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

async fn enroll(
    State(_): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(req): Json<EnrollRequest>,
) -> Response {
    if !Fake::authorized(&headers, JOIN_TOKEN) {
        return unauthorized();
    }
    (
        StatusCode::CREATED,
        Json(EnrollResponse {
            host_id: "host-1".into(),
            name: req.name,
            credential: CREDENTIAL.into(),
        }),
    )
        .into_response()
}

async fn heartbeat(
    State(_): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(_): Json<Heartbeat>,
) -> Response {
    if !Fake::authorized(&headers, CREDENTIAL) {
        return unauthorized();
    }
    Json(HeartbeatAck {
        host_id: "host-1".into(),
        interval_ms: 1000,
    })
    .into_response()
}

async fn poll(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(req): Json<PollRequest>,
) -> Response {
    if !Fake::authorized(&headers, CREDENTIAL) {
        return unauthorized();
    }
    let deadline = Instant::now() + Duration::from_millis(req.wait_ms.min(2000));
    loop {
        if let Some(w) = fake.work.lock().expect("lock").pop_front() {
            return Json(w).into_response();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero()
            || tokio::time::timeout(left, fake.work_ready.notified())
                .await
                .is_err()
        {
            return Json(PollResponse::default()).into_response();
        }
    }
}

async fn output(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(batch): Json<OutputBatch>,
) -> Response {
    if !Fake::authorized(&headers, CREDENTIAL) {
        return unauthorized();
    }
    fake.log
        .lock()
        .expect("lock")
        .push((id, Msg::Output(batch)));
    StatusCode::NO_CONTENT.into_response()
}

async fn status(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(update): Json<CommandUpdate>,
) -> Response {
    if !Fake::authorized(&headers, CREDENTIAL) {
        return unauthorized();
    }
    fake.log
        .lock()
        .expect("lock")
        .push((id, Msg::Status(update)));
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------
// One agent with its state dir, and a scratch directory for the files it installs.

struct Harness {
    fake: Arc<Fake>,
    shutdown: CancellationToken,
    agent: JoinHandle<anyhow::Result<()>>,
    _state: tempfile::TempDir,
    /// Scratch directory for the installed files and markers.
    root: tempfile::TempDir,
}

/// What the agent reported for one command.
struct Ran {
    result: CommandResult,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn last_stderr_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

impl Harness {
    async fn start() -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "drover_agent=info".into()),
            )
            .with_test_writer()
            .try_init();
        let fake = Arc::new(Fake::default());
        let app = axum::Router::new()
            .route("/api/v1/agent/enroll", post(enroll))
            .route("/api/v1/agent/heartbeat", post(heartbeat))
            .route("/api/v1/agent/poll", post(poll))
            .route("/api/v1/agent/commands/{id}/output", post(output))
            .route("/api/v1/agent/commands/{id}/status", post(status))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let state = tempfile::tempdir().expect("tempdir");
        let config = AgentConfig {
            controller: format!("http://{addr}/"),
            join_token: Some(JOIN_TOKEN.into()),
            name: "lb-1".into(),
            labels: BTreeMap::new(),
            state_dir: state.path().join("state"),
            poll_wait: Duration::from_millis(500),
        };
        let shutdown = CancellationToken::new();
        let agent = tokio::spawn(run(config, shutdown.clone()));
        Harness {
            fake,
            shutdown,
            agent,
            _state: state,
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Delivers `spec` as command `id` and waits for its `n`th result.
    async fn deliver(&self, id: &str, spec: CommandSpec, n: usize) -> Ran {
        self.fake.push_work(PollResponse {
            commands: vec![AgentCommand {
                id: id.into(),
                execution_id: "e-1".into(),
                spec,
            }],
            cancel: vec![],
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.fake.finished(id).len() < n {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for result {n} of {id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let result = self.fake.finished(id)[n - 1].clone();
        let seqs: Vec<u64> = self.fake.chunks(id).iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            (0..result.chunks).collect::<Vec<_>>(),
            "output of {id} incomplete or out of order"
        );
        Ran {
            result,
            stdout: self.fake.text(id, OutputStream::Stdout),
            stderr: self.fake.text(id, OutputStream::Stderr),
        }
    }

    async fn run(&self, id: &str, spec: CommandSpec) -> Ran {
        self.deliver(id, spec, 1).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.agent)
            .await
            .expect("agent did not stop in time")
            .expect("join")
            .expect("agent ended with an error");
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A `WriteFile` as the controller sends it: `{staged}` already replaced in `check`.
fn write_file(
    path: &Path,
    content: &str,
    check: Option<&str>,
    reload: Option<&str>,
) -> CommandSpec {
    let path = path.to_str().expect("utf-8 path").to_string();
    let staged = CommandSpec::write_file_staged_path(&path);
    CommandSpec::WriteFile {
        generator: "haproxy".into(),
        check: check.map(|c| c.replace("{staged}", &staged)),
        reload: reload.map(str::to_string),
        sha256: sha256_hex(content),
        content: content.into(),
        path,
        timeout_ms: 10_000,
    }
}

fn staged(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.drover-staged", path.display()))
}

fn prev(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.drover-prev", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// A reload command that appends a line to `marker`.
fn touch(marker: &Path) -> String {
    format!("echo reloaded >> {}", sh_quote(marker))
}

fn assert_ok(ran: &Ran) {
    assert_eq!(
        (ran.result.outcome, ran.result.exit_code),
        (CommandOutcome::Ok, Some(0)),
        "result {:?}\nstdout:\n{}\nstderr:\n{}",
        ran.result,
        ran.stdout,
        ran.stderr
    );
}

fn written_line(path: &Path, content: &str) -> String {
    format!(
        "written: {} ({} bytes, sha256 {})",
        path.display(),
        content.len(),
        &sha256_hex(content)[..12]
    )
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_file_is_written_with_its_directories_checked_and_reloaded() {
    let h = Harness::start().await;
    let path = h.path("etc/haproxy/haproxy.cfg");
    let marker = h.path("reloaded");
    let content = "# valid\nfrontend web\n";
    let ran = h
        .run(
            "w1",
            write_file(
                &path,
                content,
                Some("grep -q valid {staged} && echo checked $DROVER_STAGED"),
                Some(&touch(&marker)),
            ),
        )
        .await;
    assert_ok(&ran);
    assert_eq!(std::fs::read_to_string(&path).expect("written"), content);
    assert_eq!(mode(&path), 0o644);
    assert!(!staged(&path).exists(), "staged file left behind");
    assert!(!prev(&path).exists(), "a prev file without a previous file");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("reload ran"),
        "reloaded\n"
    );
    assert_eq!(
        ran.stdout,
        format!("checked {}\n", staged(&path).display()),
        "check output is streamed"
    );
    assert!(
        ran.stderr.contains(&written_line(&path, content)),
        "{}",
        ran.stderr
    );
    h.stop().await;
}

#[tokio::test]
async fn unchanged_content_runs_neither_check_nor_reload() {
    let h = Harness::start().await;
    let path = h.path("haproxy.cfg");
    let content = "# valid\nsame\n";
    std::fs::write(&path, content).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let checked = h.path("checked");
    let reloaded = h.path("reloaded");
    let ran = h
        .run(
            "w1",
            write_file(
                &path,
                content,
                Some(&format!("touch {}", sh_quote(&checked))),
                Some(&touch(&reloaded)),
            ),
        )
        .await;
    assert_ok(&ran);
    assert!(
        ran.stderr
            .contains(&format!("unchanged: {}", path.display())),
        "{}",
        ran.stderr
    );
    assert!(!checked.exists(), "check ran for unchanged content");
    assert!(!reloaded.exists(), "reload ran for unchanged content");
    assert!(!staged(&path).exists());
    assert!(!prev(&path).exists(), "prev written for unchanged content");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), content);
    assert_eq!(mode(&path), 0o600);
    h.stop().await;
}

#[tokio::test]
async fn changed_content_keeps_the_previous_file_and_reloads_after_the_swap() {
    let h = Harness::start().await;
    let path = h.path("haproxy.cfg");
    let old = "# valid\nold\n";
    let new = "# valid\nnew\n";
    std::fs::write(&path, old).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::fs::write(prev(&path), "an older prev").expect("older prev");
    let marker = h.path("reloaded");
    // The reload sees the new file in place.
    let reload = format!("cat {} > {}", sh_quote(&path), sh_quote(&marker));
    let ran = h
        .run(
            "w1",
            write_file(&path, new, Some("grep -q valid {staged}"), Some(&reload)),
        )
        .await;
    assert_ok(&ran);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), new);
    assert_eq!(mode(&path), 0o640, "mode of the replaced file kept");
    assert_eq!(std::fs::read_to_string(prev(&path)).expect("prev"), old);
    assert!(!staged(&path).exists());
    assert_eq!(
        std::fs::read_to_string(&marker).expect("reload ran"),
        new,
        "reload ran before the swap"
    );
    assert!(
        ran.stderr.contains(&written_line(&path, new)),
        "{}",
        ran.stderr
    );
    h.stop().await;
}

#[tokio::test]
async fn a_failing_check_leaves_the_old_file_and_does_not_reload() {
    let h = Harness::start().await;
    let path = h.path("haproxy.cfg");
    let old = "# valid\nold\n";
    std::fs::write(&path, old).expect("write");
    let reloaded = h.path("reloaded");
    let check = "grep -q valid {staged} || { echo checking {staged}; \
                 echo 'line 3: unknown keyword bogus' >&2; echo >&2; exit 3; }";
    let ran = h
        .run(
            "w1",
            write_file(&path, "broken\n", Some(check), Some(&touch(&reloaded))),
        )
        .await;
    assert_eq!(
        ran.result.outcome,
        CommandOutcome::Failed,
        "{:?}",
        ran.result
    );
    assert_eq!(ran.result.exit_code, Some(3), "the checker's exit code");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        old.as_bytes(),
        "old file changed"
    );
    assert!(!staged(&path).exists(), "staged file left behind");
    assert!(!prev(&path).exists());
    assert!(!reloaded.exists(), "reload ran after a failed check");
    assert_eq!(
        ran.stdout,
        format!("checking {}\n", staged(&path).display())
    );
    assert!(
        ran.stderr.contains("line 3: unknown keyword bogus\n"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        ran.last_stderr_line(),
        "check failed: line 3: unknown keyword bogus"
    );
    assert!(!ran.stderr.contains("written:"), "{}", ran.stderr);
    h.stop().await;
}

#[tokio::test]
async fn haproxy_checks_the_staged_config() {
    assert!(
        Path::new(HAPROXY).exists(),
        "this test needs HAProxy at {HAPROXY} (apt-get install haproxy)"
    );
    let h = Harness::start().await;
    let path = h.path("haproxy/haproxy.cfg");
    let reloaded = h.path("reloaded");
    let check = format!("{HAPROXY} -c -f {{staged}}");
    let good = "global\n    maxconn 100\n\ndefaults\n    mode http\n    timeout connect 5s\n    \
                timeout client 30s\n    timeout server 30s\n\nfrontend web\n    bind \
                127.0.0.1:18080\n    default_backend app\n\nbackend app\n    server a1 \
                127.0.0.1:18081\n";
    let ran = h
        .run(
            "good",
            write_file(&path, good, Some(&check), Some(&touch(&reloaded))),
        )
        .await;
    assert_ok(&ran);
    assert!(
        ran.stdout.contains("Configuration file is valid"),
        "{}",
        ran.stdout
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), good);
    assert_eq!(
        std::fs::read_to_string(&reloaded).expect("reloaded"),
        "reloaded\n"
    );

    let bad = good.replace("    default_backend app\n", "    bogus_directive yes\n");
    let ran = h
        .run(
            "bad",
            write_file(&path, &bad, Some(&check), Some(&touch(&reloaded))),
        )
        .await;
    assert_eq!(
        ran.result.outcome,
        CommandOutcome::Failed,
        "{:?}",
        ran.result
    );
    assert_ne!(ran.result.exit_code, Some(0));
    assert!(ran.result.exit_code.is_some());
    assert!(
        ran.stderr.contains("unknown keyword 'bogus_directive'"),
        "haproxy's message missing from the output:\n{}",
        ran.stderr
    );
    let last = ran.last_stderr_line();
    assert!(
        last.starts_with("check failed: ") && last.contains("Fatal errors found in configuration"),
        "{last}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        good,
        "the valid config was replaced"
    );
    assert!(!staged(&path).exists(), "staged file left behind");
    assert_eq!(
        std::fs::read_to_string(&reloaded).expect("reloaded"),
        "reloaded\n",
        "reload ran after a failed check"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_hung_check_is_killed_after_the_timeout() {
    let h = Harness::start().await;
    let path = h.path("haproxy.cfg");
    std::fs::write(&path, "old\n").expect("write");
    let reloaded = h.path("reloaded");
    let mut spec = write_file(
        &path,
        "new\n",
        Some("echo still thinking; sleep 60"),
        Some(&touch(&reloaded)),
    );
    if let CommandSpec::WriteFile { timeout_ms, .. } = &mut spec {
        *timeout_ms = 300;
    }
    let t0 = Instant::now();
    let ran = h.run("w1", spec).await;
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!(
        ran.result.outcome,
        CommandOutcome::TimedOut,
        "{:?}",
        ran.result
    );
    assert_eq!(ran.result.exit_code, Some(1));
    assert_eq!(
        ran.last_stderr_line(),
        "check failed: timed out after 300 ms (last output: still thinking)"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
    assert!(!staged(&path).exists());
    assert!(!reloaded.exists());
    h.stop().await;
}

#[tokio::test]
async fn a_sha256_mismatch_is_refused_and_nothing_is_written() {
    let h = Harness::start().await;
    let path = h.path("new-dir/haproxy.cfg");
    let checked = h.path("checked");
    let mut spec = write_file(
        &path,
        "content\n",
        Some(&format!("touch {}", sh_quote(&checked))),
        None,
    );
    if let CommandSpec::WriteFile { sha256, .. } = &mut spec {
        *sha256 = sha256_hex("other content\n");
    }
    let ran = h.run("w1", spec).await;
    assert_eq!(ran.result.outcome, CommandOutcome::Failed);
    assert_eq!(ran.result.exit_code, Some(2));
    assert!(ran.last_stderr_line().contains("sha256"), "{}", ran.stderr);
    assert!(!path.exists());
    assert!(!h.path("new-dir").exists(), "directory created");
    assert!(!checked.exists(), "check ran");
    h.stop().await;
}

#[tokio::test]
async fn relative_dotdot_and_symlink_paths_are_refused() {
    let h = Harness::start().await;
    let reloaded = h.path("reloaded");
    // Relative: nothing is created in the agent's working directory either.
    let rel = format!("drover-write-file-test-{}.cfg", std::process::id());
    let cases = [
        ("rel", rel.clone()),
        ("dotdot", format!("{}/a/../b.cfg", h.root.path().display())),
    ];
    for (id, path) in &cases {
        let spec = match write_file(&h.path("x"), "x\n", None, Some(&touch(&reloaded))) {
            CommandSpec::WriteFile {
                generator,
                content,
                sha256,
                check,
                reload,
                timeout_ms,
                ..
            } => CommandSpec::WriteFile {
                generator,
                path: path.clone(),
                content,
                sha256,
                check,
                reload,
                timeout_ms,
            },
            _ => unreachable!(),
        };
        let ran = h.run(id, spec).await;
        assert_eq!(
            (ran.result.outcome, ran.result.exit_code),
            (CommandOutcome::Failed, Some(2)),
            "{path}: {:?}",
            ran.result
        );
        assert!(
            ran.last_stderr_line().starts_with("refused: "),
            "{}",
            ran.stderr
        );
    }
    assert!(!Path::new(&rel).exists(), "relative path written");
    assert!(!h.path("a").exists() && !h.path("b.cfg").exists());

    // A symbolic link is not replaced by a file.
    let target = h.path("real.cfg");
    std::fs::write(&target, "real\n").expect("write");
    let link = h.path("link.cfg");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let ran = h
        .run(
            "link",
            write_file(&link, "new\n", None, Some(&touch(&reloaded))),
        )
        .await;
    assert_eq!(ran.result.exit_code, Some(2), "{}", ran.stderr);
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "real\n");
    assert!(!reloaded.exists(), "reload ran for a refused request");
    h.stop().await;
}

#[tokio::test]
async fn a_failing_reload_is_reported_and_the_new_file_stays() {
    let h = Harness::start().await;
    let path = h.path("haproxy.cfg");
    std::fs::write(&path, "# valid\nold\n").expect("write");
    let ran = h
        .run(
            "w1",
            write_file(
                &path,
                "# valid\nnew\n",
                Some("grep -q valid {staged}"),
                Some("echo 'cannot reach the admin socket' >&2; exit 4"),
            ),
        )
        .await;
    assert_eq!(
        ran.result.outcome,
        CommandOutcome::Failed,
        "{:?}",
        ran.result
    );
    assert_eq!(ran.result.exit_code, Some(4), "the reloader's exit code");
    assert_eq!(
        ran.last_stderr_line(),
        "reload failed: cannot reach the admin socket"
    );
    assert!(
        ran.stderr.contains(&written_line(&path, "# valid\nnew\n")),
        "{}",
        ran.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "# valid\nnew\n"
    );
    assert_eq!(
        std::fs::read_to_string(prev(&path)).expect("prev"),
        "# valid\nold\n"
    );
    assert!(!staged(&path).exists());
    h.stop().await;
}

#[tokio::test]
async fn a_redelivered_command_is_answered_from_the_journal() {
    let h = Harness::start().await;
    let path = h.path("haproxy.cfg");
    std::fs::write(&path, "old\n").expect("write");
    let marker = h.path("reloaded");
    let spec = write_file(&path, "new\n", None, Some(&touch(&marker)));
    let first = h.deliver("w1", spec.clone(), 1).await;
    assert_ok(&first);
    // Changed behind the agent's back: a second run would install "new\n" again.
    std::fs::write(&path, "changed by hand\n").expect("write");
    let again = h.deliver("w1", spec, 2).await;
    assert_eq!(again.result, first.result, "not the recorded result");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "changed by hand\n",
        "the command ran twice"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "reloaded\n",
        "reload ran twice"
    );
    h.stop().await;
}
