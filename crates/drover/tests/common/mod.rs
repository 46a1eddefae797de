//! Test harness: the real `drover` binary as controller, agents and CLI, each a separate
//! process, against a real SQLite file or a real PostgreSQL database.

#![allow(dead_code)]

pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// Which database a controller uses.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite file in the data dir.
    Sqlite,
    /// A PostgreSQL database created for this test.
    Postgres(String),
}

/// PostgreSQL admin URL for tests (`DROVER_TEST_PG` overrides).
pub fn pg_admin_url() -> String {
    std::env::var("DROVER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates a fresh PostgreSQL database and returns its URL. Panics (fails the test) if
/// PostgreSQL cannot be reached: these tests never skip.
pub fn fresh_pg_db() -> String {
    let admin = pg_admin_url();
    let name = format!("drover_it_{:016x}", rand_u64());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin} and unreachable: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("create database");
    });
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin);
    format!("{base}/{name}")
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A controller process.
pub struct Controller {
    pub child: Child,
    pub url: String,
    pub addr: String,
    pub data_dir: PathBuf,
    pub db: Db,
    pub admin_token: String,
    pub join_token: String,
    pub lines: mpsc::Receiver<String>,
}

impl Controller {
    /// Starts a fresh controller on a free port.
    pub fn start(dir: &Path, db: Db) -> Controller {
        let (child, addr, lines, tokens) = spawn_controller(dir, &db, "127.0.0.1:0");
        let (admin, join) = tokens.expect("first start prints tokens");
        Controller {
            child,
            url: format!("http://{addr}"),
            addr,
            data_dir: dir.to_path_buf(),
            db,
            admin_token: admin,
            join_token: join,
            lines,
        }
    }

    /// SIGKILL, like a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same address and store (after `kill9`).
    pub fn restart(&mut self) {
        let (child, addr, lines, tokens) = spawn_controller(&self.data_dir, &self.db, &self.addr);
        assert!(tokens.is_none(), "a restart must not bootstrap again");
        assert_eq!(addr, self.addr);
        self.child = child;
        self.lines = lines;
    }

    /// Runs the CLI against this controller with the admin token.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.admin_token, args)
    }

    /// Runs the CLI with another token.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", token)
            .env("XDG_CONFIG_HOME", self.data_dir.join("cli-config"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run drover CLI")
    }

    /// Runs the CLI and parses its stdout as JSON, asserting success.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "drover {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "drover {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Starts an agent process for this controller.
    pub fn agent(&self, dir: &Path, name: &str, labels: &[&str]) -> Agent {
        Agent::start(&self.url, &self.join_token, dir, name, labels)
    }

    /// Waits until `n` hosts are up.
    pub fn wait_hosts_up(&self, names: &[&str]) {
        wait_until(Duration::from_secs(30), "hosts up", || {
            let hosts = self.cli_json(&["hosts", "--json"]);
            names.iter().all(|n| {
                hosts
                    .as_array()
                    .is_some_and(|a| a.iter().any(|h| h["name"] == *n && h["status"] == "up"))
            })
        });
    }

    /// Events of a type, oldest first.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        let out = self.cli(&["events", "--type", kind, "--json", "--limit", "1000"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("event JSON line"))
            .collect()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Spawned = (
    Child,
    String,
    mpsc::Receiver<String>,
    Option<(String, String)>,
);

fn spawn_controller(dir: &Path, db: &Db, listen: &str) -> Spawned {
    let mut cmd = Command::new(bin());
    cmd.args([
        "server",
        "--listen",
        listen,
        "--down-after",
        "2s",
        "--heartbeat-interval",
        "400ms",
    ])
    .arg("--data-dir")
    .arg(dir)
    .env("RUST_LOG", "info,sqlx=warn")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::from(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("controller.log"))
            .or_else(|_| {
                std::fs::create_dir_all(dir)?;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("controller.log"))
            })
            .expect("controller log"),
    ));
    if let Db::Postgres(url) = db {
        cmd.args(["--db", url]);
    }
    let mut child = cmd.spawn().expect("spawn controller");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    let mut admin = None;
    let mut join = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "controller did not start in 60s");
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "controller exited early: {status}; see {}",
                    dir.join("controller.log").display()
                );
            }
            continue;
        };
        if let Some(a) = line.strip_prefix("drover controller listening on http://") {
            addr = Some(a.trim().to_string());
        } else if let Some(t) = line.strip_prefix("admin token: ") {
            admin = Some(t.trim().to_string());
        } else if let Some(t) = line.strip_prefix("join token: ") {
            join = Some(t.trim().to_string());
        } else if line.starts_with("Use: ") || line.starts_with("Store already initialised") {
            break;
        }
    }
    let addr = addr.expect("controller printed its address");
    let tokens = admin.zip(join);
    (child, addr, rx, tokens)
}

/// True if a GET answers 200.
pub fn http_ok(url: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        match reqwest::Client::new().get(url).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    })
}

