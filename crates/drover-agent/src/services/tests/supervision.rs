//! Supervised processes: restarts with drift, health that fails, services that outlive
//! the manager and are adopted by the next one, and logs.

use std::time::Duration;

use drover_proto::deploy::{Health, LifecycleState, Transition};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::*;
use crate::services::logs;

fn kill9(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
}

fn loop_spec(work: &Path, service: &str) -> InstanceSpec {
    let mut s = spec(service, "1", loop_artifact(work, "1"));
    s.env.insert(
        "OUT".into(),
        work.join(format!("{service}.out")).display().to_string(),
    );
    s
}

#[tokio::test]
async fn a_killed_process_is_restarted_counted_and_reported_as_drift() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let s = loop_spec(work.path(), "sup");
    let mut changes = m.subscribe();
    walk(&m, &s, &UP).await;
    let first = report(&m, "sup").expect("r").pid.expect("pid");
    changes.borrow_and_update();

    kill9(first);
    wait_for("drift reported", Duration::from_secs(5), || {
        report(&m, "sup").is_some_and(|r| r.drift.is_some())
    })
    .await;
    let r = report(&m, "sup").expect("r");
    assert_eq!(r.state, LifecycleState::Running, "still meant to run");
    let drift = r.drift.expect("drift");
    assert_eq!(
        drift,
        "process was killed by signal 9 (SIGKILL); restarting"
    );
    assert!(
        changes.has_changed().expect("sender"),
        "the heartbeat is woken"
    );

    wait_for("restarted", Duration::from_secs(5), || {
        report(&m, "sup").is_some_and(|r| r.restarts == 1 && r.pid.is_some())
    })
    .await;
    let second = report(&m, "sup").expect("r").pid.expect("pid");
    assert_ne!(first, second);
    assert!(alive(second));
    // The record on disk follows, so the next agent would adopt the new process.
    let on_disk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(instance_dir(state.path(), "sup").join("state.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(on_disk["process"]["pid"], second);
    assert_eq!(on_disk["restarts"], 1);

    // It exits by itself with a code: that is named too, and backoff grows.
    kill9(second);
    wait_for("second restart", Duration::from_secs(5), || {
        report(&m, "sup").is_some_and(|r| r.restarts == 2 && r.pid.is_some())
    })
    .await;

    walk(&m, &s, &[Transition::Stop]).await;
    let r = report(&m, "sup").expect("r");
    assert_eq!(
        (r.state, r.pid, r.drift),
        (LifecycleState::Stopped, None, None)
    );
    assert_eq!(r.restarts, 2);
    m.detach().await;
}

#[tokio::test]
async fn a_process_that_cannot_stay_up_backs_off() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let a = artifact(
        work.path(),
        "crash.tar.gz",
        &[Member::File(
            "bin/server",
            "#!/bin/sh\necho starting; echo boom >&2; exit 3\n",
            0o755,
        )],
    );
    let s = spec("crash", "1", a);
    walk(&m, &s, &UP).await;
    wait_for("drift", Duration::from_secs(5), || {
        report(&m, "crash")
            .is_some_and(|r| r.drift.as_deref() == Some("process exited with code 3; restarting"))
    })
    .await;
    // 200 ms, 400, 800, 1600: about four restarts in 3.5 s, not a spin.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let restarts = report(&m, "crash").expect("r").restarts;
    assert!((2..=6).contains(&restarts), "{restarts} restarts");
    walk(&m, &s, &[Transition::Stop]).await;
    let log = std::fs::read_to_string(instance_dir(state.path(), "crash").join("logs/stderr.log"))
        .expect("log");
    assert!(log.lines().filter(|l| *l == "boom").count() >= 2, "{log}");
    m.detach().await;
}

