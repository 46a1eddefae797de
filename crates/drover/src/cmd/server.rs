//! `drover server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use drover_server::{ServerConfig, start};
use tokio_util::sync::CancellationToken;

use super::{init_logging, terminate_signal, usage_error};

/// Run the controller.
///
/// At first start it creates an admin API token and an agent join token and prints them
/// once; only their hashes are stored. SIGTERM or SIGINT stops it gracefully.
///
/// Examples:
///   drover server --data-dir /var/lib/drover
///   drover server --listen 0.0.0.0:7070 --db postgres://drover@db/drover
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070", env = "DROVER_LISTEN")]
    listen: SocketAddr,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: SQLite in the data dir).
    #[arg(long, env = "DROVER_DB", hide_env_values = true)]
    db: Option<String>,
    /// Directory for the SQLite database and local files.
    #[arg(long, default_value = "drover-data", env = "DROVER_DATA_DIR")]
    data_dir: PathBuf,
    /// Mark a host down after this long without a heartbeat.
    #[arg(long, default_value = "15s")]
    down_after: String,
    /// Heartbeat interval asked of agents.
    #[arg(long, default_value = "5s")]
    heartbeat_interval: String,
    /// Key file that encrypts datastore secrets (default: secrets.key in the data dir,
    /// created at first start). Controllers sharing a database must share this file.
    #[arg(long, env = "DROVER_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// Parses a duration flag, naming the flag on error.
pub fn duration_flag(flag: &str, value: &str) -> Result<Duration, String> {
    drover_core::duration::parse_duration(value).map_err(|e| format!("--{flag} `{value}`: {e}"))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    init_logging("info,sqlx=warn", args.log_json);
    let down_after = match duration_flag("down-after", &args.down_after) {
        Ok(d) => d,
        Err(e) => return Ok(usage_error(e)),
    };
    let heartbeat = match duration_flag("heartbeat-interval", &args.heartbeat_interval) {
        Ok(d) => d,
        Err(e) => return Ok(usage_error(e)),
    };
    if heartbeat >= down_after {
        return Ok(usage_error(
            "--heartbeat-interval must be shorter than --down-after",
        ));
    }
    let mut config = ServerConfig::new(args.listen, args.data_dir);
    config.db_url = args.db;
    config.secrets_key_file = args.secrets_key_file;
    config.down_after = down_after;
    config.heartbeat_interval = heartbeat;
    let shutdown = CancellationToken::new();
    let server = start(config, shutdown.clone()).await?;
    println!("drover controller listening on http://{}", server.addr);
    if let Some(b) = &server.bootstrap {
        println!("First start: these tokens are shown once and never again.");
        println!("admin token: {}", b.admin_token);
        println!("join token: {}", b.join_token);
        println!(
            "Use: export DROVER_URL=http://{} DROVER_TOKEN={}",
            server.addr, b.admin_token
        );
    } else {
        println!("Store already initialised; its tokens were shown at its first start.");
    }
    terminate_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    server.wait().await?;
    Ok(ExitCode::SUCCESS)
}
