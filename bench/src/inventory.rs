//! The inventory part: syncs of an `exec` provider listing N hosts (default 10,000),
//! through a real controller.
//!
//! The provider is `command: [cat, DIR/hosts.json]` with `interval: 1h`, so only the
//! syncs the harness asks for run. Each run has a fresh controller (and store) and times:
//!
//! 1. the first sync (N hosts added), from `drover apply` until the provider shows `ok`
//!    with N hosts;
//! 2. a re-sync of the same list (nothing changes), from the sync request until its
//!    `last_ok_at` advances;
//! 3. a re-sync with 1 % of the list changed (N/100 hosts with another tag, N/200
//!    removed, N/200 added), the same way;
//! 4. `drover hosts list --json` with the N hosts.
//!
//! Each sync is split with the controller's own clock: an inotify watch on the
//! directory of `hosts.json` sees the moment `cat` opens it (the sync starts), the
//! provider's `last_ok_at` is stamped once the output is fetched and mapped (before the
//! store write), and the `provider.synced` event when the change rows are written.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::http::Http;
use crate::procs::{self, Cli, Controller, check_interrupted, mem, run_timed};
use crate::report::Report;
use crate::{Ctx, check_logs, mib, ms, short};

/// The provider's name in the model.
const PROVIDER: &str = "bench-inv";
/// The file the provider's `cat` reads.
const HOSTS_FILE: &str = "hosts.json";
/// Time between two looks at the provider.
const POLL: Duration = Duration::from_millis(10);
/// A sync not visible after this long is given up on.
const SYNC_LIMIT: Duration = Duration::from_secs(600);

/// How the harness reaches the provider and host verbs: the CLI when this drover has
/// them, else the API.
#[derive(Debug, Clone)]
struct Verbs {
    /// `drover providers list --json` and `drover providers sync NAME` exist.
    providers_cli: bool,
    /// The arguments that list the hosts as JSON (`hosts list --json` or `hosts --json`).
    hosts_list: Vec<&'static str>,
}

impl Verbs {
    /// Asks the binary's `--help` which verbs it has.
    fn detect(cli: &Cli) -> anyhow::Result<Verbs> {
        let help = |args: &[&str]| -> anyhow::Result<Option<String>> {
            let out = run_timed(&mut cli.command(args), Duration::from_secs(30))?;
            Ok(out.status.success().then_some(out.stdout))
        };
        let subcommands = |text: &str| -> Vec<String> {
            text.lines()
                .skip_while(|l| !l.starts_with("Commands:"))
                .skip(1)
                .take_while(|l| l.starts_with(' '))
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        };
        let providers_cli = help(&["providers", "--help"])?.is_some_and(|t| {
            let s = subcommands(&t);
            s.iter().any(|c| c == "list") && s.iter().any(|c| c == "sync")
        });
        let hosts_list = match help(&["hosts", "--help"])? {
            Some(t) if subcommands(&t).iter().any(|c| c == "list") => {
                vec!["hosts", "list", "--json"]
            }
            _ => vec!["hosts", "--json"],
        };
        Ok(Verbs {
            providers_cli,
            hosts_list,
        })
    }

    fn hosts_list_shown(&self) -> String {
        format!("drover {}", self.hosts_list.join(" "))
    }
}

/// One provider's state (`GET /api/v1/providers`, `drover providers list --json`).
#[derive(Debug, Clone, PartialEq)]
struct ProviderSeen {
    status: String,
    host_count: u64,
    error: Option<String>,
    last_ok_at: Option<i64>,
}

/// Finds [`PROVIDER`] in a providers listing: an array, or an object holding one under
/// `providers` or `items`.
fn find_provider(list: &serde_json::Value) -> Option<ProviderSeen> {
    let items = list
        .as_array()
        .or_else(|| list["providers"].as_array())
        .or_else(|| list["items"].as_array())?;
    let p = items.iter().find(|p| p["name"] == PROVIDER)?;
    Some(ProviderSeen {
        status: p["status"].as_str().unwrap_or_default().to_string(),
        host_count: p["host_count"].as_u64().unwrap_or_default(),
        error: p["error"].as_str().map(str::to_string),
        last_ok_at: p["last_ok_at"].as_i64(),
    })
}

