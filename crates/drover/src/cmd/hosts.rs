//! `drover hosts [list|show|history|drain|undrain]`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::hosts::{FieldChange, Host, HostChange, HostStatus};
use drover_proto::page::{MAX_PAGE_LIMIT, Page};
use drover_store::LiveRow;

use super::{Conn, usage_error};
use crate::client::{Client, enc};
use crate::render;

/// The hosts drover knows: those whose agent enrolled, and those an inventory provider
/// (`kind: provider` in the model) lists. A provider's host with no agent yet is
/// `missing`; its agent enrolling under the same name (or instance id) makes it `up`.
/// When a provider's sync fails, its hosts keep their last good fields and are marked
/// `stale`. A drained host's instances are out of every load-balancer pool.
///
/// `drover hosts` alone lists them (like `drover hosts list`).
///
/// Examples:
///   drover hosts
///   drover hosts list --on label.role=web
///   drover hosts list --on fact.provider=aws,fact.status=missing --json
///   drover hosts show web-1
///   drover hosts history web-1 --limit 20
///   drover hosts drain web-2        # out of the load-balancer pools
///   drover hosts undrain web-2      # back in
#[derive(Args, Debug)]
#[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
pub struct HostsArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    list: ListArgs,
    #[command(flatten)]
    conn: Conn,
}

