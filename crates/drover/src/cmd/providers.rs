//! `drover providers list|sync`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::inventory::ProviderState;

use super::Conn;
use crate::client::{Client, enc};
use crate::render;

/// Inventory providers (`kind: provider` in the applied model): where hosts come from
/// besides agents (static lists, a command's JSON, EC2, OpenStack).
///
/// The controller asks each provider for its hosts on its `interval` and merges the
/// answer into the hosts (`drover hosts`). STATUS is `ok` when the last sync
/// succeeded, `stale` when it failed (the last good hosts are kept and marked stale;
/// nothing is removed), `pending` before the first sync.
///
/// `drover providers` alone lists them.
///
/// Examples:
///   drover providers list
///   drover providers list --json
///   drover providers sync aws       # now, instead of at the next interval
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ProvidersArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List providers with their last sync: status, hosts, last good sync, error.
    ///
    /// Examples:
    ///   drover providers list
    ///   drover providers list --json
    #[command(verbatim_doc_comment)]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sync a provider now instead of at its next interval (operator).
    ///
    /// The sync runs within a second; `drover providers list` shows its outcome.
    /// Needs an operator token.
    ///
    /// Example:
    ///   drover providers sync aws
    #[command(verbatim_doc_comment)]
    Sync {
        /// Provider name (from the model).
        name: String,
        /// Print JSON (the provider's state before this sync).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: ProvidersArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action.unwrap_or(Action::List { json: false }) {
        Action::List { json } => list(&client, json).await,
        Action::Sync { name, json } => {
            let p: ProviderState = client
                .post(
                    &format!("/providers/{}/sync", enc(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!(
                    "sync of {} requested: it runs within a second (last sync: {}, {} host{})",
                    p.name,
                    p.status,
                    p.host_count,
                    if p.host_count == 1 { "" } else { "s" }
                );
                println!(
                    "follow it with `drover providers list` or `drover events --type 'provider.*'`"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let items: Vec<ProviderState> = client.get_all("/providers").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        println!("no providers: declare them in the model (kind: provider)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = render::table(&["NAME", "STATUS", "HOSTS", "LAST OK", "ERROR"]);
    for p in &items {
        table.add_row(vec![
            p.name.clone(),
            status(&p.status),
            p.host_count.to_string(),
            p.last_ok_at.map(ms).unwrap_or_else(|| "never".into()),
            p.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// A provider status, coloured: ok green, stale red, pending (or unknown) yellow.
fn status(s: &str) -> String {
    match s {
        "ok" => render::delta_status(s, true),
        "stale" => render::delta_status(s, false),
        _ if render::stdout_is_tty() => {
            use owo_colors::OwoColorize;
            s.yellow().to_string()
        }
        _ => s.to_string(),
    }
}

/// Unix milliseconds as a time.
fn ms(t: i64) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| render::time(&d))
        .unwrap_or_else(|| t.to_string())
}
