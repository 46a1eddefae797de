//! The fleet page: every host with its status, labels and instance count, counters,
//! a selector filter, grouping, server-side paging and a live fragment that htmx
//! polls every 2 s.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use drover_core::model::Model;
use drover_core::selector::Selector;
use drover_proto::hosts::{Host, HostStatus};
use serde::Deserialize;

use super::{Chrome, ago, render, urlencode};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Hosts per page.
pub(crate) const PAGE_SIZE: usize = 100;

/// The fleet page's query: everything a view needs, so it can be bookmarked.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct FleetQuery {
    /// Selector in the CLI's syntax (`label.role=web,fact.status=down`).
    #[serde(default)]
    selector: Option<String>,
    /// Group by `label.KEY`, a bare label key, or `hostclass`.
    #[serde(default)]
    group: Option<String>,
    /// 1-based page number.
    #[serde(default)]
    page: Option<String>,
}

impl FleetQuery {
    fn selector(&self) -> &str {
        self.selector.as_deref().map(str::trim).unwrap_or("")
    }

    fn group(&self) -> &str {
        self.group.as_deref().map(str::trim).unwrap_or("")
    }

    fn page(&self) -> usize {
        super::page_number(self.page.as_deref())
    }

    /// The query string of this view at another page (empty parts left out).
    fn query_at(&self, page: usize) -> String {
        super::query_string(
            &[("selector", self.selector()), ("group", self.group())],
            page,
        )
    }
}

/// One row of the table (or a group heading).
pub(crate) struct Row {
    /// A group heading row: the group's title.
    group: Option<String>,
    name: String,
    href: String,
    status: &'static str,
    labels: Vec<String>,
    hostclasses: String,
    instances: u32,
    seen: String,
    drained: bool,
}

/// Counters over the whole fleet, and how many hosts the filter matches.
pub(crate) struct Counters {
    total: usize,
    up: usize,
    down: usize,
    missing: usize,
    matching: usize,
}

/// The live part of the page: counters, table and pager.
pub(crate) struct Live {
    counters: Counters,
    rows: Vec<Row>,
    /// `?selector=…&group=…&page=…` of this view.
    query: String,
    prev: Option<String>,
    next: Option<String>,
    page: usize,
    pages: usize,
    /// Polling stops while the selector is wrong.
    poll: bool,
    filtered: bool,
}

/// The live fragment alone (what htmx polls).
#[derive(Template)]
#[template(path = "fleet_live.html")]
struct LiveFragment {
    live: Live,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    selector: String,
    group: String,
    /// The selector's error, with the column.
    error: Option<String>,
    live: Live,
}

/// The group a host belongs to under `group` (`None` means "not grouped").
fn group_of(group: &str, h: &Host) -> Option<String> {
    if group.is_empty() {
        return None;
    }
    if group == "hostclass" {
        return Some(hostclass_group(&h.hostclasses));
    }
    Some(label_group(group, &h.labels))
}

/// The heading of a host's group under the hostclass grouping.
fn hostclass_group(classes: &[String]) -> String {
    if classes.is_empty() {
        "hostclass: (none)".to_string()
    } else {
        format!("hostclass: {}", classes.join(", "))
    }
}

/// The heading of a host's group under a label grouping (`rack` or `label.rack`).
fn label_group(group: &str, labels: &BTreeMap<String, String>) -> String {
    let key = group.strip_prefix("label.").unwrap_or(group);
    match labels.get(key) {
        Some(v) => format!("{key}={v}"),
        None => format!("{key}: (none)"),
    }
}

/// Fills in each host's hostclasses from the applied model (membership is each host's
/// own property: a page's hosts are enough).
fn set_hostclasses(model: Option<&Model>, hosts: &mut [Host]) {
    let mut classes = match model {
        Some(m) => crate::applied::hostclasses_of(m, hosts),
        None => Default::default(),
    };
    for h in hosts.iter_mut() {
        h.hostclasses = classes.remove(&h.name).unwrap_or_default();
    }
}

/// The page count of `items`, the asked page (clamped to them), and its items.
fn one_page<T>(items: Vec<T>, asked: usize) -> (usize, usize, Vec<T>) {
    let pages = items.len().div_ceil(PAGE_SIZE).max(1);
    let page = asked.min(pages);
    let shown = items
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    (pages, page, shown)
}

