//! Child processes of the harness: the controller, the agents and timed one-shot commands.
//!
//! Long-lived children (controller, agents) run in a process group of their own, so a
//! Ctrl-C at the terminal reaches only the harness (which then stops at its next check and
//! cleans up), and carry `PR_SET_PDEATHSIG = SIGKILL`, so they die with the harness even
//! if it is killed outright. Every child is wrapped in a guard that kills and reaps it when
//! dropped, which also happens while a panic unwinds.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT, SIGTERM and SIGHUP set a flag instead of killing the harness, so it stops
/// at its next [`check_interrupted`] and cleans up on the way out.
pub fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

/// Fails once a termination signal has arrived.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted by a signal; cleaning up");
    }
    Ok(())
}

/// Sleeps `total`, waking every 100 ms to honour a termination signal.
pub fn sleep_checked(total: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + total;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// A command for a long-lived child: own process group, killed when the harness dies,
/// stdin closed, `RUST_LOG` unset (each verb's default logging applies), no colours.
fn daemon_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.process_group(0)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let parent = std::process::id();
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (prctl, getppid, _exit) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The harness may have died before prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd
}

/// Opens (appending) a log file for a child's output.
fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// The last `max_bytes` of a log file, for error messages.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A long-lived child process, killed (SIGKILL) and reaped when dropped.
pub struct Guarded {
    child: Child,
    /// What it is, for messages ("controller", "agent bench-007").
    pub what: String,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Guarded {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited (reaping it), else `None`.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// An error describing an unexpected exit, with the end of its log.
    pub fn exit_error(&self, status: ExitStatus) -> anyhow::Error {
        anyhow::anyhow!(
            "{} exited unexpectedly ({status}); end of {}:\n{}",
            self.what,
            self.log.display(),
            log_tail(&self.log, 2000)
        )
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running controller and what it printed at its first start.
pub struct Controller {
    /// The process.
    pub proc: Guarded,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Admin API token.
    pub admin_token: String,
    /// Agent join token.
    pub join_token: String,
}

/// Starts `drover server --data-dir DIR --listen 127.0.0.1:0 [--db URL]` and reads its
/// address and bootstrap tokens from stdout (at most 60 s).
pub fn start_controller(bin: &Path, dir: &Path, db: Option<&str>) -> anyhow::Result<Controller> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join("controller.log");
    let mut cmd = daemon_command(bin);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(log_file(&log)?);
    if let Some(url) = db {
        cmd.args(["--db", url]);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {} server", bin.display()))?;
    let mut proc = Guarded {
        child,
        what: "controller".into(),
        log,
    };
    let stdout = proc
        .child
        .stdout
        .take()
        .context("controller stdout was not captured")?;
    // Drain stdout for the controller's whole life so it never blocks on a full pipe.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut admin, mut join) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        check_interrupted()?;
        if Instant::now() > deadline {
            bail!(
                "the controller did not print its address and tokens within 60 s; end of {}:\n{}",
                proc.log.display(),
                log_tail(&proc.log, 2000)
            );
        }
        let line = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => line,
            Err(_) => {
                if let Some(status) = proc.exited() {
                    return Err(proc.exit_error(status));
                }
                continue;
            }
        };
        if let Some(a) = line.strip_prefix("drover controller listening on http://") {
            addr = Some(a.trim().to_string());
        } else if let Some(t) = line.strip_prefix("admin token: ") {
            admin = Some(t.trim().to_string());
        } else if let Some(t) = line.strip_prefix("join token: ") {
            join = Some(t.trim().to_string());
        } else if line.starts_with("Use: ") {
            break;
        } else if line.starts_with("Store already initialised") {
            bail!("the store was not fresh: the controller printed no tokens");
        }
    }
    let addr = addr.context("the controller printed no address")?;
    if !addr.starts_with("127.0.0.1:") {
        bail!("the controller listens on {addr}, not on loopback");
    }
    Ok(Controller {
        proc,
        url: format!("http://{addr}"),
        admin_token: admin.context("the controller printed no admin token")?,
        join_token: join.context("the controller printed no join token")?,
    })
}

/// Starts `drover agent --name NAME` with its own state dir under `dir` and its log at
/// `dir/NAME.log`.
pub fn start_agent(
    bin: &Path,
    ctl: &Controller,
    dir: &Path,
    name: &str,
) -> anyhow::Result<Guarded> {
    let log = dir.join(format!("{name}.log"));
    let child = daemon_command(bin)
        .args([
            "agent",
            "--controller",
            &ctl.url,
            "--name",
            name,
            "--state-dir",
        ])
        .arg(dir.join(format!("{name}.state")))
        .env("DROVER_JOIN_TOKEN", &ctl.join_token)
        .stdout(Stdio::null())
        .stderr(log_file(&log)?)
        .spawn()
        .with_context(|| format!("cannot start agent {name}"))?;
    Ok(Guarded {
        child,
        what: format!("agent {name}"),
        log,
    })
}

/// The CLI pointed at one controller through `DROVER_URL`/`DROVER_TOKEN`, with a private
/// config dir so no saved login is read.
pub struct Cli {
    /// The drover binary.
    pub bin: PathBuf,
    /// Controller URL.
    pub url: String,
    /// Admin token.
    pub token: String,
    /// Used as `XDG_CONFIG_HOME`.
    pub config_home: PathBuf,
}

impl Cli {
    /// A CLI for `ctl`, with `XDG_CONFIG_HOME` under `dir`.
    pub fn new(bin: &Path, ctl: &Controller, dir: &Path) -> Cli {
        Cli {
            bin: bin.to_path_buf(),
            url: ctl.url.clone(),
            token: ctl.admin_token.clone(),
            config_home: dir.join("cli-config"),
        }
    }