/// The harness's view of one controller for this part.
struct Target<'a> {
    ctx: &'a Ctx,
    ctl: Controller,
    cli: Cli,
    api: Http,
    verbs: &'a Verbs,
}

impl Target<'_> {
    /// The provider as listed now (`None`: not listed yet).
    fn provider(&self) -> anyhow::Result<Option<ProviderSeen>> {
        let list = if self.verbs.providers_cli {
            let out = run_timed(
                &mut self.cli.command(&["providers", "list", "--json"]),
                self.ctx.timeout,
            )?;
            if !out.status.success() {
                bail!(
                    "drover providers list --json failed ({}): {}",
                    out.status,
                    short(&out.stderr)
                );
            }
            serde_json::from_str(&out.stdout)
                .context("drover providers list --json did not print JSON")?
        } else {
            self.api.get_json("/api/v1/providers")?
        };
        Ok(find_provider(&list))
    }

    /// Asks for a sync now.
    fn request_sync(&self) -> anyhow::Result<()> {
        if self.verbs.providers_cli {
            let out = run_timed(
                &mut self.cli.command(&["providers", "sync", PROVIDER]),
                self.ctx.timeout,
            )?;
            if !out.status.success() {
                bail!(
                    "drover providers sync {PROVIDER} failed ({}): {}",
                    out.status,
                    short(&out.stderr)
                );
            }
        } else {
            let path = format!("/api/v1/providers/{PROVIDER}/sync");
            crate::http::json_ok(self.api.request("POST", &path, None, &[])?, "POST", &path)?;
        }
        Ok(())
    }

    /// Polls every [`POLL`] until the provider is `ok` with `hosts` hosts and a
    /// `last_ok_at` later than `after`. Returns the moment (monotonic and Unix ms) the
    /// answer showing it arrived, and the provider.
    fn wait_synced(
        &mut self,
        after: Option<i64>,
        hosts: u64,
    ) -> anyhow::Result<(Instant, f64, ProviderSeen)> {
        let deadline = Instant::now() + SYNC_LIMIT;
        loop {
            check_interrupted()?;
            if let Some(status) = self.ctl.proc.exited() {
                return Err(self.ctl.proc.exit_error(status));
            }
            let seen = self.provider()?;
            let (at, unix) = (Instant::now(), unix_ms_now());
            if let Some(p) = seen {
                if p.status == "stale" {
                    bail!(
                        "provider {PROVIDER} failed its sync: {}",
                        p.error.unwrap_or_default()
                    );
                }
                let newer = match (p.last_ok_at, after) {
                    (Some(ok), Some(before)) => ok > before,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if p.status == "ok" && newer {
                    if p.host_count != hosts {
                        bail!(
                            "provider {PROVIDER} synced {} hosts, expected {hosts}",
                            p.host_count
                        );
                    }
                    return Ok((at, unix, p));
                }
            }
            if Instant::now() > deadline {
                bail!("provider {PROVIDER} did not sync {hosts} hosts within {SYNC_LIMIT:?}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Pages through `GET /api/v1/hosts` 1000 at a time, as the CLI does; returns how
    /// many hosts and pages it got.
    fn list_hosts_api(&self) -> anyhow::Result<(usize, usize)> {
        let (mut hosts, mut pages) = (0, 0);
        let mut after: Option<String> = None;
        loop {
            let cursor = after
                .as_deref()
                .map(|a| format!("&after={}", encode(a)))
                .unwrap_or_default();
            let page = self
                .api
                .get_json(&format!("/api/v1/hosts?limit=1000&selector=all{cursor}"))?;
            hosts += page["items"].as_array().map_or(0, Vec::len);
            pages += 1;
            match page["next"].as_str() {
                Some(next) if pages < 10_000 => after = Some(next.to_string()),
                Some(_) => bail!("GET /api/v1/hosts: more than 10000 pages"),
                None => return Ok((hosts, pages)),
            }
        }
    }

    /// The newest `provider.synced` event: id, time (Unix ms) and payload.
    fn last_synced_event(&self) -> anyhow::Result<Option<(i64, i64, serde_json::Value)>> {
        let page = self
            .api
            .get_json("/api/v1/events?type=provider.synced&order=desc&limit=1")?;
        let Some(e) = page["items"].as_array().and_then(|items| items.first()) else {
            return Ok(None);
        };
        let id = e["id"].as_i64().context("event without id")?;
        let time = e["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
            .context("event without a readable time")?;
        Ok(Some((id, time, e["payload"].clone())))
    }
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Now, in Unix ms (the clock the controller stamps its rows with).
fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Records, from a thread, when a file in one directory is opened and closed after
/// reading (inotify on the directory: the file itself is replaced by a rename each time
/// it is rewritten). The time is taken when the thread reads the event.
struct FileWatch {
    /// Unix ms of each open (`true`) or close-after-reading (`false`) of the file.
    seen: Arc<Mutex<Vec<(bool, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileWatch {
    fn new(dir: &Path, file: &str) -> anyhow::Result<FileWatch> {
        // SAFETY: plain syscall; the descriptor is owned right below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error()).context("inotify_init1");
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = CString::new(dir.as_os_str().as_bytes())?;
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let wd = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_OPEN | libc::IN_CLOSE_NOWRITE,
            )
        };
        if wd < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("inotify_add_watch {}", dir.display()));
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2, name) = (seen.clone(), stop.clone(), file.as_bytes().to_vec());
        let thread = std::thread::spawn(move || watch_loop(&fd, &name, &seen2, &stop2));
        Ok(FileWatch {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// The first open after `after` (Unix ms) and the first close after that open.
    fn first_after(&self, after: f64) -> (Option<f64>, Option<f64>) {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let open = seen
            .iter()
            .find(|(o, t)| *o && *t >= after)
            .map(|(_, t)| *t);
        let close = open.and_then(|o| seen.iter().find(|(c, t)| !*c && *t >= o).map(|(_, t)| *t));
        (open, close)
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads inotify events until `stop`, noting opens and closes of `name`.
fn watch_loop(fd: &OwnedFd, name: &[u8], seen: &Mutex<Vec<(bool, f64)>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: reads into a buffer of the length given.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let now = unix_ms_now();
        let Ok(n) = usize::try_from(n) else {
            continue;
        };
        let events = parse_events(&buf[..n], name);
        if let Ok(mut s) = seen.lock() {
            s.extend(events.into_iter().map(|open| (open, now)));
        }
    }
}

/// The events of an inotify read that name `name`: `true` for an open, `false` for a
/// close after reading.
fn parse_events(mut buf: &[u8], name: &[u8]) -> Vec<bool> {
    const HEAD: usize = 16;
    let mut out = Vec::new();
    while buf.len() >= HEAD {
        let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let (mask, len) = (word(4), word(12) as usize);
        let Some(raw) = buf.get(HEAD..HEAD + len) else {
            break;
        };
        let file = raw.split(|b| *b == 0).next().unwrap_or_default();
        if file == name {
            if mask & libc::IN_OPEN != 0 {
                out.push(true);
            }
            if mask & libc::IN_CLOSE_NOWRITE != 0 {
                out.push(false);
            }
        }
        buf = &buf[HEAD + len..];
    }
    out
}

/// One host record of `hosts.json`.
fn record(i: u32, width: usize, role_flipped: bool) -> serde_json::Value {
    let web = !i.is_multiple_of(3);
    let role = if web != role_flipped { "web" } else { "db" };
    serde_json::json!({
        "id": format!("i-{i:0width$}"),
        "name": format!("node-{i:0width$}"),
        "address": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        "region": if i.is_multiple_of(2) { "dc2" } else { "dc1" },
        "tags": { "role": role, "rack": format!("r{}", (i - 1) / 40 + 1) },
    })
}

/// The 1 % change of run `run` (0-based) over hosts `1..=n`: which hosts get another
/// tag (`n/100`), which are removed (`n/200`, none of the changed ones) and which ids
/// are added (`n/200`, after `n`).
#[derive(Debug, Clone, PartialEq)]
struct Change {
    changed: Vec<u32>,
    removed: Vec<u32>,
    added: Vec<u32>,
}

impl Change {
    fn of_run(n: u32, run: u32) -> Change {
        let off = run % 100 + 1;
        Change {
            changed: (0..n / 100).map(|j| off + 100 * j).collect(),
            removed: (0..n / 200).map(|j| off + 50 + 200 * j).collect(),
            added: (n + 1..=n + n / 200).collect(),
        }
    }
}

/// Digits of the ids: at least 5 (`i-00001`).
fn id_width(n: u32) -> usize {
    (n + n / 200).to_string().len().max(5)
}

/// `hosts.json`: hosts `1..=n`, with `change` applied when given.
fn hosts_json(n: u32, change: Option<&Change>) -> anyhow::Result<Vec<u8>> {
    let width = id_width(n);
    let mut records = Vec::with_capacity(n as usize + n as usize / 200);
    for i in 1..=n {
        let (flip, gone) = match change {
            Some(c) => (
                c.changed.binary_search(&i).is_ok(),
                c.removed.binary_search(&i).is_ok(),
            ),
            None => (false, false),
        };
        if !gone {
            records.push(record(i, width, flip));
        }
    }
    if let Some(c) = change {
        records.extend(c.added.iter().map(|&i| record(i, width, false)));
    }
    Ok(serde_json::to_vec(&records)?)
}

/// Writes `bytes` to `dir/hosts.json` through a rename, so a reader sees the old or the
/// new file whole.
fn write_hosts(dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{HOSTS_FILE}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(HOSTS_FILE))
        .with_context(|| format!("cannot rename {}", tmp.display()))
}

/// The model: only the provider.
fn model_yaml(hosts_file: &Path) -> String {
    // A JSON string is a valid double-quoted YAML scalar, whatever the path holds.
    let path = serde_json::Value::from(hosts_file.display().to_string()).to_string();
    format!(
        "kind: provider\nname: {PROVIDER}\ntype: exec\ninterval: 1h\n\
         command: [cat, {path}]\n\
         map: {{id: id, name: name, address: address, region: region, labels_from: tags}}\n"
    )
}

/// One sync, timed.
#[derive(Debug, Clone, Copy, Default)]
struct SyncTimes {
    /// Request (apply or sync) → the provider seen synced, ms (monotonic clock).
    wall: f64,
    /// Request → `cat` opened `hosts.json`.
    wait: Option<f64>,
    /// `cat` opened `hosts.json` → the provider seen synced.
    sync: Option<f64>,
    /// `cat` opened `hosts.json` → `last_ok_at`.
    fetch: Option<f64>,
    /// `last_ok_at` → the provider seen synced.
    write: f64,
    /// `last_ok_at` → the `provider.synced` event's time.
    event: Option<f64>,
}

/// The samples of one kind of sync over the runs.
#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    wait: Vec<f64>,
    sync: Vec<f64>,
    fetch: Vec<f64>,
    write: Vec<f64>,
    event: Vec<f64>,
}

impl Samples {
    fn push(&mut self, t: SyncTimes) {
        self.wall.push(t.wall);
        self.write.push(t.write);
        self.wait.extend(t.wait);
        self.sync.extend(t.sync);
        self.fetch.extend(t.fetch);
        self.event.extend(t.event);
    }

    fn report(&self, report: &mut Report, key: &str, label: &str, request: &str, failed: usize) {
        let rows = [
            ("", label.to_string(), &self.wall, failed),
            (
                "_wait",
                format!("  {request} -> sync starts (the next 500 ms round)"),
                &self.wait,
                0,
            ),
            (
                "_from_start",
                "  sync starts (cat opens hosts.json) -> visible".to_string(),
                &self.sync,
                0,
            ),
            (
                "_fetch",
                "    sync starts -> last_ok_at (cat, parse, map)".to_string(),
                &self.fetch,
                0,
            ),
            (
                "_write",
                "    last_ok_at -> visible (store write, commit, poll)".to_string(),
                &self.write,
                0,
            ),
            (
                "_event",
                "    last_ok_at -> provider.synced stamped (hosts, changes)".to_string(),
                &self.event,
                0,
            ),
        ];
        for (suffix, label, sample, failed) in rows {
            // A no-change sync records no event: no row rather than a problem.
            if suffix == "_event" && sample.is_empty() {
                continue;
            }
            report.dist(
                &format!("inventory_{key}{suffix}_ms"),
                &label,
                "ms",
                sample,
                failed,
            );
        }
    }
}

/// The times of one sync requested at `t0` (`u0` in Unix ms) and seen at `seen`.
fn times(
    watch: &FileWatch,
    t0: Instant,
    u0: f64,
    seen: (Instant, f64, &ProviderSeen),
    event_ms: Option<i64>,
    what: &str,
    report: &mut Report,
) -> SyncTimes {
    let (at, unix, p) = seen;
    let (open, _) = watch.first_after(u0);
    if open.is_none() {
        report.problems.push(format!(
            "{what}: inotify saw no open of {HOSTS_FILE}: no split of this sync"
        ));
    }
    let ok = p.last_ok_at.map_or(unix, |v| v as f64);
    SyncTimes {
        wall: ms(at.duration_since(t0)),
        wait: open.map(|o| o - u0),
        sync: open.map(|o| unix - o),
        fetch: open.map(|o| ok - o),
        write: unix - ok,
        event: event_ms.map(|e| e as f64 - ok),
    }
}

/// Checks the `provider.synced` event of a sync against what it should have done;
/// returns its time, or notes a problem.
fn check_event(
    target: &Target<'_>,
    before: Option<i64>,
    want: [u64; 3],
    what: &str,
    report: &mut Report,
) -> anyhow::Result<Option<i64>> {
    match target.last_synced_event()? {
        Some((id, time, payload)) if Some(id) != before => {
            let got = ["added", "changed", "removed"].map(|k| payload[k].as_u64().unwrap_or(0));
            if got != want {
                report.problems.push(format!(
                    "{what}: provider.synced says added/changed/removed {got:?}, expected {want:?}"
                ));
            }
            Ok(Some(time))
        }
        _ => {
            report
                .problems
                .push(format!("{what}: no provider.synced event was recorded"));
            Ok(None)
        }
    }
}

/// The inventory part: `--inventory-runs` runs, each on a fresh controller.
pub fn sync(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let phase = Instant::now();
    let n = ctx.args.inventory_hosts;
    let runs = ctx.args.inventory_runs;
    let mut first = Samples::default();
    let mut same = Samples::default();
    let mut changed = Samples::default();
    let (mut list_ms, mut api_ms, mut api_pages, mut list_api_failed) =
        (Vec::new(), Vec::new(), 0, 0);
    let (mut first_failed, mut same_failed, mut changed_failed, mut list_failed) = (0, 0, 0, 0);
    let mut verbs: Option<Verbs> = None;
    let mut last_mem = None;
    let mut json_kib = 0.0;
    let change0 = Change::of_run(n, 0);
    let pct = format!(
        "{} changed, {} removed, {} added",
        change0.changed.len(),
        change0.removed.len(),
        change0.added.len()
    );

    for run in 0..runs {
        check_interrupted()?;
        let tag = format!("inventory-{}", run + 1);
        let dir: PathBuf = ctx.tmp.join(&tag);
        let db = ctx.fresh_db(&format!("inv{}", run + 1))?;
        let ctl = procs::start_controller(&ctx.bin, &dir, db.as_ref().map(|d| d.url.as_str()))?;
        let cli = Cli::new(&ctx.bin, &ctl, &dir);
        let api = Http::new(&ctl.url, Some(&ctl.admin_token))?;
        if verbs.is_none() {
            let v = Verbs::detect(&cli)?;
            eprintln!(
                "[inventory] {} hosts, {runs} runs; providers through {}, hosts through `{}`",
                n,
                if v.providers_cli {
                    "`drover providers list --json` / `providers sync`"
                } else {
                    "the API (GET /api/v1/providers, POST /api/v1/providers/NAME/sync): \
                     this drover has no `providers` verb"
                },
                v.hosts_list_shown()
            );
            verbs = Some(v);
        }
        let verbs = verbs.as_ref().context("verbs detected above")?;
        let mut target = Target {
            ctx,
            ctl,
            cli,
            api,
            verbs,
        };
        let data = dir.join("data-files");
        let model = dir.join("model");
        std::fs::create_dir_all(&data)?;
        std::fs::create_dir_all(&model)?;
        let watch = FileWatch::new(&data, HOSTS_FILE)?;
        let base = hosts_json(n, None)?;
        json_kib = base.len() as f64 / 1024.0;
        write_hosts(&data, &base)?;
        drop(base);
        std::fs::write(
            model.join("inventory.yaml"),
            model_yaml(&data.join(HOSTS_FILE)),
        )?;

        // 1. First sync: N hosts added.
        let model_arg = model.display().to_string();
        let apply_args = [
            "apply",
            "--yes",
            "--allow-empty",
            "-m",
            "inventory",
            model_arg.as_str(),
        ];
        let (t0, u0) = (Instant::now(), unix_ms_now());
        let out = run_timed(&mut target.cli.command(&apply_args), ctx.timeout)?;
        if !out.status.success() {
            bail!(
                "drover apply of the provider model failed ({}): {} {}",
                out.status,
                short(&out.stderr),
                short(&out.stdout)
            );
        }
        let (at, unix, p) = match target.wait_synced(None, u64::from(n)) {
            Ok(s) => s,
            Err(e) => {
                first_failed += 1;
                report
                    .problems
                    .push(format!("run {}: first sync: {e:#}", run + 1));
                continue;
            }
        };
        let event = check_event(
            &target,
            None,
            [u64::from(n), 0, 0],
            &format!("run {}: first sync", run + 1),
            report,
        )?;
        let what = format!("run {}: first sync", run + 1);
        let t = times(&watch, t0, u0, (at, unix, &p), event, &what, report);
        first.push(t);
        eprintln!(
            "[inventory {}/{runs}] first sync of {n} hosts: {:.0} ms (fetch {:.0} ms)",
            run + 1,
            t.wall,
            t.fetch.unwrap_or(f64::NAN)
        );

        // 2. Re-sync, nothing changed.
        let before = target.last_synced_event()?.map(|(id, _, _)| id);
        let mut last_ok = p.last_ok_at;
        let (t0, u0) = (Instant::now(), unix_ms_now());
        target.request_sync()?;
        match target.wait_synced(last_ok, u64::from(n)) {
            Ok((at, unix, p)) => {
                if target.last_synced_event()?.map(|(id, _, _)| id) != before {
                    report.problems.push(format!(
                        "run {}: the no-change re-sync recorded a provider.synced event",
                        run + 1
                    ));
                }
                let what = format!("run {}: no-change re-sync", run + 1);
                let t = times(&watch, t0, u0, (at, unix, &p), None, &what, report);
                same.push(t);
                last_ok = p.last_ok_at;
                eprintln!(
                    "[inventory {}/{runs}] no-change re-sync: {:.0} ms (fetch {:.0} ms)",
                    run + 1,
                    t.wall,
                    t.fetch.unwrap_or(f64::NAN)
                );
            }
            Err(e) => {
                same_failed += 1;
                report
                    .problems
                    .push(format!("run {}: no-change re-sync: {e:#}", run + 1));
            }
        }

        // 3. Re-sync with 1 % changed.
        let change = Change::of_run(n, run);
        write_hosts(&data, &hosts_json(n, Some(&change))?)?;
        let before = target.last_synced_event()?.map(|(id, _, _)| id);
        let (t0, u0) = (Instant::now(), unix_ms_now());
        target.request_sync()?;
        match target.wait_synced(last_ok, u64::from(n)) {
            Ok((at, unix, p)) => {
                let want = [
                    change.added.len() as u64,
                    change.changed.len() as u64,
                    change.removed.len() as u64,
                ];
                let event = check_event(
                    &target,
                    before,
                    want,
                    &format!("run {}: 1% changed", run + 1),
                    report,
                )?;
                let what = format!("run {}: 1% changed", run + 1);
                let t = times(&watch, t0, u0, (at, unix, &p), event, &what, report);
                changed.push(t);
                eprintln!(
                    "[inventory {}/{runs}] 1% changed re-sync: {:.0} ms (fetch {:.0} ms)",
                    run + 1,
                    t.wall,
                    t.fetch.unwrap_or(f64::NAN)
                );
            }
            Err(e) => {
                changed_failed += 1;
                report
                    .problems
                    .push(format!("run {}: 1% changed re-sync: {e:#}", run + 1));
            }
        }

        // 4. The host list.
        match run_timed(&mut target.cli.command(&verbs.hosts_list), ctx.timeout) {
            Ok(out) if out.status.success() => {
                let count = serde_json::from_str::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v.as_array().map(Vec::len));
                if count == Some(n as usize) {
                    list_ms.push(ms(out.elapsed));
                } else {
                    list_failed += 1;
                    report.problems.push(format!(
                        "run {}: {} listed {count:?} hosts, expected {n}",
                        run + 1,
                        verbs.hosts_list_shown()
                    ));
                }
            }
            Ok(out) => {
                list_failed += 1;
                report.problems.push(format!(
                    "run {}: {} failed ({}): {}",
                    run + 1,
                    verbs.hosts_list_shown(),
                    out.status,
                    short(&out.stderr)
                ));
            }
            Err(e) => {
                list_failed += 1;
                report.problems.push(format!(
                    "run {}: {}: {e:#}",
                    run + 1,
                    verbs.hosts_list_shown()
                ));
            }
        }

        let started = Instant::now();
        match target.list_hosts_api() {
            Ok((hosts, pages)) if hosts == n as usize => {
                api_ms.push(ms(started.elapsed()));
                api_pages = pages;
            }
            Ok((hosts, _)) => {
                list_api_failed += 1;
                report.problems.push(format!(
                    "run {}: GET /api/v1/hosts listed {hosts} hosts, expected {n}",
                    run + 1
                ));
            }
            Err(e) => {
                list_api_failed += 1;
                report
                    .problems
                    .push(format!("run {}: GET /api/v1/hosts: {e:#}", run + 1));
            }
        }

        last_mem = Some(mem(target.ctl.proc.pid())?);
        if let Some(status) = target.ctl.proc.exited() {
            report.problems.push(format!(
                "the inventory controller of run {} exited ({status})",
                run + 1
            ));
        }
        check_logs(&target.ctl.proc, &[], report);
        drop(watch);
    }

    let poll = match &verbs {
        Some(v) if v.providers_cli => "CLI",
        _ => "API",
    };
    first.report(
        report,
        "first_sync",
        &format!("inventory first sync, {n} hosts added (apply -> visible, {poll})"),
        "apply",
        first_failed,
    );
    same.report(
        report,
        "resync_same",
        &format!("inventory re-sync, no change (sync -> visible, {poll})"),
        "sync request",
        same_failed,
    );
    changed.report(
        report,
        "resync_1pct",
        &format!("inventory re-sync, 1% changed: {pct} (sync -> visible)"),
        "sync request",
        changed_failed,
    );
    let shown = verbs.as_ref().map_or_else(
        || "drover hosts --json".to_string(),
        Verbs::hosts_list_shown,
    );
    report.dist(
        "inventory_hosts_list_ms",
        &format!("{shown}, {n} hosts (CLI start incl.)"),
        "ms",
        &list_ms,
        list_failed,
    );
    report.dist(
        "inventory_hosts_api_ms",
        &format!("  GET /api/v1/hosts?limit=1000, all {api_pages} pages (API alone)"),
        "ms",
        &api_ms,
        list_api_failed,
    );
    report.value(
        "inventory_hosts_json_kib",
        &format!("inventory: hosts.json with {n} records"),
        "KiB",
        json_kib,
    );
    if let Some(m) = last_mem {
        report.value(
            "inventory_ctl_rss_mib",
            &format!("inventory: controller VmRSS after the syncs, {n} hosts"),
            "MiB",
            mib(m.rss_kib),
        );
        report.value(
            "inventory_ctl_hwm_mib",
            &format!("inventory: controller VmHWM after the syncs, {n} hosts"),
            "MiB",
            mib(m.hwm_kib),
        );
    }
    eprintln!("[inventory] done in {:.0} s", phase.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_one_percent_and_disjoint() {
        let c = Change::of_run(10_000, 2);
        assert_eq!(
            (c.changed.len(), c.removed.len(), c.added.len()),
            (100, 50, 50)
        );
        assert!(c.changed.iter().all(|i| (1..=10_000).contains(i)));
        assert!(c.removed.iter().all(|i| (1..=10_000).contains(i)));
        assert!(
            c.removed
                .iter()
                .all(|i| c.changed.binary_search(i).is_err())
        );
        assert_eq!(c.added.first(), Some(&10_001));
        let c = Change::of_run(10_000, 99);
        assert!(c.changed.iter().chain(&c.removed).all(|i| *i <= 10_000));
    }

    #[test]
    fn hosts_json_applies_the_change() {
        let c = Change::of_run(400, 0);
        let base: Vec<serde_json::Value> =
            serde_json::from_slice(&hosts_json(400, None).expect("json")).expect("parses");
        let next: Vec<serde_json::Value> =
            serde_json::from_slice(&hosts_json(400, Some(&c)).expect("json")).expect("parses");
        assert_eq!((base.len(), next.len()), (400, 400));
        assert_eq!(base[0]["id"], "i-00001");
        assert_eq!(base[0]["name"], "node-00001");
        assert_eq!(base[0]["address"], "10.0.0.1");
        assert_eq!(base[299]["address"], "10.0.1.44");
        assert_eq!(base[0]["tags"]["rack"], "r1");
        let find =
            |list: &[serde_json::Value], id: &str| list.iter().find(|r| r["id"] == id).cloned();
        // Host 1 is changed (role flipped), host 51 removed, 401 and 402 added.
        assert_ne!(find(&base, "i-00001"), find(&next, "i-00001"));
        assert!(find(&next, "i-00051").is_none());
        assert!(find(&next, "i-00401").is_some());
        assert_eq!(find(&base, "i-00002"), find(&next, "i-00002"));
    }

    #[test]
    fn model_quotes_the_path() {
        let y = model_yaml(Path::new("/tmp/a b/hosts.json"));
        assert!(y.contains("command: [cat, \"/tmp/a b/hosts.json\"]"));
        assert!(y.contains("interval: 1h"));
        assert!(y.contains("labels_from: tags"));
    }

    #[test]
    fn providers_listing_shapes() {
        let p = serde_json::json!({"name": PROVIDER, "status": "ok", "host_count": 3,
            "error": null, "last_attempt_at": 5, "last_ok_at": 5});
        let want = Some(ProviderSeen {
            status: "ok".into(),
            host_count: 3,
            error: None,
            last_ok_at: Some(5),
        });
        assert_eq!(find_provider(&serde_json::json!([p.clone()])), want);
        assert_eq!(find_provider(&serde_json::json!({"providers": [p]})), want);
        assert_eq!(find_provider(&serde_json::json!([])), None);
    }

    #[test]
    fn inotify_events() {
        let mut buf = Vec::new();
        let mut push = |mask: u32, name: &str| {
            let mut padded = name.as_bytes().to_vec();
            padded.resize(16, 0);
            buf.extend_from_slice(&1i32.to_ne_bytes());
            buf.extend_from_slice(&mask.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&16u32.to_ne_bytes());
            buf.extend_from_slice(&padded);
        };
        push(libc::IN_OPEN, "hosts.json");
        push(libc::IN_OPEN, "hosts.json.tmp");
        push(libc::IN_CLOSE_NOWRITE, "hosts.json");
        assert_eq!(parse_events(&buf, b"hosts.json"), vec![true, false]);
    }

    #[test]
    fn watch_sees_a_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(HOSTS_FILE), b"[]").expect("write");
        let watch = FileWatch::new(dir.path(), HOSTS_FILE).expect("inotify");
        let before = unix_ms_now();
        std::fs::read(dir.path().join(HOSTS_FILE)).expect("read");
        let deadline = Instant::now() + Duration::from_secs(5);
        while watch.first_after(before).1.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (open, close) = watch.first_after(before);
        assert!(open.is_some() && close.is_some(), "{open:?} {close:?}");
    }
}
