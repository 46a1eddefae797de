//! Zero-downtime rollouts behind a real HAProxy (Debian's package), on loopback.
//!
//! A real agent runs three instances of a real HTTP service; a generator renders
//! HAProxy's config from the live inventory and the agent installs it (`haproxy -c`
//! first, then a master-worker reload). A client sends requests without pause through
//! HAProxy during a v1 → v2 rolling deploy:
//! - with draining, every request succeeds, and answers move from v1 to v2;
//! - without it (the contrast), requests fail: the instance stops under load.
//!
//! Also: a config HAProxy refuses, and a template that does not render, keep the old
//! file and never reload.
//!
//! HAProxy is required: a missing `haproxy` fails these tests (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Controller, Db, Fleet, text, wait_until};

const HAPROXY: &str = "/usr/sbin/haproxy";

/// The service: answers `version X` after 60 ms (so that requests are in flight when
/// an instance stops), and `ok` on /health.
const SERVER_PY: &str = r#"import argparse, http.server, time
p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--version", required=True)
a = p.parse_args()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            time.sleep(0.06)
            body = ("version " + a.version).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
server.daemon_threads = True
server.serve_forever()
"#;

fn require_haproxy() {
    assert!(
        Path::new(HAPROXY).exists(),
        "{HAPROXY} is missing: install Debian's haproxy package (`apt-get install haproxy`); \
         these tests need a real HAProxy and are never skipped"
    );
}

