//! `drover logs`.

use std::process::ExitCode;

use clap::Args;
use drover_proto::executions::{Execution, ExecutionStatus};

use super::Conn;
use crate::client::ApiFailure;

/// Show a service instance's log files (stdout and stderr of its supervised process),
/// fetched from the host's agent.
///
/// Examples:
///   drover logs web-1 hello
///   drover logs web-1 hello --index 1 --tail 20
///   drover logs web-1 hello --follow      # until Ctrl-C
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct LogsArgs {
    /// Host name.
    host: String,
    /// Service name.
    service: String,
    /// Which copy on the host.
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// Start with the last this many lines.
    #[arg(long, default_value_t = 100)]
    tail: u32,
    /// Keep printing new lines until Ctrl-C.
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    let exec: Execution = match client
        .post(
            "/logs",
            &serde_json::json!({
                "host": args.host, "service": args.service, "index": args.index,
                "tail": args.tail, "follow": args.follow,
            }),
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            if let Some(f) = e.downcast_ref::<ApiFailure>() {
                eprintln!("error: {}", f.detail);
                return Ok(ExitCode::from(1));
            }
            return Err(e);
        }
    };
    let done = super::run::follow(&client, &exec, true).await?;
    let target = done.targets.first();
    match done.status {
        ExecutionStatus::Succeeded => Ok(ExitCode::SUCCESS),
        // Ctrl-C ends a follow: that is its normal end.
        ExecutionStatus::Cancelled if args.follow => Ok(ExitCode::SUCCESS),
        _ => {
            eprintln!(
                "error: {}",
                target
                    .and_then(|t| t.error.clone())
                    .unwrap_or_else(|| format!("logs ended {}", done.status.as_str()))
            );
            Ok(ExitCode::from(1))
        }
    }
}
