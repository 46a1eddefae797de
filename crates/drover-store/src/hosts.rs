//! Hosts, the agent side: enrollment, heartbeats, and up/down status. Reading hosts is
//! in `host_rows`; the provider side in `inventory`.

use std::collections::BTreeMap;

use drover_proto::agent::Facts;
use drover_proto::hosts::{Host, HostStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use drover_proto::events::types;
use serde_json::{Value, json as json_value};

use crate::events::{NewEvent, append_in, append_many_in};
use crate::host_changes::{Changes, NewChange, diff_json, diff_map, diff_opt, record_in};
use crate::host_rows::{COLUMNS, facts_of, host};
use crate::notify::Notice;
use crate::rows::{json, now_ms, to_json};
use crate::tokens::{self, NewToken};
use crate::{Result, Store, StoreError};

/// Result of an enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The host as stored.
    pub host: Host,
    /// False when a host of that name existed and kept its id (re-enrollment).
    pub created: bool,
    /// Number of older credentials of that host revoked by the re-enrollment.
    pub revoked_credentials: u64,
}

/// Result of a heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatOutcome {
    /// The host after the update.
    pub host: Host,
    /// True if this heartbeat brought the host back from `down`.
    pub came_up: bool,
}

/// What the agent side compares: the stored status, agent labels and facts of a host.
struct AgentSide {
    host: Host,
    status: String,
    labels: BTreeMap<String, String>,
    facts: Value,
}

fn agent_side(row: &AnyRow) -> Result<AgentSide> {
    let labels: String = row.try_get("labels")?;
    let facts: String = row.try_get("facts")?;
    Ok(AgentSide {
        host: host(row)?,
        status: row.try_get("status")?,
        labels: json("hosts", &labels)?,
        facts: facts_json(&facts_of(&facts)?),
    })
}

/// Facts as JSON, to compare them key by key.
fn facts_json(facts: &Facts) -> Value {
    serde_json::to_value(facts).unwrap_or(Value::Null)
}

/// The `host.changed` event of a change row.
pub(crate) fn changed_event(actor: &str, c: &NewChange, provider: Option<&str>) -> NewEvent {
    NewEvent::new(
        types::HOST_CHANGED,
        actor,
        json_value!({
            "host": c.host_name,
            "host_id": c.host_id,
            "provider": provider,
            "changes": c.changes,
        }),
    )
}

