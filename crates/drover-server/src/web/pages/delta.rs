//! The delta page: one row per instance of the applied model's delta (desired vs
//! live), counters per status, grouping by service or host, an "errors only" toggle,
//! server-side paging and a live fragment that htmx polls every 2 s. The delta is the
//! one `GET /api/v1/status` computes ([`crate::api::deploy::model_delta`]).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use drover_core::delta::{DeltaStatus, InstanceDelta};
use serde::Deserialize;

use super::{Chrome, render, urlencode};
use crate::api::deploy::{live_view, load_model, model_delta, to_model_files};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Instances per page.
pub(crate) const PAGE_SIZE: usize = 200;

/// The delta page's query, kept in the URL so a view can be bookmarked.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct DeltaQuery {
    /// `service` or `host` (anything else: not grouped).
    #[serde(default)]
    group: Option<String>,
    /// `1`: only instances that are not `ok`.
    #[serde(default)]
    errors: Option<String>,
    /// 1-based page number.
    #[serde(default)]
    page: Option<String>,
}

impl DeltaQuery {
    fn group(&self) -> &'static str {
        match self.group.as_deref().map(str::trim) {
            Some("service") => "service",
            Some("host") => "host",
            _ => "",
        }
    }

    fn errors(&self) -> bool {
        matches!(
            self.errors.as_deref().map(str::trim),
            Some("1" | "on" | "true")
        )
    }

    fn page(&self) -> usize {
        super::page_number(self.page.as_deref())
    }

    /// The query string of this view at another page (empty parts left out).
    fn query_at(&self, page: usize) -> String {
        let errors = if self.errors() { "1" } else { "" };
        super::query_string(&[("group", self.group()), ("errors", errors)], page)
    }
}

/// One row of the table (or a group heading).
pub(crate) struct Row {
    /// A group heading row: the group's title.
    group: Option<String>,
    service: String,
    host: String,
    host_href: String,
    index: u32,
    status: &'static str,
    ok: bool,
    desired: String,
    live: String,
    reason: String,
}

/// One counter: a status and how many instances have it.
pub(crate) struct Count {
    status: &'static str,
    n: usize,
}

/// The live part of the page: counters, table and pager.
pub(crate) struct Live {
    model_version: Option<i64>,
    total: usize,
    counts: Vec<Count>,
    matching: usize,
    rows: Vec<Row>,
    query: String,
    prev: Option<String>,
    next: Option<String>,
    page: usize,
    pages: usize,
    errors: bool,
}

/// The live fragment alone (what htmx polls).
#[derive(Template)]
#[template(path = "delta_live.html")]
struct LiveFragment {
    live: Live,
}

#[derive(Template)]
#[template(path = "delta.html")]
struct DeltaPage {
    chrome: Chrome,
    group: &'static str,
    errors: bool,
    live: Live,
}

/// The delta of the stored model against the live fleet, and the model's version,
/// computed from the store (every host and instance row).
pub(crate) async fn compute_delta(web: &Web) -> Result<Computed, PageError> {
    let state = &web.app;
    let current = state.store.current_model_version().await?;
    let Some(v) = current else {
        return Ok((None, Vec::new()));
    };
    let view = live_view(state).await?;
    let model = load_model(&to_model_files(&v.files))?;
    let mut deltas = model_delta(&model, &view);
    deltas.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((Some(v.id), deltas))
}

/// A computed delta (sorted by instance key) and the model version it is of.
pub(crate) type Computed = (Option<i64>, Vec<InstanceDelta>);

fn describe(version: &str, state: impl std::fmt::Display) -> String {
    format!("{version} {state}")
}

/// Builds the live part from a delta (pure: the render bench calls it directly).
/// `all` is sorted by instance key; it is only borrowed (viewers share it).
pub(crate) fn build_from(
    q: &DeltaQuery,
    model_version: Option<i64>,
    all: &[InstanceDelta],
) -> Live {
    let total = all.len();
    let mut per_status = [0usize; DeltaStatus::ALL.len()];
    for d in all {
        if let Some(i) = DeltaStatus::ALL.iter().position(|s| *s == d.status) {
            per_status[i] += 1;
        }
    }
    let counts = DeltaStatus::ALL
        .iter()
        .zip(per_status)
        .map(|(s, n)| Count {
            status: s.as_str(),
            n,
        })
        .collect();
    let mut deltas: Vec<&InstanceDelta> = all
        .iter()
        .filter(|d| !q.errors() || !d.status.is_ok())
        .collect();
    let group = q.group();
    let group_of = |d: &InstanceDelta| -> Option<String> {
        match group {
            "service" => Some(format!("service: {}", d.key.service)),
            "host" => Some(format!("host: {}", d.key.host)),
            _ => None,
        }
    };
    // Already in key order; by host needs a sort of the references.
    if group == "host" {
        deltas.sort_by(|a, b| {
            (&a.key.host, &a.key.service, a.key.index).cmp(&(
                &b.key.host,
                &b.key.service,
                b.key.index,
            ))
        });
    }
    let matching = deltas.len();
    let pages = matching.div_ceil(PAGE_SIZE).max(1);
    let page = q.page().min(pages);
    let mut rows = Vec::with_capacity(PAGE_SIZE + 8);
    let mut current: Option<String> = None;
    for d in deltas
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
    {
        let g = group_of(d);
        if g.is_some() && g != current {
            rows.push(Row {
                group: g.clone(),
                service: String::new(),
                host: String::new(),
                host_href: String::new(),
                index: 0,
                status: "",
                ok: true,
                desired: String::new(),
                live: String::new(),
                reason: String::new(),
            });
            current = g;
        }
        rows.push(Row {
            group: None,
            host_href: format!("/ui/hosts/{}", urlencode(&d.key.host)),
            index: d.key.index,
            status: d.status.as_str(),
            ok: d.status.is_ok(),
            desired: d
                .desired
                .as_ref()
                .map(|w| describe(&w.version, w.state))
                .unwrap_or_else(|| "—".to_string()),
            live: d
                .live
                .as_ref()
                .map(|l| describe(&l.version, l.state))
                .unwrap_or_else(|| "—".to_string()),
            reason: d.reason.clone(),
            service: d.key.service.clone(),
            host: d.key.host.clone(),
        });
    }
    Live {
        model_version,
        total,
        counts,
        matching,
        rows,
        query: q.query_at(page),
        prev: (page > 1).then(|| q.query_at(page - 1)),
        next: (page < pages).then(|| q.query_at(page + 1)),
        page,
        pages,
        errors: q.errors(),
    }
}

