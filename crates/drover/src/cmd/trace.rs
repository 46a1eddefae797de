//! `drover trace EXECUTION`.

use std::process::ExitCode;

use clap::Args;
use drover_proto::automation::Trace;

use super::Conn;
use crate::client::enc;

/// How an execution came to be and what it led to: upstream the workflow it is a step
/// of, the rule that fired and the event it matched (and the execution whose end was
/// that event, and so on); downstream its steps, the rules its end fired, and their
/// executions.
///
/// Examples:
///   drover trace 0193a8f2-…
///   drover trace 0193a8f2-… --json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct TraceArgs {
    /// Execution id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `drover trace`.
pub async fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    let t: Trace = client
        .get(&format!("/executions/{}/trace", enc(&args.id)))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(ExitCode::SUCCESS);
    }
    if t.causes.is_empty() {
        println!("caused by: a person or the API directly");
    } else {
        println!("caused by:");
        for l in &t.causes {
            println!("  ← {:<9} {}  {}", l.kind, l.id, l.detail);
        }
    }
    println!("● execution {}", t.execution_id);
    if t.effects.is_empty() {
        println!("led to: nothing");
    } else {
        println!("led to:");
        for l in &t.effects {
            println!(
                "  {}→ {:<9} {}  {}",
                "  ".repeat(l.depth as usize),
                l.kind,
                l.id,
                l.detail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
