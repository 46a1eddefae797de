//! The agent against a small in-test controller (axum): enrollment, identity reuse,
//! heartbeats, long poll, command reports, at-most-once re-delivery, cancel, shutdown,
//! retries while the controller is away, and a revoked credential.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drover_agent::{AgentConfig, run};
use drover_proto::agent::{
    AgentCommand, CommandOutcome, CommandResult, CommandSpec, CommandUpdate, EnrollRequest,
    EnrollResponse, Heartbeat, HeartbeatAck, OutputBatch, OutputChunk, OutputStream, PollRequest,
    PollResponse,
};
use drover_proto::error::ApiError;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const JOIN_TOKEN: &str = "join-ok";
const CREDENTIAL: &str = "cred-1";
const HOST_ID: &str = "host-1";

#[derive(Debug, Clone, PartialEq)]
enum Msg {
    Output(OutputBatch),
    Status(CommandUpdate),
}

/// A controller that records what it is sent.
#[derive(Default)]
struct Fake {
    enrolls: AtomicUsize,
    enrolled: Mutex<Vec<EnrollRequest>>,
    revoked: AtomicBool,
    down: AtomicBool,
    fail_output: AtomicUsize,
    heartbeat_attempts: AtomicUsize,
    heartbeats: Mutex<Vec<Heartbeat>>,
    work: Mutex<VecDeque<PollResponse>>,
    work_ready: Notify,
    log: Mutex<Vec<(String, Msg)>>,
    /// The artifact store: `.tar.gz` bodies by sha256.
    artifacts: Mutex<BTreeMap<String, Vec<u8>>>,
    artifact_auth: Mutex<Vec<Option<String>>>,
}

fn api_error(status: StatusCode, code: &str, detail: &str) -> Response {
    (
        status,
        Json(ApiError {
            error: code.into(),
            detail: detail.into(),
        }),
    )
        .into_response()
}

