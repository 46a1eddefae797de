//! glu's lifecycle end to end, upgrades beside the live release, rollbacks without a
//! download, pruning, and the checks of a transition's starting state.

use std::time::Duration;

use drover_proto::deploy::{Health, LifecycleState, RenderedFile, Transition};

use super::*;

#[tokio::test]
async fn an_http_service_goes_up_healthy_and_down_again() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let port = free_port();
    let mut s = spec("web", "1", http_artifact(work.path(), "1"));
    s.ports.insert("http".into(), port);
    s.health = Some(http_health(port, "/version.txt"));
    s.config = vec![RenderedFile {
        path: "conf/app.conf".into(),
        content: format!("port={port}\n"),
    }];
    let dir = instance_dir(state.path(), "web");

    let d = step(&m, &s, Transition::Install).await;
    assert!(d.result.is_ok(), "{:?}", d.result);
    assert!(d.stdout.contains("fetched artifact"), "{}", d.stdout);
    assert!(dir.join("releases/1/bin/server").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("releases/1/conf/app.conf")).expect("config"),
        format!("port={port}\n")
    );
    assert!(
        !dir.join("current").exists(),
        "install must not switch current"
    );
    let r = report(&m, "web").expect("reported");
    assert_eq!(
        (r.state, r.version.as_str()),
        (LifecycleState::Installed, "1")
    );
    assert_eq!(r.spec_hash, "hash-1");

    walk(&m, &s, &[Transition::Configure]).await;
    assert_eq!(
        std::fs::read_link(dir.join("current")).expect("current"),
        std::path::Path::new("releases/1")
    );
    assert_eq!(report(&m, "web").expect("r").state, LifecycleState::Stopped);

    let d = step(&m, &s, Transition::Start).await;
    assert!(
        d.result.as_ref().is_ok_and(|t| t.contains("pid")),
        "{:?}",
        d.result
    );
    let r = report(&m, "web").expect("r");
    assert_eq!(r.state, LifecycleState::Running);
    assert_eq!(r.health, Health::Unknown);
    let pid = r.pid.expect("pid");
    wait_for("healthy", Duration::from_secs(20), || {
        report(&m, "web").is_some_and(|r| r.health == Health::Healthy)
    })
    .await;
    assert_eq!(get(port, "/version.txt").await.as_deref(), Some("1"));
    // The server logs its requests to stderr, into the instance's log file.
    wait_for("request logged", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("logs/stderr.log"))
            .is_ok_and(|l| l.contains("GET /version.txt"))
    })
    .await;

    // Already running at that version: idempotent. Configure now: wrong state.
    let d = step(&m, &s, Transition::Start).await;
    assert_eq!(
        d.result.as_deref().ok(),
        Some("web#0 is already running at 1")
    );
    let d = step(&m, &s, Transition::Configure).await;
    assert_eq!(
        error_message(&d),
        "cannot configure web#0 1: it is running at 1, expected installed at 1"
    );

    let d = step(&m, &s, Transition::Stop).await;
    assert!(
        d.result.as_ref().is_ok_and(|t| t.contains("SIGTERM")),
        "{:?}",
        d.result
    );
    assert!(!alive(pid), "process {pid} survived stop");
    let r = report(&m, "web").expect("r");
    assert_eq!(
        (r.state, r.health, r.pid),
        (LifecycleState::Stopped, Health::Unknown, None)
    );

    walk(&m, &s, &[Transition::Unconfigure, Transition::Uninstall]).await;
    assert!(!dir.join("releases/1").exists());
    assert!(std::fs::symlink_metadata(dir.join("current")).is_err());
    assert!(m.reports().is_empty(), "{:?}", m.reports());
    // Uninstalled again: nothing to do.
    let d = step(&m, &s, Transition::Uninstall).await;
    assert_eq!(d.result.as_deref().ok(), Some("web#0 is not installed"));
    // The cached artifact went with the last release that used it.
    let cached: Vec<_> = std::fs::read_dir(state.path().join("artifacts"))
        .expect("ls")
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
    m.detach().await;
}

