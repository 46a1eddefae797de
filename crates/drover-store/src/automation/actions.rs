//! Action executions: recorded as `requested`, claimed by one controller's executor,
//! finished with the runner's result. They live in `executions` (kind `action`).
//!
//! A claim has a lease (`claim_until`). Runs that finish inside the controller (local
//! shell, HTTP, built-ins) renew it; if the controller dies, the lease runs out and the
//! action is queued again. Actions driven by later events (workflows, remote runs on
//! agents) drop the lease once started: what happens next is in the event log.

use drover_proto::events::types;
use drover_proto::executions::{Execution, ExecutionStatus};
use serde_json::json;
use sqlx::Row;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json, now_ms, to_json};
use crate::{Dialect, Result, Store};

type Tx = crate::write::WriteTx;

/// An action execution to record.
#[derive(Debug, Clone, Default)]
pub struct NewAction {
    /// Unique id (for a workflow task, derived from the workflow and task key).
    pub id: String,
    /// The action (`pack.name`).
    pub action_ref: String,
    /// Who asked (a user, `rule:<ref>`, `workflow:<id>`).
    pub actor: String,
    /// What is shown: `{action, runner, parameters}` with secrets masked.
    pub spec: serde_json::Value,
    /// The parameters that run, secrets encrypted by the caller.
    pub params: serde_json::Value,
    /// The workflow it is a task of.
    pub parent_id: Option<String>,
    /// Its task key in that workflow.
    pub task_key: Option<String>,
    /// The rule that started it.
    pub rule_ref: Option<String>,
    /// The event that rule matched.
    pub event_id: Option<i64>,
    /// Not to start before this time (Unix ms): task delays, retry delays.
    pub not_before: Option<i64>,
}

/// An action execution this controller now runs.
#[derive(Debug, Clone)]
pub struct ClaimedAction {
    /// Execution id.
    pub id: String,
    /// The action.
    pub action_ref: String,
    /// Who asked.
    pub actor: String,
    /// The parameters to run with (secrets encrypted).
    pub params: serde_json::Value,
    /// The workflow it is a task of.
    pub parent_id: Option<String>,
    /// How many times it was started before.
    pub attempt: u32,
}

/// Inserts an action execution with its `execution.requested` event. A workflow task
/// that already has an execution is left alone (a replayed batch). Returns the event id,
/// or `None` when nothing was inserted.
pub(crate) async fn insert_action_in(
    tx: &mut Tx,
    dialect: Dialect,
    new: &NewAction,
) -> Result<Option<i64>> {
    let none = to_json(&drover_proto::agent::CommandSpec::Exec {
        argv: Vec::new(),
        timeout_ms: None,
    });
    let inserted = sqlx::query(
        "INSERT INTO executions (id, kind, status, actor, selector, spec, command, \
         cancel_requested, created_at, action_ref, parent_id, task_key, rule_ref, event_id, \
         params, not_before, attempt) VALUES ($1, 'action', 'requested', $2, '', $3, $4, 0, $5, \
         $6, $7, $8, $9, $10, $11, $12, 0) ON CONFLICT DO NOTHING",
    )
    .bind(&new.id)
    .bind(&new.actor)
    .bind(to_json(&new.spec))
    .bind(none)
    .bind(now_ms())
    .bind(&new.action_ref)
    .bind(&new.parent_id)
    .bind(&new.task_key)
    .bind(&new.rule_ref)
    .bind(new.event_id)
    .bind(to_json(&new.params))
    .bind(new.not_before)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    let id = append_in(
        tx,
        dialect,
        &NewEvent::new(
            types::EXECUTION_REQUESTED,
            &new.actor,
            json!({
                "execution_id": new.id,
                "kind": "action",
                "action": new.action_ref,
                "parameters": new.spec.get("parameters"),
                "parent_id": new.parent_id,
                "rule": new.rule_ref,
                "trigger_event": new.event_id,
            }),
        ),
    )
    .await?;
    Ok(Some(id))
}

