//! The event log: paged list and live stream (SSE).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use drover_proto::events::Event;
use drover_proto::page::Page;
use drover_store::{EventFilter, EventOrder, Notice};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::paging;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Exact type or prefix ending in `*`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// RFC 3339 time: only events since then.
    #[serde(default)]
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339 time: only events before then.
    #[serde(default)]
    #[param(format = DateTime)]
    until: Option<String>,
    /// Only events by this actor (exact).
    #[serde(default)]
    actor: Option<String>,
    /// Only events whose type, actor or payload contains this text (ASCII case ignored).
    #[serde(default)]
    q: Option<String>,
    /// Cursor: the `next` of the previous page (an event id).
    #[serde(default)]
    after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    order: Option<EventOrderParam>,
}

/// An RFC 3339 query parameter as Unix ms; `name` is for the error.
pub(crate) fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc).timestamp_millis())
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "query parameter `{name}`: `{s}` is not an RFC 3339 time ({e})"
                    ))
                })
        })
        .transpose()
}

fn parse_since(since: Option<&str>) -> Result<Option<i64>, ApiError> {
    parse_time("since", since)
}

fn check_kind(kind: Option<&str>) -> Result<(), ApiError> {
    if let Some(k) = kind {
        let body = k.strip_suffix('*').unwrap_or(k);
        if let Some(c) = body
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ApiError::bad_request(format!(
                "query parameter `type`: character {c:?} in `{k}` (use e.g. `host.down` or `host.*`)"
            )));
        }
    }
    Ok(())
}

/// Order of `GET /events`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[schema(as = EventOrder)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EventOrderParam {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// The event log (which is also the audit trail), a page at a time.
#[utoipa::path(get, path = "/events", tag = "events",
    security(("api_token" = ["viewer"])),
    params(ListParams),
    responses((status = 200, description = "A page of events", body = Page<Event>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Page<Event>>> {
    check_kind(p.kind.as_deref())?;
    let order = match p.order {
        None | Some(EventOrderParam::Asc) => EventOrder::Asc,
        Some(EventOrderParam::Desc) => EventOrder::Desc,
    };
    let limit = paging::limit(p.limit)?;
    let items = state
        .store
        .list_events(&EventFilter {
            kind: p.kind,
            since_ms: parse_since(p.since.as_deref())?,
            until_ms: parse_time("until", p.until.as_deref())?,
            actor: p.actor.filter(|a| !a.is_empty()),
            text: p.q.filter(|q| !q.is_empty()),
            cursor: p.after,
            order,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(paging::page_of(items, limit, |e| e.id.to_string())))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamParams {
    /// Exact type or prefix ending in `*`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Start after this event id; default: from now on (or from `since`).
    #[serde(default)]
    after: Option<i64>,
    /// RFC 3339 time: start with the events since then.
    #[serde(default)]
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events by this actor (exact).
    #[serde(default)]
    actor: Option<String>,
    /// Only events whose type, actor or payload contains this text (ASCII case ignored).
    #[serde(default)]
    q: Option<String>,
}

/// New events as they are appended (SSE event name `event`, data an [`Event`]).
#[utoipa::path(get, path = "/events/stream", tag = "events",
    security(("api_token" = ["viewer"])),
    params(StreamParams),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Server-sent events named `event`, each an Event; never ends")))]
pub(crate) async fn stream(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<StreamParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    check_kind(p.kind.as_deref())?;
    let since_ms = parse_since(p.since.as_deref())?;
    let mut notices = state.store.notifier().subscribe();
    let mut cursor = match (p.after, since_ms) {
        (Some(a), _) => Some(a),
        (None, Some(_)) => None,
        (None, None) => {
            let last = state
                .store
                .list_events(&EventFilter {
                    order: EventOrder::Desc,
                    limit: 1,
                    ..EventFilter::default()
                })
                .await?;
            Some(last.first().map(|e| e.id).unwrap_or(0))
        }
    };
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(async move {
        loop {
            let batch = state
                .store
                .list_events(&EventFilter {
                    kind: p.kind.clone(),
                    since_ms: if cursor.is_none() { since_ms } else { None },
                    actor: p.actor.clone().filter(|a| !a.is_empty()),
                    text: p.q.clone().filter(|q| !q.is_empty()),
                    cursor,
                    order: EventOrder::Asc,
                    limit: 500,
                    ..EventFilter::default()
                })
                .await;
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream cannot read the store");
                    return;
                }
            };
            let full = batch.len() == 500;
            for ev in batch {
                cursor = Some(ev.id);
                let sse = SseEvent::default()
                    .event("event")
                    .id(ev.id.to_string())
                    .json_data(&ev)
                    .unwrap_or_else(|_| SseEvent::default().comment("unserialisable"));
                if tx.send(sse).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    n = notices.recv() => match n {
                        Ok(Notice::Event { .. }) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => return,
                    },
                    _ = &mut tick => break,
                    _ = tx.closed() => return,
                    _ = state.shutdown.cancelled() => return,
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok(ev), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
