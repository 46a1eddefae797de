//! End-to-end tests of the foundation: a real controller process, three real agent
//! processes and the real CLI, on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{Db, Fleet, processes_with, text, wait_until};

/// Instantiates a scenario for both stores.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Db::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Db::Postgres(super::common::fresh_pg_db())) })*
        }
    };
}

both_stores!(
    command_runs_everywhere_with_per_host_output,
    failing_host_fails_the_run,
    killed_agent_goes_down_and_returns_with_same_identity,
    controller_sigkill_keeps_history_and_agents_reconnect,
);

fn command_runs_everywhere_with_per_host_output(db: Db) {
    let fleet = Fleet::start(db);
    let v = fleet.ctl.cli_json(&[
        "run",
        "--json",
        "--",
        "sh",
        "-c",
        "echo \"hello from $DROVER_HOST\"; echo warn-$DROVER_HOST >&2",
    ]);
    assert_eq!(v["execution"]["status"], "succeeded", "{v:#}");
    assert_eq!(v["execution"]["counts"]["ok"], 3);
    for host in ["web-1", "web-2", "db-1"] {
        assert_eq!(
            v["output"][host]["stdout"],
            format!("hello from {host}\n"),
            "{v:#}"
        );
        assert_eq!(
            v["output"][host]["stderr"],
            format!("warn-{host}\n"),
            "{v:#}"
        );
    }
    let targets = v["execution"]["targets"].as_array().expect("targets");
    assert!(
        targets
            .iter()
            .all(|t| t["exit_code"] == 0 && t["duration_ms"].is_u64())
    );

    // Streaming form: every line prefixed by its host, then the summary; exit 0.
    let out = fleet.ctl.cli(&[
        "run",
        "--on",
        "label.role=web",
        "--",
        "sh",
        "-c",
        "echo line1; echo line2",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for host in ["web-1", "web-2"] {
        assert!(stdout.contains(&format!("{host} | line1\n")), "{stdout}");
        assert!(stdout.contains(&format!("{host} | line2\n")), "{stdout}");
    }
    assert!(
        !stdout.contains("db-1 |"),
        "selector must exclude db-1: {stdout}"
    );

    // The execution is persisted with actor, command, targets and results.
    let id = v["execution"]["id"].as_str().expect("id");
    let e = fleet.ctl.cli_json(&["executions", id, "--json"]);
    assert_eq!(e["actor"], "admin");
    assert_eq!(e["spec"]["command"][0], "sh");
    assert_eq!(e["targets"].as_array().map(|t| t.len()), Some(3));
    let list = fleet.ctl.cli_json(&["executions", "--json"]);
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|x| x["id"] == id))
    );
    let finished = fleet.ctl.events("execution.finished");
    assert!(
        finished
            .iter()
            .any(|ev| ev["payload"]["execution_id"] == id && ev["actor"] == "admin")
    );
}

