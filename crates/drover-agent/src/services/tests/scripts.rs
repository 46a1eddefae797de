//! The Scripts runtime: the user's snippets for glu's six transitions.

use std::time::Duration;

use drover_proto::deploy::{LifecycleState, Transition};

use super::*;

fn scripts(dir: &Path) -> Runtime {
    let trace = dir.join("trace");
    let t = trace.display();
    Runtime::Scripts {
        install: Some(format!(
            "echo install $DROVER_VERSION >> {t}; echo installed-output"
        )),
        configure: Some(format!("echo configure >> {t}")),
        start: format!(
            "echo start >> {t}; nohup sleep 300 >/dev/null 2>&1 & echo $! > daemon.pid; \
             echo started-output"
        ),
        stop: format!("echo stop >> {t}; kill $(cat daemon.pid)"),
        unconfigure: Some(format!("echo unconfigure >> {t}")),
        uninstall: Some(format!("echo uninstall $PWD >> {t}")),
    }
}

#[tokio::test]
async fn the_six_scripts_run_in_the_release_directory() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let mut s = spec("sc", "7", loop_artifact(work.path(), "7"));
    s.runtime = scripts(work.path());
    let rel = instance_dir(state.path(), "sc").join("releases/7");

    let d = step(&m, &s, Transition::Install).await;
    assert!(d.result.is_ok(), "{:?}", d.result);
    assert!(d.stdout.contains("installed-output\n"), "{}", d.stdout);
    walk(&m, &s, &[Transition::Configure]).await;
    let d = step(&m, &s, Transition::Start).await;
    assert!(d.result.is_ok(), "{:?}", d.result);
    assert!(d.stdout.contains("started-output\n"), "{}", d.stdout);
    let daemon: u32 = std::fs::read_to_string(rel.join("daemon.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(alive(daemon));
    let r = report(&m, "sc").expect("r");
    assert_eq!(r.state, LifecycleState::Running);
    assert!(r.pid.is_some(), "the start script's group is tracked");

    walk(&m, &s, &[Transition::Stop]).await;
    wait_for("daemon stopped", Duration::from_secs(5), || !alive(daemon)).await;
    walk(&m, &s, &[Transition::Unconfigure, Transition::Uninstall]).await;
    assert!(!rel.exists());
    let trace = std::fs::read_to_string(work.path().join("trace")).expect("trace");
    assert_eq!(
        trace,
        format!(
            "install 7\nconfigure\nstart\nstop\nunconfigure\nuninstall {}\n",
            rel.display()
        )
    );
    // The scripts' output is in the instance's log too.
    let log = std::fs::read_to_string(instance_dir(state.path(), "sc").join("logs/stdout.log"))
        .expect("log");
    assert!(log.contains("installed-output") && log.contains("started-output"));
    m.detach().await;
}

#[tokio::test]
async fn a_failing_script_fails_the_step_and_changes_nothing() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let mut s = spec("f", "1", loop_artifact(work.path(), "1"));
    s.runtime = Runtime::Scripts {
        install: None,
        configure: Some("echo 'no config' >&2; exit 4".into()),
        start: "true".into(),
        stop: "true".into(),
        unconfigure: None,
        uninstall: None,
    };
    walk(&m, &s, &[Transition::Install]).await;
    let d = step(&m, &s, Transition::Configure).await;
    let e = expect_err(&d);
    assert_eq!(e.outcome, CommandOutcome::Failed);
    assert_eq!(e.exit_code, Some(4));
    assert_eq!(e.message, "the configure script exited with code 4");
    assert_eq!(d.stderr, "no config\n");
    let r = report(&m, "f").expect("r");
    assert_eq!(r.state, LifecycleState::Installed);
    // current was switched back (there was none before).
    assert!(std::fs::symlink_metadata(instance_dir(state.path(), "f").join("current")).is_err());
    m.detach().await;
}

#[tokio::test]
async fn a_hanging_script_can_be_cancelled() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let mut s = spec("h", "1", loop_artifact(work.path(), "1"));
    s.runtime = Runtime::Scripts {
        install: Some("echo waiting; sleep 300".into()),
        configure: None,
        start: "true".into(),
        stop: "true".into(),
        unconfigure: None,
        uninstall: None,
    };
    let out = OutputBuffer::new(MAX_UNSENT);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let e = m
        .transition(&s, Transition::Install, &out, &cancel)
        .await
        .expect_err("cancelled");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(e.outcome, CommandOutcome::Cancelled);
    assert!(
        report(&m, "h").is_none(),
        "a cancelled install installs nothing"
    );
    assert!(!instance_dir(state.path(), "h").join("releases/1").exists());
    m.detach().await;
}
