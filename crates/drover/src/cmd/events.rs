//! `drover events`.

use std::process::ExitCode;

use clap::Args;
use drover_proto::events::Event;
use drover_proto::page::Page;

use super::{Conn, usage_error};
use crate::client::{check, enc};
use crate::render;
use crate::sse::SseReader;

/// Show the event log, which is also the audit trail: hosts registered, up and down,
/// executions requested, started and finished, tokens created and revoked, refused logins.
///
/// Examples:
///   drover events                       # the last 50
///   drover events --type 'host.*' --since 1h
///   drover events --follow              # new events as they happen
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct EventsArgs {
    /// Only this type, or a prefix ending in `*` (e.g. `execution.*`).
    #[arg(long = "type")]
    kind: Option<String>,
    /// Only events newer than this: a duration ago (`10m`, `2h`) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Keep printing new events as they are appended (until Ctrl-C).
    #[arg(long, short = 'f')]
    follow: bool,
    /// How many to show (the newest), without --since.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

fn since_to_rfc3339(s: &str) -> Result<String, String> {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return Ok(s.to_string());
    }
    let d = drover_core::duration::parse_duration(s)
        .map_err(|e| format!("--since `{s}`: not an RFC 3339 time, nor a duration ({e})"))?;
    let d = chrono::Duration::from_std(d).map_err(|_| format!("--since `{s}`: too long ago"))?;
    Ok((chrono::Utc::now() - d).to_rfc3339())
}

fn print(ev: &Event, json: bool) {
    if json {
        println!("{}", serde_json::to_string(ev).unwrap_or_default());
    } else {
        println!(
            "{:>6}  {}  {:<26} {:<22} {}",
            ev.id,
            render::time(&ev.time),
            ev.kind,
            ev.actor,
            ev.payload
        );
    }
}

pub async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let since = match args.since.as_deref().map(since_to_rfc3339).transpose() {
        Ok(s) => s,
        Err(e) => return Ok(usage_error(e)),
    };
    let client = args.conn.client()?;
    let mut filter = String::new();
    if let Some(k) = &args.kind {
        filter.push_str(&format!("&type={}", enc(k)));
    }
    // The backlog: newest `limit` (or all since `since`, oldest first).
    let mut last_id = 0i64;
    let mut backlog: Vec<Event> = Vec::new();
    if let Some(s) = &since {
        let mut after: Option<String> = None;
        loop {
            let cursor = after
                .as_ref()
                .map(|a| format!("&after={a}"))
                .unwrap_or_default();
            let page: Page<Event> = client
                .get(&format!(
                    "/events?limit=1000&since={}{filter}{cursor}",
                    enc(s)
                ))
                .await?;
            backlog.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    } else {
        let page: Page<Event> = client
            .get(&format!(
                "/events?order=desc&limit={}{filter}",
                args.limit.clamp(1, 1000)
            ))
            .await?;
        backlog = page.items;
        backlog.reverse();
    }
    for ev in &backlog {
        print(ev, args.json);
        last_id = last_id.max(ev.id);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let resp = client
            .request(
                reqwest::Method::GET,
                &format!("/events/stream?after={last_id}{filter}"),
            )
            .send()
            .await;
        if let Ok(resp) = resp {
            let mut reader = SseReader::new(check(resp).await?);
            loop {
                let msg = tokio::select! {
                    m = reader.next() => m,
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                };
                match msg {
                    Ok(Some(m)) if m.event == "event" => {
                        let ev: Event = serde_json::from_str(&m.data)?;
                        last_id = last_id.max(ev.id);
                        print(&ev, args.json);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        // Reconnect after a dropped stream (controller restart), without repeating events.
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
