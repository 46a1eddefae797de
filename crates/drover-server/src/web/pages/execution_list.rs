//! The executions page: every execution, newest first, paged on the server and
//! filtered by kind, status, actor and creation time; the filters live in the URL.
//! The first page refreshes itself, so running executions finish before your eyes.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use drover_proto::executions::{Execution, ExecutionStatus};
use drover_store::ExecutionFilter;
use serde::Deserialize;

use super::{Chrome, query_string, render, time_range, urlencode, when};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Executions per page.
const PAGE_SIZE: u32 = 50;
/// The kinds there are (the filter's choices).
pub(crate) const KINDS: &[&str] = &["run", "action", "deploy", "generate", "logs"];
/// The statuses there are.
const STATUSES: &[&str] = &["requested", "running", "succeeded", "failed", "cancelled"];

/// The page's query.
#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// Executions older than this id.
    #[serde(default)]
    before: Option<String>,
}

/// One row.
struct ExecRow {
    id: String,
    href: String,
    kind: String,
    what: String,
    status: &'static str,
    actor: String,
    created: String,
    duration: String,
}

struct Live {
    poll: Option<String>,
    rows: Vec<ExecRow>,
    older: Option<String>,
    newest: Option<String>,
}

#[derive(Template)]
#[template(path = "executions_live.html")]
struct LiveFragment {
    live: Live,
}

#[derive(Template)]
#[template(path = "executions.html")]
struct ListPage {
    chrome: Chrome,
    kinds: &'static [&'static str],
    statuses: &'static [&'static str],
    /// The filters as typed, with their errors.
    f: Filters,
    live: Live,
}

/// What an execution does, in a few words: the command, the action, the rollout.
pub(crate) fn what_of(e: &Execution) -> String {
    if let Some(a) = &e.action {
        return match &a.task_key {
            Some(task) => format!("{} (task {task})", a.action_ref),
            None => a.action_ref.clone(),
        };
    }
    match e.spec["command"].as_array() {
        Some(argv) => {
            let words: Vec<&str> = argv.iter().filter_map(|v| v.as_str()).collect();
            match words.as_slice() {
                ["sh", "-c", text] => (*text).to_string(),
                _ => words.join(" "),
            }
        }
        None => e.kind.clone(),
    }
}

/// How long it ran (or has been running), `1.2 s`, `3m 4s`.
pub(crate) fn duration_of(e: &Execution) -> String {
    let Some(start) = e.started_at else {
        return String::new();
    };
    let end = e.finished_at.unwrap_or_else(Utc::now);
    let ms = (end - start).num_milliseconds().max(0);
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The filters as typed, their errors, and the store filter.
struct Filters {
    kind: String,
    status: String,
    actor: String,
    since: String,
    until: String,
    errors: Vec<String>,
    store: ExecutionFilter,
}

fn filters(q: &ListQuery) -> Filters {
    let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_string();
    let (kind, status, actor) = (trimmed(&q.kind), trimmed(&q.status), trimmed(&q.actor));
    let (since, until) = (trimmed(&q.since), trimmed(&q.until));
    let mut errors = Vec::new();
    if !kind.is_empty() && !KINDS.contains(&kind.as_str()) {
        errors.push(format!("Kind `{kind}`: one of {}", KINDS.join(", ")));
    }
    let parsed_status = if status.is_empty() {
        None
    } else {
        let s = ExecutionStatus::parse(&status);
        if s.is_none() {
            errors.push(format!("Status `{status}`: one of {}", STATUSES.join(", ")));
        }
        s
    };
    let (since_ms, until_ms) = time_range(&since, &until, &mut errors);
    let store = ExecutionFilter {
        kind: (!kind.is_empty()).then(|| kind.clone()),
        status: parsed_status,
        actor: (!actor.is_empty()).then(|| actor.clone()),
        before: q
            .before
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string),
        parent_id: None,
        since_ms,
        until_ms,
        limit: PAGE_SIZE + 1,
    };
    Filters {
        kind,
        status,
        actor,
        since,
        until,
        errors,
        store,
    }
}

impl Filters {
    fn query(&self, extra: &[(&'static str, &str)]) -> String {
        let mut pairs = vec![
            ("kind", self.kind.as_str()),
            ("status", self.status.as_str()),
            ("actor", self.actor.as_str()),
            ("since", self.since.as_str()),
            ("until", self.until.as_str()),
        ];
        pairs.extend_from_slice(extra);
        query_string(&pairs, 1)
    }
}

async fn live_of(web: &Web, f: &Filters) -> Result<Live, PageError> {
    let mut rows = Vec::new();
    let mut older = None;
    if f.errors.is_empty() {
        let mut found = web.app.store.list_executions(&f.store).await?;
        if found.len() > PAGE_SIZE as usize {
            found.truncate(PAGE_SIZE as usize);
            if let Some(last) = found.last() {
                older = Some(f.query(&[("before", &last.id)]));
            }
        }
        rows = found
            .iter()
            .map(|e| ExecRow {
                href: format!("/ui/executions/{}", urlencode(&e.id)),
                kind: e.kind.clone(),
                what: what_of(e),
                status: e.status.as_str(),
                actor: e.actor.clone(),
                created: when(&e.created_at),
                duration: duration_of(e),
                id: e.id.clone(),
            })
            .collect();
    }
    Ok(Live {
        // The first page follows new executions; older pages stay put.
        poll: (f.store.before.is_none() && f.errors.is_empty())
            .then(|| format!("/ui/executions/live{}", f.query(&[]))),
        rows,
        older,
        newest: f.store.before.as_ref().map(|_| f.query(&[])),
    })
}

/// `GET /ui/executions`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let f = filters(&q);
    let live = live_of(&web, &f).await?;
    render(&ListPage {
        chrome: Chrome::of("executions", &s),
        kinds: KINDS,
        statuses: STATUSES,
        live,
        f,
    })
}

/// `GET /ui/executions/live`: the first page's table, polled.
pub(crate) async fn live(
    State(web): State<Arc<Web>>,
    _s: Session,
    Query(mut q): Query<ListQuery>,
) -> Result<Response, PageError> {
    q.before = None;
    let f = filters(&q);
    render(&LiveFragment {
        live: live_of(&web, &f).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_filter_is_named() {
        let f = filters(&ListQuery {
            kind: Some("rn".into()),
            status: Some("done".into()),
            since: Some("later".into()),
            ..ListQuery::default()
        });
        assert_eq!(f.errors.len(), 3, "{:?}", f.errors);
        assert!(f.errors[0].starts_with("Kind `rn`: one of run"));
        assert!(f.errors[1].starts_with("Status `done`: one of requested"));
        assert!(f.errors[2].starts_with("From: `later` is not a time"));
        let f = filters(&ListQuery {
            kind: Some(" action ".into()),
            status: Some("failed".into()),
            actor: Some("alice".into()),
            since: Some("1h".into()),
            ..ListQuery::default()
        });
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.store.kind.as_deref(), Some("action"));
        assert_eq!(f.store.status, Some(ExecutionStatus::Failed));
        assert!(f.store.since_ms.is_some() && f.store.until_ms.is_none());
        assert_eq!(
            f.query(&[("before", "x")]),
            "?kind=action&status=failed&actor=alice&since=1h&before=x"
        );
    }
}
