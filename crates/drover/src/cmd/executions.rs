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
/// Every fleet command, rollout, action and workflow is an execution, persisted with
/// who ran what, on which hosts, what started it (a rule, an event, a workflow), and
/// its result.
///
/// Examples:
///   drover executions                        # or: drover executions list
///   drover executions --status failed --limit 5
///   drover executions --kind action --since 2h
///   drover executions --parent 0193a8f2-…   # a workflow's tasks
///   drover executions 0193a8f2-…            # detail (or: drover executions get ID)
///   drover executions 0193a8f2-… --follow   # stream it until it ends
///   drover executions cancel 0193a8f2-…
///   drover executions rerun 0193a8f2-…
///   drover executions pause 0193a8f2-…      # a workflow: running tasks finish
///   drover executions resume 0193a8f2-…
///   drover trace 0193a8f2-…                  # what caused it, what it caused
#[derive(Args, Debug)]
#[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
pub struct ExecutionsArgs {
    #[command(subcommand)]
    verb: Option<Verb>,
    /// Show this execution.
    id: Option<String>,
    /// Only this status (requested, running, succeeded, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// Only this actor (token name, `rule:<ref>`, `workflow:<id>`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this kind (run, deploy, action, generate, logs).
    #[arg(long)]
    kind: Option<String>,
    /// Only those created since: a duration ago (`2h`) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only those created before: a duration ago or an RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Only the tasks of this workflow execution.
    #[arg(long, value_name = "ID")]
    parent: Option<String>,
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

#[derive(clap::Subcommand, Debug)]
enum Verb {
    /// List executions (the default).
    List,
    /// Show one execution.
    Get {
        /// Execution id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel an execution (running processes are stopped; a workflow cancels its
    /// running tasks).
    Cancel {
        /// Execution id.
        id: String,
    },
    /// Run the same request again, as a new execution.
    Rerun {
        /// Execution id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a running workflow: running tasks finish, nothing new starts.
    Pause {
        /// Execution id.
        id: String,
    },
    /// Resume a paused workflow.
    Resume {
        /// Execution id.
        id: String,
    },
}

/// Prints an action execution's own part: action, what started it, result.
pub fn print_action(exec: &Execution) {
    let Some(a) = &exec.action else { return };
    println!("action: {}  attempt {}", a.action_ref, a.attempt);
    if let Some(r) = &a.rule_ref {
        println!(
            "started by rule {r} on event {}",
            a.event_id.map(|e| e.to_string()).unwrap_or_default()
        );
    }
    if let Some(p) = &a.parent_id {
        println!("step {} of {p}", a.task_key.clone().unwrap_or_default());
    }
    println!(
        "parameters: {}",
        serde_json::to_string(&a.parameters).unwrap_or_default()
    );
    if let Some(r) = &a.result {
        println!(
            "result:\n{}",
            serde_json::to_string_pretty(r).unwrap_or_default()
        );
    }
}

/// Asks a workflow to pause or resume.
async fn ask_workflow(
    client: &crate::client::Client,
    id: &str,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    let _: Execution = client
        .post(
            &format!("/executions/{}/{verb}", enc(id)),
            &serde_json::json!({}),
        )
        .await?;
    println!("asked workflow {id} to {verb}");
    Ok(ExitCode::SUCCESS)
}

pub async fn run(mut args: ExecutionsArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.verb.take() {
        None | Some(Verb::List) => {}
        Some(Verb::Get { id, json }) => {
            args.id = Some(id);
            args.json |= json;
        }
        Some(Verb::Cancel { id }) => {
            args.id = Some(id);
            args.cancel = true;
        }
        Some(Verb::Rerun { id, json }) => {
            let exec: Execution = client
                .post(
                    &format!("/executions/{}/rerun", enc(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&exec)?);
            } else {
                println!("execution {} started (rerun of {id})", exec.id);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Verb::Pause { id }) => return ask_workflow(&client, &id, "pause").await,
        Some(Verb::Resume { id }) => return ask_workflow(&client, &id, "resume").await,
    }
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
            print_action(&exec);
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
    if let Some(k) = &args.kind {
        query.push_str(&format!("&kind={}", enc(k)));
    }
    if let Some(p) = &args.parent {
        query.push_str(&format!("&parent={}", enc(p)));
    }
    for (flag, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            match super::events::to_rfc3339(flag, v) {
                Ok(t) => query.push_str(&format!("&{flag}={}", enc(&t))),
                Err(e) => return Ok(super::usage_error(e)),
            }
        }
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
            match &e.action {
                Some(a) => a.action_ref.clone(),
                None => e
                    .spec
                    .get("command")
                    .and_then(|c| c.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            },
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