/// Arguments of the listing (also taken by `drover hosts` without a subcommand).
#[derive(Args, Debug)]
struct ListArgs {
    /// Only hosts matching this selector (e.g. `label.role=web,name=web-*`).
    #[arg(long, default_value = "all")]
    on: String,
    /// Print JSON (an array of hosts).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List hosts with status, provider, region, address, instances and labels.
    ///
    /// STATUS is up, down or missing (a provider lists it; no agent enrolled), with
    /// `stale` when its provider's last sync failed and `drained` when an operator
    /// took it out of the load-balancer pools.
    ///
    /// Examples:
    ///   drover hosts list
    ///   drover hosts list --on label.role=web
    ///   drover hosts list --json
    #[command(verbatim_doc_comment)]
    List(ListArgs),
    /// Show one host: status, provider fields, labels, attributes, facts, instances.
    ///
    /// Examples:
    ///   drover hosts show web-1
    ///   drover hosts show web-1 --json
    #[command(verbatim_doc_comment)]
    Show {
        /// Host name (or id).
        name: String,
        /// Print JSON (the host, with its `instances`).
        #[arg(long)]
        json: bool,
    },
    /// What changed on a host, newest first (also for a removed host).
    ///
    /// Each row is one change: added (by a provider or its agent), changed (provider
    /// fields, labels, status), up, down, drained, undrained, removed; with who did it
    /// (a token name, `agent:<host>`, `system` for provider syncs) and every changed
    /// field as `field: from → to`.
    ///
    /// Examples:
    ///   drover hosts history web-1
    ///   drover hosts history web-1 --limit 5 --json
    ///   drover hosts history web-1 --before 812     # the changes older than 812
    #[command(verbatim_doc_comment)]
    History {
        /// Host name (or id).
        name: String,
        /// How many changes to show (the newest), 1 to 1000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_LIMIT)))]
        limit: u32,
        /// Show the changes older than this change id (page back through history).
        #[arg(long, value_name = "CHANGE_ID")]
        before: Option<i64>,
        /// Print JSON (an array of changes).
        #[arg(long)]
        json: bool,
    },
    /// Take a host out of every load-balancer pool (operator).
    ///
    /// Its instances stay up, but every generator renders them with `drain=true`, so
    /// load balancers stop sending them new requests. Needs an operator token.
    ///
    /// Example:
    ///   drover hosts drain web-2
    #[command(verbatim_doc_comment)]
    Drain {
        /// Host name (or id).
        name: String,
        /// Print JSON (the host afterwards).
        #[arg(long)]
        json: bool,
    },
    /// Put a drained host back into the load-balancer pools (operator).
    ///
    /// Every generator renders its instances with `drain=false` again. Needs an
    /// operator token.
    ///
    /// Example:
    ///   drover hosts undrain web-2
    #[command(verbatim_doc_comment)]
    Undrain {
        /// Host name (or id).
        name: String,
        /// Print JSON (the host afterwards).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: HostsArgs) -> anyhow::Result<ExitCode> {
    let action = args.action.unwrap_or(Action::List(args.list));
    if let Action::List(l) = &action
        && let Err(e) = drover_core::selector::parse(&l.on)
    {
        return Ok(usage_error(format!("--on `{}`: {e}", l.on)));
    }
    let client = args.conn.client()?;
    match action {
        Action::List(l) => list(&client, &l).await,
        Action::Show { name, json } => show(&client, &name, json).await,
        Action::History {
            name,
            limit,
            before,
            json,
        } => history(&client, &name, limit, before, json).await,
        Action::Drain { name, json } => drain(&client, &name, true, json).await,
        Action::Undrain { name, json } => drain(&client, &name, false, json).await,
    }
}

async fn list(client: &Client, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let hosts: Vec<Host> = client
        .get_all(&format!("/hosts?selector={}", enc(&args.on)))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = render::table(&[
        "NAME",
        "STATUS",
        "PROVIDER",
        "REGION",
        "ADDRESS",
        "INSTANCES",
        "LABELS",
    ]);
    for h in &hosts {
        table.add_row(vec![
            h.name.clone(),
            status(h),
            h.provider.clone().unwrap_or_else(|| "-".into()),
            h.region.clone().unwrap_or_else(|| "-".into()),
            address(h),
            h.instances.to_string(),
            labels(h),
        ]);
    }
    println!("{table}");
    println!("{}", counters(&hosts));
    Ok(ExitCode::SUCCESS)
}

/// `N hosts: X up, Y down, Z missing`, then stale and drained counts when any.
fn counters(hosts: &[Host]) -> String {
    let count = |s: HostStatus| hosts.iter().filter(|h| h.status == s).count();
    let mut line = format!(
        "{} host{}: {} up, {} down, {} missing",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" },
        count(HostStatus::Up),
        count(HostStatus::Down),
        count(HostStatus::Missing),
    );
    let stale = hosts.iter().filter(|h| h.stale).count();
    let drained = hosts.iter().filter(|h| h.drained).count();
    let mut notes = Vec::new();
    if stale > 0 {
        notes.push(format!("{stale} stale"));
    }
    if drained > 0 {
        notes.push(format!("{drained} drained"));
    }
    if !notes.is_empty() {
        line.push_str(&format!(" ({})", notes.join(", ")));
    }
    line
}

async fn show(client: &Client, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let host: Host = client.get(&format!("/hosts/{}", enc(name))).await?;
    let instances: Vec<LiveRow> = client
        .get_all(&format!("/instances?host={}", enc(&host.name)))
        .await?;
    let mut mine: Vec<&LiveRow> = instances.iter().collect();
    mine.sort_by(|a, b| {
        (a.report.service.as_str(), a.report.index)
            .cmp(&(b.report.service.as_str(), b.report.index))
    });
    if json {
        let mut v = serde_json::to_value(&host)?;
        if let Some(map) = v.as_object_mut() {
            map.insert("instances".into(), serde_json::to_value(&mine)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} ({})  {}", host.name, host.id, status(&host));
    if host.status == HostStatus::Missing {
        println!("no agent enrolled yet");
    } else {
        println!(
            "enrolled {}  last seen {}",
            render::time(&host.enrolled_at),
            render::time(&host.last_seen_at)
        );
    }
    match &host.provider {
        Some(p) => {
            println!(
                "provider: {p} (id {}){}",
                host.provider_id.as_deref().unwrap_or("-"),
                if host.stale {
                    "  stale: its last sync failed; these are the last good fields"
                } else {
                    ""
                }
            );
        }
        None => println!("provider: - (known from its agent only)"),
    }
    println!("region: {}", host.region.as_deref().unwrap_or("-"));
    println!("address: {}", address(&host));
    println!(
        "drained: {}",
        if host.drained {
            "yes (its instances are out of every load-balancer pool)"
        } else {
            "no"
        }
    );
    println!("labels: {}", labels(&host));
    if !host.attributes.is_empty() {
        println!("attributes:");
        for (k, v) in &host.attributes {
            println!("  {k}: {v}");
        }
    }
    if host.status != HostStatus::Missing {
        println!("facts:");
        let facts = serde_json::to_value(&host.facts)?;
        if let Some(map) = facts.as_object() {
            for (k, v) in map {
                println!("  {k}: {v}");
            }
        }
    }
    if mine.is_empty() {
        println!("instances: none");
    } else {
        println!("instances:");
        let mut table = render::table(&["SERVICE", "INDEX", "VERSION", "STATE", "HEALTH"]);
        for r in &mine {
            table.add_row(vec![
                r.report.service.clone(),
                r.report.index.to_string(),
                r.report.version.clone(),
                r.report.state.as_str().to_string(),
                r.report.health.as_str().to_string(),
            ]);
        }
        println!("{table}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn history(
    client: &Client,
    name: &str,
    limit: u32,
    before: Option<i64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cursor = before.map(|b| format!("&after={b}")).unwrap_or_default();
    let page: Page<HostChange> = client
        .get(&format!(
            "/hosts/{}/history?limit={limit}{cursor}",
            enc(name)
        ))
        .await?;
    let changes = page.items;
    if let Some(next) = &page.next
        && !json
    {
        eprintln!("older changes: drover hosts history {name} --before {next}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(ExitCode::SUCCESS);
    }
    if changes.is_empty() {
        println!("no recorded changes for {name}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = render::table(&["ID", "TIME", "KIND", "ACTOR", "CHANGES"]);
    for c in &changes {
        table.add_row(vec![
            c.id.to_string(),
            render::time(&c.time),
            c.kind.clone(),
            c.actor.clone(),
            compact_changes(&c.changes),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// `field: from → to` per changed field, one per line.
fn compact_changes(changes: &BTreeMap<String, FieldChange>) -> String {
    changes
        .iter()
        .map(|(field, c)| format!("{field}: {} → {}", value(&c.from), value(&c.to)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A changed value: strings bare, absent as `-`, anything else as compact JSON.
fn value(v: &Option<serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "-".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

async fn drain(client: &Client, name: &str, drained: bool, json: bool) -> anyhow::Result<ExitCode> {
    let verb = if drained { "drain" } else { "undrain" };
    let before: Host = client.get(&format!("/hosts/{}", enc(name))).await?;
    let after: Host = client
        .post(
            &format!("/hosts/{}/{verb}", enc(&before.name)),
            &serde_json::json!({}),
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&after)?);
        return Ok(ExitCode::SUCCESS);
    }
    let n = &after.name;
    match (before.drained == after.drained, drained) {
        (true, true) => println!("{n} was already drained; nothing changed"),
        (true, false) => println!("{n} was not drained; nothing changed"),
        (false, true) => println!(
            "{n} drained: its instances leave every load-balancer pool \
             (generators render them with drain=true)"
        ),
        (false, false) => println!(
            "{n} undrained: its instances return to the load-balancer pools \
             (generators render them with drain=false)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The status, coloured, with `stale` and `drained` marks.
fn status(h: &Host) -> String {
    let mut marks = Vec::new();
    if h.stale {
        marks.push("stale");
    }
    if h.drained {
        marks.push("drained");
    }
    let s = render::host_status(h.status);
    if marks.is_empty() {
        s
    } else {
        format!("{s} ({})", marks.join(", "))
    }
}

/// The provider's address, else the agent's addresses, else `-`.
fn address(h: &Host) -> String {
    match &h.address {
        Some(a) => a.clone(),
        None if !h.facts.addresses.is_empty() => h.facts.addresses.join(" "),
        None => "-".into(),
    }
}

fn labels(h: &Host) -> String {
    h.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
