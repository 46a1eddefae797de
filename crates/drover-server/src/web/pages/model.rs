//! The model pages: the stored versions (author, message, time, hash), one version's
//! files, the diff between two versions (files line by line, and what changed in the
//! model), and the plan preview: what applying the current model would do to the live
//! fleet now. All read-only.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use drover_core::model::diff::{FileDiff, NameChanges, diff_files, model_changes};
use drover_store::{ModelVersion, StoredFile};
use serde::Deserialize;

use super::{Chrome, render, when};
use crate::api::deploy::{compare, live_view, load_model, to_model_files};
use crate::web::session::Session;
use crate::web::{PageError, Web};

/// Versions listed per page.
const PAGE_SIZE: u32 = 50;
/// Instance changes shown on the plan page (the counters count them all).
const MAX_CHANGES: usize = 500;

struct VersionRow {
    id: i64,
    time: String,
    author: String,
    message: String,
    hash: String,
    current: bool,
    /// The version before it, to diff against.
    previous: Option<i64>,
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    chrome: Chrome,
    versions: Vec<VersionRow>,
    current: Option<i64>,
    /// Set when this is not the newest page.
    paged: bool,
    /// The cursor of the next (older) page, if there is one.
    older: Option<i64>,
}

/// The versions page's query.
#[derive(Deserialize, Default)]
pub(crate) struct VersionsQuery {
    /// Show versions older than this one.
    #[serde(default)]
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "model_version.html")]
struct VersionPage {
    chrome: Chrome,
    id: i64,
    author: String,
    message: String,
    time: String,
    hash: String,
    files: Vec<StoredFile>,
}

