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

use super::paging;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// Exact type or prefix ending in `*`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// RFC 3339 time.
    #[serde(default)]
    since: Option<String>,
    /// Cursor (event id).
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    order: Option<String>,
}

fn parse_since(since: Option<&str>) -> Result<Option<i64>, ApiError> {
    since
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc).timestamp_millis())
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "query parameter `since`: `{s}` is not an RFC 3339 time ({e})"
                    ))
                })
        })
        .transpose()
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

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Page<Event>>> {
    check_kind(p.kind.as_deref())?;
    let order = match p.order.as_deref() {
        None | Some("asc") => EventOrder::Asc,
        Some("desc") => EventOrder::Desc,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "query parameter `order`: `{o}` is neither `asc` nor `desc`"
            )));
        }
    };
    let limit = paging::limit(p.limit)?;
    let mut items = state
        .store
        .list_events(&EventFilter {
            kind: p.kind,
            since_ms: parse_since(p.since.as_deref())?,
            cursor: p.after,
            order,
            limit: limit + 1,
        })
        .await?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamParams {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Start after this event id; default: from now on (or from `since`).
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    since: Option<String>,
}

/// New events as they are appended (SSE event name `event`, data an [`Event`]).
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
                    cursor,
                    order: EventOrder::Asc,
                    limit: 500,
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
