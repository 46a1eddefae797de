//! The service manager with real processes and real files: artifacts are built here as
//! `.tar.gz` files holding small shell scripts (some run `python3 -m http.server`).

mod files;
mod lifecycle;
mod safety;
mod scripts;
mod supervision;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::agent::{CommandOutcome, OutputStream};
use drover_proto::deploy::{
    ArtifactRef, HealthProbe, HealthSpec, InstanceReport, InstanceSpec, Runtime, Transition,
};
use tokio_util::sync::CancellationToken;

use super::{Options, ServiceManager, StepError, Timing};
use crate::output::{MAX_UNSENT, OutputBuffer};

/// Supervision timing for tests: quick restarts, short grace.
pub(super) fn fast() -> Options {
    Options {
        controller: None,
        timing: Timing {
            restart_base: Duration::from_millis(200),
            restart_cap: Duration::from_secs(2),
            restart_reset: Duration::from_secs(60),
            stop_grace: Duration::from_secs(3),
        },
        log_limit: super::logs::LOG_LIMIT,
        file_check: Duration::from_millis(200),
    }
}

/// One member of a test archive.
pub(super) enum Member<'a> {
    /// A file with its mode.
    File(&'a str, &'a str, u32),
    /// A symlink.
    Link(&'a str, &'a str),
    /// A file whose name is written raw into the header (bypassing the tar crate's
    /// checks), for hostile archives.
    RawFile(&'a str, &'a str),
}

fn raw_name(h: &mut tar::Header, name: &str) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
}