/// Builds the live part for a query, with the selector's error if it has one.
async fn build(web: &Arc<Web>, q: &FleetQuery) -> Result<(Live, Option<String>), PageError> {
    let store = &web.app.store;
    let (selector, error) = if q.selector().is_empty() {
        (Some(Selector::all()), None)
    } else {
        match drover_core::selector::parse(q.selector()) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(format!("Selector `{}`: {e}", q.selector()))),
        }
    };
    let group = q.group().to_string();
    let model = web.app.applied.get(store).await?;
    let model_uses_facts = model
        .as_deref()
        .is_some_and(drover_core::model::hostclasses_use_facts);
    // The counters are the whole fleet's, counted in the store.
    let mut counters = Counters {
        total: 0,
        up: 0,
        down: 0,
        missing: 0,
        matching: 0,
    };
    for (status, n) in store.host_status_counts().await? {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        counters.total += n;
        match status {
            HostStatus::Up => counters.up += n,
            HostStatus::Down => counters.down += n,
            HostStatus::Missing => counters.missing += n,
        }
    }
    let (pages, page, mut shown) = if q.selector().is_empty() && group.is_empty() {
        // The whole fleet by name: paged in the store, so a poll reads one page of
        // rows, not the fleet.
        counters.matching = counters.total;
        let pages = counters.total.div_ceil(PAGE_SIZE).max(1);
        let page = q.page().min(pages);
        let offset = u64::try_from((page - 1) * PAGE_SIZE).unwrap_or(u64::MAX);
        let mut hosts = store.list_hosts_at(offset, PAGE_SIZE as u32).await?;
        set_hostclasses(model.as_deref(), &mut hosts);
        let shown: Vec<(Option<String>, Host)> = hosts.into_iter().map(|h| (None, h)).collect();
        (pages, page, shown)
    } else if let Some(s) = selector
        .as_ref()
        .filter(|s| !s.uses_facts() && (group != "hostclass" || !model_uses_facts))
    {
        // Names and labels decide the selector and the grouping (hostclass selectors
        // included): read only those for the fleet, and whole rows for the page shown.
        let mut light = store.host_labels_where(&s.prefilters()).await?;
        light.retain(|h| s.matches(h));
        counters.matching = light.len();
        let mut classes = match (&model, group == "hostclass") {
            (Some(m), true) => crate::applied::hostclasses_of(m, &light),
            _ => Default::default(),
        };
        let mut keyed: Vec<(Option<String>, String)> = light
            .into_iter()
            .map(|h| {
                let g = match group.as_str() {
                    "" => None,
                    "hostclass" => Some(hostclass_group(
                        &classes.remove(&h.name).unwrap_or_default(),
                    )),
                    _ => Some(label_group(&group, &h.labels)),
                };
                (g, h.name)
            })
            .collect();
        keyed.sort();
        let (pages, page, keyed) = one_page(keyed, q.page());
        let names: Vec<String> = keyed.iter().map(|(_, n)| n.clone()).collect();
        let mut hosts = store.hosts_named(&names).await?;
        set_hostclasses(model.as_deref(), &mut hosts);
        let mut by_name: BTreeMap<String, Host> =
            hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
        let shown: Vec<(Option<String>, Host)> = keyed
            .into_iter()
            .filter_map(|(g, n)| by_name.remove(&n).map(|h| (g, h)))
            .collect();
        (pages, page, shown)
    } else {
        // The store leaves out the rows the selector's prefilters rule out; the
        // selector decides on the rest.
        let mut hosts = match &selector {
            Some(s) => {
                let mut read = store.list_hosts_where(&s.prefilters()).await?;
                read.retain(|h| s.matches(h));
                read
            }
            None => Vec::new(),
        };
        set_hostclasses(model.as_deref(), &mut hosts);
        counters.matching = hosts.len();
        let mut keyed: Vec<(Option<String>, Host)> = hosts
            .into_iter()
            .map(|h| (group_of(&group, &h), h))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        let (pages, page, shown) = one_page(keyed, q.page());
        (pages, page, shown)
    };
    if !shown.is_empty() {
        let counts = web.instance_counts().await?;
        for (_, h) in &mut shown {
            h.instances = counts.get(&h.id).copied().unwrap_or(0);
        }
    }
    let mut rows = Vec::with_capacity(shown.len() + 8);
    let mut current: Option<String> = None;
    for (g, h) in shown {
        if g.is_some() && g != current {
            rows.push(Row {
                group: g.clone(),
                name: String::new(),
                href: String::new(),
                status: "",
                labels: Vec::new(),
                hostclasses: String::new(),
                instances: 0,
                seen: String::new(),
                drained: false,
            });
            current = g;
        }
        rows.push(Row {
            group: None,
            href: format!("/ui/hosts/{}", urlencode(&h.name)),
            status: h.status.as_str(),
            labels: h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            hostclasses: h.hostclasses.join(", "),
            instances: h.instances,
            seen: if h.status == HostStatus::Missing {
                "never".to_string()
            } else {
                ago(&h.last_seen_at)
            },
            drained: h.drained,
            name: h.name,
        });
    }
    let live = Live {
        counters,
        rows,
        query: q.query_at(page),
        prev: (page > 1).then(|| q.query_at(page - 1)),
        next: (page < pages).then(|| q.query_at(page + 1)),
        page,
        pages,
        poll: error.is_none(),
        filtered: !q.selector().is_empty(),
    };
    Ok((live, error))
}

/// `GET /ui/fleet`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<FleetQuery>,
) -> Result<Response, PageError> {
    let (live, error) = build(&web, &q).await?;
    render(&FleetPage {
        chrome: Chrome::of("fleet", &s),
        selector: q.selector().to_string(),
        group: q.group().to_string(),
        error,
        live,
    })
}

/// `GET /ui/fleet/live`: the fragment htmx swaps in every 2 s.
pub(crate) async fn live(
    State(web): State<Arc<Web>>,
    _s: Session,
    Query(q): Query<FleetQuery>,
) -> Result<Response, PageError> {
    let (live, _) = build(&web, &q).await?;
    render(&LiveFragment { live })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_keeps_the_view() {
        let q = FleetQuery {
            selector: Some("label.role=web".into()),
            group: Some("role".into()),
            page: Some("3".into()),
        };
        assert_eq!(q.page(), 3);
        assert_eq!(
            q.query_at(2),
            "?selector=label.role%3Dweb&group=role&page=2"
        );
        assert_eq!(FleetQuery::default().query_at(1), "");
        let bad = FleetQuery {
            page: Some("-1".into()),
            ..FleetQuery::default()
        };
        assert_eq!(bad.page(), 1);
    }
}