    /// `drover ARGS` ready to spawn (stdin closed).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", &self.token)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Names of the hosts the controller reports as `up` (`drover hosts --json`).
    pub fn hosts_up(&self) -> anyhow::Result<Vec<String>> {
        let out = run_timed(
            &mut self.command(&["hosts", "--json"]),
            Duration::from_secs(30),
        )?;
        if !out.status.success() {
            bail!(
                "drover hosts --json failed ({}): {}",
                out.status,
                out.stderr
            );
        }
        let hosts: serde_json::Value =
            serde_json::from_str(&out.stdout).context("drover hosts --json did not print JSON")?;
        let list = hosts
            .as_array()
            .context("drover hosts --json did not print an array")?;
        Ok(list
            .iter()
            .filter(|h| h["status"] == "up")
            .filter_map(|h| h["name"].as_str().map(str::to_string))
            .collect())
    }
}

/// A finished one-shot command.
pub struct Timed {
    /// From just before spawn until the process was reaped and its output read.
    pub elapsed: Duration,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout (lossy UTF-8).
    pub stdout: String,
    /// Its stderr (lossy UTF-8).
    pub stderr: String,
}

/// Spawns `cmd` with stdout and stderr piped, waits for it and times the whole: spawn,
/// run, exit, reap. A watchdog SIGKILLs it after `limit` (then this fails).
pub fn run_timed(cmd: &mut Command, limit: Duration) -> anyhow::Result<Timed> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // The watchdog thread exists before the clock starts; it learns the pid by channel.
    let (pid_tx, pid_rx) = mpsc::channel::<u32>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || -> bool {
        let Ok(pid) = pid_rx.recv() else {
            return false;
        };
        match done_rx.recv_timeout(limit) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    // SAFETY: plain syscall. The child is reaped only after its output
                    // closes, and `done` follows within microseconds, so the pid still
                    // names it (a reuse in that window is not a practical concern).
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                true
            }
            _ => false,
        }
    });
    let start = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            drop(pid_tx);
            let _ = watchdog.join();
            return Err(e).with_context(|| format!("cannot spawn {:?}", cmd.get_program()));
        }
    };
    let _ = pid_tx.send(child.id());
    let out = child.wait_with_output();
    let elapsed = start.elapsed();
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    let out = out.with_context(|| format!("waiting for {:?}", cmd.get_program()))?;
    if killed {
        bail!(
            "{:?} {:?} did not finish within {limit:?} and was killed",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>()
        );
    }
    Ok(Timed {
        elapsed,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Proportional set size of `pid` in KiB (`Pss` of `/proc/PID/smaps_rollup`): its
/// resident pages with each shared page divided among the processes sharing it, so a
/// sum over processes counts shared code once.
pub fn pss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .with_context(|| format!("{path} has no Pss"))?;
    line.trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{path}: unreadable Pss:{line}"))
}

/// Resident memory of a process, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the largest resident size so far.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn mem(pid: u32) -> anyhow::Result<Mem> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("{path} has no {name}"))?;
        let kib = line
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .with_context(|| format!("{path}: unreadable {name}{line}"))?;
        Ok(kib)
    };
    Ok(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// What `/proc/PID/stat` says about a process that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// Parent's process id.
    pub ppid: u32,
    /// Process group id.
    pub pgrp: u32,
    /// Start time, in clock ticks after boot: with the pid, it names one process for good.
    pub starttime: u64,
}

