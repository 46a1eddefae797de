//! `drover rules list|get|enable|disable|test`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::automation::{RuleInfo, RuleTest, RuleTestResult};

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// Rules (StackStorm's rule files, in packs): a trigger, criteria on its payload, and an
/// action to run with parameters rendered from it. Rules are off unless their file
/// says `enabled: true`; `enable`/`disable` switch them at runtime (an event records
/// it). `get` shows the last matches and what came of them (fired, throttled,
/// rate_limited, failed).
///
/// `test` shows, for a payload in a JSON or YAML file, which criteria pass or fail and
/// why, and the action parameters it would render — without running anything.
///
/// Examples:
///   drover rules list
///   drover rules get hello.on_webhook
///   drover rules disable hello.on_webhook
///   drover rules test hello.on_webhook --payload payload.json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RulesArgs {
    #[command(subcommand)]
    action: Verb,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// List rules.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a rule and its last matches.
    Get {
        /// Rule ref (`pack.name`).
        reference: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Switch a rule on.
    Enable {
        /// Rule ref.
        reference: String,
    },
    /// Switch a rule off.
    Disable {
        /// Rule ref.
        reference: String,
    },
    /// Try a rule's criteria on a trigger payload (runs nothing). Exit 0 when it
    /// matches, 1 when it does not.
    Test {
        /// Rule ref.
        reference: String,
        /// The trigger payload: a JSON (or YAML) file.
        #[arg(long)]
        payload: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `drover rules …`.
pub async fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Verb::List { json } => {
            let rules: Vec<RuleInfo> = client.get_all("/rules").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                let mut table = render::table(&["RULE", "ENABLED", "TRIGGER", "ACTION"]);
                for r in &rules {
                    table.add_row(vec![
                        r.reference.clone(),
                        if r.enabled { "yes".into() } else { "no".into() },
                        r.trigger_written.clone(),
                        r.action.clone(),
                    ]);
                }
                println!("{table}");
            }
        }
        Verb::Get { reference, json } => {
            let r: RuleInfo = client.get(&format!("/rules/{}", enc(&reference))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}  {}  ({})",
                    r.reference,
                    if r.enabled { "enabled" } else { "disabled" },
                    r.file
                );
                if let Some(d) = &r.description {
                    println!("  {d}");
                }
                println!("  trigger: {} {}", r.trigger_written, r.trigger_parameters);
                println!("  action: {} {}", r.action, r.action_parameters);
                let mut table = render::table(&["TIME", "EVENT", "STATUS", "EXECUTION", "REASON"]);
                for e in &r.enforcements {
                    table.add_row(vec![
                        render::time_ms(e.time),
                        e.event_id.to_string(),
                        e.status.clone(),
                        e.execution_id.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        Verb::Enable { reference } => {
            let _: RuleInfo = client
                .post(
                    &format!("/rules/{}/enable", enc(&reference)),
                    &serde_json::json!({}),
                )
                .await?;
            println!("enabled rule {reference}");
        }
        Verb::Disable { reference } => {
            let _: RuleInfo = client
                .post(
                    &format!("/rules/{}/disable", enc(&reference)),
                    &serde_json::json!({}),
                )
                .await?;
            println!("disabled rule {reference}");
        }
        Verb::Test {
            reference,
            payload,
            json,
        } => {
            let text = match std::fs::read_to_string(&payload) {
                Ok(t) => t,
                Err(e) => return Ok(usage_error(format!("{}: {e}", payload.display()))),
            };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(json_err) => match serde_saphyr::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => {
                        return Ok(usage_error(format!(
                            "{}: neither JSON nor YAML: {json_err}",
                            payload.display()
                        )));
                    }
                },
            };
            let r: RuleTestResult = client
                .post(
                    &format!("/rules/{}/test", enc(&reference)),
                    &RuleTest { payload: value },
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for c in &r.checks {
                    println!(
                        "{} {}{}",
                        if c.passed { "PASS" } else { "FAIL" },
                        c.group
                            .as_ref()
                            .map(|g| format!("[{g}] "))
                            .unwrap_or_default(),
                        c.reason
                    );
                }
                println!(
                    "rule {} {}",
                    r.rule,
                    if r.matches {
                        "matches"
                    } else {
                        "does not match"
                    }
                );
                match (&r.action_parameters, &r.render_error) {
                    (Some(p), _) => println!("action parameters: {p}"),
                    (None, Some(e)) => println!("action parameters do not render: {e}"),
                    _ => {}
                }
            }
            if !r.matches {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
