//! `drover apply` and `drover rollout …`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use drover_store::RolloutDetail;

use super::{Conn, usage_error};
use crate::client::{ApiFailure, Client, enc};

/// Store a model version and roll it out: the plan runs as an execution, service after
/// service (depends_on), batch after batch (rollout policy), each instance through its
/// health gate. A failed gate stops the rollout; with `auto_revert` the touched
/// instances go back to the previous version on their own.
///
/// Shows the plan first and asks to confirm (`--yes` skips the question, and is needed
/// when there is no terminal). Then follows the rollout until it ends, unless
/// `--no-wait`. Exit code 0 when it succeeded (or nothing changed), 1 otherwise.
///
/// Examples:
///   drover apply examples/model -m "hello 1.0.0"
///   drover apply model/ --yes --no-wait
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ApplyArgs {
    /// The model directory.
    dir: PathBuf,
    /// Why: kept with the model version.
    #[arg(short, long, default_value = "")]
    message: String,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Allow a model without services (undeploys everything).
    #[arg(long)]
    allow_empty: bool,
    /// Return once the rollout started.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Follow and control rollouts (deploy executions).
///
/// Examples:
///   drover rollout status --watch          # the latest rollout, live
///   drover rollout promote 01a2…           # go on after the canary batch
///   drover rollout pause 01a2… / resume 01a2… / abort 01a2…
///   drover rollout rollback                # apply the previous model version again
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RolloutArgs {
    #[command(subcommand)]
    action: RolloutAction,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum RolloutAction {
    /// Progress per service and batch.
    Status {
        /// Rollout (execution) id; default: the latest.
        id: Option<String>,
        /// Keep showing progress until it ends.
        #[arg(long)]
        watch: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Continue after the canary batch.
    Promote {
        /// Rollout id.
        id: String,
    },
    /// Stop starting new steps (steps in flight finish).
    Pause {
        /// Rollout id.
        id: String,
    },
    /// Continue a paused rollout.
    Resume {
        /// Rollout id.
        id: String,
    },
    /// Stop the rollout for good (steps in flight finish; nothing is reverted).
    Abort {
        /// Rollout id.
        id: String,
    },
    /// Roll out the model version before the current one again.
    Rollback {
        /// Return once the rollout started.
        #[arg(long)]
        no_wait: bool,
    },
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let files = match super::model::read_model(&args.dir) {
        Ok(f) => f,
        Err(e) => return Ok(usage_error(format!("{e:#}"))),
    };
    let client = args.conn.client()?;
    let plan: serde_json::Value = match client
        .post("/plan", &serde_json::json!({ "files": files }))
        .await
    {
        Ok(p) => p,
        Err(e) => return api_error(e),
    };
    print!("{}", plan["text"].as_str().unwrap_or(""));
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Ok(usage_error(
                "no terminal to confirm on: pass --yes to apply",
            ));
        }
        print!("Apply this plan? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not applied");
            return Ok(ExitCode::from(1));
        }
    }
    let applied: serde_json::Value = match client
        .post(
            "/apply",
            &serde_json::json!({ "files": files, "message": args.message, "allow_empty": args.allow_empty }),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => return api_error(e),
    };
    let version = applied["model_version"].as_i64().unwrap_or(0);
    let Some(id) = applied["execution_id"].as_str() else {
        println!("model version {version} stored; nothing to change");
        return Ok(ExitCode::SUCCESS);
    };
    println!("model version {version} stored; rollout {id} started");
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    watch(&client, id).await
}

fn api_error(e: anyhow::Error) -> anyhow::Result<ExitCode> {
    match e.downcast_ref::<ApiFailure>() {
        Some(f) => {
            eprintln!("error: {}", f.detail);
            Ok(ExitCode::from(1))
        }
        None => Err(e),
    }
}

