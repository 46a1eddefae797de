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

const AGENTS: [(&str, &str); 3] = [("web-1", "web"), ("web-2", "web"), ("db-1", "db")];

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let exit_after = match &args.exit_after {
        Some(s) => match super::server::duration_flag("exit-after", s) {
            Ok(d) => Some(d),
            Err(e) => return Ok(usage_error(e)),
        },
        None => None,
    };
    super::init_logging("warn", false);
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
    for (name, role) in AGENTS {
        let child = Command::new(&exe)
            .args(["agent", "--controller", &url, "--name", name])
            .args(["--label", &format!("role={role}"), "--label", "env=demo"])
            .arg("--state-dir")
            .arg(dir.path().join(format!("agent-{name}")))
            .env("DROVER_JOIN_TOKEN", &boot.join_token)
            .env("RUST_LOG", "warn")
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

    println!("\n▶ drover is running. In another terminal, point the CLI at it:\n");
    println!("  export DROVER_URL={url}");
    println!("  export DROVER_TOKEN={}", boot.admin_token);
    println!("  drover hosts");
    println!("  drover run --on label.role=web -- uname -a");
    println!("  drover executions");
    println!("  drover events --follow");
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
    println!("stopping agents and controller…");
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