#[tokio::test]
async fn an_upgrade_installs_beside_switches_current_and_rolls_back_without_download() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let dir = instance_dir(state.path(), "api");
    let out = work.path().join("running.txt");
    let mk = |v: &str| {
        let mut s = spec("api", v, loop_artifact(work.path(), v));
        s.env.insert("OUT".into(), out.display().to_string());
        s
    };
    let (v1, v2) = (mk("1"), mk("2"));
    walk(&m, &v1, &UP).await;
    wait_for("v1 running", Duration::from_secs(10), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.starts_with("1 api 0"))
    })
    .await;
    let running = std::fs::read_to_string(&out).expect("out");
    assert!(
        running.trim_end().ends_with("/releases/1"),
        "cwd is the release: {running}"
    );

    // Install v2 while v1 runs: refused, v1 untouched.
    let d = step(&m, &v2, Transition::Install).await;
    assert!(error_message(&d).contains("it is running at 1"));

    walk(&m, &v1, &[Transition::Stop]).await;
    walk(&m, &v2, &[Transition::Install]).await;
    let current = std::fs::read_link(dir.join("current")).expect("link");
    assert_eq!(
        current,
        std::path::Path::new("releases/1"),
        "switched too early"
    );
    assert!(dir.join("releases/1").is_dir() && dir.join("releases/2").is_dir());
    let r = report(&m, "api").expect("r");
    assert_eq!(
        (r.state, r.version.as_str()),
        (LifecycleState::Installed, "2")
    );

    walk(&m, &v2, &[Transition::Configure, Transition::Start]).await;
    assert_eq!(
        std::fs::read_link(dir.join("current")).expect("link"),
        std::path::Path::new("releases/2")
    );
    wait_for("v2 running", Duration::from_secs(10), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.starts_with("2 api 0"))
    })
    .await;

    // Roll back to v1: its release is reused, nothing fetched (the source is gone).
    std::fs::remove_file(work.path().join("loop-1.tar.gz")).expect("rm");
    walk(&m, &v2, &[Transition::Stop]).await;
    let d = step(&m, &v1, Transition::Install).await;
    assert!(d.result.is_ok(), "{:?}", d.result);
    assert!(d.stdout.contains("already on disk"), "{}", d.stdout);
    walk(&m, &v1, &[Transition::Configure, Transition::Start]).await;
    wait_for("v1 running again", Duration::from_secs(10), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.starts_with("1 api 0"))
    })
    .await;
    let r = report(&m, "api").expect("r");
    assert_eq!(
        (r.state, r.version.as_str()),
        (LifecycleState::Running, "1")
    );
    walk(&m, &v1, &[Transition::Stop]).await;
    m.detach().await;
}

#[tokio::test]
async fn a_new_spec_of_the_same_version_replaces_the_release() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let dir = instance_dir(state.path(), "cfg");
    let mut a = spec("cfg", "1", loop_artifact(work.path(), "1"));
    a.config = vec![RenderedFile {
        path: "app.conf".into(),
        content: "a\n".into(),
    }];
    walk(&m, &a, &[Transition::Install, Transition::Configure]).await;
    let mut b = a.clone();
    b.spec_hash = "hash-1b".into();
    b.config[0].content = "b\n".into();
    walk(&m, &b, &[Transition::Install]).await;
    assert_eq!(
        std::fs::read_to_string(dir.join("current/app.conf")).expect("read"),
        "b\n"
    );
    assert_eq!(report(&m, "cfg").expect("r").spec_hash, "hash-1b");
    m.detach().await;
}

#[tokio::test]
async fn old_releases_are_pruned_to_keep_releases() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let dir = instance_dir(state.path(), "p");
    let releases = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("releases"))
            .expect("ls")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let specs: Vec<_> = ["1", "2", "3", "4"]
        .iter()
        .map(|v| {
            let mut s = spec("p", v, loop_artifact(work.path(), v));
            s.keep_releases = 2;
            s
        })
        .collect();
    walk(&m, &specs[0], &[Transition::Install, Transition::Configure]).await;
    walk(&m, &specs[1], &[Transition::Install, Transition::Configure]).await;
    assert_eq!(releases(), vec!["1", "2"]);
    // Installing 3 while 2 is live: 1 goes.
    walk(&m, &specs[2], &[Transition::Install]).await;
    assert_eq!(releases(), vec!["2", "3"]);
    walk(&m, &specs[2], &[Transition::Configure]).await;
    assert_eq!(releases(), vec!["2", "3"]);
    // The live one is never pruned, even when it is the oldest.
    walk(&m, &specs[2], &[Transition::Unconfigure]).await;
    let mut keep1 = specs[3].clone();
    keep1.keep_releases = 1;
    // current -> 3 still: installing 4 with keep 1 keeps 3 and 4, drops 2.
    let d = step(&m, &keep1, Transition::Install).await;
    assert!(d.result.is_ok(), "{:?}", d.result);
    assert_eq!(releases(), vec!["3", "4"]);
    // Artifacts of pruned releases are dropped from the cache.
    let cached = std::fs::read_dir(state.path().join("artifacts"))
        .expect("ls")
        .count();
    assert_eq!(cached, 2);
    m.detach().await;
}

#[tokio::test]
async fn transitions_from_the_wrong_state_name_both_states() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let s = spec("w", "1", loop_artifact(work.path(), "1"));
    let d = step(&m, &s, Transition::Start).await;
    assert_eq!(
        error_message(&d),
        "cannot start w#0 1: it is none, expected stopped at 1"
    );
    walk(&m, &s, &[Transition::Install]).await;
    let d = step(&m, &s, Transition::Install).await;
    assert_eq!(d.result.as_deref().ok(), Some("w#0 1 is already installed"));
    let other = spec("w", "2", loop_artifact(work.path(), "2"));
    let d = step(&m, &other, Transition::Configure).await;
    assert_eq!(
        error_message(&d),
        "cannot configure w#0 2: it is installed at 1, expected installed at 2"
    );
    let mut bad = s.clone();
    bad.version = "../1".into();
    let d = step(&m, &bad, Transition::Install).await;
    assert_eq!(
        error_message(&d),
        "invalid instance spec: version \"../1\" starts with a dot"
    );
    m.detach().await;
}
