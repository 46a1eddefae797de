//! `drover-bench`: figures for the release `drover` binary, all on loopback.
//!
//! 1. Wall time of `drover run --on name=bench-000 -- true` against one agent, CLI process
//!    start included, next to a bare `sh -c true` spawned the same way (interleaved, so
//!    both see the same machine noise).
//! 2. Wall time of `drover run -- true` fanned out to N agents (default 100).
//! 3. Controller memory (VmRSS, VmHWM) with 0 and N agents, idle and after the fan-out.
//! 4. Agent memory (VmRSS of each agent), idle and after the fan-out, and its sum.
//! 5. Deploys (`--no-deploy` skips them): wall time of a rolling deploy of 5 instances
//!    against the least its policy allows, and an agent's memory with 10 supervised
//!    services (see `deploy.rs`).
//! 6. Inventory (`--no-inventory` skips it): syncs of an `exec` provider listing 10,000
//!    hosts (first sync, no-change re-sync, 1 % changed) and `drover hosts list --json`
//!    with them (see `inventory.rs`).
//!
//! It is a harness that prints figures, not a test: nothing passes or fails on a number.
//! Every child is killed and every temporary directory (and PostgreSQL database) removed
//! on exit, on error, on panic and on SIGINT/SIGTERM.

mod deploy;
mod http;
mod inventory;
mod pg;
mod procs;
mod report;
mod stats;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use procs::{Cli, Controller, Guarded, check_interrupted, mem, pss_kib, run_timed, sleep_checked};
use report::Report;

/// Default location of the binary, relative to the workspace root.
const DEFAULT_DROVER: &str = "target/release/drover";

/// Benchmark harness for the release `drover` binary: CLI round-trip latency, fan-out to
/// many agents, controller and agent memory. Everything runs on 127.0.0.1.
///
/// Build first: cargo build --release -p drover && cargo run --release -p drover-bench
#[derive(Parser, Debug)]
#[command(name = "drover-bench", version)]
struct Args {
    /// The drover binary to measure (a release build).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DROVER)]
    drover: PathBuf,
    /// Agents in the fan-out fleet (0 skips the fan-out and its memory figures).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1000))]
    agents: u32,
    /// Agents started at once; each batch must be up before the next starts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    batch: u32,
    /// Timed single-agent runs (and as many `sh -c true`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    runs: u32,
    /// Untimed single-agent runs first.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    warmup: u32,
    /// Timed fan-out runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    fanout_runs: u32,
    /// Untimed fan-out runs first.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    fanout_warmup: u32,
    /// Seconds to let the fleet settle once all agents are up, before the idle memory.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=600))]
    settle_secs: u32,
    /// A CLI call taking longer than this many seconds is killed and counted as failed.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=3600))]
    run_timeout_secs: u32,
    /// Run the deploy part (the default; see --no-deploy).
    #[arg(long, overrides_with = "no_deploy")]
    deploy: bool,
    /// Skip the deploy part (rolling deploy timing, agent memory with services).
    #[arg(long, overrides_with = "deploy")]
    no_deploy: bool,
    /// Run only the deploy part (skip the run latency, fan-out and inventory parts).
    #[arg(long, conflicts_with = "no_deploy")]
    deploy_only: bool,
    /// Timed rolling deploys (alternating v1 → v2 → v1 …).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    deploy_runs: u32,
    /// Instances of the rolled service (`per_host` on one agent; one batch each).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=64))]
    deploy_instances: u32,
    /// Services (one instance each) on the agent whose memory is measured.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
    deploy_services: u32,
    /// Run the inventory part (the default; see --no-inventory).
    #[arg(long, overrides_with = "no_inventory")]
    inventory: bool,
    /// Skip the inventory part (provider syncs of --inventory-hosts hosts).
    #[arg(long, overrides_with = "inventory")]
    no_inventory: bool,
    /// Run only the inventory part.
    #[arg(long, conflicts_with_all = ["no_inventory", "deploy_only"])]
    inventory_only: bool,
    /// Hosts the inventory part's provider lists.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=200_000))]
    inventory_hosts: u32,
    /// Runs of the inventory part, each on a fresh controller and store.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    inventory_runs: u32,
    /// Use a fresh PostgreSQL database per controller instead of SQLite.
    #[arg(long)]
    postgres: bool,
    /// PostgreSQL admin URL for --postgres (loopback only); databases are created and
    /// dropped through it with psql.
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin: String,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep the temporary directory (logs, stores) and print its path.
    #[arg(long)]
    keep_temp: bool,
}

