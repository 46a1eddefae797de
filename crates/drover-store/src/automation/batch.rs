//! What one batch of events led to, committed at once with the rule engine's cursor.

use drover_proto::executions::ExecutionStatus;
use sqlx::Row;

use super::actions::{NewAction, cancel_requested, finish_action_in, insert_action_in};
use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json, now_ms, to_json};
use crate::{Result, Store};

/// A rule that matched an event, and what came of it.
#[derive(Debug, Clone)]
pub struct Enforcement {
    /// The rule.
    pub rule_ref: String,
    /// The event it matched.
    pub event_id: i64,
    /// The execution it started.
    pub execution_id: Option<String>,
    /// `fired`, `throttled`, `rate_limited` or `failed`.
    pub status: String,
    /// Why it did not fire, or what failed.
    pub reason: Option<String>,
    /// The rendered throttle key.
    pub throttle_key: Option<String>,
    /// The execution whose completion was the event (trace links).
    pub source_execution: Option<String>,
}

/// A workflow's conductor state after a transition.
#[derive(Debug, Clone)]
pub struct WorkflowWrite {
    /// The workflow execution.
    pub execution_id: String,
    /// The workflow definition, on the first write.
    pub spec: Option<String>,
    /// The state.
    pub state: serde_json::Value,
}

/// Everything a batch of events led to.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The cursor the batch was read from.
    pub from: i64,
    /// The cursor after the batch (the last event id read).
    pub to: i64,
    /// Rule matches.
    pub enforcements: Vec<Enforcement>,
    /// Executions to queue.
    pub actions: Vec<NewAction>,
    /// Workflow states to write.
    pub workflows: Vec<WorkflowWrite>,
    /// Action executions to finish: id, status, result.
    pub finishes: Vec<(String, ExecutionStatus, serde_json::Value)>,
    /// Executions to flag for cancellation, with who asked. Each one flagged gets its
    /// own `execution.cancel_requested` event, so a child that is itself a workflow (or
    /// a remote run) is cancelled in turn.
    pub cancels: Vec<(String, String)>,
    /// Results to record on executions that are already final.
    pub results: Vec<(String, serde_json::Value)>,
    /// Events to append (after everything else).
    pub events: Vec<NewEvent>,
}

impl Batch {
    /// Whether the batch changes nothing but the cursor.
    pub fn is_empty(&self) -> bool {
        self.enforcements.is_empty()
            && self.actions.is_empty()
            && self.workflows.is_empty()
            && self.finishes.is_empty()
            && self.cancels.is_empty()
            && self.results.is_empty()
            && self.events.is_empty()
    }
}

/// One row of `rule_enforcements`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnforcementRow {
    /// Row id.
    pub id: i64,
    /// The rule.
    pub rule_ref: String,
    /// The matched event.
    pub event_id: i64,
    /// The started execution.
    pub execution_id: Option<String>,
    /// `fired`, `throttled`, `rate_limited`, `failed`.
    pub status: String,
    /// Why.
    pub reason: Option<String>,
    /// The execution whose completion was the event.
    pub source_execution: Option<String>,
    /// When (Unix ms).
    pub time: i64,
}

