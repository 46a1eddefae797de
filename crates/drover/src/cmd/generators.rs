//! `drover generators list|render|apply`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::inventory::{GeneratorApplied, GeneratorInfo, GeneratorPreview};

use super::Conn;
use crate::client::enc;
use crate::render;

/// Config files rendered from the live inventory (`kind: generator` in the model),
/// such as an HAProxy backend list.
///
/// The controller re-renders a generator when what it reads changes (instances,
/// their health and drain state, hosts, the model), and writes a target host's
/// file only when its bytes changed: staged, checked (`check`), swapped in
/// atomically with the previous file kept as `<path>.drover-prev`, then `reload`
/// runs. A failed check keeps the old file, never reloads, and records a
/// `generator.failed` event with the checker's message.
///
/// Examples:
///   drover generators list
///   drover generators render haproxy              # what would be written, as a diff
///   drover generators render haproxy --host lb-1 --content
///   drover generators apply haproxy               # write now (also after a refused check was fixed)
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct GeneratorsArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List the applied model's generators and their state on each target host.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what a generator would write now and the diff against what is live
    /// (writes nothing). Exits 1 when the template does not render.
    Render {
        /// Generator name.
        name: String,
        /// Only this host (also a host the generator does not target).
        #[arg(long)]
        host: Option<String>,
        /// Print the whole rendered file instead of the diff.
        #[arg(long)]
        content: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Render and write now, on every target host whose file differs.
    Apply {
        /// Generator name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: GeneratorsArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Action::List { json } => {
            let items: Vec<GeneratorInfo> = client.get_all("/generators").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(ExitCode::SUCCESS);
            }
            if items.is_empty() {
                println!("no generators in the applied model");
            }
            for g in &items {
                println!("{}  → {} on {}", g.name, g.path, g.targets);
                let mut table = render::table(&["HOST", "STATUS", "LIVE SHA256", "ERROR"]);
                for h in &g.hosts {
                    table.add_row(vec![
                        h.host.clone(),
                        h.status.clone(),
                        h.applied_sha256
                            .as_deref()
                            .map(|s| s.chars().take(12).collect())
                            .unwrap_or_else(|| "-".into()),
                        h.error.clone().unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        Action::Render {
            name,
            host,
            content,
            json,
        } => {
            let query = host
                .as_ref()
                .map(|h| format!("?host={}", enc(h)))
                .unwrap_or_default();
            let previews: Vec<GeneratorPreview> = client
                .get_all(&format!("/generators/{}/render{query}", enc(&name)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&previews)?);
            }
            let mut failed = false;
            for p in &previews {
                if let Some(e) = &p.error {
                    failed = true;
                    if !json {
                        eprintln!("{}: template error: {e}", p.host);
                    }
                    continue;
                }
                if json {
                    continue;
                }
                if content {
                    println!("# {} ({})", p.host, p.sha256.as_deref().unwrap_or(""));
                    print!("{}", p.content.as_deref().unwrap_or(""));
                } else if p.unchanged {
                    println!("{}: unchanged", p.host);
                } else {
                    print!("{}", p.diff);
                }
            }
            if previews.is_empty() && !json {
                println!("no target hosts");
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        Action::Apply { name, json } => {
            let out: GeneratorApplied = client
                .post(
                    &format!("/generators/{}/apply", enc(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if out.executions.is_empty() {
                println!("{name}: every target is up to date");
            } else {
                for id in &out.executions {
                    println!(
                        "{name}: writing (execution {id}; follow with `drover executions {id}`)"
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