impl Fake {
    /// The response to give when the request may not proceed.
    fn check(&self, headers: &HeaderMap, token: &str) -> Option<Response> {
        if self.down.load(Ordering::SeqCst) {
            return Some(api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "down for the test",
            ));
        }
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let revoked = token == CREDENTIAL && self.revoked.load(Ordering::SeqCst);
        if auth != format!("Bearer {token}") || revoked {
            return Some(api_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "bad token",
            ));
        }
        None
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

    fn statuses(&self, id: &str) -> Vec<CommandUpdate> {
        self.messages(id)
            .into_iter()
            .filter_map(|m| match m {
                Msg::Status(u) => Some(u),
                Msg::Output(_) => None,
            })
            .collect()
    }

    fn finished(&self, id: &str) -> Vec<CommandResult> {
        self.statuses(id)
            .into_iter()
            .filter_map(|u| match u {
                CommandUpdate::Finished { result } => Some(result),
                CommandUpdate::Started { .. } => None,
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

    fn heartbeats(&self) -> Vec<Heartbeat> {
        self.heartbeats.lock().expect("lock").clone()
    }
}

async fn enroll(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(req): Json<EnrollRequest>,
) -> Response {
    if let Some(r) = fake.check(&headers, JOIN_TOKEN) {
        return r;
    }
    fake.enrolls.fetch_add(1, Ordering::SeqCst);
    let name = req.name.clone();
    fake.enrolled.lock().expect("lock").push(req);
    (
        StatusCode::CREATED,
        Json(EnrollResponse {
            host_id: HOST_ID.into(),
            name,
            credential: CREDENTIAL.into(),
        }),
    )
        .into_response()
}

async fn heartbeat(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(hb): Json<Heartbeat>,
) -> Response {
    fake.heartbeat_attempts.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = fake.check(&headers, CREDENTIAL) {
        return r;
    }
    fake.heartbeats.lock().expect("lock").push(hb);
    Json(HeartbeatAck {
        host_id: HOST_ID.into(),
        interval_ms: 100,
    })
    .into_response()
}

async fn poll(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(req): Json<PollRequest>,
) -> Response {
    if let Some(r) = fake.check(&headers, CREDENTIAL) {
        return r;
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
    if let Some(r) = fake.check(&headers, CREDENTIAL) {
        return r;
    }
    let left = fake.fail_output.load(Ordering::SeqCst);
    if left > 0 {
        fake.fail_output.store(left - 1, Ordering::SeqCst);
        return api_error(StatusCode::BAD_GATEWAY, "internal", "flaky");
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
    if let Some(r) = fake.check(&headers, CREDENTIAL) {
        return r;
    }
    fake.log
        .lock()
        .expect("lock")
        .push((id, Msg::Status(update)));
    StatusCode::NO_CONTENT.into_response()
}

async fn artifact(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    UrlPath(sha): UrlPath<String>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    fake.artifact_auth.lock().expect("lock").push(auth);
    if let Some(r) = fake.check(&headers, CREDENTIAL) {
        return r;
    }
    match fake.artifacts.lock().expect("lock").get(&sha) {
        Some(body) => body.clone().into_response(),
        None => api_error(StatusCode::NOT_FOUND, "not_found", "no such artifact"),
    }
}

struct Controller {
    url: String,
    fake: Arc<Fake>,
}

async fn controller() -> Controller {
    // Agent logs show with `--nocapture` (filter with RUST_LOG).
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
        .route("/api/v1/artifacts/{sha}", get(artifact))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Controller {
        url: format!("http://{addr}/"),
        fake,
    }
}

fn config(url: &str, state_dir: &Path, join_token: Option<&str>) -> AgentConfig {
    AgentConfig {
        controller: url.to_string(),
        join_token: join_token.map(str::to_string),
        name: "web-1".into(),
        labels: BTreeMap::from([("role".to_string(), "web".to_string())]),
        state_dir: state_dir.to_path_buf(),
        poll_wait: Duration::from_millis(500),
    }
}

struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("agent did not stop in time")
            .expect("join");
        r.expect("agent ended with an error");
    }
}

fn start(config: AgentConfig) -> Running {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(config, shutdown.clone()));
    Running { shutdown, task }
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn exec(id: &str, argv: &[&str], timeout_ms: Option<u64>) -> PollResponse {
    PollResponse {
        commands: vec![AgentCommand {
            id: id.into(),
            execution_id: "e-1".into(),
            spec: CommandSpec::Exec {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                timeout_ms,
            },
        }],
        cancel: vec![],
    }
}

fn assert_reported_in_order(fake: &Fake, id: &str) {
    let msgs = fake.messages(id);
    assert!(
        matches!(
            msgs.first(),
            Some(Msg::Status(CommandUpdate::Started { pid: Some(_) }))
        ),
        "first report of {id} is {:?}",
        msgs.first()
    );
    let finished_at = msgs
        .iter()
        .position(|m| matches!(m, Msg::Status(CommandUpdate::Finished { .. })))
        .expect("finished");
    assert!(
        msgs[finished_at..]
            .iter()
            .all(|m| !matches!(m, Msg::Output(_))),
        "output after Finished"
    );
    let seqs: Vec<u64> = fake.chunks(id).iter().map(|c| c.seq).collect();
    let result = &fake.finished(id)[0];
    assert_eq!(seqs, (0..result.chunks).collect::<Vec<_>>());
}

#[tokio::test]
async fn enrolls_runs_once_and_answers_redelivery_from_the_journal() {
    let c = controller().await;
    let root = tempfile::tempdir().expect("tempdir");
    // Not there yet: the agent creates it.
    let state_dir = root.path().join("state");
    let state = &state_dir;
    let work = tempfile::tempdir().expect("tempdir");
    let counter = work.path().join("count");
    let script = format!(
        "echo hello; echo oops >&2; echo ran >> {}",
        counter.display()
    );

    let agent = start(config(&c.url, state.as_path(), Some(JOIN_TOKEN)));
    wait_for("first heartbeat", Duration::from_secs(10), || {
        !c.fake.heartbeats().is_empty()
    })
    .await;
    let first = &c.fake.heartbeats()[0];
    let facts = first.facts.as_ref().expect("facts in the first heartbeat");
    assert_eq!(facts.agent_version, drover_proto::VERSION);
    assert_eq!(
        first
            .labels
            .as_ref()
            .and_then(|l| l.get("role"))
            .map(String::as_str),
        Some("web")
    );
    let enrolled = c.fake.enrolled.lock().expect("lock").clone();
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0].name, "web-1");

    // Credential kept privately.
    let cred_path = state.as_path().join("credential.json");
    let mode = std::fs::metadata(&cred_path)
        .expect("credential")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(state.as_path())
        .expect("dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "state dir mode {dir_mode:o}");

    c.fake.push_work(exec("c1", &["sh", "-c", &script], None));
    wait_for("c1 finished", Duration::from_secs(10), || {
        !c.fake.finished("c1").is_empty()
    })
    .await;
    let result = c.fake.finished("c1")[0].clone();
    assert_eq!(result.outcome, CommandOutcome::Ok);
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(c.fake.text("c1", OutputStream::Stdout), "hello\n");
    assert_eq!(c.fake.text("c1", OutputStream::Stderr), "oops\n");
    assert_reported_in_order(&c.fake, "c1");

    // Later heartbeats carry no facts.
    wait_for("more heartbeats", Duration::from_secs(5), || {
        c.fake.heartbeats().len() >= 3
    })
    .await;
    assert!(c.fake.heartbeats()[1..].iter().all(|h| h.facts.is_none()));

    // Delivered again: answered with the recorded result, not run again.
    c.fake.push_work(exec("c1", &["sh", "-c", &script], None));
    wait_for("c1 answered again", Duration::from_secs(10), || {
        c.fake.finished("c1").len() == 2
    })
    .await;
    assert_eq!(c.fake.finished("c1")[1], result);
    agent.stop().await;

    // Restart without a join token: same identity, still no second run.
    let agent = start(config(&c.url, state.as_path(), None));
    c.fake.push_work(exec("c1", &["sh", "-c", &script], None));
    wait_for("c1 answered after restart", Duration::from_secs(10), || {
        c.fake.finished("c1").len() == 3
    })
    .await;
    assert_eq!(c.fake.finished("c1")[2], result);
    agent.stop().await;
    assert_eq!(c.fake.enrolls.load(Ordering::SeqCst), 1);
    let ran = std::fs::read_to_string(&counter).expect("counter");
    assert_eq!(ran, "ran\n", "the command ran more than once");
}

#[tokio::test]
async fn refused_join_token_is_an_error() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let err = run(
        config(&c.url, state.path(), Some("wrong")),
        CancellationToken::new(),
    )
    .await
    .expect_err("must fail");
    let text = format!("{err:#}");
    assert!(text.contains("join token"), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(!state.path().join("credential.json").exists());
}

#[tokio::test]
async fn no_credential_and_no_join_token_is_an_error() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let err = run(config(&c.url, state.path(), None), CancellationToken::new())
        .await
        .expect_err("must fail");
    assert!(format!("{err:#}").contains("join token"), "{err:#}");
}