impl Store {
    /// Where the rule engine stands in the event log.
    pub async fn automation_cursor(&self) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        super::counter(&mut conn, "automation_cursor").await
    }

    /// Commits a batch if the cursor is still at `batch.from` (else another controller
    /// did it first: `Ok(false)`, nothing written). A batch with a negative `from` is
    /// not tied to the cursor (a workflow's start) and always commits.
    pub async fn commit_batch(&self, batch: &Batch) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if batch.from >= 0 {
            let moved = sqlx::query(
                "UPDATE counters SET value = $1 WHERE name = 'automation_cursor' AND value = $2",
            )
            .bind(batch.to)
            .bind(batch.from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(false);
            }
        }
        let mut events = Vec::new();
        let mut touched = Vec::new();
        for a in &batch.actions {
            if let Some(id) = insert_action_in(&mut tx, self.dialect, a).await? {
                events.push(id);
            }
        }
        for e in &batch.enforcements {
            sqlx::query(
                "INSERT INTO rule_enforcements (rule_ref, event_id, execution_id, status, reason, \
                 throttle_key, source_execution, time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&e.rule_ref)
            .bind(e.event_id)
            .bind(&e.execution_id)
            .bind(&e.status)
            .bind(&e.reason)
            .bind(&e.throttle_key)
            .bind(&e.source_execution)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for w in &batch.workflows {
            match &w.spec {
                Some(spec) => {
                    sqlx::query(
                        "INSERT INTO workflow_states (execution_id, spec, state, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (execution_id) DO UPDATE SET \
                         state = $3, updated_at = $4",
                    )
                    .bind(&w.execution_id)
                    .bind(spec)
                    .bind(to_json(&w.state))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "UPDATE workflow_states SET state = $1, updated_at = $2 \
                         WHERE execution_id = $3",
                    )
                    .bind(to_json(&w.state))
                    .bind(now)
                    .bind(&w.execution_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            touched.push(w.execution_id.clone());
        }
        for (id, actor) in &batch.cancels {
            let flagged: Option<(String,)> = sqlx::query_as(
                "UPDATE executions SET cancel_requested = 1 WHERE id = $1 \
                 AND status IN ('requested', 'running') AND cancel_requested = 0 \
                 RETURNING kind",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((kind,)) = flagged {
                let event = cancel_requested(id, &kind, actor);
                events.push(append_in(&mut tx, self.dialect, &event).await?);
            }
            touched.push(id.clone());
        }
        for (id, result) in &batch.results {
            sqlx::query("UPDATE executions SET result = $1 WHERE id = $2")
                .bind(to_json(result))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (id, status, result) in &batch.finishes {
            if let Some(e) = finish_action_in(&mut tx, self.dialect, id, *status, result).await? {
                events.push(e);
            }
            touched.push(id.clone());
        }
        for ev in &batch.events {
            events.push(append_in(&mut tx, self.dialect, ev).await?);
        }
        tx.commit().await?;
        for id in events {
            self.notifier.publish(Notice::Event { id });
        }
        for id in touched {
            self.notifier
                .publish(Notice::Execution { execution_id: id });
        }
        if !batch.actions.is_empty() || !batch.cancels.is_empty() {
            self.notifier.publish(Notice::Actions);
        }
        Ok(true)
    }

    /// A workflow's definition and conductor state.
    pub async fn workflow_state(
        &self,
        execution_id: &str,
    ) -> Result<Option<(String, serde_json::Value)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT spec, state FROM workflow_states WHERE execution_id = $1")
                .bind(execution_id)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some((spec, state)) => Ok(Some((spec, json("workflow_states", &state)?))),
            None => Ok(None),
        }
    }

    /// When the rule last fired with this throttle key (Unix ms).
    pub async fn last_fired(&self, rule_ref: &str, key: &str) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT MAX(time) FROM rule_enforcements WHERE rule_ref = $1 AND throttle_key = $2 \
             AND status = 'fired'",
        )
        .bind(rule_ref)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// How many times the rule fired since `since_ms`.
    pub async fn fired_since(&self, rule_ref: &str, since_ms: i64) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM rule_enforcements WHERE rule_ref = $1 AND status = 'fired' \
             AND time >= $2",
        )
        .bind(rule_ref)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Rule enforcements, newest first: of one rule, or every rule.
    pub async fn list_enforcements(
        &self,
        rule_ref: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EnforcementRow>> {
        let filter = if rule_ref.is_some() {
            "WHERE rule_ref = $2"
        } else {
            ""
        };
        let mut q = sqlx::query(sql!(
            "SELECT id, rule_ref, event_id, execution_id, status, reason, source_execution, time \
             FROM rule_enforcements {filter} ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit));
        if let Some(r) = rule_ref {
            q = q.bind(r.to_string());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(enforcement)
            .collect()
    }

    /// Enforcements linked to an execution: the one that started it (`execution_id`)
    /// and those its completion caused (`source_execution`).
    pub async fn enforcements_of(&self, execution_id: &str) -> Result<Vec<EnforcementRow>> {
        sqlx::query(
            "SELECT id, rule_ref, event_id, execution_id, status, reason, source_execution, time \
             FROM rule_enforcements WHERE execution_id = $1 OR source_execution = $1 ORDER BY id",
        )
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(enforcement)
        .collect()
    }
}

fn enforcement(r: &sqlx::any::AnyRow) -> Result<EnforcementRow> {
    Ok(EnforcementRow {
        id: r.try_get("id")?,
        rule_ref: r.try_get("rule_ref")?,
        event_id: r.try_get("event_id")?,
        execution_id: r.try_get("execution_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        source_execution: r.try_get("source_execution")?,
        time: r.try_get("time")?,
    })
}