pub async fn rollout(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        RolloutAction::Status {
            id,
            watch: follow,
            json,
        } => {
            let id = id.unwrap_or_else(|| "latest".into());
            let d: RolloutDetail = match client.get(&format!("/rollouts/{}", enc(&id))).await {
                Ok(d) => d,
                Err(e) => return api_error(e),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            if follow {
                return watch(&client, &d.rollout.execution_id).await;
            }
            print!("{}", render(&d));
            Ok(exit_for(&d.rollout.state))
        }
        RolloutAction::Promote { id } => control(&client, &id, "promote").await,
        RolloutAction::Pause { id } => control(&client, &id, "pause").await,
        RolloutAction::Resume { id } => control(&client, &id, "resume").await,
        RolloutAction::Abort { id } => control(&client, &id, "abort").await,
        RolloutAction::Rollback { no_wait } => {
            let applied: serde_json::Value =
                match client.post("/rollback", &serde_json::json!({})).await {
                    Ok(a) => a,
                    Err(e) => return api_error(e),
                };
            print!("{}", applied["plan_text"].as_str().unwrap_or(""));
            let Some(id) = applied["execution_id"].as_str() else {
                println!("nothing to change");
                return Ok(ExitCode::SUCCESS);
            };
            println!("rollback rollout {id} started");
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            watch(&client, id).await
        }
    }
}

async fn control(client: &Client, id: &str, verb: &str) -> anyhow::Result<ExitCode> {
    match client
        .post::<_, RolloutDetail>(
            &format!("/rollouts/{}/{verb}", enc(id)),
            &serde_json::json!({}),
        )
        .await
    {
        Ok(d) => {
            println!("rollout {id}: {}", d.rollout.state);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => api_error(e),
    }
}

/// True once a rollout in `state` will not change any more.
pub fn is_final(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "aborted" | "reverted")
}

fn exit_for(state: &str) -> ExitCode {
    if state == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints progress whenever it changes, until the rollout ends or waits for a person.
pub async fn watch(client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let mut last = String::new();
    // One listener for the whole watch, so a Ctrl-C during a request is not missed.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        let d: RolloutDetail = client.get(&format!("/rollouts/{}", enc(id))).await?;
        let text = render(&d);
        if text != last {
            print!("{text}");
            std::io::stdout().flush()?;
            last = text;
        }
        if is_final(&d.rollout.state) {
            return Ok(exit_for(&d.rollout.state));
        }
        if d.rollout.state == "awaiting-promotion" {
            println!("canary passed: `drover rollout promote {id}` to continue");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = interrupt.recv() => {
                println!("stopped watching; the rollout goes on (`drover rollout status {id} --watch`)");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

fn bar(done: usize, total: usize) -> String {
    let width = 20;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(width - filled)
    )
}

/// One block: the rollout's state, then a line per unit with a progress bar.
pub fn render(d: &RolloutDetail) -> String {
    let r = &d.rollout;
    let mut out = format!(
        "rollout {} (model version {}): {}{}{}\n",
        r.execution_id,
        r.model_version,
        r.state,
        if r.reverting { ", reverting" } else { "" },
        r.error
            .as_ref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    );
    let mut by_unit: BTreeMap<i64, Vec<&drover_store::InstanceRow>> = BTreeMap::new();
    for i in &d.instances {
        by_unit.entry(i.unit).or_default().push(i);
    }
    for u in &d.units {
        let insts = by_unit.get(&u.unit).cloned().unwrap_or_default();
        let passed = insts.iter().filter(|i| i.status == "passed").count();
        let marker = if u.unit == r.unit && !is_final(&r.state) {
            ">"
        } else {
            " "
        };
        let label = format!(
            "{} batch {}{}{}",
            u.service,
            u.batch + 1,
            if u.canary { " (canary)" } else { "" },
            if u.revert { " (revert)" } else { "" }
        );
        let detail: Vec<String> = insts
            .iter()
            .filter(|i| i.status != "passed")
            .map(|i| format!("{}#{} {}", i.host_name, i.index, i.status))
            .collect();
        out.push_str(&format!(
            "{marker} {label:<28} {} {}\n",
            bar(passed, insts.len()),
            detail.join(", ")
        ));
    }
    out
}
