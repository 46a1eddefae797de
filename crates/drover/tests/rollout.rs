//! Deploy engine end to end: real agent, a real HTTP service as the artifact (v1, v2
//! and a broken v3), real health checks.
//!
//! Agents on one machine share its ports, so the service runs three instances on one
//! agent (`per_host: 3`, ports base..base+2): the rollout, its health gates and the
//! revert are the same as across three hosts.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Db, Fleet, text};

const SERVER_PY: &str = r#"import argparse, http.server, os
p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--version", required=True)
a = p.parse_args()
broken = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "broken"))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            code, body = (500, b"broken") if broken else (200, b"ok")
        else:
            code, body = 200, ("version " + a.version).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
print("hello %s listening on %d" % (a.version, a.port), flush=True)
server.serve_forever()
"#;

/// Builds the service's release tarball and pushes it; returns its sha256.
fn release(fleet: &Fleet, version: &str, broken: bool) -> String {
    let src = fleet.dir.path().join(format!("src-{version}"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("server.py"), SERVER_PY).expect("write");
    if broken {
        std::fs::write(src.join("broken"), "").expect("write");
    }
    let tarball = fleet.dir.path().join(format!("hello-{version}.tar.gz"));
    common::tarball(&src, &tarball);
    let pushed = fleet.ctl.cli_json(&[
        "artifacts",
        "push",
        tarball.to_str().expect("path"),
        "--json",
    ]);
    pushed["artifact"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string()
}

/// One service's YAML: three instances on web-1, HTTP health, rolling one at a time.
fn service_yaml(
    name: &str,
    version: &str,
    sha: &str,
    port: u16,
    extra_rollout: &str,
    depends_on: &str,
) -> String {
    format!(
        "kind: service\nname: {name}\nversion: \"{version}\"\n\
         artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
         placement: {{hostclass: web, per_host: 3}}\n\
         ports: {{http: {port}}}\n\
         depends_on: [{depends_on}]\n\
         health:\n  http: {{port: http, path: /health, status: 200, body: ok}}\n  interval: 200ms\n  timeout: 200ms\n  healthy_threshold: 1\n  unhealthy_threshold: 2\n\
         rollout:\n  max_parallel: 1\n  min_healthy_time: 500ms\n  healthy_deadline: 6s\n  progress_deadline: 60s\n  auto_revert: true\n{extra_rollout}\
         run: [\"python3\", \"server.py\", \"--port\", \"{{{{ ports.http }}}}\", \"--version\", \"{{{{ version }}}}\"]\n"
    )
}

/// A model directory with the `web` hostclass (web-1 only) and the given services.
fn model_of(dir: &Path, name: &str, services: &[String]) -> PathBuf {
    let m = dir.join(name);
    std::fs::create_dir_all(&m).expect("mkdir");
    std::fs::write(
        m.join("hostclasses.yaml"),
        "kind: hostclass\nname: web\nselector: name=web-1\n",
    )
    .expect("write");
    for (i, svc) in services.iter().enumerate() {
        std::fs::write(m.join(format!("service-{i}.yaml")), svc).expect("write");
    }
    m
}

fn model(dir: &Path, version: &str, sha: &str, port: u16) -> PathBuf {
    model_of(
        dir,
        &format!("model-{version}"),
        &[service_yaml("hello", version, sha, port, "", "")],
    )
}

fn get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split("\r\n\r\n").nth(1).map(|b| b.to_string())
}

#[test]
fn rolling_upgrade_keeps_n_minus_1_answering_and_a_broken_release_reverts_by_itself() {
    let mut fleet = Fleet::start(Db::Sqlite);
    // One web agent; the other two play no part.
    fleet.agents.retain(|a| a.name == "web-1");
    let port = free_port_block(13);
    let ports = [port, port + 1, port + 2];
    let v1 = release(&fleet, "1.0.0", false);
    let v2 = release(&fleet, "2.0.0", false);
    let v3 = release(&fleet, "3.0.0", true);
    let dir = fleet.dir.path().to_path_buf();

    // v1: a fresh deploy, one instance at a time, each through its health gate.
    let out = fleet.ctl.cli(&[
        "apply",
        "--yes",
        "-m",
        "v1",
        model(&dir, "1.0.0", &v1, port).to_str().expect("p"),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    for p in ports {
        assert_eq!(get(p).as_deref(), Some("version 1.0.0"), "port {p}");
    }
    let status = fleet.ctl.cli(&["status"]);
    assert!(status.status.success(), "all ok: {}", text(&status).0);

    // v2 under load: at every moment at least N-1 = 2 instances answer.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut min_up = usize::MAX;
            let mut rounds = 0;
            let mut seen_v2 = false;
            while !stop.load(Ordering::Relaxed) {
                let answers: Vec<Option<String>> = ports.iter().map(|p| get(*p)).collect();
                min_up = min_up.min(answers.iter().filter(|a| a.is_some()).count());
                seen_v2 |= answers
                    .iter()
                    .any(|a| a.as_deref() == Some("version 2.0.0"));
                rounds += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (min_up, rounds, seen_v2)
        })
    };
    let out = fleet.ctl.cli(&[
        "apply",
        "--yes",
        "-m",
        "v2",
        model(&dir, "2.0.0", &v2, port).to_str().expect("p"),
    ]);
    stop.store(true, Ordering::Relaxed);
    let (min_up, rounds, seen_v2) = poller.join().expect("poller");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(rounds > 20, "the poller ran throughout ({rounds} rounds)");
    assert!(seen_v2);
    assert!(
        min_up >= 2,
        "never more than max_parallel=1 out of service; min answering {min_up}"
    );
    for p in ports {
        assert_eq!(get(p).as_deref(), Some("version 2.0.0"), "port {p}");
    }

    // v3 is broken (health 500): the gate fails, the rollout reverts on its own.
    let out = fleet.ctl.cli(&[
        "apply",
        "--yes",
        "-m",
        "v3",
        model(&dir, "3.0.0", &v3, port).to_str().expect("p"),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("reverted"), "{stdout}");
    for p in ports {
        assert_eq!(
            get(p).as_deref(),
            Some("version 2.0.0"),
            "back on v2: port {p}"
        );
    }
    assert_eq!(fleet.ctl.events("rollout.reverting").len(), 1);
    let rollout = fleet.ctl.cli_json(&["rollout", "status", "--json"]);
    assert_eq!(rollout["rollout"]["state"], "reverted");
    // max_parallel 1: only the first instance was touched before its gate failed, and
    // the revert brought back exactly that one.
    let revert_units: Vec<i64> = rollout["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter(|u| u["revert"] == true)
        .filter_map(|u| u["unit"].as_i64())
        .collect();
    let instances = rollout["instances"].as_array().expect("instances");
    let (forward, back): (Vec<_>, Vec<_>) = instances
        .iter()
        .partition(|i| !revert_units.contains(&i["unit"].as_i64().unwrap_or(-1)));
    let touched: Vec<_> = forward
        .iter()
        .filter(|i| i["status"] != "pending")
        .collect();
    assert_eq!(touched.len(), 1, "{rollout:#}");
    assert_eq!(touched[0]["status"], "failed");
    assert_eq!(back.len(), 1, "{rollout:#}");
    assert_eq!(back[0]["status"], "passed");
    assert_eq!(
        (&back[0]["host_name"], &back[0]["index"]),
        (&touched[0]["host_name"], &touched[0]["index"])
    );
    let history = fleet.ctl.cli_json(&["model", "history", "--json"]);
    assert_eq!(history.as_array().map(|h| h.len()), Some(3));
    // Paged: the newest two, then what is older than the second.
    let newest = fleet
        .ctl
        .cli_json(&["model", "history", "--limit", "2", "--json"]);
    let ids: Vec<i64> = newest
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 2, "{newest:#}");
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let before = ids[1].to_string();
    let older = fleet
        .ctl
        .cli_json(&["model", "history", "--before", &before, "--json"]);
    assert_eq!(older.as_array().map(|h| h.len()), Some(1), "{older:#}");
    assert!(older[0]["id"].as_i64() < Some(ids[1]));
    let bad = fleet.ctl.cli(&["model", "history", "--limit", "0"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--limit"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// The first port of `n` consecutive ports that are free on loopback now (tests run in
/// parallel processes; each probes its own block).
fn free_port_block(n: u16) -> u16 {
    let mut seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761);
    for _ in 0..200 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let base = 20_000 + (seed >> 33) as u16 % 30_000;
        let free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no block of {n} free ports found");
}

/// A fleet with web-1 only and the three releases pushed.
fn setup() -> (Fleet, [String; 3], u16) {
    let mut fleet = Fleet::start(Db::Sqlite);
    fleet.agents.retain(|a| a.name == "web-1");
    let port = free_port_block(13);
    let shas = [
        release(&fleet, "1.0.0", false),
        release(&fleet, "2.0.0", false),
        release(&fleet, "3.0.0", true),
    ];
    (fleet, shas, port)
}

fn versions(port: u16) -> Vec<Option<String>> {
    (0..3).map(|i| get(port + i)).collect()
}

#[test]
fn canary_waits_for_a_manual_promote() {
    let (fleet, shas, port) = setup();
    let dir = fleet.dir.path().to_path_buf();
    let out = fleet.ctl.cli(&[
        "apply",
        "--yes",
        model(&dir, "1.0.0", &shas[0], port).to_str().expect("p"),
    ]);
    assert!(out.status.success(), "{}", text(&out).0);
    let canary = model_of(
        &dir,
        "canary",
        &[service_yaml(
            "hello",
            "2.0.0",
            &shas[1],
            port,
            "  canary: 1\n  auto_promote: false\n",
            "",
        )],
    );
    let out = fleet
        .ctl
        .cli(&["apply", "--yes", canary.to_str().expect("p")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("drover rollout promote"), "{stdout}");
    let r = fleet.ctl.cli_json(&["rollout", "status", "--json"]);
    assert_eq!(r["rollout"]["state"], "awaiting-promotion");
    let v = versions(port);
    assert_eq!(
        v.iter()
            .filter(|x| x.as_deref() == Some("version 2.0.0"))
            .count(),
        1,
        "one canary: {v:?}"
    );
    assert_eq!(
        v.iter()
            .filter(|x| x.as_deref() == Some("version 1.0.0"))
            .count(),
        2,
        "{v:?}"
    );
    // It stays there until promoted.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fleet.ctl.cli_json(&["rollout", "status", "--json"])["rollout"]["state"],
        "awaiting-promotion"
    );
    let id = r["rollout"]["execution_id"].as_str().expect("id");
    let out = fleet.ctl.cli(&["rollout", "promote", id]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = fleet.ctl.cli(&["rollout", "status", id, "--watch"]);
    assert!(out.status.success(), "{}", text(&out).0);
    assert!(
        versions(port)
            .iter()
            .all(|x| x.as_deref() == Some("version 2.0.0"))
    );
    // Promoting twice is a conflict, not a silent success.
    let out = fleet.ctl.cli(&["rollout", "promote", id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot promote"), "{}", text(&out).1);
}

#[test]
fn a_controller_killed_mid_rollout_finishes_it_after_restart_without_running_a_step_twice() {
    let (mut fleet, shas, port) = setup();
    let dir = fleet.dir.path().to_path_buf();
    let slow = model_of(
        &dir,
        "slow",
        &[service_yaml("hello", "1.0.0", &shas[0], port, "", "")
            .replace("min_healthy_time: 500ms", "min_healthy_time: 1500ms")],
    );
    let out = fleet
        .ctl
        .cli(&["apply", "--yes", "--no-wait", slow.to_str().expect("p")]);
    assert!(out.status.success(), "{}", text(&out).1);
    // Kill it as soon as the first instance passed its gate.
    common::wait_until(Duration::from_secs(20), "first instance passed", || {
        let r = fleet.ctl.cli_json(&["rollout", "status", "--json"]);
        r["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["status"] == "passed"))
    });
    fleet.ctl.kill9();
    fleet.ctl.restart();
    let out = fleet.ctl.cli(&["rollout", "status", "--watch"]);
    assert!(out.status.success(), "{}", text(&out).0);
    assert!(
        versions(port)
            .iter()
            .all(|x| x.as_deref() == Some("version 1.0.0"))
    );
    // 3 instances × (install, configure, start): the agent ran 9 commands, each once.
    let journal = fleet.dir.path().join("agent-web-1/commands");
    let ran = std::fs::read_dir(&journal)
        .expect("journal")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(ran, 9, "each step ran exactly once");
}

#[test]
fn depends_on_deploys_and_gates_the_dependency_first() {
    let (fleet, shas, port) = setup();
    let dir = fleet.dir.path().to_path_buf();
    let m = model_of(
        &dir,
        "deps",
        &[
            service_yaml("web", "1.0.0", &shas[0], port, "", "db"),
            service_yaml("db", "1.0.0", &shas[0], port + 10, "", ""),
        ],
    );
    let out = fleet.ctl.cli(&["apply", "--yes", m.to_str().expect("p")]);
    assert!(out.status.success(), "{}", text(&out).0);
    // Every db instance was healthy before the first web instance changed at all.
    let changed = fleet.ctl.events("instance.changed");
    let last_db_healthy = changed
        .iter()
        .filter(|e| e["payload"]["service"] == "db" && e["payload"]["to"]["health"] == "healthy")
        .map(|e| e["id"].as_i64().expect("id"))
        .max()
        .expect("db became healthy");
    let first_web = changed
        .iter()
        .filter(|e| e["payload"]["service"] == "web")
        .map(|e| e["id"].as_i64().expect("id"))
        .min()
        .expect("web changed");
    assert!(
        last_db_healthy < first_web,
        "db healthy ({last_db_healthy}) before web starts ({first_web})"
    );
}

#[test]
fn reconcile_auto_deploys_to_a_host_that_joins_the_hostclass() {
    let (fleet, shas, port) = setup();
    let dir = fleet.dir.path().to_path_buf();
    let svc = service_yaml("hello", "1.0.0", &shas[0], port, "", "").replace(
        "placement: {hostclass: web, per_host: 3}",
        "placement: {hostclass: auto, per_host: 1}",
    ) + "reconcile: auto\n";
    let m = model_of(
        &dir,
        "auto",
        &[
            "kind: hostclass\nname: auto\nselector: label.tier=auto\n".to_string(),
            svc,
        ],
    );
    // No host is in the hostclass yet: nothing to do.
    let out = fleet.ctl.cli(&["apply", "--yes", m.to_str().expect("p")]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("nothing to change"),
        "{}",
        text(&out).0
    );
    assert_eq!(get(port), None);
    // A host joins: drover deploys there by itself, as `reconcile`.
    let _joined = fleet.ctl.agent(fleet.dir.path(), "auto-1", &["tier=auto"]);
    common::wait_until(
        Duration::from_secs(40),
        "reconcile deploys to auto-1",
        || get(port).as_deref() == Some("version 1.0.0"),
    );
    let deploys = fleet.ctl.cli_json(&["executions", "--json"]);
    assert!(
        deploys
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e["kind"] == "deploy" && e["actor"] == "reconcile"),
        "{deploys:#}"
    );
    common::wait_until(Duration::from_secs(20), "status all ok", || {
        fleet.ctl.cli(&["status"]).status.success()
    });
}

#[test]
fn an_agent_killed_mid_step_reports_the_truth_and_the_rollout_fails_cleanly() {
    let (mut fleet, shas, port) = setup();
    let dir = fleet.dir.path().to_path_buf();
    // A scripts service whose start step takes 3 s: time to kill the agent during it.
    let svc = format!(
        "kind: service\nname: slow\nversion: \"1.0.0\"\n\
         artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
         placement: {{hostclass: web}}\nports: {{http: {port}}}\n\
         rollout: {{min_healthy_time: 500ms, healthy_deadline: 5s, progress_deadline: 60s, auto_revert: false}}\n\
         scripts:\n  start: \"sleep 3; echo started > started.txt\"\n  stop: \"true\"\n",
        sha = shas[0]
    );
    let m = model_of(&dir, "slow", &[svc]);
    let out = fleet
        .ctl
        .cli(&["apply", "--yes", "--no-wait", m.to_str().expect("p")]);
    assert!(out.status.success(), "{}", text(&out).1);
    common::wait_until(Duration::from_secs(20), "the start step runs", || {
        let r = fleet.ctl.cli_json(&["rollout", "status", "--json"]);
        r["steps"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| x["transition"] == "start" && x["status"] == "running")
                && s.iter().filter(|x| x["status"] == "ok").count() == 2
        })
    });
    // The agent reported it started: it is inside the 3 s script now.
    std::thread::sleep(Duration::from_millis(300));
    fleet.agent("web-1").kill9();
    std::thread::sleep(Duration::from_millis(300));
    fleet.agent("web-1").restart();
    // The re-delivered step is answered truthfully: it was cut short by the restart.
    let out = fleet.ctl.cli(&["rollout", "status", "--watch"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let r = fleet.ctl.cli_json(&["rollout", "status", "--json"]);
    assert_eq!(r["rollout"]["state"], "failed", "{r:#}");
    let start = r["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["transition"] == "start")
        .cloned()
        .expect("start");
    assert_eq!(start["status"], "failed");
    assert!(
        start["error"]
            .as_str()
            .is_some_and(|e| e.contains("restarted")),
        "{start:#}"
    );
    // Nothing is left half-done on the controller: no active rollout, a new apply is accepted.
    let again = fleet
        .ctl
        .cli(&["apply", "--yes", "--no-wait", m.to_str().expect("p")]);
    assert!(again.status.success(), "{}", text(&again).1);
}
