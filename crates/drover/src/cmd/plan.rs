//! `drover plan`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Conn, usage_error};
use crate::client::ApiFailure;

/// Show what applying a model would change, like a Terraform plan. Changes nothing.
///
/// The controller compares the model with what the agents report (the delta) and
/// orders the changes: services after their `depends_on`, each service in batches
/// that respect its rollout policy (canary, max_parallel). Instances on unreachable
/// hosts are listed as blocked.
///
/// Exit codes: 0 = no changes, 2 = changes, 1 = error (invalid model, no controller).
///
/// Example:
///   drover plan examples/model
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PlanArgs {
    /// The model directory.
    dir: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let files = match super::model::read_model(&args.dir) {
        Ok(f) => f,
        Err(e) => return Ok(usage_error(format!("{e:#}"))),
    };
    let client = args.conn.client()?;
    let resp: serde_json::Value = match client
        .post("/plan", &serde_json::json!({ "files": files }))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            if let Some(f) = e.downcast_ref::<ApiFailure>() {
                eprintln!("{}", f.detail);
                return Ok(ExitCode::from(1));
            }
            return Err(e);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        print!("{}", resp["text"].as_str().unwrap_or(""));
    }
    let changes = resp["plan"]["counts"]
        .as_object()
        .map(|c| c.values().filter_map(|v| v.as_u64()).sum::<u64>())
        .unwrap_or(0);
    Ok(if changes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
