//! The CLI's own behaviour: demo, login/config, events --follow, graceful shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Controller, Db, Fleet, text, wait_until};

#[test]
fn demo_runs_a_fleet_command_and_exits_cleanly() {
    let out = Command::new(common::bin())
        .args(["demo", "--exit-after", "1s"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("demo");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for host in ["web-1", "web-2", "db-1"] {
        assert!(
            stdout.contains(&format!("{host:<5} | hello from pid")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("succeeded — 3 ok, 0 failed"), "{stdout}");
    // The automation part: a rule restarts the instance the demo broke, through its
    // agent, and the trace names the rule and the event.
    assert!(
        stdout.contains("ran remediation.restart on web-1: succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("remediation.restart_unhealthy  fired"),
        "{stdout}"
    );
    assert!(
        stdout.contains("instance.changed by agent:web-1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("restarted by its agent and is healthy again"),
        "{stdout}"
    );
    // The deploy part: v1 everywhere, then v2 rolled over, each instance health-gated.
    assert_eq!(
        stdout.matches("): succeeded").count(),
        2,
        "two rollouts succeeded:\n{stdout}"
    );
    for host in ["web-1", "web-2", "db-1"] {
        let row = stdout
            .lines()
            .find(|l| l.contains(&format!(" {host} ")) && l.contains("hello"))
            .unwrap_or_else(|| panic!("no status row for {host}:\n{stdout}"));
        assert!(
            row.contains(" ok ")
                && row.contains("2.0.0")
                && row.contains("healthy")
                && row.contains("hello from drover 2.0.0"),
            "{row}"
        );
    }
    assert!(
        stdout.contains("export DROVER_URL=http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("export DROVER_TOKEN=drover_api_"),
        "{stdout}"
    );
    // The demo takes its services down before it stops (they outlive agents by design).
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("demo-service") && c.contains(common::bin()))
        .collect();
    assert!(
        leftovers.is_empty(),
        "demo services left running: {leftovers:?}"
    );
}

#[test]
fn login_saves_url_and_token_for_later_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let config_home = dir.path().join("config");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(common::bin());
        cmd.args(args)
            .env("XDG_CONFIG_HOME", &config_home)
            .env_remove("DROVER_URL")
            .env_remove("DROVER_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("cli")
    };
    let out = run(&["hosts"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("drover login"), "{}", text(&out).1);
    let out = run(
        &["login", "--url", &ctl.url, "--token", "drover_api_wrong"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("401"));
    let out = run(
        &["login", "--url", &ctl.url, "--token", &ctl.admin_token],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let saved = config_home.join("drover/config.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&saved).expect("saved").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let out = run(&["hosts"], &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.contains("0 hosts"));
    assert_eq!(ctl.events("auth.login").len(), 1);
    // The environment overrides the saved login.
    let out = run(&["hosts"], &[("DROVER_TOKEN", "drover_api_nope")]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn tokens_can_be_created_listed_and_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let join = ctl.cli_json(&["tokens", "create", "rack-12", "--join", "--json"]);
    assert!(
        join["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("drover_join_"))
    );
    let list = ctl.cli_json(&["tokens", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"admin") && names.contains(&"default-join") && names.contains(&"rack-12"),
        "{names:?}"
    );
    assert!(
        !serde_json::to_string(&list)
            .expect("json")
            .contains("drover_join_"),
        "no secret in lists"
    );
    // An agent enrolls with the new join token; its credential shows with --agents and can be revoked.
    let _agent = common::Agent::start_with(
        &ctl,
        dir.path(),
        "rack-12-a",
        join["secret"].as_str().expect("secret"),
    );
    ctl.wait_hosts_up(&["rack-12-a"]);
    let creds = ctl.cli_json(&["tokens", "list", "--agents", "--json"]);
    let cred = creds
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["kind"] == "agent")
        .cloned()
        .expect("agent credential");
    assert_eq!(cred["name"], "agent:rack-12-a");
    assert_eq!(cred["created_by"], "rack-12");
    let out = ctl.cli(&["tokens", "revoke", cred["id"].as_str().expect("id")]);
    assert!(out.status.success());
    // Refused at once: the host stops heartbeating and goes down.
    wait_until(Duration::from_secs(15), "revoked agent goes down", || {
        ctl.events("host.down")
            .iter()
            .any(|e| e["payload"]["name"] == "rack-12-a")
    });
    assert!(ctl.events("token.revoked").len() == 1);
    let out = ctl.cli(&["tokens", "revoke", "tok_nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no token"), "{}", text(&out).1);
}

#[test]
fn events_follow_prints_new_events_as_they_happen() {
    let fleet = Fleet::start(Db::Sqlite);
    let mut follow = Command::new(common::bin())
        .args([
            "events",
            "--follow",
            "--json",
            "--type",
            "execution.*",
            "--limit",
            "1",
        ])
        .env("DROVER_URL", &fleet.ctl.url)
        .env("DROVER_TOKEN", &fleet.ctl.admin_token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("follow");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let out = fleet.ctl.cli(&["run", "--", "true"]);
    assert!(out.status.success());
    let mut types = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !types.contains(&"execution.finished".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "follow saw only {types:?}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let ev: serde_json::Value = serde_json::from_str(&line).expect("json line");
            types.push(ev["type"].as_str().unwrap_or("").to_string());
        }
    }
    assert!(
        types.contains(&"execution.requested".to_string()),
        "{types:?}"
    );
    assert!(
        types.iter().all(|t| t.starts_with("execution.")),
        "type filter: {types:?}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn sigterm_stops_the_controller_gracefully_and_a_restart_finishes_the_run() {
    let mut fleet = Fleet::start(Db::Sqlite);
    // A run that is still going when the controller stops.
    let run = Command::new(common::bin())
        .args([
            "run",
            "--json",
            "--",
            "sh",
            "-c",
            "sleep 2; echo done-$DROVER_HOST",
        ])
        .env("DROVER_URL", &fleet.ctl.url)
        .env("DROVER_TOKEN", &fleet.ctl.admin_token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_millis(700));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(fleet.ctl.child.id()).expect("pid"));
    let t0 = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = loop {
        if let Ok(Some(s)) = fleet.ctl.child.try_wait() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "controller did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    fleet.ctl.restart();
    // The CLI reconnects its stream and gets the whole result.
    let out = run.wait_with_output().expect("run output");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["execution"]["status"], "succeeded", "{v:#}");
    assert_eq!(v["output"]["db-1"]["stdout"], "done-db-1\n");
}

#[test]
fn events_and_executions_search_by_actor_text_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    assert!(
        ctl.cli(&["kv", "set", "deploy_window", "open"])
            .status
            .success()
    );
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["events", "--json", "--limit", "1000"];
        all.extend_from_slice(args);
        let out = ctl.cli(&all);
        assert!(out.status.success(), "{args:?}: {}", text(&out).1);
        text(&out)
            .0
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    // Text: any of type, actor or payload, case ignored.
    let found = lines(&["--grep", "DEPLOY_window"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["type"], "kv.set");
    let actor = found[0]["actor"].as_str().expect("actor").to_string();
    // Actor: exact.
    let by = lines(&["--actor", &actor]);
    assert!(!by.is_empty() && by.iter().all(|e| e["actor"] == actor.as_str()));
    assert!(lines(&["--actor", &actor[..actor.len() - 1]]).is_empty());
    assert_eq!(
        lines(&["--actor", &actor, "--grep", "deploy_window"]).len(),
        1
    );
    // Until: an hour ago leaves nothing of this fresh controller; with --since it is a
    // window.
    assert!(lines(&["--until", "1h"]).is_empty());
    assert_eq!(
        lines(&[
            "--since",
            "1h",
            "--until",
            "2099-01-01T00:00:00Z",
            "--grep",
            "deploy_window"
        ])
        .len(),
        1
    );
    // Bad input: a usage error naming the flag; --until cannot follow.
    let out = ctl.cli(&["events", "--until", "soonish"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("--until `soonish`"),
        "{}",
        text(&out).1
    );
    let out = ctl.cli(&["events", "--until", "1h", "--follow"]);
    assert_eq!(out.status.code(), Some(2));

    // Executions take the same time window, and a workflow's tasks by --parent.
    assert!(ctl.cli(&["actions", "run", "core.noop"]).status.success());
    let list = |args: &[&str]| -> usize {
        let mut all = vec!["executions", "--json"];
        all.extend_from_slice(args);
        ctl.cli_json(&all).as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(list(&["--since", "1h"]), 1);
    assert_eq!(list(&["--until", "1h"]), 0);
    assert_eq!(list(&["--parent", "no-such-workflow"]), 0);
    let out = ctl.cli(&["executions", "--since", "later"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--since `later`"), "{}", text(&out).1);
}
