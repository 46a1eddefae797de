//! Hosts: enrollment, heartbeats, and up/down status.

use std::collections::BTreeMap;

use drover_proto::agent::Facts;
use drover_proto::hosts::{Host, HostStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use drover_proto::events::types;
use serde_json::json as json_value;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json, now_ms, parse_enum, time, to_json};
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

const COLUMNS: &str = "id, name, status, labels, facts, enrolled_at, last_seen_at";

fn host(row: &AnyRow) -> Result<Host> {
    let status: String = row.try_get("status")?;
    let labels: String = row.try_get("labels")?;
    let facts: String = row.try_get("facts")?;
    Ok(Host {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: parse_enum("hosts", &status, HostStatus::parse)?,
        labels: json("hosts", &labels)?,
        facts: json("hosts", &facts)?,
        enrolled_at: time(row.try_get("enrolled_at")?),
        last_seen_at: time(row.try_get("last_seen_at")?),
    })
}

impl Store {
    /// Enrolls a host and stores its credential in one transaction. A host that enrolls
    /// again under the same name keeps its id; its older credentials are revoked.
    pub async fn enroll_host(
        &self,
        new_id: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        facts: &Facts,
        credential: NewToken,
    ) -> Result<Enrolled> {
        let now = now_ms();
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
        let (host_id, revoked) = if created {
            (new_id.to_string(), 0)
        } else {
            // The row lock queues concurrent re-enrollments, so that each one sees (and
            // revokes) the credential of the one before.
            let (id,): (String,) = sqlx::query_as(sql!(
                "SELECT id FROM hosts WHERE name = $1{}",
                self.dialect.for_update()
            ))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let revoked = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE host_id = $2 AND kind = 'agent' \
                 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE hosts SET labels = $1, facts = $2, status = 'up', last_seen_at = $3 \
                 WHERE id = $4",
            )
            .bind(to_json(labels))
            .bind(to_json(facts))
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            (id, revoked)
        };
        let credential = NewToken {
            host_id: Some(host_id.clone()),
            ..credential
        };
        tokens::insert(&mut *tx, &credential, now).await?;
        let event_id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::HOST_REGISTERED,
                &format!("agent:{name}"),
                json_value!({
                    "host_id": host_id,
                    "name": name,
                    "labels": labels,
                    "re_enrolled": !created,
                    "revoked_credentials": revoked,
                    "credential_id": credential.id,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id: event_id });
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
    /// even with several controllers.
    pub async fn heartbeat(
        &self,
        host_id: &str,
        facts: Option<&Facts>,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Result<Option<HeartbeatOutcome>> {
        let now = now_ms();
        let came_up = sqlx::query(
            "UPDATE hosts SET status = 'up', last_seen_at = $1 WHERE id = $2 AND status = 'down'",
        )
        .bind(now)
        .bind(host_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let mut sql = String::from("UPDATE hosts SET last_seen_at = $1");
        if facts.is_some() {
            sql.push_str(", facts = $3");
        }
        if labels.is_some() {
            sql.push_str(if facts.is_some() {
                ", labels = $4"
            } else {
                ", labels = $3"
            });
        }
        sql.push_str(&format!(" WHERE id = $2 RETURNING {COLUMNS}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(host_id);
        if let Some(f) = facts {
            q = q.bind(to_json(f));
        }
        if let Some(l) = labels {
            q = q.bind(to_json(l));
        }
        let row = q.fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let host = host(&row)?;
        if came_up {
            self.append_event(NewEvent::new(
                types::HOST_UP,
                &format!("agent:{}", host.name),
                json_value!({ "host_id": host.id, "name": host.name }),
            ))
            .await?;
            self.notifier.publish(Notice::Host {
                host_id: host.id.clone(),
            });
        }
        Ok(Some(HeartbeatOutcome { host, came_up }))
    }

    /// Marks `down` every host whose last heartbeat is older than `cutoff_ms`, with a
    /// `host.down` event each, and returns them. A host is returned by exactly one call,
    /// even with several controllers.
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
        let mut events = Vec::with_capacity(hosts.len());
        for h in &hosts {
            let silent_ms = now_ms() - h.last_seen_at.timestamp_millis();
            events.push(
                append_in(
                    &mut tx,
                    self.dialect,
                    &NewEvent::new(
                        types::HOST_DOWN,
                        "system",
                        json_value!({
                            "host_id": h.id,
                            "name": h.name,
                            "last_seen_at": h.last_seen_at,
                            "silent_ms": silent_ms,
                        }),
                    ),
                )
                .await?,
            );
        }
        tx.commit().await?;
        for id in events {
            self.notifier.publish(Notice::Event { id });
        }
        for h in &hosts {
            self.notifier.publish(Notice::Host {
                host_id: h.id.clone(),
            });
        }
        Ok(hosts)
    }

    /// Every host, by name.
    pub async fn list_hosts(&self) -> Result<Vec<Host>> {
        let rows = sqlx::query(sql!("SELECT {COLUMNS} FROM hosts ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(host).collect()
    }

    /// A host by id.
    pub async fn get_host(&self, id: &str) -> Result<Option<Host>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM hosts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host).transpose()
    }

    /// A host by name.
    pub async fn get_host_by_name(&self, name: &str) -> Result<Option<Host>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM hosts WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host).transpose()
    }
}