/// Parses a `/proc/PID/stat` line. The command name may hold spaces and parentheses,
/// so the fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (pid, rest) = text.split_once(" (")?;
    let (_, fields) = rest.rsplit_once(") ")?;
    let f: Vec<&str> = fields.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, pgrp 5, starttime 22.
    Some(ProcStat {
        pid: pid.trim().parse().ok()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of one process, if it still exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every living descendant of `root` (children, their children…), found by walking the
/// parent links of `/proc/*/stat`.
pub fn descendants(root: u32) -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<ProcStat> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect();
    let mut found: Vec<ProcStat> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if !found.iter().any(|f| f.pid == p.pid) {
                found.push(*p);
                parents.push(p.pid);
            }
        }
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// An agent that supervises services. They run in process groups of their own and
/// outlive their agent by design, so killing the agent is not enough: when dropped, this
/// stops the agent (SIGSTOP, so that it restarts nothing), SIGKILLs the process group of
/// each of its descendants and of every service it was told about that still exists,
/// then kills and reaps the agent.
pub struct AgentWithServices {
    /// The agent.
    pub agent: Guarded,
    /// Services seen so far (pid and start time), in case the agent dies first.
    seen: Vec<ProcStat>,
}

impl AgentWithServices {
    /// Wraps a freshly started agent.
    pub fn new(agent: Guarded) -> AgentWithServices {
        AgentWithServices {
            agent,
            seen: Vec::new(),
        }
    }

    /// The agent's descendants now; each is remembered for the clean-up.
    pub fn services(&mut self) -> Vec<ProcStat> {
        let now = descendants(self.agent.pid());
        for p in &now {
            if !self.seen.contains(p) {
                self.seen.push(*p);
            }
        }
        now
    }
}

/// SIGKILL to `p`'s process group if it leads one, else to `p`; only if the pid still
/// names the same process.
fn kill_service(p: &ProcStat) {
    let Some(now) = proc_stat(p.pid) else {
        return;
    };
    if now.starttime != p.starttime {
        return;
    }
    let (Ok(pid), Ok(pgrp)) = (
        libc::pid_t::try_from(p.pid),
        libc::pid_t::try_from(now.pgrp),
    ) else {
        return;
    };
    // SAFETY: plain syscalls on a process checked above to be the one we saw.
    unsafe {
        if pgrp == pid && pid > 1 {
            libc::kill(-pgrp, libc::SIGKILL);
        } else {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

impl Drop for AgentWithServices {
    fn drop(&mut self) {
        let agent_alive = self.agent.exited().is_none();
        if agent_alive && let Ok(pid) = libc::pid_t::try_from(self.agent.pid()) {
            // SAFETY: our own unreaped child; its pid cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGSTOP);
            }
            self.services();
        }
        for p in &self.seen {
            kill_service(p);
        }
        // `self.agent` is dropped next: SIGKILL (which also ends a stopped process), reap.
    }
}

#[cfg(test)]
mod tests {
    use super::{ProcStat, parse_stat};

    #[test]
    fn stat_line() {
        let line = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                ppid: 17,
                pgrp: 4242,
                starttime: 987654
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        let me = super::proc_stat(std::process::id()).expect("own stat");
        assert_eq!(me.pid, std::process::id());
    }
}