#[tokio::test]
async fn unusable_state_dir_is_an_error() {
    let c = controller().await;
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    let err = run(
        config(&c.url, &file.path().join("state"), Some(JOIN_TOKEN)),
        CancellationToken::new(),
    )
    .await
    .expect_err("must fail");
    assert!(format!("{err:#}").contains("state dir"), "{err:#}");
}

#[tokio::test]
async fn cancel_through_the_poll_and_running_ids_in_heartbeats() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    c.fake
        .push_work(exec("c2", &["sh", "-c", "sleep 300 & sleep 300; "], None));
    wait_for("c2 started", Duration::from_secs(10), || {
        !c.fake.statuses("c2").is_empty()
    })
    .await;
    // Polling goes on while the command runs: a second command runs meanwhile.
    c.fake.push_work(exec("c3", &["echo", "meanwhile"], None));
    wait_for("c3 finished", Duration::from_secs(10), || {
        !c.fake.finished("c3").is_empty()
    })
    .await;
    wait_for("c2 in a heartbeat", Duration::from_secs(5), || {
        c.fake
            .heartbeats()
            .iter()
            .any(|h| h.running == vec!["c2".to_string()])
    })
    .await;
    c.fake.push_work(PollResponse {
        commands: vec![],
        cancel: vec!["c2".into()],
    });
    wait_for("c2 finished", Duration::from_secs(10), || {
        !c.fake.finished("c2").is_empty()
    })
    .await;
    assert_eq!(c.fake.finished("c2")[0].outcome, CommandOutcome::Cancelled);
    assert_reported_in_order(&c.fake, "c2");
    agent.stop().await;
}

