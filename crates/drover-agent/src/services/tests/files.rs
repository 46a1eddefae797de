//! Drift of release files: the files the artifact and the config put into a release are
//! fingerprinted at install and checked every `file_check`; a changed or missing one is
//! drift until it is restored, files the service adds are not.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use drover_proto::deploy::{LifecycleState, RenderedFile, Transition};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::*;
use crate::services::fingerprint::RACY;

const WAIT: Duration = Duration::from_secs(10);

fn drift(m: &ServiceManager, service: &str) -> Option<String> {
    report(m, service).and_then(|r| r.drift)
}

/// Waits until the drift of `service` is `want`.
async fn drift_becomes(m: &ServiceManager, service: &str, want: Option<&str>) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = drift(m, service);
        if now.as_deref() == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drift of {service} stayed {now:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `n` more file checks have run.
async fn checks_pass(m: &ServiceManager, n: u64) {
    let (start, _) = m.file_stats();
    wait_for("file checks", WAIT, || m.file_stats().0 >= start + n).await;
}

fn configured(work: &Path, service: &str) -> InstanceSpec {
    let mut s = spec(service, "1", loop_artifact(work, "1"));
    s.env.insert(
        "OUT".into(),
        work.join(format!("{service}.out")).display().to_string(),
    );
    s.config = vec![RenderedFile {
        path: "conf/app.conf".into(),
        content: "port=1\n".into(),
    }];
    s
}

fn state_json(state: &Path, service: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(instance_dir(state, service).join("state.json")).expect("state"),
    )
    .expect("json")
}

