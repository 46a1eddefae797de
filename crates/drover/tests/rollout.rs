//! Deploy engine end to end: real agent, a real HTTP service as the artifact (v1, v2
//! and a broken v3), real health checks.
//!
//! Agents on one machine share its ports, so the service runs three instances on one
//! agent (`per_host: 3`, ports base..base+2): the rollout, its health gates and the
//! revert are the same as across three hosts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
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
http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
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
    let ok = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .expect("tar");
    assert!(ok.success());
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

fn model(dir: &Path, version: &str, sha: &str, port: u16) -> PathBuf {
    let m = dir.join(format!("model-{version}"));
    std::fs::create_dir_all(&m).expect("mkdir");
    std::fs::write(
        m.join("hostclasses.yaml"),
        "kind: hostclass\nname: web\nselector: name=web-1\n",
    )
    .expect("write");
    std::fs::write(
        m.join("hello.yaml"),
        format!(
            "kind: service\nname: hello\nversion: \"{version}\"\n\
             artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
             placement: {{hostclass: web, per_host: 3}}\n\
             ports: {{http: {port}}}\n\
             health:\n  http: {{port: http, path: /health, status: 200, body: ok}}\n  interval: 200ms\n  timeout: 200ms\n  healthy_threshold: 1\n  unhealthy_threshold: 2\n\
             rollout:\n  max_parallel: 1\n  min_healthy_time: 500ms\n  healthy_deadline: 6s\n  progress_deadline: 60s\n  auto_revert: true\n\
             run: [\"python3\", \"server.py\", \"--port\", \"{{{{ ports.http }}}}\", \"--version\", \"{{{{ version }}}}\"]\n"
        ),
    )
    .expect("write");
    m
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
    let port = 20_000 + (std::process::id() % 2000) as u16 * 3;
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
    // Only the first instance was touched before the gate failed.
    let touched: Vec<_> = rollout["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|i| i["status"] != "pending")
        .collect();
    assert!(touched.len() <= 3);
    let history = fleet.ctl.cli_json(&["model", "history", "--json"]);
    assert_eq!(history.as_array().map(|h| h.len()), Some(3));
}
