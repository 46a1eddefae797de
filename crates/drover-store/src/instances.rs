//! Live instances as agents report them. A report replaces the host's whole set; every
//! difference becomes an event (`instance.changed`, `instance.removed`, and
//! `instance.drifted` when an agent says an instance left the state it was left in).

use drover_proto::deploy::{Health, InstanceReport, LifecycleState};
use drover_proto::events::types;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{now_ms, time};
use crate::{Result, Store};

/// A live instance with its host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LiveRow {
    /// Host id.
    pub host_id: String,
    /// Host name.
    pub host_name: String,
    /// What the agent reported last.
    pub report: InstanceReport,
    /// When it was last reported changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn report(row: &AnyRow) -> Result<InstanceReport> {
    let state: String = row.try_get("state")?;
    let health: String = row.try_get("health")?;
    let idx: i64 = row.try_get("idx")?;
    let pid: Option<i64> = row.try_get("pid")?;
    let restarts: i64 = row.try_get("restarts")?;
    Ok(InstanceReport {
        service: row.try_get("service")?,
        index: u32::try_from(idx).unwrap_or(0),
        version: row.try_get("version")?,
        state: crate::rows::parse_enum("instances", &state, LifecycleState::parse)?,
        health: crate::rows::parse_enum("instances", &health, Health::parse)?,
        spec_hash: row.try_get("spec_hash")?,
        pid: pid.and_then(|p| u32::try_from(p).ok()),
        restarts: u32::try_from(restarts).unwrap_or(0),
        drift: row.try_get("drift")?,
    })
}

/// A live instance row joined with its host's name.
fn live_row(r: &AnyRow) -> Result<LiveRow> {
    Ok(LiveRow {
        host_id: r.try_get("host_id")?,
        host_name: r.try_get("host_name")?,
        report: report(r)?,
        updated_at: time(r.try_get("updated_at")?),
    })
}

/// Which live instances [`Store::instances_page`] reads.
#[derive(Debug, Clone, Copy)]
pub struct InstanceQuery<'a> {
    /// Only this host's (by name).
    pub host: Option<&'a str>,
    /// Only this service's.
    pub service: Option<&'a str>,
    /// Only instances after this `(host name, service, index)`, in list order.
    pub after: Option<(&'a str, &'a str, u32)>,
    /// At most this many.
    pub limit: u32,
}

