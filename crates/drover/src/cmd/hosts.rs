//! `drover hosts`.

use std::process::ExitCode;

use clap::Args;
use drover_proto::hosts::Host;
use drover_proto::page::Page;

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// List hosts (with a selector), or show one host's facts and labels.
///
/// Examples:
///   drover hosts
///   drover hosts --on label.role=web
///   drover hosts web-1
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct HostsArgs {
    /// Show this host.
    name: Option<String>,
    /// Only hosts matching this selector.
    #[arg(long, default_value = "all")]
    on: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(args: HostsArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = drover_core::selector::parse(&args.on) {
        return Ok(usage_error(format!("--on `{}`: {e}", args.on)));
    }
    let client = args.conn.client()?;
    if let Some(name) = &args.name {
        let host: Host = client.get(&format!("/hosts/{}", enc(name))).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&host)?);
        } else {
            println!(
                "{} ({})  {}",
                host.name,
                host.id,
                render::host_status(host.status)
            );
            println!(
                "enrolled {}  last seen {}",
                render::time(&host.enrolled_at),
                render::time(&host.last_seen_at)
            );
            println!("labels: {}", labels(&host));
            println!("facts:");
            let facts = serde_json::to_value(&host.facts)?;
            if let Some(map) = facts.as_object() {
                for (k, v) in map {
                    println!("  {k}: {v}");
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut hosts = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_ref()
            .map(|a| format!("&after={}", enc(a)))
            .unwrap_or_default();
        let page: Page<Host> = client
            .get(&format!(
                "/hosts?limit=1000&selector={}{cursor}",
                enc(&args.on)
            ))
            .await?;
        hosts.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = render::table(&[
        "NAME",
        "STATUS",
        "LABELS",
        "OS",
        "CPUS",
        "ADDRESSES",
        "AGENT",
        "LAST SEEN",
    ]);
    for h in &hosts {
        table.add_row(vec![
            h.name.clone(),
            render::host_status(h.status),
            labels(h),
            h.facts
                .os_release
                .clone()
                .unwrap_or_else(|| h.facts.os.clone()),
            h.facts.cpus.to_string(),
            h.facts.addresses.join(" "),
            h.facts.agent_version.clone(),
            render::time(&h.last_seen_at),
        ]);
    }
    println!("{table}");
    let up = hosts
        .iter()
        .filter(|h| h.status == drover_proto::hosts::HostStatus::Up)
        .count();
    println!(
        "{} hosts, {} up, {} down",
        hosts.len(),
        up,
        hosts.len() - up
    );
    Ok(ExitCode::SUCCESS)
}

fn labels(h: &Host) -> String {
    h.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
