//! The history of every host (`host_changes`): what changed, when and by whom, kept
//! after the host is gone. Also draining, an operator's change of a host.

use std::collections::BTreeMap;

use drover_proto::events::types;
use drover_proto::hosts::{FieldChange, Host, HostChange};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::host_rows::{COLUMNS, host as host_row};
use crate::notify::Notice;
use crate::rows::{json, now_ms, time, to_json};
use crate::{Dialect, Result, Store, StoreError};

/// Changed fields of one host, by field name (`address`, `labels.role`, `facts.cpus`…).
pub(crate) type Changes = BTreeMap<String, FieldChange>;

/// A change row to write.
#[derive(Debug, Clone)]
pub(crate) struct NewChange {
    pub host_id: String,
    pub host_name: String,
    /// `added`, `changed`, `removed`, `up`, `down`, `drained` or `undrained`.
    pub kind: &'static str,
    pub changes: Changes,
}

/// Records `field` as changed from `from` to `to` when they differ.
pub(crate) fn diff_value(
    changes: &mut Changes,
    field: &str,
    from: Option<Value>,
    to: Option<Value>,
) {
    if from != to {
        changes.insert(field.to_string(), FieldChange { from, to });
    }
}

/// Records an optional text field.
pub(crate) fn diff_opt(changes: &mut Changes, field: &str, from: Option<&str>, to: Option<&str>) {
    diff_value(changes, field, from.map(Value::from), to.map(Value::from));
}

/// Records each key of two maps that differs, as `prefix.key`.
pub(crate) fn diff_map(
    changes: &mut Changes,
    prefix: &str,
    from: &BTreeMap<String, String>,
    to: &BTreeMap<String, String>,
) {
    for (k, v) in from {
        if to.get(k) != Some(v) {
            let new = to.get(k).map(|n| Value::from(n.as_str()));
            diff_value(
                changes,
                &format!("{prefix}.{k}"),
                Some(Value::from(v.as_str())),
                new,
            );
        }
    }
    for (k, v) in to {
        if !from.contains_key(k) {
            diff_value(
                changes,
                &format!("{prefix}.{k}"),
                None,
                Some(Value::from(v.as_str())),
            );
        }
    }
}

/// Records each top-level key of two JSON objects that differs, as `prefix.key`.
pub(crate) fn diff_json(changes: &mut Changes, prefix: &str, from: &Value, to: &Value) {
    let empty = serde_json::Map::new();
    let from = from.as_object().unwrap_or(&empty);
    let to = to.as_object().unwrap_or(&empty);
    for (k, v) in from {
        diff_value(
            changes,
            &format!("{prefix}.{k}"),
            Some(v.clone()),
            to.get(k).cloned(),
        );
    }
    for (k, v) in to {
        if !from.contains_key(k) {
            diff_value(changes, &format!("{prefix}.{k}"), None, Some(v.clone()));
        }
    }
}

/// Parameters per change row.
const CHANGE_PARAMS: usize = 6;

