//! The events page: the event log, newest first, paged, filtered by type.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use drover_store::{EventFilter, EventOrder};
use serde::Deserialize;

use super::{Chrome, render, urlencode, when};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Events per page.
const PAGE_SIZE: u32 = 50;
/// Longest payload shown in the table (the rest is in the API).
const MAX_PAYLOAD: usize = 300;

/// The events page's query.
#[derive(Deserialize, Default)]
pub(crate) struct EventsQuery {
    /// Exact type or a prefix ending in `*`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Show events older than this id.
    #[serde(default)]
    before: Option<String>,
}

struct EventRow {
    id: i64,
    time: String,
    kind: String,
    actor: String,
    payload: String,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    kind: String,
    error: Option<String>,
    events: Vec<EventRow>,
    older: Option<String>,
    newest: Option<String>,
}

/// The type filter's error, if it has a character no type has.
fn check_kind(kind: &str) -> Option<String> {
    let body = kind.strip_suffix('*').unwrap_or(kind);
    body.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("Type `{kind}`: character {c:?} (use e.g. `host.down` or `host.*`)"))
}

/// `GET /ui/events`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<EventsQuery>,
) -> Result<Response, PageError> {
    let kind = q.kind.as_deref().map(str::trim).unwrap_or("").to_string();
    let before = q
        .before
        .as_deref()
        .and_then(|b| b.trim().parse::<i64>().ok());
    let error = if kind.is_empty() {
        None
    } else {
        check_kind(&kind)
    };
    let mut events = Vec::new();
    let mut older = None;
    if error.is_none() {
        let mut found = web
            .app
            .store
            .list_events(&EventFilter {
                kind: (!kind.is_empty()).then(|| kind.clone()),
                since_ms: None,
                cursor: before,
                order: EventOrder::Desc,
                limit: PAGE_SIZE + 1,
            })
            .await?;
        if found.len() > PAGE_SIZE as usize {
            found.truncate(PAGE_SIZE as usize);
            if let Some(last) = found.last() {
                let mut query = format!("?before={}", last.id);
                if !kind.is_empty() {
                    query.push_str(&format!("&type={}", urlencode(&kind)));
                }
                older = Some(query);
            }
        }
        events = found
            .into_iter()
            .map(|e| {
                let mut payload = e.payload.to_string();
                if payload.len() > MAX_PAYLOAD {
                    let mut cut = MAX_PAYLOAD;
                    while !payload.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    payload.truncate(cut);
                    payload.push('…');
                }
                EventRow {
                    id: e.id,
                    time: when(&e.time),
                    kind: e.kind,
                    actor: e.actor,
                    payload,
                }
            })
            .collect();
    }
    let newest = before.map(|_| {
        if kind.is_empty() {
            String::new()
        } else {
            format!("?type={}", urlencode(&kind))
        }
    });
    render(&EventsPage {
        chrome: Chrome::of("events", &s),
        kind,
        error,
        events,
        older,
        newest,
    })
}
