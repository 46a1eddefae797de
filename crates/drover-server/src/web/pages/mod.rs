//! The dashboard's pages: one module per page, each a handler that reads the store and
//! renders an askama template.

mod actions;
mod automation;
pub(crate) mod delta;
mod events;
mod execution_list;
mod executions;
mod fleet;
mod hosts;
mod model;
mod signin;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

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
        .route("/ui/executions", get(execution_list::page))
        .route("/ui/executions/live", get(execution_list::live))
        .route("/ui/executions/{id}", get(executions::page))
        .route("/ui/executions/{id}/live", get(executions::live))
        .route("/ui/executions/{id}/{verb}", post(executions::control))
        .route("/ui/model", get(model::versions))
        .route("/ui/model/diff", get(model::diff))
        .route("/ui/model/plan", get(model::plan))
        .route("/ui/model/{version}", get(model::show))
        .route("/ui/events", get(events::page))
        .route("/ui/events/live", get(events::live))
        .route("/ui/automation", get(automation::page))
        .route("/ui/actions/{reference}", get(actions::page))
        .route("/ui/actions/{reference}/run", post(actions::run))
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

/// A time filter as Unix ms: RFC 3339 (`2026-11-22T06:00:00Z`), a browser's
/// `datetime-local` value or a bare date (both UTC), or an age (`30s`, `15m`, `2h`,
/// `7d`) meaning that long ago.
pub(crate) fn parse_when(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(at.and_utc().timestamp_millis());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(day
            .and_time(Default::default())
            .and_utc()
            .timestamp_millis());
    }
    let unit = t.chars().last().unwrap_or(' ');
    let ms_per = match unit {
        's' => Some(1_000),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    // At most ten years back.
    const MAX_AGE_MS: i64 = 3_650 * 86_400_000;
    if let Some(per) = ms_per
        && let Ok(n) = t[..t.len() - unit.len_utf8()].parse::<i64>()
        && let Some(age) = n.checked_mul(per)
        && (0..=MAX_AGE_MS).contains(&age)
    {
        return Ok(now.timestamp_millis() - age);
    }
    Err(format!(
        "`{t}` is not a time: use 2026-11-22T06:00 (UTC), an RFC 3339 time, or an age like 15m, 2h, 7d"
    ))
}

/// A page's `From`/`Until` filter (see [`parse_when`]) as Unix ms; each bad one, and a
/// range that ends before it starts, is pushed to `errors`.
pub(crate) fn time_range(
    since: &str,
    until: &str,
    errors: &mut Vec<String>,
) -> (Option<i64>, Option<i64>) {
    let now = Utc::now();
    let mut time = |label: &str, v: &str| {
        if v.is_empty() {
            return None;
        }
        parse_when(v, now)
            .map_err(|e| errors.push(format!("{label}: {e}")))
            .ok()
    };
    let since_ms = time("From", since);
    let until_ms = time("Until", until);
    if let (Some(s), Some(u)) = (since_ms, until_ms)
        && s >= u
    {
        errors.push("From must be before Until".to_string());
    }
    (since_ms, until_ms)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_spelling() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("now");
        let at = |s: &str| parse_when(s, now);
        let noon = now.timestamp_millis();
        assert_eq!(at("2026-11-22T12:00:00Z"), Ok(noon));
        assert_eq!(at("2026-11-22T13:00:00+01:00"), Ok(noon));
        assert_eq!(at("2026-11-22T12:00"), Ok(noon));
        assert_eq!(at(" 2026-11-22 12:00 "), Ok(noon));
        assert_eq!(at("2026-11-22"), Ok(noon - 12 * 3_600_000));
        assert_eq!(at("15m"), Ok(noon - 15 * 60_000));
        assert_eq!(at("2h"), Ok(noon - 2 * 3_600_000));
        assert_eq!(at("7d"), Ok(noon - 7 * 86_400_000));
        assert_eq!(at("30s"), Ok(noon - 30_000));
        for bad in ["", "yesterday", "-5m", "5w", "m", "2026-13-01", "99999999d"] {
            let e = at(bad).expect_err(bad);
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }
}