/// Writes change rows inside an open transaction, a few hundred per statement.
pub(crate) async fn record_in(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    rows: &[NewChange],
    actor: &str,
) -> Result<()> {
    let now = now_ms();
    for chunk in rows.chunks(dialect.batch_rows(CHANGE_PARAMS)) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = i * CHANGE_PARAMS;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = sqlx::query(sql!(
            "INSERT INTO host_changes (host_id, host_name, time, kind, actor, changes) \
             VALUES {values}"
        ));
        for c in chunk {
            q = q
                .bind(c.host_id.clone())
                .bind(c.host_name.clone())
                .bind(now)
                .bind(c.kind)
                .bind(actor.to_string())
                .bind(to_json(&c.changes));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

fn change(row: &AnyRow) -> Result<HostChange> {
    let changes: String = row.try_get("changes")?;
    Ok(HostChange {
        id: row.try_get("id")?,
        host_id: row.try_get("host_id")?,
        host_name: row.try_get("host_name")?,
        time: time(row.try_get("time")?),
        kind: row.try_get("kind")?,
        actor: row.try_get("actor")?,
        changes: json("host_changes", &changes)?,
    })
}

impl Store {
    /// The history of a host (by name or id), newest first, at most `limit` entries,
    /// those older than change `before` when given (keyset paging by change id).
    /// It stays readable after the host was removed. `NotFound` when neither a host nor
    /// any history goes by that name or id.
    pub async fn host_history(
        &self,
        host: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HostChange>> {
        let current: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM hosts WHERE name = $1 OR id = $1 ORDER BY name = $1 DESC LIMIT 1",
        )
        .bind(host)
        .fetch_optional(&self.pool)
        .await?;
        let host_id = match current {
            Some((id,)) => id,
            None => {
                let gone: Option<(String,)> = sqlx::query_as(
                    "SELECT host_id FROM host_changes WHERE host_name = $1 OR host_id = $1 \
                     ORDER BY id DESC LIMIT 1",
                )
                .bind(host)
                .fetch_optional(&self.pool)
                .await?;
                gone.ok_or_else(|| StoreError::NotFound(format!("no host named `{host}`")))?
                    .0
            }
        };
        let rows = sqlx::query(
            "SELECT id, host_id, host_name, time, kind, actor, changes FROM host_changes \
             WHERE host_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(host_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change).collect()
    }

    /// Drains a host (by name or id) or puts it back into service, with a
    /// `host.drained`/`host.undrained` event and a change row. Unchanged, it writes
    /// nothing. `NotFound` for an unknown host.
    pub async fn set_host_drained(&self, host: &str, drained: bool, actor: &str) -> Result<Host> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM hosts WHERE name = $1 OR id = $1 ORDER BY name = $1 DESC \
             LIMIT 1{}",
            self.dialect.for_update()
        ))
        .bind(host)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("no host named `{host}`")));
        };
        let mut current = host_row(&row)?;
        if current.drained == drained {
            tx.commit().await?;
            return Ok(current);
        }
        sqlx::query("UPDATE hosts SET drained = $1 WHERE id = $2")
            .bind(i64::from(drained))
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
        let kind = if drained { "drained" } else { "undrained" };
        let mut changes = Changes::new();
        diff_value(
            &mut changes,
            "drained",
            Some(json!(!drained)),
            Some(json!(drained)),
        );
        record_in(
            &mut tx,
            self.dialect,
            &[NewChange {
                host_id: current.id.clone(),
                host_name: current.name.clone(),
                kind,
                changes,
            }],
            actor,
        )
        .await?;
        let event_id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                if drained {
                    types::HOST_DRAINED
                } else {
                    types::HOST_UNDRAINED
                },
                actor,
                json!({ "host": current.name, "host_id": current.id }),
            ),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id: event_id });
        self.notifier.publish(Notice::Host {
            host_id: current.id.clone(),
        });
        current.drained = drained;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_json_differ_by_key() {
        let mut c = Changes::new();
        let a: BTreeMap<String, String> =
            [("x".into(), "1".into()), ("y".into(), "2".into())].into();
        let b: BTreeMap<String, String> =
            [("x".into(), "1".into()), ("z".into(), "3".into())].into();
        diff_map(&mut c, "labels", &a, &b);
        assert_eq!(c.len(), 2);
        assert_eq!(c["labels.y"].to, None);
        assert_eq!(c["labels.z"].from, None);
        let mut c = Changes::new();
        diff_json(
            &mut c,
            "facts",
            &json!({"cpus": 2, "os": "linux"}),
            &json!({"cpus": 4, "os": "linux"}),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c["facts.cpus"].to, Some(json!(4)));
        let mut c = Changes::new();
        diff_opt(&mut c, "address", Some("a"), Some("a"));
        assert!(c.is_empty());
    }
}
