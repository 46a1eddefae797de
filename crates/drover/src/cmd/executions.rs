//! `drover executions [ID]`.

use std::process::ExitCode;

use clap::Args;
use drover_proto::executions::Execution;
use drover_proto::page::Page;

use super::Conn;
use crate::client::enc;
use crate::render;

/// List executions (newest first), or show one with each host's result.
///
/// Every fleet command is an execution, persisted with who ran what, on which hosts, and
/// each host's result.
///
/// Examples:
///   drover executions
///   drover executions --status failed --limit 5
///   drover executions 0193a8f2-…            # detail
///   drover executions 0193a8f2-… --follow   # stream it until it ends
///   drover executions 0193a8f2-… --cancel
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ExecutionsArgs {
    /// Show this execution.
    id: Option<String>,
    /// Only this status (requested, running, succeeded, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// Only this actor (token name).
    #[arg(long)]
    actor: Option<String>,
    /// How many to list.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// With an ID: stream its output until it ends.
    #[arg(long, requires = "id")]
    follow: bool,
    /// With an ID: cancel it on every host.
    #[arg(long, requires = "id", conflicts_with = "follow")]
    cancel: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(args: ExecutionsArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    if let Some(id) = &args.id {
        let exec: Execution = if args.cancel {
            client
                .post(
                    &format!("/executions/{}/cancel", enc(id)),
                    &serde_json::json!({}),
                )
                .await?
        } else {
            client.get(&format!("/executions/{}", enc(id))).await?
        };
        let exec = if args.follow && !exec.status.is_final() {
            super::run::follow(&client, &exec, !args.json).await?
        } else {
            exec
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&exec)?);
        } else {
            println!(
                "execution {}  kind {}  by {}  selector {}",
                exec.id, exec.kind, exec.actor, exec.selector
            );
            println!("spec: {}", exec.spec);
            println!(
                "created {}  started {}  finished {}",
                render::time(&exec.created_at),
                exec.started_at
                    .as_ref()
                    .map(render::time)
                    .unwrap_or("-".into()),
                exec.finished_at
                    .as_ref()
                    .map(render::time)
                    .unwrap_or("-".into())
            );
            super::run::print_summary(&exec);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut query = format!("?limit={}", args.limit);
    if let Some(s) = &args.status {
        query.push_str(&format!("&status={}", enc(s)));
    }
    if let Some(a) = &args.actor {
        query.push_str(&format!("&actor={}", enc(a)));
    }
    let page: Page<Execution> = client.get(&format!("/executions{query}")).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page.items)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = render::table(&[
        "ID", "KIND", "STATUS", "ACTOR", "HOSTS", "OK", "FAILED", "CREATED", "COMMAND",
    ]);
    for e in &page.items {
        table.add_row(vec![
            e.id.clone(),
            e.kind.clone(),
            render::execution_status(e.status),
            e.actor.clone(),
            e.counts.total.to_string(),
            e.counts.ok.to_string(),
            e.counts.failed.to_string(),
            render::time(&e.created_at),
            e.spec
                .get("command")
                .and_then(|c| c.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