/// What every phase needs.
struct Ctx {
    bin: PathBuf,
    tmp: PathBuf,
    args: Args,
    timeout: Duration,
}

impl Ctx {
    /// A fresh PostgreSQL database if `--postgres`, else `None` (SQLite in the data dir).
    fn fresh_db(&self, tag: &str) -> anyhow::Result<Option<pg::PgDb>> {
        if self.args.postgres {
            Ok(Some(pg::create(&self.args.pg_admin, tag)?))
        } else {
            Ok(None)
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Every child and temporary directory is cleaned up inside `run`, before this prints.
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole benchmark; returns after every child has been killed.
fn run(args: Args) -> anyhow::Result<()> {
    procs::install_signal_handlers();
    let started = Instant::now();
    let bin = resolve_binary(&args.drover)?;
    if args.postgres {
        pg::check_admin_url(&args.pg_admin)?;
    }
    let version = run_timed(
        std::process::Command::new(&bin).arg("--version"),
        Duration::from_secs(30),
    )?;
    if !version.status.success() {
        bail!(
            "{} --version failed: {}",
            bin.display(),
            version.stderr.trim()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("drover-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut report = Report::default();
    report.meta = report::Meta {
        date_utc: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total_gib: mem_total_gib(),
        loadavg_start: loadavg(),
        drover_binary: bin.display().to_string(),
        drover_version: version.stdout.trim().to_string(),
        store: if args.postgres { "postgres" } else { "sqlite" }.into(),
        agents: if args.deploy_only || args.inventory_only {
            0
        } else {
            args.agents
        },
        ..Default::default()
    };
    eprintln!(
        "drover-bench: {} ({}), {} CPUs, load {}, temp dir {}",
        report.meta.drover_binary,
        report.meta.drover_version,
        report.meta.cpus,
        report.meta.loadavg_start,
        tmp.path().display()
    );
    let ctx = Ctx {
        bin,
        tmp: tmp.path().to_path_buf(),
        timeout: Duration::from_secs(u64::from(args.run_timeout_secs)),
        args,
    };
    let outcome = (|| -> anyhow::Result<()> {
        let only = ctx.args.deploy_only || ctx.args.inventory_only;
        if !only {
            single_agent(&ctx, &mut report)?;
            if ctx.args.agents > 0 {
                fan_out(&ctx, &mut report)?;
            }
        }
        if !ctx.args.no_deploy && !ctx.args.inventory_only {
            deploy::rolling(&ctx, &mut report)?;
            deploy::memory(&ctx, &mut report)?;
        }
        if !ctx.args.no_inventory && !ctx.args.deploy_only {
            inventory::sync(&ctx, &mut report)?;
        }
        Ok(())
    })();
    report.meta.loadavg_end = loadavg();
    report.meta.harness_seconds = started.elapsed().as_secs_f64();
    if ctx.args.keep_temp {
        let kept = tmp.keep();
        eprintln!("kept the temporary directory {}", kept.display());
    }
    if let Err(e) = outcome {
        if !report.distributions.is_empty() {
            eprintln!("partial report:\n{}", report.render());
        }
        return Err(e);
    }
    println!("{}", report.render());
    if let Some(path) = &ctx.args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Finds the drover binary; fails with how to build it.
fn resolve_binary(given: &Path) -> anyhow::Result<PathBuf> {
    let mut candidates = vec![given.to_path_buf()];
    if given == Path::new(DEFAULT_DROVER) {
        // Also when started from outside the workspace root.
        candidates.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DEFAULT_DROVER),
        );
    }
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        bail!(
            "no drover binary at {}: build the release binary first with \
             `cargo build --release -p drover` (run from the workspace root), \
             or pass --drover PATH",
            given.display()
        );
    };
    let path = found
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", found.display()))?;
    if path.components().any(|c| c.as_os_str() == "debug") {
        eprintln!(
            "warning: {} looks like a debug build; the figures are meant for a release build",
            path.display()
        );
    }
    Ok(path)
}

/// `/proc/loadavg`'s three load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `MemTotal` in GiB (0 if unreadable).
fn mem_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The first line of an error output, shortened, for the problem list.
fn short(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Waits (at most `limit`) until every name in `names` is `up` per `drover hosts --json`.
/// Fails early if the controller or an agent exits.
fn wait_up(
    cli: &Cli,
    ctl: &mut Controller,
    agents: &mut [Guarded],
    names: &[String],
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupted()?;
        if let Some(status) = ctl.proc.exited() {
            return Err(ctl.proc.exit_error(status));
        }
        for a in agents.iter_mut() {
            if let Some(status) = a.exited() {
                return Err(a.exit_error(status));
            }
        }
        let up: HashSet<String> = cli.hosts_up()?.into_iter().collect();
        let missing: Vec<&String> = names.iter().filter(|n| !up.contains(*n)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = agents
                .iter()
                .filter(|a| missing.iter().any(|m| a.what.ends_with(m.as_str())))
                .take(2)
                .map(|a| {
                    format!(
                        "end of {}:\n{}",
                        a.log.display(),
                        procs::log_tail(&a.log, 1500)
                    )
                })
                .collect();
            bail!(
                "{} of {} hosts not up after {limit:?}: {:?}\n{}",
                missing.len(),
                names.len(),
                missing.iter().take(10).collect::<Vec<_>>(),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads `ok` and `total` from the CLI's last line,
/// "execution ID: succeeded — 100 ok, 0 failed, 0 cancelled of 100".
fn run_counts(stdout: &str) -> Option<(u64, u64)> {
    let last = stdout.lines().rev().find(|l| l.starts_with("execution "))?;
    let (_, counts) = last.split_once('—')?;
    let ok = counts.split(" ok").next()?.trim().parse().ok()?;
    let total = counts.rsplit(" of ").next()?.trim().parse().ok()?;
    Some((ok, total))
}

/// Times one `drover run`; `Ok(Err(why))` is a failed run (non-zero exit or not every
/// host ok), `Err` a harness problem.
fn timed_run(
    ctx: &Ctx,
    cli: &Cli,
    args: &[&str],
    hosts: u64,
) -> anyhow::Result<Result<Duration, String>> {
    let out = match run_timed(&mut cli.command(args), ctx.timeout) {
        Ok(out) => out,
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    if !out.status.success() {
        let why = if out.stderr.trim().is_empty() {
            // The summary says which hosts failed.
            out.stdout
                .lines()
                .filter(|l| {
                    ["failed", "unreachable", "timed out", "error"]
                        .iter()
                        .any(|w| l.contains(w))
                })
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        } else {
            short(&out.stderr)
        };
        return Ok(Err(format!("exit {}: {}", out.status, short(&why))));
    }
    match run_counts(&out.stdout) {
        Some((ok, total)) if ok == hosts && total == hosts => Ok(Ok(out.elapsed)),
        Some((ok, total)) => Ok(Err(format!(
            "exit 0 but {ok} ok of {total}, expected {hosts} of {hosts}"
        ))),
        None => Ok(Err(format!(
            "exit 0 but no summary line in the output: {}",
            short(&out.stdout)
        ))),
    }
}

/// Figure 1: one agent, `drover run --on name=bench-000 -- true` vs `sh -c true`.
fn single_agent(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let phase = Instant::now();
    let dir = ctx.tmp.join("single");
    let db = ctx.fresh_db("single")?;
    let mut ctl = procs::start_controller(&ctx.bin, &dir, db.as_ref().map(|d| d.url.as_str()))?;
    let cli = Cli::new(&ctx.bin, &ctl, &dir);
    let mut agents = vec![procs::start_agent(&ctx.bin, &ctl, &dir, "bench-000")?];
    wait_up(
        &cli,
        &mut ctl,
        &mut agents,
        &["bench-000".to_string()],
        Duration::from_secs(60),
    )?;
    eprintln!(
        "[1/2] one agent up; {} warm-up + {} timed runs, interleaved with sh -c true \
         and drover hosts --json",
        ctx.args.warmup, ctx.args.runs
    );
    let run_args = ["run", "--on", "name=bench-000", "--", "true"];
    let sh = || {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "true"]).stdin(std::process::Stdio::null());
        cmd
    };
    let hosts_args = ["hosts", "--json"];
    for i in 0..ctx.args.warmup {
        check_interrupted()?;
        run_timed(&mut sh(), ctx.timeout)?;
        run_timed(&mut cli.command(&hosts_args), ctx.timeout)?;
        if let Err(why) = timed_run(ctx, &cli, &run_args, 1)? {
            bail!("warm-up run {} failed: {why}", i + 1);
        }
    }
    let (mut sh_ms, mut hosts_ms, mut run_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sh_failed, mut hosts_failed, mut run_failed) = (0, 0, 0);
    for _ in 0..ctx.args.runs {
        check_interrupted()?;
        let out = run_timed(&mut sh(), ctx.timeout)?;
        if out.status.success() {
            sh_ms.push(ms(out.elapsed));
        } else {
            sh_failed += 1;
        }
        match run_timed(&mut cli.command(&hosts_args), ctx.timeout) {
            Ok(out) if out.status.success() => hosts_ms.push(ms(out.elapsed)),
            Ok(out) => {
                hosts_failed += 1;
                report.problems.push(format!(
                    "drover hosts --json failed ({}): {}",
                    out.status,
                    short(&out.stderr)
                ));
            }
            Err(e) => {
                hosts_failed += 1;
                report.problems.push(format!("drover hosts --json: {e:#}"));
            }
        }
        match timed_run(ctx, &cli, &run_args, 1)? {
            Ok(d) => run_ms.push(ms(d)),
            Err(why) => {
                run_failed += 1;
                report
                    .problems
                    .push(format!("single-agent run failed: {why}"));
            }
        }
    }
    report.dist(
        "sh_true_ms",
        "sh -c true (spawn + wait)",
        "ms",
        &sh_ms,
        sh_failed,
    );
    report.dist(
        "hosts_json_ms",
        "drover hosts --json (CLI start + 1 API call)",
        "ms",
        &hosts_ms,
        hosts_failed,
    );
    report.dist(
        "run_one_agent_ms",
        "drover run --on name=bench-000 -- true (1 agent, CLI start incl.)",
        "ms",
        &run_ms,
        run_failed,
    );
    check_logs(&ctl.proc, &agents, report);
    eprintln!("[1/2] done in {:.0} s", phase.elapsed().as_secs_f64());
    Ok(())
}

/// Figures 2–4: N agents, fan-out, controller and agent memory.
fn fan_out(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let phase = Instant::now();
    let n = ctx.args.agents as usize;
    let dir = ctx.tmp.join("fleet");
    let db = ctx.fresh_db("fleet")?;
    let mut ctl = procs::start_controller(&ctx.bin, &dir, db.as_ref().map(|d| d.url.as_str()))?;
    let cli = Cli::new(&ctx.bin, &ctl, &dir);
    sleep_checked(Duration::from_secs(1))?;
    let m0 = mem(ctl.proc.pid())?;
    report.value(
        "ctl_rss_0_agents_mib",
        "controller VmRSS, started, 0 agents",
        "MiB",
        mib(m0.rss_kib),
    );

    let names: Vec<String> = (0..n).map(|i| format!("bench-{i:03}")).collect();
    let mut agents: Vec<Guarded> = Vec::with_capacity(n);
    let start_all = Instant::now();
    for (b, batch) in names.chunks(ctx.args.batch as usize).enumerate() {
        for name in batch {
            agents.push(procs::start_agent(&ctx.bin, &ctl, &dir, name)?);
        }
        wait_up(&cli, &mut ctl, &mut agents, batch, Duration::from_secs(120))
            .with_context(|| format!("batch {} of agents did not come up", b + 1))?;
    }
    wait_up(&cli, &mut ctl, &mut agents, &names, Duration::from_secs(60))?;
    let all_up = start_all.elapsed();
    report.value(
        "agents_up_s",
        &format!(
            "start {n} agents (batches of {}) until all up",
            ctx.args.batch
        ),
        "s",
        all_up.as_secs_f64(),
    );
    eprintln!(
        "[2/2] {n} agents up in {:.1} s; settling {} s",
        all_up.as_secs_f64(),
        ctx.args.settle_secs
    );
    sleep_checked(Duration::from_secs(u64::from(ctx.args.settle_secs)))?;

    let idle = mem(ctl.proc.pid())?;
    report.value(
        "ctl_rss_idle_mib",
        &format!("controller VmRSS, idle, {n} agents"),
        "MiB",
        mib(idle.rss_kib),
    );
    report.value(
        "ctl_hwm_idle_mib",
        &format!("controller VmHWM, idle, {n} agents"),
        "MiB",
        mib(idle.hwm_kib),
    );
    let agent_idle = agents_rss(&agents)?;
    report.dist(
        "agent_rss_idle_mib",
        "agent VmRSS, idle (per agent)",
        "MiB",
        &agent_idle,
        0,
    );
    report.value(
        "agents_rss_idle_sum_mib",
        &format!("agent VmRSS, idle, sum of {n}"),
        "MiB",
        agent_idle.iter().sum(),
    );
    report.value(
        "agents_pss_idle_sum_mib",
        &format!("agent Pss, idle, sum of {n} (shared pages once)"),
        "MiB",
        agents_pss(&agents)?,
    );

    eprintln!(
        "[2/2] fan-out to {n}: {} warm-up + {} timed runs",
        ctx.args.fanout_warmup, ctx.args.fanout_runs
    );
    let hosts = n as u64;
    let run_args = ["run", "--", "true"];
    for i in 0..ctx.args.fanout_warmup {
        check_interrupted()?;
        if let Err(why) = timed_run(ctx, &cli, &run_args, hosts)? {
            report
                .problems
                .push(format!("fan-out warm-up run {} failed: {why}", i + 1));
        }
    }
    let mut fan_ms = Vec::new();
    let mut failed = 0;
    for _ in 0..ctx.args.fanout_runs {
        check_interrupted()?;
        match timed_run(ctx, &cli, &run_args, hosts)? {
            Ok(d) => fan_ms.push(ms(d)),
            Err(why) => {
                failed += 1;
                report.problems.push(format!("fan-out run failed: {why}"));
            }
        }
    }
    let after = mem(ctl.proc.pid())?;
    let agent_after = agents_rss(&agents)?;
    report.dist(
        "run_fanout_ms",
        &format!("drover run -- true ({n} agents, CLI start incl.)"),
        "ms",
        &fan_ms,
        failed,
    );
    report.dist(
        "agent_rss_after_mib",
        "agent VmRSS, after the fan-out (per agent)",
        "MiB",
        &agent_after,
        0,
    );
    report.value(
        "ctl_rss_after_mib",
        &format!("controller VmRSS, after the fan-out, {n} agents"),
        "MiB",
        mib(after.rss_kib),
    );
    report.value(
        "ctl_hwm_after_mib",
        &format!("controller VmHWM, after the fan-out, {n} agents"),
        "MiB",
        mib(after.hwm_kib),
    );
    report.value(
        "agents_rss_after_sum_mib",
        &format!("agent VmRSS, after the fan-out, sum of {n}"),
        "MiB",
        agent_after.iter().sum(),
    );

    // Still all there?
    let up = cli.hosts_up()?.len();
    if up != n {
        report
            .problems
            .push(format!("after the fan-out only {up} of {n} hosts are up"));
    }
    for a in agents.iter_mut() {
        if let Some(status) = a.exited() {
            report
                .problems
                .push(format!("{} exited during the benchmark ({status})", a.what));
        }
    }
    check_logs(&ctl.proc, &agents, report);
    eprintln!("[2/2] done in {:.0} s", phase.elapsed().as_secs_f64());
    Ok(())
}

/// Sum of the agents' Pss, MiB.
fn agents_pss(agents: &[Guarded]) -> anyhow::Result<f64> {
    let mut kib = 0;
    for a in agents {
        kib += pss_kib(a.pid()).with_context(|| format!("memory of {}", a.what))?;
    }
    Ok(mib(kib))
}

/// VmRSS of every agent, MiB.
fn agents_rss(agents: &[Guarded]) -> anyhow::Result<Vec<f64>> {
    agents
        .iter()
        .map(|a| {
            mem(a.pid())
                .map(|m| mib(m.rss_kib))
                .with_context(|| format!("memory of {}", a.what))
        })
        .collect()
}

/// WARN/ERROR lines of a log, without their timestamps.
fn bad_lines(log: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(|l| {
            l.split_once(' ')
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_string()
        })
        .collect()
}

/// Up to three distinct messages, shortened, for the problem list.
fn examples(lines: &[String]) -> String {
    let mut distinct: Vec<&str> = Vec::new();
    for l in lines {
        if !distinct.contains(&l.as_str()) && distinct.len() < 3 {
            distinct.push(l);
        }
    }
    distinct
        .iter()
        .map(|m| short(m))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Notes WARN/ERROR lines in the controller's and the agents' logs as problems.
fn check_logs(ctl: &Guarded, agents: &[Guarded], report: &mut Report) {
    let lines = bad_lines(&ctl.log);
    if !lines.is_empty() {
        report.problems.push(format!(
            "{}: {} WARN/ERROR log lines, e.g. {}",
            ctl.what,
            lines.len(),
            examples(&lines)
        ));
    }
    let mut noisy = 0;
    let mut all = Vec::new();
    for a in agents {
        let lines = bad_lines(&a.log);
        if !lines.is_empty() {
            noisy += 1;
            all.extend(lines);
        }
    }
    if noisy > 0 {
        report.problems.push(format!(
            "{noisy} of {} agents logged {} WARN/ERROR lines, e.g. {}",
            agents.len(),
            all.len(),
            examples(&all)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::run_counts;

    #[test]
    fn summary_line() {
        let out = "\n+---+\nexecution 0193: succeeded — 100 ok, 0 failed, 0 cancelled of 100\n";
        assert_eq!(run_counts(out), Some((100, 100)));
        assert_eq!(run_counts("nothing"), None);
    }
}