/// Consecutive free loopback ports.
fn free_port_block(n: u16) -> u16 {
    let mut seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    for _ in 0..500 {
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

/// HAProxy in master-worker mode, as a child of the test; killed on drop.
struct Haproxy {
    child: Child,
}

impl Haproxy {
    fn start(cfg: &Path, pidfile: &Path) -> Haproxy {
        use std::os::unix::process::CommandExt;
        let child = Command::new(HAPROXY)
            .args(["-W", "-f"])
            .arg(cfg)
            .arg("-p")
            .arg(pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start haproxy");
        Haproxy { child }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request through a fresh connection: the body on a 200, else `None`.
fn get(port: u16) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    let status = buf.lines().next().unwrap_or("").to_string();
    if !status.contains(" 200 ") {
        return Err(format!("status: {status}"));
    }
    buf.split("\r\n\r\n")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| "no body".into())
}

struct Setup {
    fleet: Fleet,
    dir: PathBuf,
    lb_port: u16,
    app_port: u16,
    shas: [String; 2],
}

fn setup() -> Setup {
    require_haproxy();
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    // The instances listen on loopback: generated config reaches them there.
    let agents = vec![ctl.agent(
        dir.path(),
        "web-1",
        &["role=web", "drover/address=127.0.0.1"],
    )];
    ctl.wait_hosts_up(&["web-1"]);
    let fleet = Fleet { dir, ctl, agents };
    let root = fleet.dir.path().to_path_buf();
    let mut shas = Vec::new();
    for v in ["1.0.0", "2.0.0"] {
        let src = root.join(format!("src-{v}"));
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("server.py"), SERVER_PY).expect("write");
        let tarball = root.join(format!("web-{v}.tar.gz"));
        common::tarball(&src, &tarball);
        let pushed = fleet.ctl.cli_json(&[
            "artifacts",
            "push",
            tarball.to_str().expect("path"),
            "--json",
        ]);
        shas.push(
            pushed["artifact"]["sha256"]
                .as_str()
                .expect("sha")
                .to_string(),
        );
    }
    let ports = free_port_block(4);
    Setup {
        fleet,
        dir: root,
        lb_port: ports,
        app_port: ports + 1,
        shas: [shas[0].clone(), shas[1].clone()],
    }
}

/// The HAProxy generator: every instance of `web` as a server, `disabled` while it is
/// not up (drained, stopped or unhealthy). `extra` is appended to the template.
fn generator_yaml(s: &Setup, extra: &str) -> String {
    let d = s.dir.display();
    format!(
        r#"kind: generator
name: haproxy
targets: name=web-1
path: {d}/lb/haproxy.cfg
check: {HAPROXY} -c -f {{{{ staged }}}}
reload: "echo reload >> {d}/lb/reloads.log; if [ -f {d}/lb/haproxy.pid ]; then kill -USR2 $(cat {d}/lb/haproxy.pid); fi"
debounce: 20ms
template: |
  global
      stats socket {d}/lb/admin.sock mode 600 level admin expose-fd listeners
  defaults
      mode http
      timeout connect 1s
      timeout client 10s
      timeout server 10s
  frontend fe
      bind 127.0.0.1:{lb}
      default_backend web
  backend web
      balance roundrobin
  {{% for i in services.web.instances %}}    server {{{{ i.id }}}} {{{{ i.address }}}}:{{{{ i.ports.http }}}}{{% if not i.up %}} disabled{{% endif %}}
  {{% endfor %}}{extra}
"#,
        lb = s.lb_port,
    )
}

fn model(s: &Setup, name: &str, version: &str, drain: bool, generator: &str) -> PathBuf {
    let sha = &s.shas[if version == "1.0.0" { 0 } else { 1 }];
    let m = s.dir.join(name);
    std::fs::create_dir_all(&m).expect("mkdir");
    std::fs::write(m.join("generator.yaml"), generator).expect("write");
    std::fs::write(
        m.join("web.yaml"),
        format!(
            "kind: service\nname: web\nversion: \"{version}\"\n\
             artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
             placement: {{hosts: [web-1], per_host: 3}}\n\
             ports: {{http: {port}}}\n\
             health:\n  http: {{port: http, path: /health, status: 200, body: ok}}\n  interval: 200ms\n  timeout: 200ms\n  healthy_threshold: 1\n  unhealthy_threshold: 2\n\
             rollout:\n  max_parallel: 1\n  min_healthy_time: 300ms\n  healthy_deadline: 20s\n  progress_deadline: 90s\n  auto_revert: false\n\
             load_balancer: {{generator: haproxy, drain: {drain}, drain_grace: 400ms}}\n\
             run: [\"python3\", \"server.py\", \"--port\", \"{{{{ ports.http }}}}\", \"--version\", \"{{{{ version }}}}\"]\n",
            port = s.app_port,
        ),
    )
    .expect("write");
    m
}

fn apply(s: &Setup, model: &Path, msg: &str) -> (bool, String) {
    let out = s
        .fleet
        .ctl
        .cli(&["apply", "--yes", "-m", msg, model.to_str().expect("p")]);
    let (stdout, stderr) = text(&out);
    (out.status.success(), format!("{stdout}\n{stderr}"))
}

fn cfg_path(s: &Setup) -> PathBuf {
    s.dir.join("lb/haproxy.cfg")
}

fn reloads(s: &Setup) -> usize {
    std::fs::read_to_string(s.dir.join("lb/reloads.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Deploys v1 with its generator, starts HAProxy on the generated config, and waits
/// until it answers v1.
fn v1_behind_haproxy(s: &Setup, drain: bool) -> Haproxy {
    std::fs::create_dir_all(s.dir.join("lb")).expect("mkdir");
    let (ok, out) = apply(
        s,
        &model(s, "m1", "1.0.0", drain, &generator_yaml(s, "")),
        "v1",
    );
    assert!(ok, "{out}");
    wait_until(
        Duration::from_secs(20),
        "config with 3 live servers",
        || {
            std::fs::read_to_string(cfg_path(s))
                .map(|c| c.matches("    server ").count() == 3 && !c.contains("disabled"))
                .unwrap_or(false)
        },
    );
    let lb = Haproxy::start(&cfg_path(s), &s.dir.join("lb/haproxy.pid"));
    wait_until(Duration::from_secs(10), "haproxy answers v1", || {
        get(s.lb_port).is_ok_and(|b| b == "version 1.0.0")
    });
    lb
}

/// Requests through HAProxy from `clients` threads until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed, seen, errors) = (
                    stop.clone(),
                    ok.clone(),
                    failed.clone(),
                    seen.clone(),
                    errors.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match get(port) {
                            Ok(body) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                let mut seen = seen.lock().expect("lock");
                                if seen.last() != Some(&body) {
                                    seen.push(body);
                                }
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.lock().expect("lock").push(e);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            seen,
            errors,
            threads,
        }
    }

    /// Stops; returns (served, failed, versions in order of first sight, errors).
    fn finish(self) -> (u64, u64, Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let seen = self.seen.lock().expect("lock").clone();
        let errors = self.errors.lock().expect("lock").clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            seen,
            errors,
        )
    }
}

fn rolling_deploy_under_load(drain: bool) -> (u64, u64, Vec<String>, Vec<String>) {
    let s = setup();
    let _lb = v1_behind_haproxy(&s, drain);
    let load = Load::start(s.lb_port, 4);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = apply(
        &s,
        &model(&s, "m2", "2.0.0", drain, &generator_yaml(&s, "")),
        "v2",
    );
    // Keep the load on a moment after the last instance is back.
    std::thread::sleep(Duration::from_millis(500));
    let result = load.finish();
    assert!(ok, "{out}");
    assert!(out.contains("succeeded"), "{out}");
    // Every instance is back in the pool on v2.
    let cfg = std::fs::read_to_string(cfg_path(&s)).expect("cfg");
    assert_eq!(cfg.matches("    server ").count(), 3, "{cfg}");
    assert!(!cfg.contains("disabled"), "{cfg}");
    assert_eq!(get(s.lb_port).as_deref(), Ok("version 2.0.0"));
    result
}

#[test]
fn a_rolling_deploy_behind_haproxy_drops_no_request() {
    let (served, failed, seen, errors) = rolling_deploy_under_load(true);
    println!("drain on: served {served}, failed {failed}");
    assert_eq!(failed, 0, "no request may fail: {errors:?}");
    assert!(served > 50, "the load ran throughout ({served} requests)");
    assert_eq!(seen.first().map(String::as_str), Some("version 1.0.0"));
    assert_eq!(seen.last().map(String::as_str), Some("version 2.0.0"));
}

#[test]
fn without_draining_the_same_deploy_fails_requests() {
    let (served, failed, _seen, errors) = rolling_deploy_under_load(false);
    println!(
        "drain off: served {served}, failed {failed}; first errors: {:?}",
        errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(served > 50, "the load ran throughout ({served} requests)");
    assert!(
        failed > 0,
        "stopping instances that are still in the pool fails requests"
    );
}

#[test]
fn a_config_haproxy_refuses_or_a_broken_template_keeps_the_old_file_and_never_reloads() {
    let s = setup();
    let _lb = v1_behind_haproxy(&s, true);
    let before = std::fs::read(cfg_path(&s)).expect("cfg");
    let reloads_before = reloads(&s);

    // HAProxy's check refuses it: the old file stays, no reload, a generator.failed
    // event carries HAProxy's message.
    let (ok, out) = apply(
        &s,
        &model(
            &s,
            "m-bad-check",
            "1.0.0",
            true,
            &generator_yaml(&s, "  bogus_keyword_for_haproxy on\n"),
        ),
        "bad check",
    );
    assert!(ok, "{out}");
    wait_until(Duration::from_secs(20), "generator.failed", || {
        !s.fleet.ctl.events("generator.failed").is_empty()
    });
    let failed = s.fleet.ctl.events("generator.failed");
    let error = failed[0]["payload"]["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("bogus_keyword_for_haproxy"), "{failed:?}");
    assert_eq!(std::fs::read(cfg_path(&s)).expect("cfg"), before);
    assert!(!s.dir.join("lb/haproxy.cfg.drover-staged").exists());
    assert_eq!(
        reloads(&s),
        reloads_before,
        "no reload after a failed check"
    );
    assert_eq!(get(s.lb_port).as_deref(), Ok("version 1.0.0"));
    let list = s.fleet.ctl.cli_json(&["generators", "list", "--json"]);
    assert_eq!(list[0]["hosts"][0]["status"], "failed", "{list:#}");

    // A template that does not render: nothing is written at all.
    let broken = generator_yaml(&s, "").replace("{{ i.ports.http }}", "{{ i.ports.https }}");
    let (ok, out) = apply(
        &s,
        &model(&s, "m-bad-tpl", "1.0.0", true, &broken),
        "bad tpl",
    );
    assert!(ok, "{out}");
    wait_until(Duration::from_secs(20), "generator.render_failed", || {
        !s.fleet.ctl.events("generator.render_failed").is_empty()
    });
    let render = s.fleet.ctl.cli(&["generators", "render", "haproxy"]);
    assert_eq!(render.status.code(), Some(1));
    assert!(
        text(&render).1.contains("ports.https"),
        "{:?}",
        text(&render)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read(cfg_path(&s)).expect("cfg"), before);
    assert_eq!(reloads(&s), reloads_before);

    // Fixed: written, with the previous file kept, and reloaded once.
    let (ok, out) = apply(
        &s,
        &model(
            &s,
            "m-fixed",
            "1.0.0",
            true,
            &generator_yaml(&s, "  # fixed\n"),
        ),
        "fixed",
    );
    assert!(ok, "{out}");
    wait_until(Duration::from_secs(20), "fixed config written", || {
        std::fs::read_to_string(cfg_path(&s)).is_ok_and(|c| c.contains("# fixed"))
    });
    assert_eq!(
        std::fs::read(s.dir.join("lb/haproxy.cfg.drover-prev")).expect("prev"),
        before
    );
    wait_until(Duration::from_secs(5), "one reload", || {
        reloads(&s) == reloads_before + 1
    });
    assert_eq!(get(s.lb_port).as_deref(), Ok("version 1.0.0"));
    let render = s.fleet.ctl.cli(&["generators", "render", "haproxy"]);
    assert!(text(&render).0.contains("unchanged"), "{:?}", text(&render));
}