#[tokio::test]
async fn a_failing_http_check_makes_the_instance_unhealthy() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let port = free_port();
    let mut s = spec("sick", "1", http_artifact(work.path(), "1"));
    s.ports.insert("http".into(), port);
    s.health = Some(http_health(port, "/no-such-page"));
    walk(&m, &s, &UP).await;
    assert_eq!(report(&m, "sick").expect("r").health, Health::Unknown);
    wait_for("unhealthy", Duration::from_secs(20), || {
        report(&m, "sick").is_some_and(|r| r.health == Health::Unhealthy)
    })
    .await;
    // The process runs; only the check fails.
    assert!(get(port, "/version.txt").await.is_some());
    assert_eq!(
        report(&m, "sick").expect("r").state,
        LifecycleState::Running
    );
    walk(&m, &s, &[Transition::Stop]).await;
    assert_eq!(report(&m, "sick").expect("r").health, Health::Unknown);
    m.detach().await;
}

#[tokio::test]
async fn services_outlive_the_manager_and_the_next_one_adopts_them() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut s = spec("keep", "1", http_artifact(work.path(), "1"));
    s.ports.insert("http".into(), port);
    s.health = Some(http_health(port, "/version.txt"));
    let pid = {
        let m = ServiceManager::open(state.path(), fast()).expect("open");
        walk(&m, &s, &UP).await;
        wait_for("healthy", Duration::from_secs(20), || {
            report(&m, "keep").is_some_and(|r| r.health == Health::Healthy)
        })
        .await;
        let pid = report(&m, "keep").expect("r").pid.expect("pid");
        m.detach().await;
        pid
    };
    // The manager is gone; the service is not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(pid), "the service died with its manager");
    assert_eq!(get(port, "/version.txt").await.as_deref(), Some("1"));

    let m = ServiceManager::open(state.path(), fast()).expect("reopen");
    let r = report(&m, "keep").expect("r");
    assert_eq!(r.state, LifecycleState::Running);
    assert_eq!(r.pid, Some(pid), "adopted, not restarted");
    assert_eq!(r.restarts, 0);
    assert_eq!(r.drift, None);
    assert_eq!(r.health, Health::Unknown, "unknown until probed");
    wait_for("healthy again", Duration::from_secs(20), || {
        report(&m, "keep").is_some_and(|r| r.health == Health::Healthy)
    })
    .await;

    // An adopted process that dies is restarted too.
    kill9(pid);
    wait_for("adopted one restarted", Duration::from_secs(10), || {
        report(&m, "keep").is_some_and(|r| r.restarts == 1 && r.pid.is_some_and(|p| p != pid))
    })
    .await;
    let new_pid = report(&m, "keep").expect("r").pid.expect("pid");

    // And it stops when asked, through the same manager.
    m.detach().await;
    drop(m);
    let m = ServiceManager::open(state.path(), fast()).expect("reopen");
    assert_eq!(report(&m, "keep").expect("r").pid, Some(new_pid));
    walk(&m, &s, &[Transition::Stop]).await;
    assert!(!alive(new_pid), "adopted process survived stop");
    m.detach().await;
}

#[tokio::test]
async fn a_service_that_died_while_the_agent_was_away_is_restarted_at_open() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let s = loop_spec(work.path(), "gone");
    let pid = {
        let m = ServiceManager::open(state.path(), fast()).expect("open");
        walk(&m, &s, &UP).await;
        let pid = report(&m, "gone").expect("r").pid.expect("pid");
        m.detach().await;
        pid
    };
    kill9(pid);
    wait_for("dead", Duration::from_secs(5), || !alive(pid)).await;
    let m = ServiceManager::open(state.path(), fast()).expect("reopen");
    let r = report(&m, "gone").expect("r");
    assert_eq!(r.state, LifecycleState::Running);
    assert_ne!(r.pid, Some(pid));
    assert!(r.pid.is_some_and(alive));
    assert_eq!(r.restarts, 1);
    assert_eq!(
        r.drift.as_deref(),
        Some("process was not running when the agent started; restarted")
    );
    walk(&m, &s, &[Transition::Stop]).await;
    m.detach().await;
}

