//! Terminal output: tables, colours (only on a TTY), times.

use std::io::IsTerminal;

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use drover_proto::executions::{ExecutionStatus, TargetStatus};
use drover_proto::hosts::HostStatus;
use owo_colors::OwoColorize;

/// True when stdout is a terminal (colours and live niceties on).
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// A table with the given header.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

fn paint(text: &str, good: Option<bool>) -> String {
    if !stdout_is_tty() {
        return text.to_string();
    }
    match good {
        Some(true) => text.green().to_string(),
        Some(false) => text.red().to_string(),
        None => text.yellow().to_string(),
    }
}

/// A target status, coloured.
pub fn target_status(s: TargetStatus) -> String {
    let good = match s {
        TargetStatus::Ok => Some(true),
        TargetStatus::Pending | TargetStatus::Dispatched | TargetStatus::Running => None,
        _ => Some(false),
    };
    paint(s.as_str(), good)
}

/// An execution status, coloured.
pub fn execution_status(s: ExecutionStatus) -> String {
    let good = match s {
        ExecutionStatus::Succeeded => Some(true),
        ExecutionStatus::Requested | ExecutionStatus::Running => None,
        _ => Some(false),
    };
    paint(s.as_str(), good)
}

/// A host status, coloured.
pub fn host_status(s: HostStatus) -> String {
    let good = match s {
        HostStatus::Up => Some(true),
        HostStatus::Down => Some(false),
        HostStatus::Missing => None,
    };
    paint(s.as_str(), good)
}

/// A delta status: green when ok, red otherwise.
pub fn delta_status(text: &str, ok: bool) -> String {
    paint(text, Some(ok))
}

/// A host name in one of a few distinct colours.
pub fn host_color(text: &str, i: usize) -> String {
    match i % 6 {
        0 => text.cyan().to_string(),
        1 => text.magenta().to_string(),
        2 => text.blue().to_string(),
        3 => text.yellow().to_string(),
        4 => text.green().to_string(),
        _ => text.bright_cyan().to_string(),
    }
}

/// A time as local-free RFC 3339 with seconds.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A Unix-ms time as [`time`] prints it.
pub fn time_ms(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| time(&t))
        .unwrap_or_else(|| ms.to_string())
}