#[tokio::test]
async fn a_command_cancelled_in_the_same_poll_never_runs() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let marker = work.path().join("ran");
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    let mut w = exec("c4", &["touch", &marker.display().to_string()], None);
    w.cancel.push("c4".into());
    c.fake.push_work(w);
    wait_for("c4 finished", Duration::from_secs(10), || {
        !c.fake.finished("c4").is_empty()
    })
    .await;
    assert_eq!(c.fake.finished("c4")[0].outcome, CommandOutcome::Cancelled);
    assert!(!marker.exists());
    agent.stop().await;
}

#[tokio::test]
async fn timeout_and_spawn_errors_are_reported() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    c.fake.push_work(exec("t1", &["sleep", "300"], Some(200)));
    c.fake.push_work(exec("t2", &["nosuchprog"], None));
    wait_for("t1 and t2 finished", Duration::from_secs(10), || {
        !c.fake.finished("t1").is_empty() && !c.fake.finished("t2").is_empty()
    })
    .await;
    assert_eq!(c.fake.finished("t1")[0].outcome, CommandOutcome::TimedOut);
    let t2 = &c.fake.finished("t2")[0];
    assert_eq!(t2.outcome, CommandOutcome::Error);
    assert_eq!(
        t2.error.as_deref(),
        Some("No such file or directory: nosuchprog")
    );
    assert_eq!(
        c.fake.statuses("t2").len(),
        1,
        "no Started for a failed spawn"
    );
    agent.stop().await;
}

#[tokio::test]
async fn shutdown_kills_running_commands_and_records_them_cancelled() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    c.fake.push_work(exec("s1", &["sleep", "300"], None));
    wait_for("s1 started", Duration::from_secs(10), || {
        !c.fake.statuses("s1").is_empty()
    })
    .await;
    let t0 = Instant::now();
    agent.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let finished = c.fake.finished("s1");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].outcome, CommandOutcome::Cancelled);
    let recorded: CommandResult = serde_json::from_slice(
        &std::fs::read(state.path().join("commands/s1.json")).expect("journal"),
    )
    .expect("json");
    assert_eq!(recorded, finished[0]);
}