fn failing_host_fails_the_run(db: Db) {
    let fleet = Fleet::start(db);
    let out = fleet.ctl.cli(&[
        "run",
        "--",
        "sh",
        "-c",
        "if [ \"$DROVER_HOST\" = web-2 ]; then echo broken >&2; exit 3; fi; echo fine",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains("web-2") && l.contains("failed"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains(" 3 "), "exit code shown: {row}");
    assert!(
        stdout.contains("web-2 ! broken"),
        "stderr lines marked: {stdout}"
    );
    assert!(stdout.contains("failed — 2 ok, 1 failed"), "{stdout}");
}

fn killed_agent_goes_down_and_returns_with_same_identity(db: Db) {
    let mut fleet = Fleet::start(db);
    let before = fleet.ctl.cli_json(&["hosts", "show", "db-1", "--json"]);
    fleet.agent("db-1").kill9();
    wait_until(Duration::from_secs(15), "host.down for db-1", || {
        fleet
            .ctl
            .events("host.down")
            .iter()
            .any(|e| e["payload"]["name"] == "db-1")
    });
    let down = fleet.ctl.cli_json(&["hosts", "show", "db-1", "--json"]);
    assert_eq!(down["status"], "down");
    // A run now reports db-1 unreachable and fails.
    let out = fleet.ctl.cli(&["run", "--json", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let t = v["execution"]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["host_name"] == "db-1")
        .cloned()
        .expect("db-1 target");
    assert_eq!(t["status"], "unreachable");

    fleet.agent("db-1").restart();
    wait_until(Duration::from_secs(15), "host.up for db-1", || {
        fleet
            .ctl
            .events("host.up")
            .iter()
            .any(|e| e["payload"]["name"] == "db-1")
    });
    let after = fleet.ctl.cli_json(&["hosts", "show", "db-1", "--json"]);
    assert_eq!(after["status"], "up");
    assert_eq!(after["id"], before["id"], "same identity after restart");
    let registered = fleet.ctl.events("host.registered");
    assert_eq!(
        registered
            .iter()
            .filter(|e| e["payload"]["name"] == "db-1")
            .count(),
        1,
        "a restart reuses the credential: no second enrollment"
    );
    let ok = fleet.ctl.cli(&["run", "--on", "name=db-1", "--", "true"]);
    assert!(ok.status.success(), "{}", text(&ok).1);
}

fn controller_sigkill_keeps_history_and_agents_reconnect(db: Db) {
    let mut fleet = Fleet::start(db);
    let first = fleet
        .ctl
        .cli_json(&["run", "--json", "--", "echo", "before-crash"]);
    let id = first["execution"]["id"].as_str().expect("id").to_string();
    let events_before = fleet.ctl.events("*").len();
    fleet.ctl.kill9();
    std::thread::sleep(Duration::from_millis(500));
    fleet.ctl.restart();
    let e = fleet.ctl.cli_json(&["executions", &id, "--json"]);
    assert_eq!(e["status"], "succeeded");
    let out = fleet.ctl.cli_json(&["run", "--json", "--", "echo", "x"]);
    let _ = out;
    let events_after = fleet.ctl.events("*");
    assert!(
        events_after.len() > events_before,
        "history kept and extended"
    );
    assert!(
        events_after
            .iter()
            .any(|ev| ev["type"] == "controller.started")
    );
    // Agents reconnect by themselves and the fleet works again.
    fleet.ctl.wait_hosts_up(&["web-1", "web-2", "db-1"]);
    let v = fleet
        .ctl
        .cli_json(&["run", "--json", "--", "sh", "-c", "echo after-$DROVER_HOST"]);
    assert_eq!(v["execution"]["status"], "succeeded", "{v:#}");
    assert_eq!(v["output"]["web-1"]["stdout"], "after-web-1\n");
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let fleet = Fleet::start(Db::Sqlite);
    let marker = format!("{}", 400_000 + (std::process::id() % 90_000));
    let script =
        format!("sleep {marker} & sleep {marker} & (sleep {marker}; true) & echo started; wait");
    let out = fleet.ctl.cli(&[
        "run",
        "--timeout",
        "1s",
        "--on",
        "label.role=web",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("timed-out"), "{stdout}");
    assert!(stdout.contains("web-1 | started"), "{stdout}");
    wait_until(Duration::from_secs(5), "no orphan sleep survives", || {
        processes_with(&format!("sleep {marker}")).is_empty()
    });
}

#[test]
fn ctrl_c_cancels_the_run_everywhere() {
    let fleet = Fleet::start(Db::Sqlite);
    let marker = format!("{}", 500_000 + (std::process::id() % 90_000));
    let mut child = std::process::Command::new(common::bin())
        .args(["run", "--", "sh", "-c", &format!("echo go; sleep {marker}")])
        .env("DROVER_URL", &fleet.ctl.url)
        .env("DROVER_TOKEN", &fleet.ctl.admin_token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn run");
    wait_until(Duration::from_secs(10), "commands running", || {
        processes_with(&format!("sleep {marker}")).len() >= 3
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1));
    let mut stdout = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    assert!(stdout.contains("cancelled"), "{stdout}");
    wait_until(Duration::from_secs(5), "sleeps killed", || {
        processes_with(&format!("sleep {marker}")).is_empty()
    });
    let cancels = fleet.ctl.events("execution.cancel_requested");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0]["actor"], "admin");
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn parallel_limits_hosts_running_at_once() {
    let fleet = Fleet::start(Db::Sqlite);
    // Each host records when it starts and ends; with --parallel 1 no two overlap.
    let log = fleet.dir.path().join("spans.log");
    let script = format!(
        "echo \"start $(date +%s%N)\" >> {0}; sleep 0.3; echo \"end $(date +%s%N)\" >> {0}",
        log.display()
    );
    let out = fleet
        .ctl
        .cli(&["run", "--parallel", "1", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out).1);
    let spans = std::fs::read_to_string(&log).expect("spans");
    let kinds: Vec<&str> = spans
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["start", "end", "start", "end", "start", "end"],
        "serial: {spans}"
    );
}

#[test]
fn large_output_is_stored_bounded_and_streamed_whole() {
    let fleet = Fleet::start(Db::Sqlite);
    // 2 MiB of output: the live stream shows all of it, the store keeps 1 MiB + marker.
    let out = fleet.ctl.cli(&[
        "run",
        "--on",
        "name=web-1",
        "--",
        "sh",
        "-c",
        "head -c 2097152 /dev/zero | tr '\\0' 'a' | fold -w 1023",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let streamed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("web-1 | "))
        .map(|l| l.len() + 1)
        .sum();
    assert!(
        streamed >= 2_097_152,
        "live stream shows everything: {streamed}"
    );
    let v = fleet
        .ctl
        .cli_json(&["executions", "--json", "--limit", "1"]);
    let id = v[0]["id"].as_str().expect("id");
    let e = fleet.ctl.cli_json(&["executions", id, "--json"]);
    assert_eq!(e["targets"][0]["truncated"], true);
    assert!(e["targets"][0]["output_bytes"].as_u64().expect("bytes") <= 1024 * 1024);
    assert!(
        text(&fleet.ctl.cli(&["executions", id]))
            .0
            .contains("stored output truncated")
    );
}