#[tokio::test]
async fn logs_give_the_last_lines_then_follow() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let s = loop_spec(work.path(), "chatty");
    walk(&m, &s, &UP).await;
    let log = instance_dir(state.path(), "chatty").join("logs/stdout.log");
    wait_for("ten ticks", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("tick 10\n"))
    })
    .await;

    let out = OutputBuffer::new(MAX_UNSENT);
    m.logs("chatty", 0, 3, false, &out, &CancellationToken::new())
        .await
        .expect("logs");
    let (stdout, stderr) = drain(&out).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines.iter().all(|l| l.starts_with("tick ")), "{stdout}");
    let n: Vec<u32> = lines
        .iter()
        .map(|l| l[5..].parse().expect("number"))
        .collect();
    assert!(n[0] + 1 == n[1] && n[1] + 1 == n[2], "{n:?}");
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(stderr.lines().all(|l| l.starts_with("warn ")), "{stderr}");

    // Follow: new lines come, until cancelled.
    let out = OutputBuffer::new(MAX_UNSENT);
    let cancel = CancellationToken::new();
    let follow = {
        let (out, cancel) = (out.clone(), cancel.clone());
        let m = &m;
        async move { m.logs("chatty", 0, 1, true, &out, &cancel).await }
    };
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(follow, stopper);
    let e = result.expect_err("cancelled");
    assert_eq!(e.outcome, CommandOutcome::Cancelled);
    let (stdout, _) = drain(&out).await;
    assert!(stdout.lines().count() >= 5, "followed: {stdout}");

    let e = m
        .logs("nobody", 0, 10, false, &out, &CancellationToken::new())
        .await
        .expect_err("unknown");
    assert_eq!(e.message, "no instance nobody#0 on this host");
    walk(&m, &s, &[Transition::Stop]).await;
    m.detach().await;
}

#[tokio::test]
async fn big_logs_are_rotated_by_the_manager() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let options = Options {
        log_limit: 4096,
        ..fast()
    };
    let m = ServiceManager::open(state.path(), options).expect("open");
    let a = artifact(
        work.path(),
        "chatty.tar.gz",
        &[Member::File(
            "bin/server",
            "#!/bin/sh\nwhile true; do seq 1 200; sleep 0.1; done\n",
            0o755,
        )],
    );
    let s = spec("rot", "1", a);
    walk(&m, &s, &UP).await;
    let log = instance_dir(state.path(), "rot").join("logs/stdout.log");
    wait_for("rotated", Duration::from_secs(20), || {
        logs::rotated(&log).exists()
    })
    .await;
    // Bounded: the live file is back under the limit plus a second of output.
    assert!(logs::size(&log) < 4096 * 4, "{}", logs::size(&log));
    walk(&m, &s, &[Transition::Stop]).await;
    m.detach().await;
}

#[tokio::test]
async fn what_an_exited_process_left_in_its_group_is_cleared_before_a_restart() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let pids = work.path().join("children");
    let a = artifact(
        work.path(),
        "wrapper.tar.gz",
        &[Member::File(
            "bin/server",
            "#!/bin/sh\nsleep 300 &\necho $! >> \"$OUT\"\nsleep 0.3\nexit 1\n",
            0o755,
        )],
    );
    let mut s = spec("wrap", "1", a);
    s.env.insert("OUT".into(), pids.display().to_string());
    walk(&m, &s, &UP).await;
    wait_for("restarted", Duration::from_secs(10), || {
        report(&m, "wrap").is_some_and(|r| r.restarts >= 1)
    })
    .await;
    let first: u32 = std::fs::read_to_string(&pids)
        .expect("pids")
        .lines()
        .next()
        .expect("a child")
        .parse()
        .expect("pid");
    wait_for("leftover cleared", Duration::from_secs(5), || !alive(first)).await;
    walk(&m, &s, &[Transition::Stop]).await;
    m.detach().await;
    for line in std::fs::read_to_string(&pids).expect("pids").lines() {
        let pid: u32 = line.parse().expect("pid");
        assert!(!alive(pid), "child {pid} survived the stop");
    }
}