impl Store {
    /// Replaces a host's live instances with `reports`, appending one event per
    /// difference. Returns how many instances changed.
    pub async fn replace_instances(
        &self,
        host_id: &str,
        host_name: &str,
        reports: &[InstanceReport],
    ) -> Result<usize> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT * FROM instances WHERE host_id = $1 ORDER BY service, idx")
            .bind(host_id)
            .fetch_all(&mut *tx)
            .await?;
        let before = rows.iter().map(report).collect::<Result<Vec<_>>>()?;
        let mut events: Vec<NewEvent> = Vec::new();
        let actor = format!("agent:{host_name}");
        for r in reports {
            let old = before
                .iter()
                .find(|b| b.service == r.service && b.index == r.index);
            if old == Some(r) {
                continue;
            }
            sqlx::query(
                "INSERT INTO instances (host_id, service, idx, version, state, health, spec_hash, \
                 pid, restarts, drift, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (host_id, service, idx) DO UPDATE SET version = $4, state = $5, \
                 health = $6, spec_hash = $7, pid = $8, restarts = $9, drift = $10, updated_at = $11",
            )
            .bind(host_id)
            .bind(&r.service)
            .bind(i64::from(r.index))
            .bind(&r.version)
            .bind(r.state.as_str())
            .bind(r.health.as_str())
            .bind(&r.spec_hash)
            .bind(r.pid.map(i64::from))
            .bind(i64::from(r.restarts))
            .bind(&r.drift)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let drifted =
                r.drift.is_some() && old.and_then(|o| o.drift.as_ref()) != r.drift.as_ref();
            if drifted {
                events.push(NewEvent::new(
                    types::INSTANCE_DRIFTED,
                    &actor,
                    serde_json::json!({
                        "host_id": host_id, "host": host_name, "service": r.service,
                        "index": r.index, "version": r.version, "state": r.state.as_str(),
                        "drift": r.drift,
                    }),
                ));
            }
            let visible = old.is_none_or(|o| {
                o.version != r.version
                    || o.state != r.state
                    || o.health != r.health
                    || o.spec_hash != r.spec_hash
            });
            if visible {
                events.push(NewEvent::new(
                    types::INSTANCE_CHANGED,
                    &actor,
                    serde_json::json!({
                        "host_id": host_id, "host": host_name, "service": r.service,
                        "index": r.index,
                        "from": old.map(|o| serde_json::json!({
                            "version": o.version, "state": o.state.as_str(), "health": o.health.as_str(),
                        })),
                        "to": { "version": r.version, "state": r.state.as_str(), "health": r.health.as_str() },
                    }),
                ));
            }
        }
        for b in &before {
            if !reports
                .iter()
                .any(|r| r.service == b.service && r.index == b.index)
            {
                sqlx::query(
                    "DELETE FROM instances WHERE host_id = $1 AND service = $2 AND idx = $3",
                )
                .bind(host_id)
                .bind(&b.service)
                .bind(i64::from(b.index))
                .execute(&mut *tx)
                .await?;
                events.push(NewEvent::new(
                    types::INSTANCE_REMOVED,
                    &actor,
                    serde_json::json!({
                        "host_id": host_id, "host": host_name, "service": b.service,
                        "index": b.index, "version": b.version,
                    }),
                ));
            }
        }
        let mut ids = Vec::with_capacity(events.len());
        for ev in &events {
            ids.push(append_in(&mut tx, self.dialect, ev).await?);
        }
        tx.commit().await?;
        for id in ids {
            self.notifier.publish(Notice::Event { id });
        }
        if !events.is_empty() {
            self.notifier.publish(Notice::Host {
                host_id: host_id.to_string(),
            });
        }
        Ok(events.len())
    }

    /// How many live instances (in any state but `none`) each of `host_ids` has (hosts
    /// with none are absent).
    /// Reads only those hosts' rows, through the primary key.
    pub async fn instance_counts(
        &self,
        host_ids: &[String],
    ) -> Result<std::collections::HashMap<String, u32>> {
        let mut counts = std::collections::HashMap::new();
        for chunk in host_ids.chunks(self.dialect.batch_rows(1)) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT host_id, COUNT(*) AS n FROM instances WHERE host_id IN ({}) \
                 AND state <> 'none' GROUP BY host_id",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                let n: i64 = row.try_get("n")?;
                counts.insert(
                    row.try_get("host_id")?,
                    u32::try_from(n).unwrap_or(u32::MAX),
                );
            }
        }
        Ok(counts)
    }

    /// Every live instance, by service, host name and index.
    pub async fn list_instances(&self) -> Result<Vec<LiveRow>> {
        let rows = sqlx::query(
            "SELECT i.*, h.name AS host_name FROM instances i JOIN hosts h ON h.id = i.host_id \
             ORDER BY i.service, h.name, i.idx",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(live_row).collect()
    }

    /// The live instances `query` selects, by host name, service and index: the
    /// hosts in name order, each host's instances through the primary key.
    pub async fn instances_page(&self, query: &InstanceQuery<'_>) -> Result<Vec<LiveRow>> {
        let mut sql = String::from(
            "SELECT i.*, h.name AS host_name FROM instances i JOIN hosts h ON h.id = i.host_id \
             WHERE 1 = 1",
        );
        let mut n = 0;
        let mut mark = || {
            n += 1;
            format!("${n}")
        };
        if query.host.is_some() {
            sql.push_str(&format!(" AND h.name = {}", mark()));
        }
        if query.service.is_some() {
            sql.push_str(&format!(" AND i.service = {}", mark()));
        }
        if query.after.is_some() {
            // The leading `h.name >= …` lets the planner start the index scan at the
            // cursor; the OR alone makes it scan every host before it.
            let (h0, h1, h2, s1, s2, x) = (mark(), mark(), mark(), mark(), mark(), mark());
            sql.push_str(&format!(
                " AND h.name >= {h0} AND (h.name > {h1} OR (h.name = {h2} AND (i.service > {s1} \
                 OR (i.service = {s2} AND i.idx > {x}))))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY h.name, i.service, i.idx LIMIT {}",
            query.limit
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(host) = query.host {
            q = q.bind(host.to_string());
        }
        if let Some(service) = query.service {
            q = q.bind(service.to_string());
        }
        if let Some((host, service, idx)) = query.after {
            q = q
                .bind(host.to_string())
                .bind(host.to_string())
                .bind(host.to_string())
                .bind(service.to_string())
                .bind(service.to_string())
                .bind(i64::from(idx));
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(live_row).collect()
    }

    /// One host's live instances, by service and index (through the primary key).
    pub async fn host_instances(&self, host_id: &str) -> Result<Vec<LiveRow>> {
        let rows = sqlx::query(
            "SELECT i.*, h.name AS host_name FROM instances i JOIN hosts h ON h.id = i.host_id \
             WHERE i.host_id = $1 ORDER BY i.service, i.idx",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(live_row).collect()
    }
}