/// An agent process.
pub struct Agent {
    pub child: Child,
    pub name: String,
    pub state_dir: PathBuf,
    controller: String,
    join: String,
    labels: Vec<String>,
    log: PathBuf,
}

impl Agent {
    fn start(controller: &str, join: &str, dir: &Path, name: &str, labels: &[&str]) -> Agent {
        let state_dir = dir.join(format!("agent-{name}"));
        let log = dir.join(format!("agent-{name}.log"));
        Agent {
            child: spawn_agent(controller, join, &state_dir, name, labels, &log),
            name: name.to_string(),
            state_dir,
            controller: controller.to_string(),
            join: join.to_string(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            log,
        }
    }

    /// Starts an agent that enrolls with a given join token.
    pub fn start_with(ctl: &Controller, dir: &Path, name: &str, join: &str) -> Agent {
        Agent::start(&ctl.url, join, dir, name, &[])
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again with the same state dir.
    pub fn restart(&mut self) {
        let labels: Vec<&str> = self.labels.iter().map(|s| s.as_str()).collect();
        self.child = spawn_agent(
            &self.controller,
            &self.join,
            &self.state_dir,
            &self.name,
            &labels,
            &self.log,
        );
    }
}

fn spawn_agent(
    controller: &str,
    join: &str,
    state_dir: &Path,
    name: &str,
    labels: &[&str],
    log: &Path,
) -> Child {
    let mut cmd = Command::new(bin());
    cmd.args(["agent", "--controller", controller, "--name", name])
        .arg("--state-dir")
        .arg(state_dir)
        .env("DROVER_JOIN_TOKEN", join)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("agent log"),
        ));
    for l in labels {
        cmd.args(["--label", l]);
    }
    cmd.spawn().expect("spawn agent")
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until true, or fails the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stdout and stderr as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Pids of live processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                // Zombies have an empty cmdline; they are not running.
                if cmdline.contains(marker) && !cmdline.contains("drover") {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

/// A controller and three agents (`web-1`, `web-2` with role=web, `db-1` with role=db).
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub ctl: Controller,
    pub agents: Vec<Agent>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Services outlive their agents by design: stop the agents, then every process
        // still working inside this fleet's directory.
        for a in &mut self.agents {
            a.kill9();
        }
        kill_processes_under(self.dir.path());
    }
}

/// SIGKILLs the process group of every process whose working directory is below `dir`.
pub fn kill_processes_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(dir) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Fleet {
    /// Starts everything and waits until the three hosts are up.
    pub fn start(db: Db) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctl = Controller::start(&dir.path().join("ctl"), db);
        let agents = vec![
            ctl.agent(dir.path(), "web-1", &["role=web"]),
            ctl.agent(dir.path(), "web-2", &["role=web"]),
            ctl.agent(dir.path(), "db-1", &["role=db"]),
        ];
        ctl.wait_hosts_up(&["web-1", "web-2", "db-1"]);
        Fleet { dir, ctl, agents }
    }

    /// The agent called `name`.
    pub fn agent(&mut self, name: &str) -> &mut Agent {
        self.agents
            .iter_mut()
            .find(|a| a.name == name)
            .expect("known agent")
    }
}

/// Packs the contents of `src` into the `.tar.gz` `dest` with the system's `tar`.
pub fn tarball(src: &Path, dest: &Path) {
    let ok = Command::new("tar")
        .arg("czf")
        .arg(dest)
        .arg("-C")
        .arg(src)
        .arg(".")
        .status()
        .expect("tar");
    assert!(ok.success(), "tar czf {}", dest.display());
}

/// Pushes a release whose `run.sh` sleeps an hour (what [`write_sleeper_model`] runs),
/// built under `dir`; its SHA-256.
pub fn push_sleeper_release(ctl: &Controller, dir: &Path) -> String {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("run.sh"), "#!/bin/sh\nexec sleep 3600\n").expect("write");
    let tarball = dir.join("sleeper-1.0.0.tar.gz");
    self::tarball(&src, &tarball);
    let pushed = ctl.cli_json(&[
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

/// Writes a model in `dir`: hostclass `web` (`label.role=web`) and service `sleeper`
/// from artifact `sha`, `per_host` instances a host, rolled out `max_parallel` at a
/// time after `canary` canaries.
pub fn write_sleeper_model(dir: &Path, sha: &str, per_host: u32, canary: u32, max_parallel: u32) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("hostclasses.yaml"),
        "kind: hostclass\nname: web\nselector: label.role=web\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("sleeper.yaml"),
        format!(
            "kind: service\nname: sleeper\nversion: \"1.0.0\"\n\
             artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
             placement: {{hostclass: web, per_host: {per_host}}}\n\
             rollout:\n  canary: {canary}\n  max_parallel: {max_parallel}\n  min_healthy_time: 0s\n  healthy_deadline: 10s\n  progress_deadline: 60s\n\
             run: [\"sh\", \"run.sh\"]\n"
        ),
    )
    .expect("write");
}
