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
///   drover events --actor alice --grep web-3 --since 2d --until 1d
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
    /// Only events older than this: a duration ago or an RFC 3339 time (not with --follow).
    #[arg(long, conflicts_with = "follow")]
    until: Option<String>,
    /// Only events by this actor (a user, token name, `system`, a controller…).
    #[arg(long)]
    actor: Option<String>,
    /// Only events whose type, actor or payload contains this text (ASCII case ignored).
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
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

/// `--since`/`--until` as RFC 3339: a time as given, or a duration ago.
pub(crate) fn to_rfc3339(flag: &str, s: &str) -> Result<String, String> {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return Ok(s.to_string());
    }
    let d = drover_core::duration::parse_duration(s)
        .map_err(|e| format!("--{flag} `{s}`: not an RFC 3339 time, nor a duration ({e})"))?;
    let d = chrono::Duration::from_std(d).map_err(|_| format!("--{flag} `{s}`: too long ago"))?;
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
    let times = (
        args.since.as_deref().map(|s| to_rfc3339("since", s)),
        args.until.as_deref().map(|s| to_rfc3339("until", s)),
    );
    let (since, until) = match times {
        (Some(Err(e)), _) | (_, Some(Err(e))) => return Ok(usage_error(e)),
        (s, u) => (s.and_then(Result::ok), u.and_then(Result::ok)),
    };
    let client = args.conn.client()?;
    let mut filter = String::new();
    for (name, value) in [
        ("type", &args.kind),
        ("actor", &args.actor),
        ("q", &args.grep),
    ] {
        if let Some(v) = value {
            filter.push_str(&format!("&{name}={}", enc(v)));
        }
    }
    // The stream has no end time; the listings do.
    let mut listing = filter.clone();
    if let Some(u) = &until {
        listing.push_str(&format!("&until={}", enc(u)));
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
                    "/events?limit=1000&since={}{listing}{cursor}",
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
                "/events?order=desc&limit={}{listing}",
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