/// A `.tar.gz` of `members`.
pub(super) fn tar_gz(members: &[Member<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for m in members {
        match m {
            Member::File(path, content, mode) => {
                let mut h = tar::Header::new_gnu();
                h.set_size(content.len() as u64);
                h.set_mode(*mode);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, content.as_bytes())
                    .expect("append");
            }
            Member::Link(path, target) => {
                let mut h = tar::Header::new_gnu();
                h.set_size(0);
                h.set_mode(0o777);
                h.set_entry_type(tar::EntryType::Symlink);
                raw_name(&mut h, path);
                let field = &mut h.as_old_mut().linkname;
                field.fill(0);
                field[..target.len()].copy_from_slice(target.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).expect("append");
            }
            Member::RawFile(path, content) => {
                let mut h = tar::Header::new_gnu();
                h.set_size(content.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                raw_name(&mut h, path);
                h.set_cksum();
                b.append(&h, content.as_bytes()).expect("append");
            }
        }
    }
    b.into_inner().expect("tar").finish().expect("gz")
}

/// Writes an archive of `members` to `dir/name` and refers to it by `file://`.
pub(super) fn artifact(dir: &Path, name: &str, members: &[Member<'_>]) -> ArtifactRef {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(&tar_gz(members)).expect("write");
    ArtifactRef {
        url: format!("file://{}", path.display()),
        sha256: super::artifact::sha256_file(&path).expect("hash"),
    }
}

/// A server script: `python3 -m http.server $PORT_HTTP` on loopback, serving the
/// release directory (where `version.txt` says which release it is).
pub(super) const HTTP_SERVER: &str =
    "#!/bin/sh\nexec python3 -m http.server \"$PORT_HTTP\" --bind 127.0.0.1\n";

/// A server script: a shell loop that prints a numbered line every 100 ms and writes
/// its version into `$OUT`.
pub(super) const LOOP_SERVER: &str = "#!/bin/sh\n\
     echo \"$DROVER_VERSION $DROVER_SERVICE $DROVER_INSTANCE $PWD\" > \"$OUT\"\n\
     i=0\n\
     while true; do i=$((i+1)); echo \"tick $i\"; echo \"warn $i\" >&2; sleep 0.1; done\n";

/// An HTTP service artifact for `version`.
pub(super) fn http_artifact(dir: &Path, version: &str) -> ArtifactRef {
    artifact(
        dir,
        &format!("http-{version}.tar.gz"),
        &[
            Member::File("bin/server", HTTP_SERVER, 0o755),
            Member::File("version.txt", version, 0o644),
        ],
    )
}

/// A loop service artifact for `version`.
pub(super) fn loop_artifact(dir: &Path, version: &str) -> ArtifactRef {
    artifact(
        dir,
        &format!("loop-{version}.tar.gz"),
        &[
            Member::File("bin/server", LOOP_SERVER, 0o755),
            Member::File("version.txt", version, 0o644),
        ],
    )
}

/// A free port on loopback (free when asked).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A spec running `bin/server`.
pub(super) fn spec(service: &str, version: &str, artifact: ArtifactRef) -> InstanceSpec {
    InstanceSpec {
        service: service.into(),
        index: 0,
        version: version.into(),
        artifact,
        runtime: Runtime::Run {
            argv: vec!["bin/server".into()],
        },
        env: BTreeMap::new(),
        ports: BTreeMap::new(),
        config: vec![],
        health: None,
        spec_hash: format!("hash-{version}"),
        keep_releases: 3,
    }
}

/// An HTTP health check of `port`.
pub(super) fn http_health(port: u16, path: &str) -> HealthSpec {
    HealthSpec {
        probe: HealthProbe::Http {
            port,
            path: path.into(),
            status: 200,
            body: None,
        },
        interval_ms: 150,
        timeout_ms: 1000,
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    }
}

/// What a step gave.
pub(super) struct Done {
    pub(super) result: Result<String, StepError>,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Everything in `out`, once closed.
pub(super) async fn drain(out: &Arc<OutputBuffer>) -> (String, String) {
    out.close();
    let (mut o, mut e) = (String::new(), String::new());
    while let Some(batch) = out.next_batch(1 << 20, Duration::ZERO).await {
        for c in batch {
            match c.stream {
                OutputStream::Stdout => o.push_str(&c.data),
                OutputStream::Stderr => e.push_str(&c.data),
            }
        }
    }
    (o, e)
}

/// Runs one transition.
pub(super) async fn step(m: &ServiceManager, spec: &InstanceSpec, t: Transition) -> Done {
    let out = OutputBuffer::new(MAX_UNSENT);
    let result = m.transition(spec, t, &out, &CancellationToken::new()).await;
    let (stdout, stderr) = drain(&out).await;
    Done {
        result,
        stdout,
        stderr,
    }
}

/// Runs transitions that must all succeed.
pub(super) async fn walk(m: &ServiceManager, spec: &InstanceSpec, steps: &[Transition]) {
    for t in steps {
        let d = step(m, spec, *t).await;
        if let Err(e) = &d.result {
            panic!(
                "{t:?} of {} {} failed: {e:?}\nstdout: {}\nstderr: {}",
                spec.service, spec.version, d.stdout, d.stderr
            );
        }
    }
}

/// Install, configure, start.
pub(super) const UP: [Transition; 3] = [
    Transition::Install,
    Transition::Configure,
    Transition::Start,
];

/// The report of `service`#0.
pub(super) fn report(m: &ServiceManager, service: &str) -> Option<InstanceReport> {
    m.reports()
        .into_iter()
        .find(|r| r.service == service && r.index == 0)
}

/// Waits until `cond` holds (checking every 50 ms).
pub(super) async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` is alive (not a zombie).
pub(super) fn alive(pid: u32) -> bool {
    super::state::proc_stat(pid).is_ok_and(|s| s.state != 'Z' && s.state != 'X')
}

/// The instance directory of `service`#0.
pub(super) fn instance_dir(state: &Path, service: &str) -> PathBuf {
    state.join("services").join(service).join("0")
}

/// Fails the test with the step's error as a message if it is not one.
pub(super) fn expect_err(d: &Done) -> StepError {
    match &d.result {
        Ok(t) => panic!("expected an error, got Ok({t:?})"),
        Err(e) => e.clone(),
    }
}

/// Asserts an error outcome and returns its message.
pub(super) fn error_message(d: &Done) -> String {
    let e = expect_err(d);
    assert_eq!(e.outcome, CommandOutcome::Error, "{e:?}");
    e.message
}

/// GET `http://127.0.0.1:port/path` as text.
pub(super) async fn get(port: u16, path: &str) -> Option<String> {
    let client = reqwest::Client::builder().no_proxy().build().ok()?;
    let resp = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    resp.status().is_success().then_some(())?;
    resp.text().await.ok()
}
