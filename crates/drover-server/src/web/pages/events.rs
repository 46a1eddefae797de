//! The events page, which is the audit trail: the event log newest first, paged on the
//! server and searched by type, actor, time range and text. The first page is a live
//! tail: htmx polls its fragment and new events appear without a reload.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use drover_store::{EventFilter, EventOrder};
use serde::Deserialize;

use super::{Chrome, query_string, render, time_range, when};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Events per page.
const PAGE_SIZE: u32 = 50;
/// Longest payload shown in the table (the rest is in the API).
const MAX_PAYLOAD: usize = 300;
/// Longest search text accepted.
const MAX_TEXT: usize = 200;

/// The events page's query: every filter is in the URL, so a view can be bookmarked.
#[derive(Deserialize, Default)]
pub(crate) struct EventsQuery {
    /// Exact type or a prefix ending in `*`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Exact actor.
    #[serde(default)]
    actor: Option<String>,
    /// Text found in the type, actor or payload.
    #[serde(default)]
    q: Option<String>,
    /// From this time (see [`parse_when`]).
    #[serde(default)]
    since: Option<String>,
    /// Until this time (see [`parse_when`]).
    #[serde(default)]
    until: Option<String>,
    /// Show events older than this id.
    #[serde(default)]
    before: Option<String>,
    /// `0` stops the live tail.
    #[serde(default)]
    live: Option<String>,
}

struct EventRow {
    id: i64,
    time: String,
    kind: String,
    actor: String,
    payload: String,
}

/// The filters as typed, and what they mean for the store.
struct Filters {
    kind: String,
    actor: String,
    text: String,
    since: String,
    until: String,
    errors: Vec<String>,
    store: EventFilter,
}

/// The part htmx polls: the table and the pager.
struct Live {
    /// Poll URL when tailing.
    poll: Option<String>,
    events: Vec<EventRow>,
    older: Option<String>,
    newest: Option<String>,
}

#[derive(Template)]
#[template(path = "events_live.html")]
struct LiveFragment {
    live: Live,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    /// The filters as typed, with their errors.
    f: Filters,
    /// Whether the page tails (first page, not stopped).
    tailing: bool,
    /// The URL of this view with the tail stopped, or started again.
    toggle: String,
    live: Live,
}

/// The type filter's error, if it has a character no type has.
fn check_kind(kind: &str) -> Option<String> {
    let body = kind.strip_suffix('*').unwrap_or(kind);
    body.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("Type `{kind}`: character {c:?} (use e.g. `host.down` or `host.*`)"))
}

fn filters(q: &EventsQuery) -> Filters {
    let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_string();
    let (kind, actor, text) = (trimmed(&q.kind), trimmed(&q.actor), trimmed(&q.q));
    let (since, until) = (trimmed(&q.since), trimmed(&q.until));
    let mut errors = Vec::new();
    if !kind.is_empty()
        && let Some(e) = check_kind(&kind)
    {
        errors.push(e);
    }
    if text.chars().count() > MAX_TEXT {
        errors.push(format!("Text: at most {MAX_TEXT} characters"));
    }
    let (since_ms, until_ms) = time_range(&since, &until, &mut errors);
    let store = EventFilter {
        kind: (!kind.is_empty()).then(|| kind.clone()),
        actor: (!actor.is_empty()).then(|| actor.clone()),
        text: (!text.is_empty()).then(|| text.clone()),
        since_ms,
        until_ms,
        cursor: q
            .before
            .as_deref()
            .and_then(|b| b.trim().parse::<i64>().ok()),
        order: EventOrder::Desc,
        limit: PAGE_SIZE + 1,
    };
    Filters {
        kind,
        actor,
        text,
        since,
        until,
        errors,
        store,
    }
}

impl Filters {
    /// The filters as query pairs (paging and tail state are added by callers).
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("type", self.kind.as_str()),
            ("actor", self.actor.as_str()),
            ("q", self.text.as_str()),
            ("since", self.since.as_str()),
            ("until", self.until.as_str()),
        ]
    }

    /// This view's URL query with `extra` pairs.
    fn query(&self, extra: &[(&'static str, &str)]) -> String {
        let mut pairs = self.pairs();
        pairs.extend_from_slice(extra);
        query_string(&pairs, 1)
    }
}

fn shorten(mut payload: String) -> String {
    if payload.len() > MAX_PAYLOAD {
        let mut cut = MAX_PAYLOAD;
        while !payload.is_char_boundary(cut) {
            cut -= 1;
        }
        payload.truncate(cut);
        payload.push('…');
    }
    payload
}

async fn live_of(web: &Web, f: &Filters, tail: bool) -> Result<Live, PageError> {
    let mut events = Vec::new();
    let mut older = None;
    if f.errors.is_empty() {
        let mut found = web.app.store.list_events(&f.store).await?;
        if found.len() > PAGE_SIZE as usize {
            found.truncate(PAGE_SIZE as usize);
            if let Some(last) = found.last() {
                older = Some(f.query(&[("before", &last.id.to_string())]));
            }
        }
        events = found
            .into_iter()
            .map(|e| EventRow {
                id: e.id,
                time: when(&e.time),
                kind: e.kind,
                actor: e.actor,
                payload: shorten(e.payload.to_string()),
            })
            .collect();
    }
    let newest = f.store.cursor.map(|_| f.query(&[]));
    Ok(Live {
        poll: tail.then(|| format!("/ui/events/live{}", f.query(&[]))),
        events,
        older,
        newest,
    })
}

/// Whether a view tails: the first page, valid filters, no end time, not stopped.
fn tails(q: &EventsQuery, f: &Filters) -> bool {
    f.store.cursor.is_none()
        && f.errors.is_empty()
        && f.until.is_empty()
        && q.live.as_deref() != Some("0")
}

/// `GET /ui/events`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<EventsQuery>,
) -> Result<Response, PageError> {
    let f = filters(&q);
    let tailing = tails(&q, &f);
    let stopped = q.live.as_deref() == Some("0");
    let toggle = format!(
        "/ui/events{}",
        if stopped {
            f.query(&[])
        } else {
            f.query(&[("live", "0")])
        }
    );
    let live = live_of(&web, &f, tailing).await?;
    render(&EventsPage {
        chrome: Chrome::of("events", &s),
        tailing,
        toggle,
        live,
        f,
    })
}

/// `GET /ui/events/live`: the first page's table, for the live tail.
pub(crate) async fn live(
    State(web): State<Arc<Web>>,
    _s: Session,
    Query(mut q): Query<EventsQuery>,
) -> Result<Response, PageError> {
    q.before = None;
    let f = filters(&q);
    let tail = tails(&q, &f);
    render(&LiveFragment {
        live: live_of(&web, &f, tail).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_report_each_bad_field() {
        let q = EventsQuery {
            kind: Some("host down".into()),
            since: Some("soon".into()),
            until: Some("1h".into()),
            q: Some("x".repeat(MAX_TEXT + 1)),
            ..Default::default()
        };
        let f = filters(&q);
        assert_eq!(f.errors.len(), 3, "{:?}", f.errors);
        assert!(f.errors[0].starts_with("Type `host down`"));
        assert!(f.errors[1].starts_with("Text:"));
        assert!(f.errors[2].starts_with("From: `soon`"));
        let q = EventsQuery {
            since: Some("1h".into()),
            until: Some("2h".into()),
            ..Default::default()
        };
        assert_eq!(filters(&q).errors, ["From must be before Until"]);
        assert!(!tails(&q, &filters(&q)));
    }
}
