//! The dashboard's pages: one module per page, each a handler that reads the store and
//! renders an askama template.

mod automation;
mod delta;
mod events;
mod executions;
mod fleet;
mod hosts;
mod signin;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};

use super::session::Session;
use super::{PageError, Web};
use crate::error::ApiError;

/// Every page's routes.
pub(crate) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/ui/signin", get(signin::form).post(signin::submit))
        .route("/ui/signout", post(signin::signout))
        .route("/ui/fleet", get(fleet::page))
        .route("/ui/fleet/live", get(fleet::live))
        .route("/ui/delta", get(delta::page))
        .route("/ui/delta/live", get(delta::live))
        .route("/ui/hosts/{name}", get(hosts::page))
        .route("/ui/hosts/{name}/run", post(hosts::run))
        .route("/ui/executions/{id}", get(executions::page))
        .route("/ui/executions/{id}/live", get(executions::live))
        .route("/ui/events", get(events::page))
        .route("/ui/automation", get(automation::page))
        .route("/ui/rules/{reference}/{verb}", post(automation::switch))
}

/// What every full page shows around its content: navigation and the user.
pub(crate) struct Chrome {
    /// Which navigation entry is current (`fleet`, `delta`, `events`, or empty).
    pub nav: &'static str,
    /// The signed-in user's name, role and CSRF token (for the sign-out form).
    pub user: Option<(String, &'static str, String)>,
    /// drover's version (asset URLs carry it, so an upgrade reloads them).
    pub version: &'static str,
}

impl Chrome {
    /// The chrome of a signed-in page.
    pub fn of(nav: &'static str, session: &Session) -> Chrome {
        Chrome {
            nav,
            user: Some((
                session.name.clone(),
                session.role.as_str(),
                session.csrf.clone(),
            )),
            version: drover_proto::VERSION,
        }
    }

    /// The chrome of a page shown before sign-in.
    pub fn anonymous() -> Chrome {
        Chrome {
            nav: "",
            user: None,
            version: drover_proto::VERSION,
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    /// HTTP status code.
    pub status: u16,
    /// Its reason phrase.
    pub reason: &'a str,
    /// What went wrong.
    pub detail: &'a str,
    /// drover's version.
    pub version: &'a str,
}

/// Renders a template as an HTML answer.
pub(crate) fn render(t: &impl Template) -> Result<Response, PageError> {
    Ok(Html(t.render()?).into_response())
}

/// A view's query string: `?k=v&…` from the pairs whose value is not empty, then
/// `page` when past the first; empty when nothing is set.
pub(crate) fn query_string(pairs: &[(&str, &str)], page: usize) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A `?page=` value: a number from 1, else 1.
pub(crate) fn page_number(page: Option<&str>) -> usize {
    page.and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// Percent-encodes a query parameter value.
pub(crate) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A time for people: `2026-11-22 06:20:26 UTC`.
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago, roughly: `4s`, `3m`, `2h`, `5d`.
pub(crate) fn ago(t: &DateTime<Utc>) -> String {
    let secs = (Utc::now() - *t).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        let detail = e.detail().to_string();
        let status = e.into_response().status();
        PageError { status, detail }
    }
}