fn fingerprint_files(state: &Path, service: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(instance_dir(state, service).join("fingerprints"))
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_changed_file_is_drift_until_restored_and_a_deleted_one_is_missing() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let s = configured(work.path(), "fd");
    walk(&m, &s, &UP).await;
    let rel = instance_dir(state.path(), "fd").join("releases/1");

    // The fingerprint is on record, its file list beside state.json.
    let digest = state_json(state.path(), "fd")["releases"]["1"]["fingerprint"]
        .as_str()
        .expect("fingerprint recorded")
        .to_string();
    assert_eq!(digest.len(), 64);
    assert_eq!(
        fingerprint_files(state.path(), "fd"),
        vec![format!("1-{digest}.json")]
    );
    checks_pass(&m, 2).await;
    assert_eq!(drift(&m, "fd"), None);

    let mut changes = m.subscribe();
    changes.borrow_and_update();
    std::fs::write(rel.join("version.txt"), "1 tampered").expect("write");
    drift_becomes(
        &m,
        "fd",
        Some("release files changed: version.txt (content)"),
    )
    .await;
    assert!(
        changes.has_changed().expect("sender"),
        "the heartbeat is woken"
    );
    let r = report(&m, "fd").expect("r");
    assert_eq!(r.state, LifecycleState::Running, "drift is only reported");

    std::fs::write(rel.join("version.txt"), "1").expect("restore");
    drift_becomes(&m, "fd", None).await;

    std::fs::remove_file(rel.join("conf/app.conf")).expect("rm");
    drift_becomes(
        &m,
        "fd",
        Some("release files changed: conf/app.conf (missing)"),
    )
    .await;

    // A process drift and a file drift are both told.
    let pid = report(&m, "fd").expect("r").pid.expect("pid");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
    drift_becomes(
        &m,
        "fd",
        Some(
            "process was killed by signal 9 (SIGKILL); restarting; release files changed: \
             conf/app.conf (missing)",
        ),
    )
    .await;

    // Stopped (and installed) instances are checked too.
    walk(&m, &s, &[Transition::Stop]).await;
    drift_becomes(
        &m,
        "fd",
        Some("release files changed: conf/app.conf (missing)"),
    )
    .await;
    std::fs::write(rel.join("conf/app.conf"), "port=1\n").expect("restore");
    std::fs::set_permissions(
        rel.join("conf/app.conf"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    drift_becomes(&m, "fd", None).await;
    std::fs::set_permissions(
        rel.join("bin/server"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    drift_becomes(&m, "fd", Some("release files changed: bin/server (mode)")).await;

    // Uninstalled: nothing to check, nothing left behind.
    walk(&m, &s, &[Transition::Unconfigure, Transition::Uninstall]).await;
    assert!(report(&m, "fd").is_none());
    assert!(fingerprint_files(state.path(), "fd").is_empty());
}

#[tokio::test]
async fn files_the_service_writes_are_not_drift_nor_what_its_scripts_changed() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let mut s = spec("fw", "1", loop_artifact(work.path(), "1"));
    // Like the example's hello-tools: a pid file and a log in the release directory;
    // and install/configure scripts that rewrite shipped files (part of installing).
    s.config = vec![RenderedFile {
        path: "conf/app.conf".into(),
        content: "port=1\n".into(),
    }];
    s.runtime = Runtime::Scripts {
        install: Some("echo built >> version.txt".into()),
        configure: Some("echo configured=yes >> conf/app.conf".into()),
        start: "nohup sleep 300 > hello.log 2>&1 & echo $! > hello.pid".into(),
        stop: "kill \"$(cat hello.pid)\" && rm -f hello.pid".into(),
        unconfigure: None,
        uninstall: None,
    };
    walk(&m, &s, &UP).await;
    let rel = instance_dir(state.path(), "fw").join("releases/1");
    assert!(rel.join("hello.pid").is_file());
    assert_eq!(
        std::fs::read_to_string(rel.join("version.txt")).expect("read"),
        "1built\n"
    );
    checks_pass(&m, 3).await;
    assert_eq!(drift(&m, "fw"), None);

    // The new files may change as they like.
    std::fs::write(rel.join("hello.log"), "more output\n").expect("write");
    std::fs::create_dir_all(rel.join("cache/deep")).expect("mkdir");
    std::fs::write(rel.join("cache/deep/x"), "x").expect("write");
    checks_pass(&m, 3).await;
    assert_eq!(drift(&m, "fw"), None);

    // What the artifact shipped may not.
    std::fs::write(rel.join("version.txt"), "1").expect("write");
    drift_becomes(
        &m,
        "fw",
        Some("release files changed: version.txt (content)"),
    )
    .await;
    walk(&m, &s, &[Transition::Stop]).await;
}

#[tokio::test]
async fn a_thousand_untouched_files_are_rechecked_without_hashing() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let names: Vec<String> = (0..1000)
        .map(|i| format!("static/d{}/f{i}.txt", i % 20))
        .collect();
    let mut members: Vec<Member<'_>> = names
        .iter()
        .map(|n| Member::File(n.as_str(), n.as_str(), 0o644))
        .collect();
    members.push(Member::File("bin/server", LOOP_SERVER, 0o755));
    let a = artifact(work.path(), "many.tar.gz", &members);
    let s = spec("many", "1", a);
    walk(&m, &s, &[Transition::Install]).await;

    // Files written at install are hashed again once their stamps have settled (a
    // change in the same clock tick would not show in them); after that, never.
    tokio::time::sleep(RACY + Duration::from_millis(300)).await;
    checks_pass(&m, 2).await;
    let (checks, hashed) = m.file_stats();
    checks_pass(&m, 5).await;
    let (checks_after, hashed_after) = m.file_stats();
    assert!(checks_after >= checks + 5);
    assert_eq!(hashed_after, hashed, "untouched files were hashed again");
    assert_eq!(drift(&m, "many"), None);

    let rel = instance_dir(state.path(), "many").join("releases/1");
    std::fs::write(rel.join("static/d7/f7.txt"), "changed").expect("write");
    drift_becomes(
        &m,
        "many",
        Some("release files changed: static/d7/f7.txt (content)"),
    )
    .await;
    let (_, hashed_now) = m.file_stats();
    assert!(
        hashed_now > hashed && hashed_now - hashed < 100,
        "only the changed file is hashed: {} files",
        hashed_now - hashed
    );
}

#[tokio::test]
async fn drift_made_while_the_agent_was_down_is_found_by_the_next() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let s = configured(work.path(), "down");
    {
        let m = ServiceManager::open(state.path(), fast()).expect("open");
        walk(&m, &s, &[Transition::Install, Transition::Configure]).await;
        m.detach().await;
    }
    let rel = instance_dir(state.path(), "down").join("releases/1");
    std::fs::write(rel.join("conf/app.conf"), "port=2\n").expect("write");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    drift_becomes(
        &m,
        "down",
        Some("release files changed: conf/app.conf (content)"),
    )
    .await;
    m.detach().await;
    drop(m);

    // A state.json from an agent that did not fingerprint releases: not checked.
    let path = instance_dir(state.path(), "down").join("state.json");
    let mut old = state_json(state.path(), "down");
    if let Some(r) = old["releases"]["1"].as_object_mut() {
        r.remove("fingerprint");
    }
    std::fs::write(&path, serde_json::to_vec(&old).expect("json")).expect("write");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    checks_pass(&m, 2).await;
    let r = report(&m, "down").expect("r");
    assert_eq!((r.state, r.drift), (LifecycleState::Stopped, None));
}

#[tokio::test]
async fn a_rollback_to_a_changed_release_is_drift_at_once() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let v1 = spec("rb", "1", loop_artifact(work.path(), "1"));
    let v2 = spec("rb", "2", loop_artifact(work.path(), "2"));
    walk(&m, &v1, &[Transition::Install]).await;
    walk(&m, &v2, &[Transition::Install]).await;
    assert_eq!(drift(&m, "rb"), None);
    let dir = instance_dir(state.path(), "rb");
    assert_eq!(fingerprint_files(state.path(), "rb").len(), 2);

    // The idle release 1 is changed; the live one is 2, which is fine.
    std::fs::write(dir.join("releases/1/version.txt"), "one").expect("write");
    checks_pass(&m, 2).await;
    assert_eq!(drift(&m, "rb"), None);

    // Back to 1: reused without a download, and its changed file is told right away.
    let d = step(&m, &v1, Transition::Install).await;
    assert!(d.result.is_ok(), "{:?}", d.result);
    assert!(d.stdout.contains("reusing it"), "{}", d.stdout);
    assert_eq!(
        drift(&m, "rb").as_deref(),
        Some("release files changed: version.txt (content)")
    );

    // A release installed anew gets a new fingerprint; only kept releases keep theirs.
    let mut v3 = spec("rb", "3", loop_artifact(work.path(), "3"));
    v3.keep_releases = 1;
    walk(&m, &v3, &[Transition::Install]).await;
    assert_eq!(drift(&m, "rb"), None);
    let names = fingerprint_files(state.path(), "rb");
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("3-"), "{names:?}");
}