/// Finishes an action execution that is not final yet, with its `execution.finished`
/// event. Returns the event id, or `None` when it was already final.
pub(crate) async fn finish_action_in(
    tx: &mut Tx,
    dialect: Dialect,
    id: &str,
    status: ExecutionStatus,
    result: &serde_json::Value,
) -> Result<Option<i64>> {
    let now = now_ms();
    let row = sqlx::query(
        "UPDATE executions SET status = $1, finished_at = $2, result = $3, claimed_by = NULL, \
         claim_until = NULL, started_at = COALESCE(started_at, $2) WHERE id = $4 \
         AND kind = 'action' AND status IN ('requested', 'running') \
         RETURNING actor, action_ref, parent_id, task_key, rule_ref, started_at",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(to_json(result))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let actor: String = row.try_get("actor")?;
    let event = append_in(
        tx,
        dialect,
        &NewEvent::new(
            types::EXECUTION_FINISHED,
            &actor,
            json!({
                "execution_id": id,
                "kind": "action",
                "status": status.as_str(),
                "action": row.try_get::<Option<String>, _>("action_ref")?,
                "parent_id": row.try_get::<Option<String>, _>("parent_id")?,
                "task_key": row.try_get::<Option<String>, _>("task_key")?,
                "rule": row.try_get::<Option<String>, _>("rule_ref")?,
                "started_at": row.try_get::<Option<i64>, _>("started_at")?,
            }),
        ),
    )
    .await?;
    Ok(Some(event))
}

/// The `execution.cancel_requested` event for execution `id` of `kind`.
pub(crate) fn cancel_requested(id: &str, kind: &str, actor: &str) -> NewEvent {
    NewEvent::new(
        types::EXECUTION_CANCEL_REQUESTED,
        actor,
        json!({ "execution_id": id, "kind": kind }),
    )
}

impl Store {
    /// Records one action execution (run from the API or CLI).
    pub async fn create_action(&self, new: &NewAction) -> Result<Execution> {
        let mut tx = self.begin_write().await?;
        let event = insert_action_in(&mut tx, self.dialect, new).await?;
        tx.commit().await?;
        if let Some(id) = event {
            self.notifier.publish(Notice::Event { id });
        }
        self.notifier.publish(Notice::Actions);
        self.get_execution_row(&new.id).await
    }

    /// Claims up to `limit` queued action executions that may start now, for
    /// `controller`, with a lease of `lease_ms`; each gets an `execution.started` event.
    pub async fn claim_actions(
        &self,
        controller: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedAction>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let rows = sqlx::query(sql!(
            "UPDATE executions SET status = 'running', started_at = COALESCE(started_at, $1), \
             claimed_by = $2, claim_until = $3 WHERE id IN (SELECT id FROM executions \
             WHERE kind = 'action' AND status = 'requested' AND cancel_requested = 0 \
             AND (not_before IS NULL OR not_before <= $1) ORDER BY id LIMIT $4{lock}) \
             RETURNING id, action_ref, actor, params, parent_id, attempt"
        ))
        .bind(now)
        .bind(controller)
        .bind(now + lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let params: Option<String> = row.try_get("params")?;
            let attempt: i64 = row.try_get("attempt")?;
            let c = ClaimedAction {
                id: row.try_get("id")?,
                action_ref: row
                    .try_get::<Option<String>, _>("action_ref")?
                    .unwrap_or_default(),
                actor: row.try_get("actor")?,
                params: params
                    .map(|p| json("executions", &p))
                    .transpose()?
                    .unwrap_or(serde_json::Value::Null),
                parent_id: row.try_get("parent_id")?,
                attempt: u32::try_from(attempt).unwrap_or(0),
            };
            events.push(NewEvent::new(
                types::EXECUTION_STARTED,
                controller,
                json!({ "execution_id": c.id, "kind": "action", "action": c.action_ref,
                        "attempt": c.attempt }),
            ));
            claimed.push(c);
        }
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        let ids = crate::events::append_many_in(&mut tx, self.dialect, &events).await?;
        tx.commit().await?;
        for id in ids {
            self.notifier.publish(Notice::Event { id });
        }
        Ok(claimed)
    }

    /// Extends this controller's leases on the actions it still runs.
    pub async fn renew_action_claims(&self, controller: &str, lease_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE executions SET claim_until = $1 WHERE claimed_by = $2 \
             AND status = 'running' AND claim_until IS NOT NULL",
        )
        .bind(now_ms() + lease_ms)
        .bind(controller)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Drops an action's lease: from now on later events drive it (workflows, remote
    /// runs), not the process that claimed it.
    pub async fn release_action_claim(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE executions SET claim_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Queues again the actions whose controller stopped renewing their lease (it died
    /// while running them). Returns their ids.
    pub async fn requeue_abandoned_actions(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "UPDATE executions SET status = 'requested', claimed_by = NULL, claim_until = NULL, \
             attempt = attempt + 1 WHERE kind = 'action' AND status = 'running' \
             AND claim_until IS NOT NULL AND claim_until < $1 RETURNING id",
        )
        .bind(now_ms())
        .fetch_all(&mut *self.writer().await?)
        .await?;
        if !rows.is_empty() {
            self.notifier.publish(Notice::Actions);
        }
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Puts a claimed action back in the queue until `not_before` (a concurrency policy
    /// with `delay`).
    pub async fn delay_action(&self, id: &str, not_before: i64) -> Result<()> {
        sqlx::query(
            "UPDATE executions SET status = 'requested', claimed_by = NULL, claim_until = NULL, \
             not_before = $1 WHERE id = $2 AND status = 'running'",
        )
        .bind(not_before)
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Finishes an action execution (no-op if it is final already). Returns whether
    /// this call finished it.
    pub async fn finish_action(
        &self,
        id: &str,
        status: ExecutionStatus,
        result: &serde_json::Value,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let event = finish_action_in(&mut tx, self.dialect, id, status, result).await?;
        tx.commit().await?;
        if let Some(event) = event {
            self.notifier.publish(Notice::Event { id: event });
            self.notifier.publish(Notice::Execution {
                execution_id: id.to_string(),
            });
        }
        Ok(event.is_some())
    }

    /// How many executions of an action are running now.
    pub async fn running_actions(&self, action_ref: &str) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM executions WHERE kind = 'action' AND action_ref = $1 \
             AND status = 'running'",
        )
        .bind(action_ref)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Asks an action execution to stop: one still queued is cancelled at once; one
    /// running is flagged for its runner (or workflow) to stop. `Ok(false)` when final.
    pub async fn cancel_action(&self, id: &str, actor: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let flagged = sqlx::query(
            "UPDATE executions SET cancel_requested = 1 WHERE id = $1 AND kind = 'action' \
             AND status IN ('requested', 'running')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if flagged == 0 {
            return Ok(false);
        }
        let mut events = vec![
            append_in(
                &mut tx,
                self.dialect,
                &cancel_requested(id, "action", actor),
            )
            .await?,
        ];
        let queued: Option<(String,)> =
            sqlx::query_as("SELECT status FROM executions WHERE id = $1 AND status = 'requested'")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if queued.is_some()
            && let Some(e) = finish_action_in(
                &mut tx,
                self.dialect,
                id,
                ExecutionStatus::Cancelled,
                &json!({ "error": "cancelled before it started" }),
            )
            .await?
        {
            events.push(e);
        }
        tx.commit().await?;
        for e in events {
            self.notifier.publish(Notice::Event { id: e });
        }
        self.notifier.publish(Notice::Execution {
            execution_id: id.to_string(),
        });
        Ok(true)
    }

    /// Whether cancellation was asked for an execution.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT cancel_requested FROM executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some_and(|r| r.0 != 0))
    }

    /// The parameters an action execution runs with (secrets still encrypted).
    pub async fn action_params(&self, id: &str) -> Result<Option<serde_json::Value>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT params FROM executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match row.and_then(|r| r.0) {
            Some(p) => Ok(Some(json("executions", &p)?)),
            None => Ok(None),
        }
    }

    /// The execution `id` is a step of.
    pub async fn parent_of(&self, id: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT parent_id FROM executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Executions that are steps of `parent_id` (workflow tasks, the remote run of an
    /// action), oldest first.
    pub async fn child_executions(&self, parent_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM executions WHERE parent_id = $1 ORDER BY id")
                .bind(parent_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