impl Store {
    /// Enrolls a host and stores its credential in one transaction. A host that enrolls
    /// again under the same name keeps its id; its older credentials are revoked. A host
    /// an inventory provider listed (`missing`) becomes `up` with its agent.
    pub async fn enroll_host(
        &self,
        new_id: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        facts: &Facts,
        credential: NewToken,
    ) -> Result<Enrolled> {
        let now = now_ms();
        let actor = format!("agent:{name}");
        let mut tx = self.begin_write().await?;
        // Insert first, so that concurrent enrollments under one name (an agent retrying,
        // two controllers) agree on one row: the losers wait for the winner's commit and
        // then take the re-enrollment path.
        let created = sqlx::query(
            "INSERT INTO hosts (id, name, status, labels, facts, enrolled_at, last_seen_at) \
             VALUES ($1, $2, 'up', $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(new_id)
        .bind(name)
        .bind(to_json(labels))
        .bind(to_json(facts))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let mut events = Vec::new();
        let (host_id, revoked, change) = if created {
            let mut changes = Changes::new();
            diff_opt(&mut changes, "status", None, Some(HostStatus::Up.as_str()));
            diff_map(&mut changes, "labels", &BTreeMap::new(), labels);
            events.push(NewEvent::new(
                types::HOST_ADDED,
                &actor,
                json_value!({ "host": name, "host_id": new_id, "provider": null }),
            ));
            let change = NewChange {
                host_id: new_id.to_string(),
                host_name: name.to_string(),
                kind: "added",
                changes,
            };
            (new_id.to_string(), 0, Some(change))
        } else {
            // The row lock queues concurrent re-enrollments, so that each one sees (and
            // revokes) the credential of the one before.
            let row = sqlx::query(sql!(
                "SELECT {COLUMNS} FROM hosts WHERE name = $1{}",
                self.dialect.for_update()
            ))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let old = agent_side(&row)?;
            let id = old.host.id.clone();
            let revoked = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE host_id = $2 AND kind = 'agent' \
                 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // A provider-known host gets its agent now: that is its enrollment.
            let was_missing = old.status == HostStatus::Missing.as_str();
            let enrolled_at = if was_missing {
                now
            } else {
                old.host.enrolled_at.timestamp_millis()
            };
            sqlx::query(
                "UPDATE hosts SET labels = $1, facts = $2, status = 'up', last_seen_at = $3, \
                 enrolled_at = $4 WHERE id = $5",
            )
            .bind(to_json(labels))
            .bind(to_json(facts))
            .bind(now)
            .bind(enrolled_at)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let mut changes = Changes::new();
            diff_opt(
                &mut changes,
                "status",
                Some(&old.status),
                Some(HostStatus::Up.as_str()),
            );
            diff_map(&mut changes, "labels", &old.labels, labels);
            if !was_missing {
                diff_json(&mut changes, "facts", &old.facts, &facts_json(facts));
            }
            let change = (!changes.is_empty()).then(|| NewChange {
                host_id: id.clone(),
                host_name: name.to_string(),
                kind: "changed",
                changes,
            });
            if let Some(c) = &change {
                events.push(changed_event(&actor, c, old.host.provider.as_deref()));
            }
            (id, revoked, change)
        };
        let credential = NewToken {
            host_id: Some(host_id.clone()),
            ..credential
        };
        tokens::insert(&mut *tx, &credential, now).await?;
        if let Some(c) = change {
            record_in(&mut tx, self.dialect, &[c], &actor).await?;
        }
        events.push(NewEvent::new(
            types::HOST_REGISTERED,
            &actor,
            json_value!({
                "host_id": host_id,
                "name": name,
                "labels": labels,
                "re_enrolled": !created,
                "revoked_credentials": revoked,
                "credential_id": credential.id,
            }),
        ));
        let mut event_ids = Vec::with_capacity(events.len());
        for ev in &events {
            event_ids.push(append_in(&mut tx, self.dialect, ev).await?);
        }
        tx.commit().await?;
        for id in event_ids {
            self.notifier.publish(Notice::Event { id });
        }
        self.notifier.publish(Notice::Host {
            host_id: host_id.clone(),
        });
        let host = self
            .get_host(&host_id)
            .await?
            .ok_or_else(|| StoreError::Conflict("host vanished after enrollment".into()))?;
        Ok(Enrolled {
            host,
            created,
            revoked_credentials: revoked,
        })
    }

    /// Records a heartbeat: refreshes `last_seen_at`, facts and labels when given, and
    /// marks the host up. `came_up` is true for exactly one heartbeat after a `down`,
    /// even with several controllers. Facts or labels that differ from the stored ones
    /// are recorded as a change (`host.changed`); equal ones write no history.
    pub async fn heartbeat(
        &self,
        host_id: &str,
        facts: Option<&Facts>,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Result<Option<HeartbeatOutcome>> {
        let now = now_ms();
        if facts.is_none() && labels.is_none() {
            // The usual heartbeat of a host that is up: one statement.
            let row = sqlx::query(sql!(
                "UPDATE hosts SET last_seen_at = $1 WHERE id = $2 AND status = 'up' \
                 RETURNING {COLUMNS}"
            ))
            .bind(now)
            .bind(host_id)
            .fetch_optional(&mut *self.writer().await?)
            .await?;
            if let Some(row) = row {
                return Ok(Some(HeartbeatOutcome {
                    host: host(&row)?,
                    came_up: false,
                }));
            }
        }
        let mut tx = self.begin_write().await?;
        // The row lock orders concurrent heartbeats (several controllers): only the first
        // one after a `down` sees it down.
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM hosts WHERE id = $1{}",
            self.dialect.for_update()
        ))
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let old = agent_side(&row)?;
        let came_up = old.status == HostStatus::Down.as_str();
        let status = if came_up {
            HostStatus::Up.as_str()
        } else {
            old.status.as_str()
        };
        let mut changes = Changes::new();
        if let Some(l) = labels {
            diff_map(&mut changes, "labels", &old.labels, l);
        }
        let new_facts = facts.map(facts_json);
        if let Some(f) = &new_facts {
            diff_json(&mut changes, "facts", &old.facts, f);
        }
        let mut sql = String::from("UPDATE hosts SET last_seen_at = $1, status = $2");
        if facts.is_some() {
            sql.push_str(", facts = $4");
        }
        if labels.is_some() {
            sql.push_str(if facts.is_some() {
                ", labels = $5"
            } else {
                ", labels = $4"
            });
        }
        sql.push_str(&format!(" WHERE id = $3 RETURNING {COLUMNS}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(status)
            .bind(host_id);
        if let Some(f) = facts {
            q = q.bind(to_json(f));
        }
        if let Some(l) = labels {
            q = q.bind(to_json(l));
        }
        let host = host(&q.fetch_one(&mut *tx).await?)?;
        let actor = format!("agent:{}", host.name);
        let mut rows = Vec::new();
        let mut events = Vec::new();
        if came_up {
            let mut up = Changes::new();
            diff_opt(&mut up, "status", Some(&old.status), Some(status));
            rows.push(NewChange {
                host_id: host.id.clone(),
                host_name: host.name.clone(),
                kind: "up",
                changes: up,
            });
            events.push(NewEvent::new(
                types::HOST_UP,
                &actor,
                json_value!({ "host_id": host.id, "name": host.name }),
            ));
        }
        if !changes.is_empty() {
            let c = NewChange {
                host_id: host.id.clone(),
                host_name: host.name.clone(),
                kind: "changed",
                changes,
            };
            events.push(changed_event(&actor, &c, host.provider.as_deref()));
            rows.push(c);
        }
        record_in(&mut tx, self.dialect, &rows, &actor).await?;
        let mut event_ids = Vec::with_capacity(events.len());
        for ev in &events {
            event_ids.push(append_in(&mut tx, self.dialect, ev).await?);
        }
        tx.commit().await?;
        for id in event_ids {
            self.notifier.publish(Notice::Event { id });
        }
        if came_up {
            self.notifier.publish(Notice::Host {
                host_id: host.id.clone(),
            });
        }
        Ok(Some(HeartbeatOutcome { host, came_up }))
    }

    /// Marks `down` every host whose last heartbeat is older than `cutoff_ms`, with a
    /// `host.down` event and a change row each, and returns them. A host is returned by
    /// exactly one call, even with several controllers. Hosts no agent ever enrolled on
    /// (`missing`) are never marked down.
    pub async fn mark_down_stale(&self, cutoff_ms: i64) -> Result<Vec<Host>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sql!(
            "UPDATE hosts SET status = 'down' WHERE status = 'up' AND last_seen_at < $1 \
             RETURNING {COLUMNS}"
        ))
        .bind(cutoff_ms)
        .fetch_all(&mut *tx)
        .await?;
        let hosts = rows.iter().map(host).collect::<Result<Vec<_>>>()?;
        let now = now_ms();
        let mut changes = Vec::with_capacity(hosts.len());
        let mut events = Vec::with_capacity(hosts.len());
        for h in &hosts {
            let mut down = Changes::new();
            diff_opt(
                &mut down,
                "status",
                Some(HostStatus::Up.as_str()),
                Some(HostStatus::Down.as_str()),
            );
            changes.push(NewChange {
                host_id: h.id.clone(),
                host_name: h.name.clone(),
                kind: "down",
                changes: down,
            });
            events.push(NewEvent::new(
                types::HOST_DOWN,
                "system",
                json_value!({
                    "host_id": h.id,
                    "name": h.name,
                    "last_seen_at": h.last_seen_at,
                    "silent_ms": now - h.last_seen_at.timestamp_millis(),
                }),
            ));
        }
        record_in(&mut tx, self.dialect, &changes, "system").await?;
        let event_ids = append_many_in(&mut tx, self.dialect, &events).await?;
        tx.commit().await?;
        for id in event_ids {
            self.notifier.publish(Notice::Event { id });
        }
        for h in &hosts {
            self.notifier.publish(Notice::Host {
                host_id: h.id.clone(),
            });
        }
        Ok(hosts)
    }
}