#[derive(Template)]
#[template(path = "model_diff.html")]
struct DiffPage {
    chrome: Chrome,
    from: String,
    to: String,
    error: Option<String>,
    /// `(from, to)` when both versions were found.
    versions: Option<(VersionRow, VersionRow)>,
    changes: Vec<(&'static str, NameChanges)>,
    /// Why the model-level summary is missing (a version does not load).
    summary_error: Option<String>,
    files: Vec<FileDiff>,
}

struct ChangeRow {
    service: String,
    host: String,
    index: u32,
    kind: &'static str,
    from: String,
    to: String,
    reason: String,
    batch: String,
}

#[derive(Template)]
#[template(path = "model_plan.html")]
struct PlanPage {
    chrome: Chrome,
    version: Option<i64>,
    error: Option<String>,
    counts: Vec<(&'static str, usize)>,
    total: usize,
    blocked: usize,
    rows: Vec<ChangeRow>,
    hidden: usize,
}

fn row(v: &ModelVersion, current: Option<i64>, previous: Option<i64>) -> VersionRow {
    VersionRow {
        id: v.id,
        time: when(&v.created_at),
        author: v.author.clone(),
        message: v.message.clone(),
        hash: v.content_hash.chars().take(12).collect(),
        current: current == Some(v.id),
        previous,
    }
}

/// `GET /ui/model?before=N`: versions, newest first, a page at a time.
pub(crate) async fn versions(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<VersionsQuery>,
) -> Result<Response, PageError> {
    let before = match q.before.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(b.parse::<i64>().map_err(|_| {
            PageError::bad_request(format!("`before`: `{b}` is not a version number"))
        })?),
    };
    let store = &web.app.store;
    let current = store
        .list_model_versions(None, 1)
        .await?
        .first()
        .map(|v| v.id);
    // One more than the page: the last row's previous version, and whether there
    // are older ones.
    let listed = store.list_model_versions(before, PAGE_SIZE + 1).await?;
    let shown = listed.len().min(PAGE_SIZE as usize);
    let rows = listed[..shown]
        .iter()
        .enumerate()
        .map(|(i, v)| row(v, current, listed.get(i + 1).map(|p| p.id)))
        .collect();
    let older = (listed.len() > shown)
        .then(|| listed.get(shown - 1).map(|v| v.id))
        .flatten();
    render(&ModelPage {
        chrome: Chrome::of("model", &s),
        versions: rows,
        current,
        paged: before.is_some(),
        older,
    })
}

async fn version(web: &Web, id: i64) -> Result<Option<ModelVersion>, PageError> {
    Ok(web.app.store.get_model_version(id).await?)
}

/// `GET /ui/model/{version}`.
pub(crate) async fn show(
    State(web): State<Arc<Web>>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let n = id.trim().parse::<i64>().map_err(|_| {
        PageError::not_found(format!("no model version `{id}` (versions are numbers)"))
    })?;
    let v = version(&web, n)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no model version {n}")))?;
    render(&VersionPage {
        chrome: Chrome::of("model", &s),
        id: v.id,
        author: v.author,
        message: v.message,
        time: when(&v.created_at),
        hash: v.content_hash,
        files: v.files,
    })
}

/// The diff page's query.
#[derive(Deserialize, Default)]
pub(crate) struct DiffQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// `GET /ui/model/diff?from=A&to=B`: both default to the two latest versions. A
/// malformed or unknown version is named on the page (422 / 404) with the form.
pub(crate) async fn diff(
    State(web): State<Arc<Web>>,
    s: Session,
    Query(q): Query<DiffQuery>,
) -> Result<Response, PageError> {
    let latest = web.app.store.list_model_versions(None, 2).await?;
    let text = |v: &Option<String>, fallback: Option<i64>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .or_else(|| fallback.map(|n| n.to_string()))
            .unwrap_or_default()
    };
    let from = text(&q.from, latest.get(1).map(|v| v.id));
    let to = text(&q.to, latest.first().map(|v| v.id));
    let mut page = DiffPage {
        chrome: Chrome::of("model", &s),
        from: from.clone(),
        to: to.clone(),
        error: None,
        versions: None,
        changes: Vec::new(),
        summary_error: None,
        files: Vec::new(),
    };
    let parse = |label: &str, t: &str| {
        t.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{label}: `{t}` is not a version number"))
    };
    let (a, b) = match (parse("From", &from), parse("To", &to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            page.error = Some(if from.is_empty() && to.is_empty() {
                "Two model versions are needed to compare (apply a model twice).".to_string()
            } else {
                e
            });
            return answer(&page, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let (Some(va), Some(vb)) = (version(&web, a).await?, version(&web, b).await?) else {
        let missing = if version(&web, a).await?.is_none() {
            a
        } else {
            b
        };
        page.error = Some(format!("There is no model version {missing}."));
        return answer(&page, StatusCode::NOT_FOUND);
    };
    page.files = diff_files(&va.file_pairs(), &vb.file_pairs());
    match (
        load_model(&to_model_files(&va.files)),
        load_model(&to_model_files(&vb.files)),
    ) {
        (Ok(ma), Ok(mb)) => page.changes = model_changes(&ma, &mb),
        (Err(e), _) | (_, Err(e)) => page.summary_error = Some(e.detail().to_string()),
    }
    let current = latest.first().map(|v| v.id);
    page.versions = Some((row(&va, current, None), row(&vb, current, None)));
    answer(&page, StatusCode::OK)
}

fn answer(page: &DiffPage, status: StatusCode) -> Result<Response, PageError> {
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /ui/model/plan`: what applying the current model would change now, as
/// `drover plan` shows it; read-only.
pub(crate) async fn plan(State(web): State<Arc<Web>>, s: Session) -> Result<Response, PageError> {
    let app = &web.app;
    let mut page = PlanPage {
        chrome: Chrome::of("model", &s),
        version: None,
        error: None,
        counts: Vec::new(),
        total: 0,
        blocked: 0,
        rows: Vec::new(),
        hidden: 0,
    };
    let Some(current) = app.store.current_model_version().await? else {
        page.error = Some("No model is applied yet (drover apply DIR).".into());
        return render(&page);
    };
    page.version = Some(current.id);
    let Some(model) = app.applied.get(&app.store).await? else {
        page.error = Some(format!("Model version {} does not load.", current.id));
        return render(&page);
    };
    let view = live_view(app).await?;
    let (_, plan) = match compare(&model, &view) {
        Ok(p) => p,
        Err(e) => {
            page.error = Some(e.detail().to_string());
            return render(&page);
        }
    };
    let c = &plan.counts;
    page.counts = vec![
        ("deploy", c.deploy),
        ("upgrade", c.upgrade),
        ("restart", c.restart),
        ("start", c.start),
        ("stop", c.stop),
        ("undeploy", c.undeploy),
    ];
    page.total = c.total();
    page.blocked = plan.blocked.len();
    for sp in plan.services() {
        for b in &sp.batches {
            for ch in &b.changes {
                if page.rows.len() == MAX_CHANGES {
                    page.hidden += 1;
                    continue;
                }
                let vs = |v: &Option<drover_core::plan::VersionState>| {
                    v.as_ref()
                        .map(|v| format!("{} {}", v.version, v.state))
                        .unwrap_or_else(|| "—".into())
                };
                page.rows.push(ChangeRow {
                    service: ch.key.service.clone(),
                    host: ch.key.host.clone(),
                    index: ch.key.index,
                    kind: ch.kind.as_str(),
                    from: vs(&ch.from),
                    to: vs(&ch.to),
                    reason: ch.reason.clone(),
                    batch: format!("{}{}", b.index + 1, if b.canary { " (canary)" } else { "" }),
                });
            }
        }
    }
    render(&page)
}
