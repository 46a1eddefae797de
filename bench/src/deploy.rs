//! The deploy part: rollouts of the hidden `drover demo-service` (an HTTP service with
//! `/health`, shipped inside the drover binary), through the controller's API.
//!
//! 1. Rolling deploy: one agent, one service with `per_host` instances (5), `max_parallel:
//!    1`, an HTTP health check every 200 ms and `min_healthy_time: 1s`. v1 is deployed,
//!    then v1→v2, v2→v1… are timed from the apply request until the rollout is seen
//!    `succeeded`. The ideal is batches × `min_healthy_time`: the least the policy allows.
//! 2. Agent memory: a fresh agent, 10 services of one instance each in one apply; once all
//!    are healthy and settled, the agent's VmRSS/VmHWM and its service processes' memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::Http;
use crate::procs::{self, AgentWithServices, Cli, check_interrupted, mem, pss_kib, sleep_checked};
use crate::report::Report;
use crate::{Ctx, check_logs, mib, ms, short, wait_up};

/// The two releases the rollouts alternate between.
const V1: &str = "1.0.0";
const V2: &str = "2.0.0";
/// `rollout.min_healthy_time` of the models, ms (the YAML says `1s`).
const MIN_HEALTHY_MS: i64 = 1000;
/// `health.interval` (and `timeout`) of the models.
const HEALTH_INTERVAL: &str = "200ms";
/// Time between two looks at a rollout.
const POLL: Duration = Duration::from_millis(25);
/// A rollout not final after this long is given up on.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(300);

/// A release of the demo service: a `.tar.gz` holding its `message.txt`.
fn release(version: &str) -> anyhow::Result<Vec<u8>> {
    let message = format!("(drover-bench release {version})\n");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(message.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "message.txt", message.as_bytes())?;
    Ok(tar.into_inner()?.finish()?)
}

/// Pushes the release `version` to the controller's artifact store; returns its sha256.
fn push(api: &Http, version: &str) -> anyhow::Result<String> {
    let path = format!("/api/v1/artifacts?name=bench-{version}.tar.gz");
    let resp = api.request("POST", &path, Some("application/gzip"), &release(version)?)?;
    let pushed = crate::http::json_ok(resp, "POST", &path)?;
    let sha = pushed["artifact"]["sha256"]
        .as_str()
        .context("the artifact push answered no artifact.sha256")?;
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "the artifact push answered a strange sha256 `{}`",
            short(sha)
        );
    }
    Ok(sha.to_ascii_lowercase())
}

/// The first base port at which `n` consecutive loopback ports are free (probed by
/// binding them). The start depends on the pid, so two harnesses rarely probe alike.
fn free_ports(n: u16) -> anyhow::Result<u16> {
    let start = 20_000 + (std::process::id() % 1000) as u16 * 20;
    let candidates = (start..50_000).chain(20_000..start).step_by(37);
    for base in candidates {
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("found no {n} consecutive free ports on 127.0.0.1 between 20000 and 50000")
}

/// One `kind: service` document: `per_host` instances of the demo service on `host`.
fn service_yaml(
    name: &str,
    version: &str,
    sha: &str,
    host: &str,
    per_host: u32,
    port: u16,
    bin: &str,
) -> String {
    // A JSON string is a valid double-quoted YAML scalar, whatever the path holds.
    let bin = serde_json::Value::from(bin).to_string();
    format!(
        "kind: service\nname: {name}\nversion: \"{version}\"\n\
         artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
         placement: {{hosts: [{host}], per_host: {per_host}}}\n\
         ports: {{http: {port}}}\n\
         env: {{DROVER_BENCH_BIN: {bin}}}\n\
         health:\n  http: {{port: http, path: /health, body: ok}}\n  \
         interval: {HEALTH_INTERVAL}\n  timeout: {HEALTH_INTERVAL}\n\
         rollout:\n  max_parallel: 1\n  min_healthy_time: 1s\n  healthy_deadline: 30s\n\
         run: [\"{{{{ env.DROVER_BENCH_BIN }}}}\", \"demo-service\", \"--port\", \
         \"{{{{ ports.http }}}}\", \"--release\", \"{{{{ version }}}}\"]\n"
    )
}

/// `POST /api/v1/apply`; returns the rollout's id (`None`: nothing to change).
fn apply(api: &Http, text: &str, message: &str) -> anyhow::Result<Option<String>> {
    let body = serde_json::json!({
        "files": [{ "path": "bench.yaml", "text": text }],
        "message": message,
    });
    let applied = api.post_json("/api/v1/apply", &body)?;
    match applied["execution_id"].as_str() {
        None => Ok(None),
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            Ok(Some(id.to_string()))
        }
        Some(id) => bail!("apply answered a strange rollout id `{}`", short(id)),
    }
}

/// A rollout followed until it ended.
struct Followed {
    /// Its final state (`succeeded`, `failed`, `aborted`, `reverted`, or
    /// `awaiting-promotion`/`paused`, which the harness does not handle).
    state: String,
    /// Why it failed.
    error: Option<String>,
    /// When the answer showing the final state arrived.
    seen: Instant,
    /// The last detail (`GET /api/v1/rollouts/{id}`).
    detail: serde_json::Value,
    /// Unit → when the controller moved to it (its `last_progress_at`, Unix ms).
    advances: BTreeMap<i64, i64>,
}

fn is_final(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "aborted" | "reverted")
}

