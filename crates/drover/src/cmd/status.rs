//! `drover status`.

use std::process::ExitCode;

use clap::Args;
use drover_core::delta::{DeltaStatus, InstanceDelta};

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// Show the delta between the applied model and what runs: one row per instance.
///
/// Statuses (glu's delta): ok, missing, unexpected, wrong-version, wrong-state,
/// unhealthy, unreachable. Instances on unreachable hosts are marked stale and never
/// shown as ok. Exit code 0 when everything is ok, 1 otherwise.
///
/// Examples:
///   drover status
///   drover status --service web --on label.role=web
///   drover status --json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct StatusArgs {
    /// Only instances on hosts matching this selector.
    #[arg(long)]
    on: Option<String>,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(on) = &args.on
        && let Err(e) = drover_core::selector::parse(on)
    {
        return Ok(usage_error(format!("--on `{on}`: {e}")));
    }
    let client = args.conn.client()?;
    let mut query = Vec::new();
    if let Some(on) = &args.on {
        query.push(format!("selector={}", enc(on)));
    }
    if let Some(s) = &args.service {
        query.push(format!("service={}", enc(s)));
    }
    let path = if query.is_empty() {
        "/status".to_string()
    } else {
        format!("/status?{}", query.join("&"))
    };
    let resp: serde_json::Value = client.get(&path).await?;
    let instances: Vec<InstanceDelta> = serde_json::from_value(resp["instances"].clone())?;
    let all_ok = instances.iter().all(|d| d.status == DeltaStatus::Ok);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        let mut table = render::table(&[
            "SERVICE", "HOST", "#", "STATUS", "WANT", "HAVE", "HEALTH", "REASON",
        ]);
        for d in &instances {
            let want = d
                .desired
                .as_ref()
                .map(|w| format!("{} {}", w.version, w.state.as_str()))
                .unwrap_or_else(|| "-".into());
            let have = d
                .live
                .as_ref()
                .map(|l| format!("{} {}", l.version, l.state.as_str()))
                .unwrap_or_else(|| "-".into());
            let health = d
                .live
                .as_ref()
                .map(|l| l.health.as_str().to_string())
                .unwrap_or_else(|| "-".into());
            let status = if d.stale {
                format!("{} (stale)", d.status.as_str())
            } else {
                d.status.as_str().to_string()
            };
            table.add_row(vec![
                d.key.service.clone(),
                d.key.host.clone(),
                d.key.index.to_string(),
                render::delta_status(&status, d.status == DeltaStatus::Ok),
                want,
                have,
                health,
                d.reason.clone(),
            ]);
        }
        println!("{table}");
        let version = resp["model_version"]
            .as_i64()
            .map(|v| format!("model version {v}"))
            .unwrap_or_else(|| "no model applied".into());
        let ok = instances
            .iter()
            .filter(|d| d.status == DeltaStatus::Ok)
            .count();
        println!("{version}: {ok} of {} instances ok", instances.len());
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