#[tokio::test]
async fn a_command_interrupted_by_an_agent_restart_is_an_error() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    // An agent that enrolled, started r1, and died.
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    wait_for("enrolled", Duration::from_secs(10), || {
        !c.fake.heartbeats().is_empty()
    })
    .await;
    agent.stop().await;
    std::fs::write(state.path().join("commands/r1.started"), "").expect("write");

    let agent = start(config(&c.url, state.path(), None));
    c.fake
        .push_work(exec("r1", &["echo", "must not run"], None));
    wait_for("r1 answered", Duration::from_secs(10), || {
        !c.fake.finished("r1").is_empty()
    })
    .await;
    let r = &c.fake.finished("r1")[0];
    assert_eq!(r.outcome, CommandOutcome::Error);
    assert_eq!(
        r.error.as_deref(),
        Some("agent restarted while the command ran")
    );
    assert!(c.fake.chunks("r1").is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn output_survives_a_flaky_controller_and_facts_follow_a_reconnect() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    wait_for("first heartbeat", Duration::from_secs(10), || {
        !c.fake.heartbeats().is_empty()
    })
    .await;
    c.fake.fail_output.store(4, Ordering::SeqCst);
    c.fake.push_work(exec(
        "f1",
        &["sh", "-c", "for i in $(seq 1 2000); do echo line $i; done"],
        None,
    ));
    wait_for("f1 finished", Duration::from_secs(20), || {
        !c.fake.finished("f1").is_empty()
    })
    .await;
    let expected: String = (1..=2000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(c.fake.text("f1", OutputStream::Stdout), expected);
    assert_reported_in_order(&c.fake, "f1");

    // The controller goes away and comes back: the next heartbeat carries facts again.
    c.fake.down.store(true, Ordering::SeqCst);
    let before = c.fake.heartbeats().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.fake.down.store(false, Ordering::SeqCst);
    wait_for("heartbeat after reconnect", Duration::from_secs(15), || {
        c.fake.heartbeats().len() > before
    })
    .await;
    let after = &c.fake.heartbeats()[before];
    assert!(after.facts.is_some(), "no facts after reconnect");
    assert!(after.labels.is_some(), "no labels after reconnect");
    agent.stop().await;
}

#[tokio::test]
async fn a_revoked_credential_is_retried_with_backoff() {
    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    wait_for("first heartbeat", Duration::from_secs(10), || {
        !c.fake.heartbeats().is_empty()
    })
    .await;
    c.fake.revoked.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempts0 = c.fake.heartbeat_attempts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attempts = c.fake.heartbeat_attempts.load(Ordering::SeqCst) - attempts0;
    // Backoff from 200 ms: a handful of attempts in 2 s, not a spin.
    assert!(attempts <= 20, "{attempts} heartbeats in 2 s");
    assert!(
        !agent.task.is_finished(),
        "a revoked credential stopped the agent"
    );
    let before = c.fake.heartbeats().len();
    c.fake.revoked.store(false, Ordering::SeqCst);
    wait_for("heartbeat after restore", Duration::from_secs(15), || {
        c.fake.heartbeats().len() > before
    })
    .await;
    assert!(c.fake.heartbeats()[before].facts.is_some());
    agent.stop().await;
}

/// A `.tar.gz` holding `bin/server`, an HTTP server on `$PORT_HTTP`.
fn http_service_tarball(version: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let files: [(&str, String, u32); 2] = [
        (
            "bin/server",
            "#!/bin/sh\necho \"serving $DROVER_VERSION\"\n\
             exec python3 -m http.server \"$PORT_HTTP\" --bind 127.0.0.1\n"
                .to_string(),
            0o755,
        ),
        ("version.txt", version.to_string(), 0o644),
    ];
    for (path, content, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(mode);
        b.append_data(&mut h, path, content.as_bytes())
            .expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz")
}

fn transition(
    id: &str,
    spec: &drover_proto::deploy::InstanceSpec,
    t: drover_proto::deploy::Transition,
) -> PollResponse {
    PollResponse {
        commands: vec![AgentCommand {
            id: id.into(),
            execution_id: "e-deploy".into(),
            spec: CommandSpec::Transition {
                instance: Box::new(spec.clone()),
                transition: t,
            },
        }],
        cancel: vec![],
    }
}

async fn run_step(
    c: &Controller,
    id: &str,
    spec: &drover_proto::deploy::InstanceSpec,
    t: drover_proto::deploy::Transition,
) -> CommandResult {
    c.fake.push_work(transition(id, spec, t));
    wait_for(id, Duration::from_secs(30), || {
        !c.fake.finished(id).is_empty()
    })
    .await;
    c.fake.finished(id)[0].clone()
}

fn last_instances(fake: &Fake) -> Option<Vec<drover_proto::deploy::InstanceReport>> {
    fake.heartbeats()
        .into_iter()
        .rev()
        .find_map(|h| h.instances)
}

#[tokio::test]
async fn deploys_an_instance_reports_it_streams_its_logs_and_leaves_it_running_across_restarts() {
    use drover_proto::deploy::{
        ArtifactRef, Health, HealthProbe, HealthSpec, InstanceSpec, LifecycleState, Runtime,
        Transition,
    };
    use sha2::Digest;

    let c = controller().await;
    let state = tempfile::tempdir().expect("tempdir");
    let body = http_service_tarball("1");
    let sha = hex::encode(sha2::Sha256::digest(&body));
    c.fake
        .artifacts
        .lock()
        .expect("lock")
        .insert(sha.clone(), body);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let spec = InstanceSpec {
        service: "web".into(),
        index: 0,
        version: "1".into(),
        artifact: ArtifactRef {
            url: format!("{}api/v1/artifacts/{sha}", c.url),
            sha256: sha,
        },
        runtime: Runtime::Run {
            argv: vec!["bin/server".into()],
        },
        env: BTreeMap::new(),
        ports: BTreeMap::from([("http".to_string(), port)]),
        config: vec![],
        health: Some(HealthSpec {
            probe: HealthProbe::Http {
                port,
                path: "/version.txt".into(),
                status: 200,
                body: Some("1".into()),
            },
            interval_ms: 150,
            timeout_ms: 1000,
            healthy_threshold: 1,
            unhealthy_threshold: 2,
        }),
        spec_hash: "h1".into(),
        keep_releases: 2,
    };

    let agent = start(config(&c.url, state.path(), Some(JOIN_TOKEN)));
    wait_for("first heartbeat", Duration::from_secs(10), || {
        !c.fake.heartbeats().is_empty()
    })
    .await;
    assert_eq!(
        c.fake.heartbeats()[0].instances,
        Some(vec![]),
        "the first heartbeat says there is no instance"
    );

    for (id, t) in [
        ("d1", Transition::Install),
        ("d2", Transition::Configure),
        ("d3", Transition::Start),
    ] {
        let r = run_step(&c, id, &spec, t).await;
        assert_eq!(r.outcome, CommandOutcome::Ok, "{id}: {r:?}");
        assert!(
            matches!(
                c.fake.statuses(id).first(),
                Some(CommandUpdate::Started { pid: None })
            ),
            "{id} reported Started first"
        );
    }
    assert!(
        c.fake
            .text("d1", OutputStream::Stdout)
            .contains("installed web#0 1"),
        "{}",
        c.fake.text("d1", OutputStream::Stdout)
    );
    // Fetched from the controller's store with the agent's credential.
    assert_eq!(
        c.fake.artifact_auth.lock().expect("lock")[0].as_deref(),
        Some("Bearer cred-1")
    );

    wait_for("healthy in a heartbeat", Duration::from_secs(20), || {
        last_instances(&c.fake).is_some_and(|i| {
            i.len() == 1 && i[0].state == LifecycleState::Running && i[0].health == Health::Healthy
        })
    })
    .await;
    let reported = last_instances(&c.fake).expect("instances")[0].clone();
    let pid = reported.pid.expect("pid");
    assert_eq!(
        (reported.version.as_str(), reported.spec_hash.as_str()),
        ("1", "h1")
    );

    // Heartbeats without a change carry no instances.
    let before = c.fake.heartbeats().len();
    wait_for("quiet heartbeats", Duration::from_secs(5), || {
        c.fake.heartbeats().len() >= before + 3
    })
    .await;
    assert!(
        c.fake.heartbeats()[before + 1..]
            .iter()
            .all(|h| h.instances.is_none())
    );

    // drover logs: the last lines of the service's output.
    c.fake.push_work(PollResponse {
        commands: vec![AgentCommand {
            id: "l1".into(),
            execution_id: "e-logs".into(),
            spec: CommandSpec::Logs {
                service: "web".into(),
                index: 0,
                tail: 10,
                follow: false,
            },
        }],
        cancel: vec![],
    });
    wait_for("logs", Duration::from_secs(10), || {
        !c.fake.finished("l1").is_empty()
    })
    .await;
    assert_eq!(c.fake.finished("l1")[0].outcome, CommandOutcome::Ok);
    assert_eq!(c.fake.text("l1", OutputStream::Stdout), "serving 1\n");
    assert!(
        c.fake
            .text("l1", OutputStream::Stderr)
            .contains("GET /version.txt"),
        "{}",
        c.fake.text("l1", OutputStream::Stderr)
    );

    // The agent stops: the service does not.
    agent.stop().await;
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the service stopped with the agent"
    );
    let heartbeats_before = c.fake.heartbeats().len();
    let agent = start(config(&c.url, state.path(), None));
    wait_for("heartbeat after restart", Duration::from_secs(10), || {
        c.fake.heartbeats().len() > heartbeats_before
    })
    .await;
    let again = c.fake.heartbeats()[heartbeats_before]
        .instances
        .clone()
        .expect("instances at reconnect");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].state, LifecycleState::Running);
    assert_eq!(again[0].pid, Some(pid), "adopted");

    // Start again at the same version: nothing to do. Stop and uninstall.
    let r = run_step(&c, "d4", &spec, Transition::Start).await;
    assert_eq!(r.outcome, CommandOutcome::Ok);
    for (id, t) in [
        ("d5", Transition::Stop),
        ("d6", Transition::Unconfigure),
        ("d7", Transition::Uninstall),
    ] {
        let r = run_step(&c, id, &spec, t).await;
        assert_eq!(r.outcome, CommandOutcome::Ok, "{id}: {r:?}");
    }
    wait_for(
        "instance gone from heartbeats",
        Duration::from_secs(10),
        || last_instances(&c.fake).is_some_and(|i| i.is_empty()),
    )
    .await;
    // A wrong step is refused with both states named.
    let r = run_step(&c, "d8", &spec, Transition::Stop).await;
    assert_eq!(r.outcome, CommandOutcome::Error);
    assert_eq!(
        r.error.as_deref(),
        Some("cannot stop web#0 1: it is none, expected running at 1")
    );
    agent.stop().await;
}
