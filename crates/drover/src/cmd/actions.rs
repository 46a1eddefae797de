//! `drover actions list|get|run`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use drover_proto::automation::{ActionRun, ActionSummary};
use drover_proto::executions::{Execution, ExecutionStatus};

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// Actions: named, parameterised runnables from packs (shell commands and scripts on
/// the controller or — through the agents, no SSH — on hosts, HTTP requests, Orquesta
/// workflows, drover's own verbs). Parameters are checked against the action's schema
/// before anything runs; a bad one is refused with its name and the reason. Secret
/// parameters are masked wherever they are shown.
///
/// `run` takes KEY=VALUE pairs; a VALUE that parses as JSON is used as JSON
/// (`count=3`, `force=true`, `tags='["a","b"]'`), anything else as text. It waits for
/// the execution to end and prints the result (exit 1 when it failed); `--async`
/// prints the execution id and returns at once.
///
/// Examples:
///   drover actions list
///   drover actions list --pack core
///   drover actions get core.local
///   drover actions run core.local cmd='uname -a'
///   drover actions run core.remote cmd=uptime --on label.role=web
///   drover actions run hello.greet name=world shout=true
///   drover actions run hello.check_and_greet who=ops --async
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ActionsArgs {
    #[command(subcommand)]
    action: Verb,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// List actions.
    List {
        /// Only this pack's.
        #[arg(long)]
        pack: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an action and its parameters.
    Get {
        /// Action ref (`pack.name`).
        reference: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run an action.
    Run {
        /// Action ref (`pack.name`).
        reference: String,
        /// Parameters as KEY=VALUE.
        params: Vec<String>,
        /// Hosts for remote actions: a selector (`label.role=web`) or host names
        /// (`web-1,web-2`); the same as `hosts=…`.
        #[arg(long, value_name = "HOSTS")]
        on: Option<String>,
        /// Return at once with the execution id.
        #[arg(long = "async")]
        asynchronous: bool,
        /// Give up waiting after this long (the execution goes on).
        #[arg(long, default_value = "10m")]
        wait: String,
        /// Print JSON (the execution).
        #[arg(long)]
        json: bool,
    },
}

/// Parses KEY=VALUE pairs (JSON values where they parse).
pub fn parse_params(
    pairs: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut out = serde_json::Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("`{p}`: expected KEY=VALUE"));
        };
        if k.is_empty() {
            return Err(format!("`{p}`: the key is empty"));
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
        if out.insert(k.to_string(), value).is_some() {
            return Err(format!("`{k}` is given twice"));
        }
    }
    Ok(out)
}

/// Runs `drover actions …`.
pub async fn run(args: ActionsArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Verb::List { pack, json } => {
            let q = pack
                .map(|p| format!("?pack={}", enc(&p)))
                .unwrap_or_default();
            let actions: Vec<ActionSummary> = client.get_all(&format!("/actions{q}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&actions)?);
            } else {
                let mut table = render::table(&["ACTION", "RUNNER", "DESCRIPTION"]);
                for a in &actions {
                    table.add_row(vec![
                        a.reference.clone(),
                        a.runner_type.clone(),
                        a.description.clone().unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        Verb::Get { reference, json } => {
            let a: ActionSummary = client.get(&format!("/actions/{}", enc(&reference))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&a)?);
            } else {
                println!("{}  ({})", a.reference, a.runner_type);
                if let Some(d) = &a.description {
                    println!("  {d}");
                }
                if let Some(e) = &a.entry_point {
                    println!("  entry point: {e}");
                }
                let mut table =
                    render::table(&["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "NOTES"]);
                for p in &a.parameters {
                    let mut notes = Vec::new();
                    if p.secret {
                        notes.push("secret".to_string());
                    }
                    if p.immutable {
                        notes.push("immutable".to_string());
                    }
                    if let Some(pos) = p.position {
                        notes.push(format!("position {pos}"));
                    }
                    if p.runner {
                        notes.push("runner".to_string());
                    }
                    table.add_row(vec![
                        p.name.clone(),
                        p.type_.clone().unwrap_or_default(),
                        if p.required {
                            "yes".into()
                        } else {
                            String::new()
                        },
                        p.default
                            .as_ref()
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                        notes.join(", "),
                    ]);
                }
                println!("{table}");
            }
        }
        Verb::Run {
            reference,
            params,
            on,
            asynchronous,
            wait,
            json,
        } => {
            let mut parameters = match parse_params(&params) {
                Ok(p) => p,
                Err(e) => return Ok(usage_error(e)),
            };
            if let Some(on) = on
                && parameters
                    .insert("hosts".into(), serde_json::Value::String(on))
                    .is_some()
            {
                return Ok(usage_error(
                    "give the hosts once: --on or hosts=…, not both",
                ));
            }
            let wait = match drover_core::duration::parse_duration(&wait) {
                Ok(d) => d,
                Err(e) => return Ok(usage_error(format!("--wait: {e}"))),
            };
            let mut exec: Execution = client
                .post(
                    &format!("/actions/{}/run", enc(&reference)),
                    &ActionRun { parameters },
                )
                .await?;
            if asynchronous {
                if json {
                    println!("{}", serde_json::to_string_pretty(&exec)?);
                } else {
                    println!("{}", exec.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let deadline = tokio::time::Instant::now() + wait;
            while !exec.status.is_final() {
                if tokio::time::Instant::now() > deadline {
                    eprintln!(
                        "still {} after {}: see `drover executions get {}`",
                        exec.status.as_str(),
                        drover_core::duration::format_duration(wait),
                        exec.id
                    );
                    return Ok(ExitCode::from(2));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                exec = client
                    .get(&format!("/executions/{}", enc(&exec.id)))
                    .await?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&exec)?);
            } else {
                println!("execution {}: {}", exec.id, exec.status.as_str());
                super::executions::print_action(&exec);
            }
            if exec.status != ExecutionStatus::Succeeded {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
