//! `drover agent`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use drover_agent::AgentConfig;
use tokio_util::sync::CancellationToken;

use super::{init_logging, terminate_signal, usage_error};

/// Run the agent on this host.
///
/// The agent connects out to the controller, enrolls once with a join token and keeps its
/// own credential in the state dir (a restart reuses it), reports facts and heartbeats,
/// and runs the commands it is given. It reconnects on its own.
///
/// Example:
///   drover agent --controller http://ctl:7070 --join-token drover_join_… \
///       --name web-1 --label role=web --state-dir /var/lib/drover-agent
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct AgentArgs {
    /// Controller URL.
    #[arg(long, env = "DROVER_CONTROLLER")]
    controller: String,
    /// Join token (needed only for the first start).
    #[arg(long, env = "DROVER_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// Host name to enroll as (default: the kernel host name).
    #[arg(long)]
    name: Option<String>,
    /// A label KEY=VALUE; repeat for several.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Directory for the credential and the command journal.
    #[arg(
        long,
        default_value = "drover-agent-state",
        env = "DROVER_AGENT_STATE_DIR"
    )]
    state_dir: PathBuf,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// Parses `KEY=VALUE` labels.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("--label `{item}`: expected KEY=VALUE"));
        };
        if k.is_empty() {
            return Err(format!("--label `{item}`: empty key"));
        }
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("--label `{item}`: key `{k}` given twice"));
        }
    }
    Ok(labels)
}

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    init_logging("info", args.log_json);
    let labels = match parse_labels(&args.labels) {
        Ok(l) => l,
        Err(e) => return Ok(usage_error(e)),
    };
    let name = match args.name {
        Some(n) => n,
        None => drover_agent::gather_facts().hostname,
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        terminate_signal().await;
        stop.cancel();
    });
    drover_agent::run(
        AgentConfig {
            controller: args.controller,
            join_token: args.join_token,
            name,
            labels,
            state_dir: args.state_dir,
            poll_wait: std::time::Duration::from_secs(25),
        },
        shutdown,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