/// The rollout's instances (an empty list if the answer has none).
fn instances(detail: &serde_json::Value) -> &[serde_json::Value] {
    detail["instances"].as_array().map_or(&[], Vec::as_slice)
}

/// Polls `GET /api/v1/rollouts/{id}` every [`POLL`] until it is final (at most
/// [`ROLLOUT_LIMIT`]). While a unit runs and has an instance not yet passed, the
/// rollout's `last_progress_at` is the moment the controller moved to that unit.
fn follow(api: &Http, id: &str) -> anyhow::Result<Followed> {
    let deadline = Instant::now() + ROLLOUT_LIMIT;
    let mut advances = BTreeMap::new();
    loop {
        check_interrupted()?;
        let detail = api.get_json(&format!("/api/v1/rollouts/{id}"))?;
        let seen = Instant::now();
        let r = &detail["rollout"];
        let state = r["state"].as_str().unwrap_or_default().to_string();
        if state == "running"
            && let (Some(unit), Some(progress)) =
                (r["unit"].as_i64(), r["last_progress_at"].as_i64())
            && !advances.contains_key(&unit)
            && instances(&detail)
                .iter()
                .any(|i| i["unit"].as_i64() == Some(unit) && i["status"] != "passed")
        {
            advances.insert(unit, progress);
        }
        if is_final(&state) || matches!(state.as_str(), "awaiting-promotion" | "paused") {
            return Ok(Followed {
                error: r["error"].as_str().map(str::to_string),
                state,
                seen,
                detail,
                advances,
            });
        }
        if Instant::now() > deadline {
            bail!("rollout {id} is still {state} after {ROLLOUT_LIMIT:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Applies `text` and follows the rollout. Returns the rollout id, how long the apply
/// request took, the rollout followed, and the wall time from just before the apply
/// request until the final state was seen.
fn apply_and_follow(
    api: &Http,
    text: &str,
    message: &str,
) -> anyhow::Result<(String, Duration, Followed, Duration)> {
    let t0 = Instant::now();
    let id = apply(api, text, message)?
        .with_context(|| format!("`{message}`: the controller saw nothing to change"))?;
    let applied = t0.elapsed();
    let followed = follow(api, &id)?;
    let wall = followed.seen.duration_since(t0);
    Ok((id, applied, followed, wall))
}

/// Unix ms of an RFC 3339 time in a JSON answer.
fn unix_ms(v: &serde_json::Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The controller's own start and end of a rollout's execution (Unix ms).
fn execution_times(api: &Http, id: &str) -> anyhow::Result<(i64, i64)> {
    let e = api.get_json(&format!("/api/v1/executions/{id}"))?;
    let created = unix_ms(&e["created_at"]).context("execution without created_at")?;
    let finished = unix_ms(&e["finished_at"]).context("execution without finished_at")?;
    Ok((created, finished))
}

/// Where the time of each batch went, ms, from the controller's timestamps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Batch {
    /// From the move to the unit until its gate started: the steps (stop the old
    /// release, install, configure, start the new one) and their dispatch.
    steps: f64,
    /// From the gate's start until the controller saw the instance healthy.
    first_healthy: f64,
    /// How long after `min_healthy_time` had elapsed the instance passed.
    pass_wait: f64,
}

/// The batches of a finished rollout; a unit whose times are incomplete is left out.
fn batches(f: &Followed, finished_ms: i64) -> Vec<Batch> {
    let insts = instances(&f.detail);
    let mut out = Vec::new();
    for (&unit, &start) in &f.advances {
        let end = f.advances.get(&(unit + 1)).copied().or_else(|| {
            let last = f.detail["rollout"]["units"].as_i64()? - 1;
            (unit == last).then_some(finished_ms)
        });
        let of_unit = || insts.iter().filter(|i| i["unit"].as_i64() == Some(unit));
        let gate = of_unit()
            .map(|i| i["gate_started_at"].as_i64())
            .max()
            .flatten();
        let healthy = of_unit()
            .map(|i| i["healthy_since"].as_i64())
            .max()
            .flatten();
        let (Some(end), Some(gate), Some(healthy)) = (end, gate, healthy) else {
            continue;
        };
        if of_unit().any(|i| i["gate_started_at"].is_null() || i["healthy_since"].is_null()) {
            continue;
        }
        out.push(Batch {
            steps: (gate - start) as f64,
            first_healthy: (healthy - gate) as f64,
            pass_wait: (end - healthy - MIN_HEALTHY_MS) as f64,
        });
    }
    out
}

/// Problems with what the services on `ports` answer to `GET /` (they should name
/// `version`).
fn check_answers(ports: impl Iterator<Item = u16>, version: &str) -> Vec<String> {
    let want = format!("hello from drover {version} ");
    ports
        .filter_map(|port| match Http::local(port).get("/") {
            Ok(r) if r.status == 200 && r.text().starts_with(&want) => None,
            Ok(r) => Some(format!(
                "127.0.0.1:{port} answered HTTP {} `{}`, expected release {version}",
                r.status,
                short(&r.text())
            )),
            Err(e) => Some(format!("127.0.0.1:{port}: {e:#}")),
        })
        .collect()
}

/// A fresh controller and one agent named `host`, up.
fn controller_and_agent(
    ctx: &Ctx,
    tag: &str,
    host: &str,
    db: Option<&crate::pg::PgDb>,
) -> anyhow::Result<(procs::Controller, Cli, AgentWithServices)> {
    let dir = ctx.tmp.join(tag);
    let mut ctl = procs::start_controller(&ctx.bin, &dir, db.map(|d| d.url.as_str()))?;
    let cli = Cli::new(&ctx.bin, &ctl, &dir);
    let mut agent = AgentWithServices::new(procs::start_agent(&ctx.bin, &ctl, &dir, host)?);
    wait_up(
        &cli,
        &mut ctl,
        std::slice::from_mut(&mut agent.agent),
        &[host.to_string()],
        Duration::from_secs(60),
    )?;
    Ok((ctl, cli, agent))
}

/// Deploy figure 1: rolling deploy wall time against the policy's ideal.
pub fn rolling(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let phase = Instant::now();
    let n = ctx.args.deploy_instances;
    let host = "deploy-000";
    let db = ctx.fresh_db("deploy")?;
    let (mut ctl, _cli, mut agent) = controller_and_agent(ctx, "deploy", host, db.as_ref())?;
    let api = Http::new(&ctl.url, Some(&ctl.admin_token))?;
    let bin = ctx.bin.display().to_string();
    let shas = [push(&api, V1)?, push(&api, V2)?];
    let base = free_ports(n as u16)?;
    let ports = || (0..n as u16).map(move |i| base + i);
    let model =
        |version: &str, sha: &str| service_yaml("bench-web", version, sha, host, n, base, &bin);
    let ideal_s = f64::from(n) * MIN_HEALTHY_MS as f64 / 1000.0;

    eprintln!(
        "[deploy 1/2] agent up; deploying {V1} ({n} instances on ports {base}–{}), then \
         {} timed rollouts (ideal {ideal_s:.1} s each)",
        base + n as u16 - 1,
        ctx.args.deploy_runs
    );
    let (_, _, first, first_wall) =
        apply_and_follow(&api, &model(V1, &shas[0]), &format!("bench: {V1}"))?;
    if first.state != "succeeded" {
        bail!(
            "the first deploy of {V1} ended {}: {}",
            first.state,
            first.error.unwrap_or_default()
        );
    }
    report.problems.extend(check_answers(ports(), V1));
    report.value(
        "deploy_first_s",
        &format!("first deploy, {n} new instances ({V1}), apply -> succeeded"),
        "s",
        first_wall.as_secs_f64(),
    );

    let (mut wall_s, mut server_s, mut overhead, mut apply_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut parts: Vec<Batch> = Vec::new();
    let mut failed = 0;
    for run in 0..ctx.args.deploy_runs {
        check_interrupted()?;
        let (from, to, sha) = if run % 2 == 0 {
            (V1, V2, &shas[1])
        } else {
            (V2, V1, &shas[0])
        };
        let (id, applied, f, wall) =
            apply_and_follow(&api, &model(to, sha), &format!("bench: {from} → {to}"))?;
        if f.state != "succeeded" {
            failed += 1;
            report.problems.push(format!(
                "rolling deploy {from} → {to} ({id}) ended {}: {}; the remaining runs are skipped",
                f.state,
                f.error.unwrap_or_default()
            ));
            break;
        }
        let (created, finished) = execution_times(&api, &id)?;
        wall_s.push(wall.as_secs_f64());
        server_s.push((finished - created) as f64 / 1000.0);
        overhead.push((wall.as_secs_f64() / ideal_s - 1.0) * 100.0);
        apply_ms.push(ms(applied));
        let got = batches(&f, finished);
        if got.len() != n as usize {
            report.problems.push(format!(
                "rollout {id}: times of {} of {n} batches seen",
                got.len()
            ));
        }
        parts.extend(got);
        report.problems.extend(check_answers(ports(), to));
        eprintln!(
            "[deploy 1/2] {from} → {to}: {:.2} s (controller: {:.2} s)",
            wall.as_secs_f64(),
            (finished - created) as f64 / 1000.0
        );
    }
    report.dist(
        "deploy_rolling_s",
        &format!("rolling deploy, {n} instances one by one (apply -> succeeded)"),
        "s",
        &wall_s,
        failed,
    );
    report.dist(
        "deploy_rolling_server_s",
        "  same, controller clock (execution created -> finished)",
        "s",
        &server_s,
        failed,
    );
    report.dist(
        "deploy_rolling_overhead_pct",
        &format!("  overhead over the ideal {ideal_s:.0} s ({n} batches x min_healthy_time 1s)"),
        "%",
        &overhead,
        failed,
    );
    report.dist(
        "deploy_apply_ms",
        "  POST /api/v1/apply answered (plan, store, rollout created)",
        "ms",
        &apply_ms,
        failed,
    );
    let pick = |f: fn(&Batch) -> f64| parts.iter().map(f).collect::<Vec<f64>>();
    report.dist(
        "deploy_batch_steps_ms",
        "  per batch: start -> gate (stop, install, configure, start)",
        "ms",
        &pick(|b| b.steps),
        0,
    );
    report.dist(
        "deploy_batch_first_healthy_ms",
        "  per batch: gate starts -> controller sees it healthy",
        "ms",
        &pick(|b| b.first_healthy),
        0,
    );
    report.dist(
        "deploy_batch_pass_wait_ms",
        "  per batch: healthy for min_healthy_time -> passed",
        "ms",
        &pick(|b| b.pass_wait),
        0,
    );
    report.value(
        "deploy_ideal_s",
        &format!("rolling deploy ideal: {n} batches x min_healthy_time 1s"),
        "s",
        ideal_s,
    );
    if let Some(status) = agent.agent.exited() {
        report.problems.push(format!(
            "{} exited during the deploy benchmark ({status})",
            agent.agent.what
        ));
    }
    if let Some(status) = ctl.proc.exited() {
        report
            .problems
            .push(format!("the deploy controller exited ({status})"));
    }
    check_logs(&ctl.proc, std::slice::from_ref(&agent.agent), report);
    eprintln!(
        "[deploy 1/2] done in {:.0} s",
        phase.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Deploy figure 2: a fresh agent's memory with `--deploy-services` supervised services.
pub fn memory(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let phase = Instant::now();
    let n = ctx.args.deploy_services;
    let host = "deploy-mem";
    let db = ctx.fresh_db("deploymem")?;
    let (mut ctl, _cli, mut agent) = controller_and_agent(ctx, "deploy-mem", host, db.as_ref())?;
    let api = Http::new(&ctl.url, Some(&ctl.admin_token))?;
    let bin = ctx.bin.display().to_string();
    let sha = push(&api, V1)?;
    let base = free_ports(n as u16)?;
    let ports = || (0..n as u16).map(move |i| base + i);
    let text = ports()
        .enumerate()
        .map(|(i, port)| service_yaml(&format!("bench-svc-{i:02}"), V1, &sha, host, 1, port, &bin))
        .collect::<Vec<_>>()
        .join("---\n");
    let before = mem(agent.agent.pid())?;
    report.value(
        "deploy_agent_rss_0_services_mib",
        "agent VmRSS, up, before the deploy (0 services)",
        "MiB",
        mib(before.rss_kib),
    );

    eprintln!(
        "[deploy 2/2] fresh agent up; deploying {n} services (ports {base}–{}) in one apply",
        base + n as u16 - 1
    );
    let (id, _, f, wall) = apply_and_follow(&api, &text, &format!("bench: {n} services"))?;
    if f.state != "succeeded" {
        bail!(
            "the deploy of {n} services ({id}) ended {}: {}",
            f.state,
            f.error.unwrap_or_default()
        );
    }
    report.value(
        "deploy_services_s",
        &format!("deploy {n} services x 1 instance in one apply -> succeeded"),
        "s",
        wall.as_secs_f64(),
    );
    // All healthy per the controller's delta, and answering.
    let status = api.get_json("/api/v1/status")?;
    let list = status["instances"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let healthy = list
        .iter()
        .filter(|d| d["status"] == "ok" && d["live"]["health"] == "healthy")
        .count();
    if healthy != n as usize {
        report.problems.push(format!(
            "after the deploy, {healthy} of {n} instances are ok and healthy per /api/v1/status"
        ));
    }
    report.problems.extend(check_answers(ports(), V1));
    eprintln!(
        "[deploy 2/2] {n} services healthy after {:.1} s; settling {} s",
        wall.as_secs_f64(),
        ctx.args.settle_secs
    );
    sleep_checked(Duration::from_secs(u64::from(ctx.args.settle_secs)))?;

    let with = mem(agent.agent.pid())?;
    let services = agent.services();
    let (mut rss, mut pss) = (Vec::new(), 0);
    for p in &services {
        rss.push(mib(mem(p.pid)
            .with_context(|| format!("memory of service pid {}", p.pid))?
            .rss_kib));
        pss += pss_kib(p.pid).with_context(|| format!("memory of service pid {}", p.pid))?;
    }
    if services.len() != n as usize {
        report.problems.push(format!(
            "the agent has {} descendant processes, expected {n} services",
            services.len()
        ));
    }
    report.value(
        "deploy_agent_rss_mib",
        &format!("agent VmRSS, {n} services supervised, settled"),
        "MiB",
        mib(with.rss_kib),
    );
    report.value(
        "deploy_agent_hwm_mib",
        &format!("agent VmHWM, {n} services supervised, settled"),
        "MiB",
        mib(with.hwm_kib),
    );
    report.dist(
        "deploy_service_rss_mib",
        "service process VmRSS (drover demo-service, per process)",
        "MiB",
        &rss,
        0,
    );
    report.value(
        "deploy_services_rss_sum_mib",
        &format!("service processes VmRSS, sum of {}", services.len()),
        "MiB",
        rss.iter().sum(),
    );
    report.value(
        "deploy_services_pss_sum_mib",
        &format!(
            "service processes Pss, sum of {} (shared pages once)",
            services.len()
        ),
        "MiB",
        mib(pss),
    );
    if let Some(status) = agent.agent.exited() {
        report.problems.push(format!(
            "{} exited during the memory benchmark ({status})",
            agent.agent.what
        ));
    }
    if let Some(status) = ctl.proc.exited() {
        report
            .problems
            .push(format!("the deploy-mem controller exited ({status})"));
    }
    check_logs(&ctl.proc, std::slice::from_ref(&agent.agent), report);
    eprintln!(
        "[deploy 2/2] done in {:.0} s",
        phase.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_times() {
        let detail = serde_json::json!({
            "rollout": { "units": 2 },
            "instances": [
                { "unit": 0, "gate_started_at": 1_100, "healthy_since": 1_300 },
                { "unit": 1, "gate_started_at": 2_600, "healthy_since": 2_800 },
            ],
        });
        let f = Followed {
            state: "succeeded".into(),
            error: None,
            seen: Instant::now(),
            detail,
            advances: BTreeMap::from([(0, 1_000), (1, 2_500)]),
        };
        let b = batches(&f, 4_000);
        assert_eq!(
            b,
            vec![
                Batch {
                    steps: 100.0,
                    first_healthy: 200.0,
                    pass_wait: 200.0
                },
                Batch {
                    steps: 100.0,
                    first_healthy: 200.0,
                    pass_wait: 200.0
                },
            ]
        );
    }

    #[test]
    fn model_is_yaml_with_the_path_escaped() {
        let y = service_yaml(
            "s",
            "1.0.0",
            &"a".repeat(64),
            "h",
            5,
            20000,
            "/x \"y\"/drover",
        );
        assert!(y.contains("DROVER_BENCH_BIN: \"/x \\\"y\\\"/drover\""));
        assert!(y.contains("per_host: 5"));
        assert!(y.contains("\"{{ ports.http }}\""));
    }

    #[test]
    fn releases_are_gzip_and_differ() {
        let (a, b) = (release(V1).expect("tar"), release(V2).expect("tar"));
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        assert_ne!(a, b);
    }
}