/// `GET /ui/delta`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<DeltaQuery>,
) -> Result<Response, PageError> {
    let computed = web.delta().await?;
    render(&DeltaPage {
        chrome: Chrome::of("delta", &s),
        group: q.group(),
        errors: q.errors(),
        live: build_from(&q, computed.0, &computed.1),
    })
}

/// `GET /ui/delta/live`: the fragment htmx swaps in every 2 s.
pub(crate) async fn live(
    State(web): State<Arc<Web>>,
    _s: Session,
    Query(q): Query<DeltaQuery>,
) -> Result<Response, PageError> {
    let computed = web.delta().await?;
    render(&LiveFragment {
        live: build_from(&q, computed.0, &computed.1),
    })
}

#[cfg(test)]
mod tests {
    use drover_core::instance::{DesiredInstance, InstanceKey, LifecycleState};

    use super::*;

    fn deltas(n: usize) -> Vec<InstanceDelta> {
        (0..n)
            .map(|i| {
                let key = InstanceKey {
                    service: format!("svc-{}", i % 50),
                    host: format!("host-{:05}", i / 50),
                    index: 0,
                };
                let status = if i % 97 == 0 {
                    DeltaStatus::Unreachable
                } else {
                    DeltaStatus::Ok
                };
                InstanceDelta {
                    desired: Some(DesiredInstance {
                        key: key.clone(),
                        version: "1.0.0".into(),
                        state: LifecycleState::Running,
                        spec_hash: "h".into(),
                        ports: Default::default(),
                    }),
                    key,
                    status,
                    live: None,
                    stale: false,
                    reason: if status.is_ok() {
                        String::new()
                    } else {
                        "host unreachable".into()
                    },
                }
            })
            .collect()
    }

    #[test]
    fn the_query_string_keeps_the_view() {
        let q = DeltaQuery {
            group: Some("host".into()),
            errors: Some("1".into()),
            page: Some("2".into()),
        };
        assert_eq!(q.query_at(3), "?group=host&errors=1&page=3");
        assert_eq!(DeltaQuery::default().query_at(1), "");
        let odd = DeltaQuery {
            group: Some("<script>".into()),
            ..DeltaQuery::default()
        };
        assert_eq!(odd.group(), "");
    }

    #[test]
    fn pages_errors_and_groups() {
        let all = deltas(1000);
        let live = build_from(&DeltaQuery::default(), Some(1), &all);
        assert_eq!(live.total, 1000);
        assert_eq!(live.pages, 5);
        assert_eq!(live.rows.len(), PAGE_SIZE);
        let bad = all.iter().filter(|d| !d.status.is_ok()).count();
        let q = DeltaQuery {
            errors: Some("1".into()),
            group: Some("service".into()),
            ..DeltaQuery::default()
        };
        let live = build_from(&q, Some(1), &all);
        assert_eq!(live.matching, bad);
        assert!(live.rows.iter().all(|r| r.group.is_some() || !r.ok));
        assert_eq!(live.counts[0].status, "ok");
        assert_eq!(live.counts[0].n, 1000 - bad);
    }

    /// A fleet-sized delta renders one page, whatever its size: 100,000 instances give
    /// a fragment of `PAGE_SIZE` rows, with the counters over all of them. (Its time is
    /// measured by `bench/scripts/dashboard.py`, not here.)
    #[test]
    fn a_fleet_sized_delta_renders_one_page() {
        let mut all = deltas(100_000);
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let bad = all.iter().filter(|d| !d.status.is_ok()).count();
        let q = DeltaQuery {
            group: Some("host".into()),
            errors: Some("1".into()),
            page: Some("3".into()),
        };
        let live = build_from(&q, Some(1), &all);
        assert_eq!(live.total, 100_000);
        assert_eq!(live.matching, bad);
        assert_eq!(live.pages, bad.div_ceil(PAGE_SIZE));
        let html = LiveFragment { live }.render().expect("render");
        let rows = html.matches("<tr class=\"inst").count();
        assert!(rows > 0 && rows <= PAGE_SIZE, "{rows} instance rows");
        assert!(
            html.len() < 200_000,
            "one page, not the fleet: {} bytes",
            html.len()
        );
    }
}
