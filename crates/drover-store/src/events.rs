//! The append-only event log.

use drover_proto::events::Event;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::notify::Notice;
use crate::rows::{json, now_ms, time, to_json};
use crate::{Dialect, Result, Store};

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Dotted type (see `drover_proto::events::types`).
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// Details; must never contain a secret.
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// Shorthand constructor.
    pub fn new(kind: &str, actor: &str, payload: serde_json::Value) -> NewEvent {
        NewEvent {
            kind: kind.to_string(),
            actor: actor.to_string(),
            payload,
        }
    }
}

/// Order of an event listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventOrder {
    /// Oldest first; `cursor` means "after this id".
    #[default]
    Asc,
    /// Newest first; `cursor` means "before this id".
    Desc,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact type, or a prefix ending in `*` (`host.*`).
    pub kind: Option<String>,
    /// Only events at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only events before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// Only events by this actor (exact).
    pub actor: Option<String>,
    /// Only events whose type, actor or payload contains this text, ignoring ASCII
    /// case (a plain substring: `%` and `_` mean themselves).
    pub text: Option<String>,
    /// Paging cursor (an event id), interpreted per `order`.
    pub cursor: Option<i64>,
    /// Listing order.
    pub order: EventOrder,
    /// At most this many.
    pub limit: u32,
}

fn event(row: &AnyRow) -> Result<Event> {
    let payload: String = row.try_get("payload")?;
    Ok(Event {
        id: row.try_get("id")?,
        time: time(row.try_get("time")?),
        kind: row.try_get("type")?,
        actor: row.try_get("actor")?,
        payload: json("events", &payload)?,
    })
}

/// Key of the PostgreSQL advisory lock that orders event inserts ("drover" + 1).
const EVENTS_LOCK: i64 = 0x6472_6f76_6572_0001;

/// Appends an event inside an open transaction (so that a state change and its event
/// commit together). The caller publishes the notice after commit.
///
/// With PostgreSQL the transaction then holds [`EVENTS_LOCK`] until it ends: ids come
/// from a sequence at insert but become visible at commit, so without it a reader paging
/// by id (`events --follow`, the rule engine) could pass an id whose transaction commits
/// later, and never see that event. SQLite's single writer gives the same order. The
/// lock is taken last in every transaction: after it, nothing waits on another row.
pub(crate) async fn append_in(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    ev: &NewEvent,
) -> Result<i64> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENTS_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO events (time, type, actor, payload) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(now_ms())
    .bind(&ev.kind)
    .bind(&ev.actor)
    .bind(to_json(&ev.payload))
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Parameters per event of [`append_many_in`].
const EVENT_PARAMS: usize = 4;

/// Appends several events inside an open transaction, a few hundred per statement, and
/// returns their ids. Same lock and order rules as [`append_in`].
pub(crate) async fn append_many_in(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    events: &[NewEvent],
) -> Result<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENTS_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let now = now_ms();
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(dialect.batch_rows(EVENT_PARAMS)) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = i * EVENT_PARAMS;
                format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            sql!("INSERT INTO events (time, type, actor, payload) VALUES {values} RETURNING id");
        let mut q = sqlx::query_as::<_, (i64,)>(sql);
        for ev in chunk {
            q = q
                .bind(now)
                .bind(ev.kind.clone())
                .bind(ev.actor.clone())
                .bind(to_json(&ev.payload));
        }
        ids.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|(id,)| id));
    }
    ids.sort_unstable();
    Ok(ids)
}

impl Store {
    /// Appends an event and tells waiters.
    pub async fn append_event(&self, ev: NewEvent) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let id = append_in(&mut tx, self.dialect, &ev).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        Ok(id)
    }

    /// Lists events.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let mut sql = String::from("SELECT id, time, type, actor, payload FROM events WHERE 1 = 1");
        let mut n = 0;
        let mut arg = || {
            n += 1;
            format!("${n}")
        };
        let kind = filter.kind.as_deref().map(|k| match k.strip_suffix('*') {
            Some(prefix) => (true, prefix.to_string()),
            None => (false, k.to_string()),
        });
        if let Some((prefix, _)) = &kind {
            if *prefix {
                // Not LIKE: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
                let a = arg();
                sql.push_str(&format!(" AND substr(type, 1, length({a})) = {a}"));
            } else {
                sql.push_str(&format!(" AND type = {}", arg()));
            }
        }
        if filter.since_ms.is_some() {
            sql.push_str(&format!(" AND time >= {}", arg()));
        }
        if filter.until_ms.is_some() {
            sql.push_str(&format!(" AND time < {}", arg()));
        }
        if filter.actor.is_some() {
            sql.push_str(&format!(" AND actor = {}", arg()));
        }
        let text = filter
            .text
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(str::to_ascii_lowercase);
        if text.is_some() {
            // A substring test, not LIKE: the needle's `%` and `_` are plain characters.
            let find = match self.dialect {
                Dialect::Sqlite => "instr",
                Dialect::Postgres => "strpos",
            };
            let a = arg();
            sql.push_str(&format!(
                " AND ({find}(lower(type), {a}) > 0 OR {find}(lower(actor), {a}) > 0 \
                 OR {find}(lower(payload), {a}) > 0)"
            ));
        }
        if filter.cursor.is_some() {
            let op = match filter.order {
                EventOrder::Asc => ">",
                EventOrder::Desc => "<",
            };
            sql.push_str(&format!(" AND id {op} {}", arg()));
        }
        sql.push_str(match filter.order {
            EventOrder::Asc => " ORDER BY id ASC",
            EventOrder::Desc => " ORDER BY id DESC",
        });
        sql.push_str(&format!(" LIMIT {}", arg()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some((_, k)) = &kind {
            q = q.bind(k.clone());
        }
        if let Some(s) = filter.since_ms {
            q = q.bind(s);
        }
        if let Some(u) = filter.until_ms {
            q = q.bind(u);
        }
        if let Some(a) = &filter.actor {
            q = q.bind(a.clone());
        }
        if let Some(t) = text {
            q = q.bind(t);
        }
        if let Some(c) = filter.cursor {
            q = q.bind(c);
        }
        q = q.bind(i64::from(filter.limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(event).collect()
    }
}
