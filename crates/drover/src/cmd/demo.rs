//! `drover demo`: the newcomer's first command.

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use drover_proto::executions::{Execution, RunRequest};
use drover_proto::hosts::{Host, HostStatus};
use drover_proto::page::Page;
use drover_server::{ServerConfig, start};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::usage_error;
use crate::client::Client;

/// Start a throw-away controller and 3 local agents, run a fleet command, and keep them
/// running so that you can try the CLI against them.
///
/// Everything lives in a fresh temporary directory (SQLite store, agent state dirs) that
/// is removed at exit. Stop with Ctrl-C, or pass --exit-after for scripts.
///
/// Examples:
///   drover demo
///   drover demo --exit-after 30s
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Stop by itself after this long (e.g. 30s); default: run until Ctrl-C.
    #[arg(long)]
    exit_after: Option<String>,
    /// Keep the data directory at exit and print where it is.
    #[arg(long)]
    keep: bool,
}

/// The demo's agents: name, role, port offset (they share this machine's ports).
const AGENTS: [(&str, &str, u16); 3] = [
    ("web-1", "web", 0),
    ("web-2", "web", 100),
    ("db-1", "db", 200),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let exit_after = match &args.exit_after {
        Some(s) => match super::server::duration_flag("exit-after", s) {
            Ok(d) => Some(d),
            Err(e) => return Ok(usage_error(e)),
        },
        None => None,
    };
    super::init_logging("error", false);
    let dir = tempfile::Builder::new()
        .prefix("drover-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut config = ServerConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().join("controller"),
    );
    config.down_after = Duration::from_secs(6);
    config.heartbeat_interval = Duration::from_secs(2);
    let shutdown = CancellationToken::new();
    let server = start(config, shutdown.clone()).await?;
    let url = format!("http://{}", server.addr);
    let boot = server
        .bootstrap
        .clone()
        .context("a fresh demo store must bootstrap")?;
    println!(
        "▶ controller on {url} (SQLite store in {})",
        dir.path().display()
    );

    let exe = std::env::current_exe().context("cannot find the drover binary")?;
    let mut agents: Vec<Child> = Vec::new();
    for (name, role, offset) in AGENTS {
        let child = Command::new(&exe)
            .args(["agent", "--controller", &url, "--name", name])
            .args(["--label", &format!("role={role}"), "--label", "env=demo"])
            // The demo service listens on loopback: generated config reaches it there.
            .args(["--label", "drover/address=127.0.0.1"])
            .args([
                "--label",
                &format!(
                    "{}={offset}",
                    drover_core::model::placement::PORT_OFFSET_LABEL
                ),
            ])
            .arg("--state-dir")
            .arg(dir.path().join(format!("agent-{name}")))
            .env("DROVER_JOIN_TOKEN", &boot.join_token)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start agent {name}"))?;
        println!(
            "▶ agent {name} (label role={role}) started, pid {}",
            child.id().unwrap_or(0)
        );
        agents.push(child);
    }

    let client = Client::new(&url, &boot.admin_token)?;
    let hosts = wait_for_hosts(&client, AGENTS.len()).await?;
    println!(
        "▶ {} agents enrolled and up: {}\n",
        hosts.len(),
        hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let command = vec![
        "sh".to_string(),
        "-c".to_string(),
        "echo \"hello from pid $$ on $(uname -n), $(uname -sr)\"; sleep 0.2; echo \"load: $(cut -d' ' -f1-3 /proc/loadavg)\"".to_string(),
    ];
    println!("$ drover run -- {}", shell_words(&command));
    let exec: Execution = client
        .post(
            "/runs",
            &RunRequest {
                selector: "all".into(),
                command: command.clone(),
                parallel: None,
                timeout_ms: Some(30_000),
            },
        )
        .await?;
    let done = super::run::follow(&client, &exec, true).await?;
    super::run::print_summary(&done);

    let port = free_base();
    let lb = deploy(&client, &exe, dir.path(), port).await?;
    let ports: Vec<(&str, u16)> = AGENTS.iter().map(|(n, _, o)| (*n, port + o)).collect();
    if let Err(e) = super::demo_automation::show(&client, &ports).await {
        eprintln!("warning: the auto-remediation part of the demo did not complete: {e:#}");
    }

    println!("\n▶ drover is running. In another terminal, point the CLI at it:\n");
    println!("  export DROVER_URL={url}");
    println!("  export DROVER_TOKEN={}", boot.admin_token);
    println!("  drover hosts");
    println!("  drover run --on label.role=web -- uname -a");
    println!("  drover executions");
    println!("  drover status");
    println!("  drover rollout status");
    println!("  drover logs web-1 hello");
    println!("  drover generators render haproxy");
    println!("  drover hosts drain web-2   # out of the HAProxy pool (and undrain to return it)");
    println!("  drover events --follow");
    println!("  drover packs list; drover rules get remediation.restart_unhealthy");
    println!(
        "  curl -X POST http://127.0.0.1:{}/break   # break web-1's instance; watch the rule restart it",
        port
    );
    println!("\n  (or save them: drover login --url {url} --token $DROVER_TOKEN)");
    match exit_after {
        Some(d) => println!(
            "\nStopping in {}.",
            drover_core::duration::format_duration(d)
        ),
        None => println!("\nCtrl-C stops the demo and removes its data."),
    }
    match exit_after {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = super::terminate_signal() => {}
        },
        None => super::terminate_signal().await,
    }
    println!("stopping: undeploying the demo service, then agents and controller…");
    // Services outlive their agents by design (decision 0006): take them down first,
    // with an empty model, the way an operator would.
    if let Err(e) = undeploy(&client).await {
        eprintln!("warning: could not undeploy the demo service: {e:#}");
    }
    if let Some((haproxy, _)) = lb {
        super::demo_lb::stop(haproxy).await;
    }
    for a in &agents {
        if let Some(pid) = a.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for mut a in agents {
        let _ = tokio::time::timeout(Duration::from_secs(5), a.wait()).await;
    }
    shutdown.cancel();
    server.wait().await?;
    if args.keep {
        let kept = dir.keep();
        println!("data kept in {}", kept.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_hosts(client: &Client, n: usize) -> anyhow::Result<Vec<Host>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page: Page<Host> = client.get("/hosts").await?;
        let up: Vec<Host> = page
            .items
            .into_iter()
            .filter(|h| h.status == HostStatus::Up)
            .collect();
        if up.len() >= n {
            return Ok(up);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("only {} of {n} agents came up within 30s", up.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds a release of the demo service: a `.tar.gz` with its `message.txt`.
fn release(version: &str) -> anyhow::Result<Vec<u8>> {
    let message = format!("(release {version}, unpacked by the agent)\n");
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

/// The first of three ports (base, base+100, base+200) free on loopback.
fn free_base() -> u16 {
    (18_080..30_000)
        .step_by(7)
        .find(|base| {
            AGENTS.iter().all(|(_, _, offset)| {
                std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok()
            })
        })
        .unwrap_or(18_080)
}

/// The demo's load balancer, when HAProxy is installed: its binary, config
/// directory and port.
struct Lb {
    haproxy: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

/// The model the demo applies: the demo service on every demo host (behind HAProxy
/// when there is one).
fn model(
    version: &str,
    sha: &str,
    port: u16,
    exe: &std::path::Path,
    lb: Option<&Lb>,
) -> serde_json::Value {
    let hostclass = "kind: hostclass\nname: demo\nselector: label.env=demo\n";
    let service = format!(
        "kind: service\nname: hello\nversion: \"{version}\"\n\
         artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
         placement: {{hostclass: demo}}\n\
         ports: {{http: {port}}}\n\
         env: {{DROVER_DEMO_BIN: \"{exe}\"}}\n\
         health:\n  http: {{port: http, path: /health, body: ok}}\n  interval: 300ms\n  timeout: 300ms\n\
         rollout:\n  max_parallel: 1\n  min_healthy_time: 1s\n  healthy_deadline: 30s\n\
         run: [\"{{{{ env.DROVER_DEMO_BIN }}}}\", \"demo-service\", \"--port\", \"{{{{ ports.http }}}}\", \"--release\", \"{{{{ version }}}}\"]\n",
        exe = exe.display()
    );
    let Some(lb) = lb else {
        return serde_json::json!({ "files": [
            { "path": "hostclasses.yaml", "text": hostclass },
            { "path": "hello.yaml", "text": service },
        ]});
    };
    let service = format!("{service}load_balancer: {{generator: haproxy, drain_grace: 500ms}}\n");
    let generator = super::demo_lb::generator_yaml(&lb.haproxy, &lb.dir, lb.port);
    serde_json::json!({ "files": [
        { "path": "hostclasses.yaml", "text": hostclass },
        { "path": "hello.yaml", "text": service },
        { "path": "haproxy.yaml", "text": generator },
    ]})
}

/// Deploys v1 of the demo service to every agent, then rolls v2 over them one at a
/// time, each through its health gate, and shows the delta. With HAProxy installed,
/// the service is behind it (config generated by drover) and a client counts the
/// requests served and failed through it during the upgrade; returns HAProxy.
async fn deploy(
    client: &Client,
    exe: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
) -> anyhow::Result<Option<(Child, u16)>> {
    let lb = super::demo_lb::haproxy_binary().map(|haproxy| Lb {
        haproxy,
        dir: dir.join("haproxy"),
        port: super::demo_lb::free_port(),
    });
    if let Some(lb) = &lb {
        std::fs::create_dir_all(&lb.dir)?;
    }
    let mut haproxy: Option<Child> = None;
    let mut load = None;
    let mut shas = Vec::new();
    for version in ["1.0.0", "2.0.0"] {
        let bytes = release(version)?;
        let path = dir.join(format!("hello-{version}.tar.gz"));
        std::fs::write(&path, &bytes)?;
        let resp = client
            .request(
                reqwest::Method::POST,
                &format!("/artifacts?name=hello-{version}.tar.gz"),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(bytes)
            .send()
            .await?;
        let pushed: serde_json::Value = crate::client::check(resp).await?.json().await?;
        shas.push(
            pushed["artifact"]["sha256"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    println!("\n▶ pushed hello 1.0.0 and 2.0.0 to the artifact store");
    for (version, sha) in ["1.0.0", "2.0.0"].iter().zip(&shas) {
        let body = model(version, sha, port, exe, lb.as_ref());
        if *version == "2.0.0"
            && let Some(lb) = &lb
        {
            let child = super::demo_lb::start(&lb.haproxy, &lb.dir).await?;
            haproxy = Some(child);
            println!(
                "\n▶ HAProxy on http://127.0.0.1:{} in front of the 3 instances; drover generated its config\n  ({}/haproxy.cfg) and drains each instance from it before stopping it",
                lb.port,
                lb.dir.display()
            );
            load = Some(super::demo_lb::Load::start(lb.port, 4));
        }
        let verb = if *version == "1.0.0" {
            "deploy"
        } else {
            "rolling upgrade to"
        };
        println!(
            "\n$ drover apply   # {verb} hello {version} on every agent, one at a time, health-gated"
        );
        let applied: serde_json::Value = client
            .post("/apply", &serde_json::json!({ "files": body["files"], "message": format!("demo: hello {version}") }))
            .await?;
        if let Some(id) = applied["execution_id"].as_str() {
            super::rollout::watch(client, id).await?;
        }
    }
    if let Some(load) = load {
        load.finish().await;
    }
    if lb.is_none() {
        println!(
            "\n(HAProxy is not installed: `apt-get install haproxy`, and the demo also puts it in front\n of the service and counts requests through it during the upgrade: none fail.)"
        );
    }
    println!("\n$ drover status");
    let status: serde_json::Value = client.get("/status").await?;
    let mut table =
        crate::render::table(&["SERVICE", "HOST", "STATUS", "VERSION", "HEALTH", "ANSWERS"]);
    for d in status["instances"].as_array().cloned().unwrap_or_default() {
        let host = d["key"]["host"].as_str().unwrap_or("").to_string();
        let offset = AGENTS
            .iter()
            .find(|(n, _, _)| *n == host)
            .map(|a| a.2)
            .unwrap_or(0);
        let answer = reqwest::get(format!("http://127.0.0.1:{}/", port + offset))
            .await
            .ok();
        let answer = match answer {
            Some(r) => r.text().await.unwrap_or_default().trim().to_string(),
            None => "-".into(),
        };
        let ok = d["status"] == "ok";
        table.add_row(vec![
            d["key"]["service"].as_str().unwrap_or("").to_string(),
            host,
            crate::render::delta_status(d["status"].as_str().unwrap_or(""), ok),
            d["live"]["version"].as_str().unwrap_or("-").to_string(),
            d["live"]["health"].as_str().unwrap_or("-").to_string(),
            answer,
        ]);
    }
    println!("{table}");
    Ok(haproxy.zip(lb.map(|l| l.port)))
}

/// Applies an empty model and waits (30 s at most) for its rollout to end.
async fn undeploy(client: &Client) -> anyhow::Result<()> {
    let applied: serde_json::Value = client
        .post(
            "/apply",
            &serde_json::json!({ "files": [], "allow_empty": true, "message": "demo: stop" }),
        )
        .await?;
    let Some(id) = applied["execution_id"].as_str() else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let d: serde_json::Value = client.get(&format!("/rollouts/{id}")).await?;
        if d["rollout"]["state"]
            .as_str()
            .is_some_and(super::rollout::is_final)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the undeploy rollout did not finish within 30 s")
}
