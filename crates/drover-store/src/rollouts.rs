//! Rollouts: deploy executions. A rollout is a list of *units* run in order (one batch
//! of one service each), the *instances* each unit changes, and each instance's
//! lifecycle *steps*. The controller's rollout executor reads a [`RolloutDetail`],
//! decides, and writes back through the conditional updates here, so that several
//! controllers ticking the same rollout never dispatch a step twice.

use drover_proto::agent::{CommandOutcome, CommandResult, OutputChunk};
use drover_proto::events::types;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json as parse_json, now_ms, to_json};
use crate::{Result, Store, StoreError};

/// Most output kept per step (the tail), for error messages.
const STEP_OUTPUT_TAIL: usize = 8 * 1024;

/// A step to record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewStep {
    /// Transition name (`install`, `start`…).
    pub transition: String,
    /// Version the step is for.
    pub version: String,
    /// The `CommandSpec` sent to the agent, as JSON.
    pub spec: serde_json::Value,
}

/// An instance a unit changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewRolloutInstance {
    /// Host id.
    pub host_id: String,
    /// Host name.
    pub host_name: String,
    /// Service.
    pub service: String,
    /// Copy on the host.
    pub index: u32,
    /// Change kind (`deploy`, `upgrade`…).
    pub kind: String,
    /// Version before, if any.
    pub from_version: Option<String>,
    /// Version after, if any.
    pub to_version: Option<String>,
    /// Lifecycle state after (`running`…), if any.
    pub to_state: Option<String>,
    /// True when the instance must pass a health gate after its steps.
    pub gated: bool,
    /// Its steps, in order.
    pub steps: Vec<NewStep>,
}

/// One batch of one service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUnit {
    /// Service.
    pub service: String,
    /// Batch number within the service's plan.
    pub batch: u32,
    /// Canary batch.
    pub canary: bool,
    /// Part of an automatic revert.
    pub revert: bool,
    /// The service's rollout policy, as JSON.
    pub policy: serde_json::Value,
    /// Instances changed in this batch.
    pub instances: Vec<NewRolloutInstance>,
}

/// A rollout to record.
#[derive(Debug, Clone)]
pub struct NewRollout {
    /// Execution id.
    pub execution_id: String,
    /// Who applied.
    pub actor: String,
    /// Model version being rolled out.
    pub model_version: i64,
    /// Model version it replaces, if any.
    pub previous_version: Option<i64>,
    /// The plan as text (for `rollout status`).
    pub plan_text: String,
    /// Change counts, for the execution's spec.
    pub counts: serde_json::Value,
    /// Units, in order.
    pub units: Vec<NewUnit>,
}

/// A rollout's own row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutRow {
    /// Execution id.
    pub execution_id: String,
    /// Model version rolled out.
    pub model_version: i64,
    /// Model version before.
    pub previous_version: Option<i64>,
    /// `running`, `paused`, `awaiting-promotion`, `succeeded`, `failed`, `aborted`,
    /// `reverted`.
    pub state: String,
    /// Current unit.
    pub unit: i64,
    /// Number of units.
    pub units: i64,
    /// Reverting after a failed gate.
    pub reverting: bool,
    /// The plan as text.
    pub plan_text: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Last time an instance passed or a unit advanced (Unix ms).
    pub last_progress_at: i64,
}

/// A unit's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnitRow {
    /// Position.
    pub unit: i64,
    /// Service.
    pub service: String,
    /// Batch number.
    pub batch: i64,
    /// Canary.
    pub canary: bool,
    /// Revert.
    pub revert: bool,
    /// Rollout policy JSON.
    pub policy: serde_json::Value,
}

/// An instance's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceRow {
    /// Unit.
    pub unit: i64,
    /// Host id.
    pub host_id: String,
    /// Host name.
    pub host_name: String,
    /// Service.
    pub service: String,
    /// Copy on the host.
    pub index: u32,
    /// Change kind.
    pub kind: String,
    /// Version before.
    pub from_version: Option<String>,
    /// Version after.
    pub to_version: Option<String>,
    /// State after.
    pub to_state: Option<String>,
    /// Must pass a health gate.
    pub gated: bool,
    /// `pending`, `stepping`, `gating`, `passed`, `failed`.
    pub status: String,
    /// When its gate started (Unix ms).
    pub gate_started_at: Option<i64>,
    /// Since when it is continuously healthy (Unix ms).
    pub healthy_since: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Drain epoch its load balancer must reach (set when it was drained or added
    /// back); `None` when the load balancer was not involved.
    pub lb_epoch: Option<i64>,
    /// When its load balancer reached `lb_epoch` (the drain grace starts then).
    pub lb_ready_at: Option<i64>,
}

/// A step's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRow {
    /// Unit.
    pub unit: i64,
    /// Host id.
    pub host_id: String,
    /// Service.
    pub service: String,
    /// Copy on the host.
    pub index: u32,
    /// Position in the instance's steps.
    pub pos: i64,
    /// Transition.
    pub transition: String,
    /// Version.
    pub version: String,
    /// `pending`, `dispatched`, `running`, `ok`, `failed`.
    pub status: String,
    /// Command id once dispatched.
    pub command_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Tail of its output.
    pub output: String,
}

/// Everything about one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutDetail {
    /// The rollout.
    pub rollout: RolloutRow,
    /// Its units, in order.
    pub units: Vec<UnitRow>,
    /// Its instances.
    pub instances: Vec<InstanceRow>,
    /// Its steps.
    pub steps: Vec<StepRow>,
}

/// Identifies an instance of a rollout unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInstance<'a> {
    /// Execution id.
    pub execution_id: &'a str,
    /// Unit.
    pub unit: i64,
    /// Host id.
    pub host_id: &'a str,
    /// Service.
    pub service: &'a str,
    /// Copy on the host.
    pub index: u32,
}

fn rollout_row(r: &AnyRow) -> Result<RolloutRow> {
    Ok(RolloutRow {
        execution_id: r.try_get("execution_id")?,
        model_version: r.try_get("model_version")?,
        previous_version: r.try_get("previous_version")?,
        state: r.try_get("state")?,
        unit: r.try_get("unit")?,
        units: r.try_get("units")?,
        reverting: r.try_get::<i64, _>("reverting")? != 0,
        plan_text: r.try_get("plan_text")?,
        error: r.try_get("error")?,
        last_progress_at: r.try_get("last_progress_at")?,
    })
}

fn idx(r: &AnyRow) -> Result<u32> {
    let i: i64 = r.try_get("idx")?;
    Ok(u32::try_from(i).unwrap_or(0))
}

/// Final rollout states and the execution status each one ends in.
fn final_execution_status(state: &str) -> Option<&'static str> {
    match state {
        "succeeded" => Some("succeeded"),
        "failed" | "reverted" => Some("failed"),
        "aborted" => Some("cancelled"),
        _ => None,
    }
}

type Tx = crate::write::WriteTx;

async fn insert_units(
    tx: &mut Tx,
    execution_id: &str,
    first: i64,
    units: &[NewUnit],
) -> Result<()> {
    for (i, u) in units.iter().enumerate() {
        let unit = first + i as i64;
        sqlx::query(
            "INSERT INTO rollout_units (execution_id, unit, service, batch, canary, revert, policy) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(execution_id)
        .bind(unit)
        .bind(&u.service)
        .bind(i64::from(u.batch))
        .bind(i64::from(u.canary))
        .bind(i64::from(u.revert))
        .bind(to_json(&u.policy))
        .execute(&mut **tx)
        .await?;
        for inst in &u.instances {
            sqlx::query(
                "INSERT INTO rollout_instances (execution_id, unit, host_id, host_name, service, idx, \
                 kind, from_version, to_version, to_state, gated, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending')",
            )
            .bind(execution_id)
            .bind(unit)
            .bind(&inst.host_id)
            .bind(&inst.host_name)
            .bind(&inst.service)
            .bind(i64::from(inst.index))
            .bind(&inst.kind)
            .bind(&inst.from_version)
            .bind(&inst.to_version)
            .bind(&inst.to_state)
            .bind(i64::from(inst.gated))
            .execute(&mut **tx)
            .await?;
            for (pos, s) in inst.steps.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO rollout_steps (execution_id, unit, host_id, service, idx, pos, \
                     transition, version, spec, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
                )
                .bind(execution_id)
                .bind(unit)
                .bind(&inst.host_id)
                .bind(&inst.service)
                .bind(i64::from(inst.index))
                .bind(pos as i64)
                .bind(&s.transition)
                .bind(&s.version)
                .bind(to_json(&s.spec))
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// Records a deploy execution and its rollout, started.
    pub async fn create_rollout(&self, new: &NewRollout) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO executions (id, kind, status, actor, selector, spec, command, parallel, \
             timeout_ms, cancel_requested, created_at, started_at, finished_at) \
             VALUES ($1, 'deploy', 'running', $2, '', $3, '{}', NULL, NULL, 0, $4, $4, NULL)",
        )
        .bind(&new.execution_id)
        .bind(&new.actor)
        .bind(to_json(&json!({
            "model_version": new.model_version,
            "previous_version": new.previous_version,
            "counts": new.counts,
        })))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO rollouts (execution_id, model_version, previous_version, state, unit, \
             units, reverting, plan_text, error, last_progress_at, updated_at) \
             VALUES ($1, $2, $3, 'running', 0, $4, 0, $5, NULL, $6, $6)",
        )
        .bind(&new.execution_id)
        .bind(new.model_version)
        .bind(new.previous_version)
        .bind(new.units.len() as i64)
        .bind(&new.plan_text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_units(&mut tx, &new.execution_id, 0, &new.units).await?;
        let mut ids = Vec::new();
        for kind in [types::EXECUTION_REQUESTED, types::EXECUTION_STARTED] {
            ids.push(
                append_in(
                    &mut tx,
                    self.dialect,
                    &NewEvent::new(
                        kind,
                        &new.actor,
                        json!({
                            "execution_id": new.execution_id,
                            "kind": "deploy",
                            "model_version": new.model_version,
                            "counts": new.counts,
                        }),
                    ),
                )
                .await?,
            );
        }
        tx.commit().await?;
        for id in ids {
            self.notifier.publish(Notice::Event { id });
        }
        self.notifier.publish(Notice::Execution {
            execution_id: new.execution_id.clone(),
        });
        Ok(())
    }

    /// Ids of rollouts not final yet, oldest first.
    pub async fn active_rollouts(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT execution_id FROM rollouts \
             WHERE state IN ('running', 'paused', 'awaiting-promotion') ORDER BY execution_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// A rollout with its units, instances and steps.
    pub async fn rollout_detail(&self, execution_id: &str) -> Result<Option<RolloutDetail>> {
        let Some(row) = sqlx::query("SELECT * FROM rollouts WHERE execution_id = $1")
            .bind(execution_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let rollout = rollout_row(&row)?;
        let units =
            sqlx::query("SELECT * FROM rollout_units WHERE execution_id = $1 ORDER BY unit")
                .bind(execution_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    let policy: String = r.try_get("policy")?;
                    Ok(UnitRow {
                        unit: r.try_get("unit")?,
                        service: r.try_get("service")?,
                        batch: r.try_get("batch")?,
                        canary: r.try_get::<i64, _>("canary")? != 0,
                        revert: r.try_get::<i64, _>("revert")? != 0,
                        policy: parse_json("rollout_units", &policy)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        let instances = sqlx::query(
            "SELECT * FROM rollout_instances WHERE execution_id = $1 \
             ORDER BY unit, service, host_name, idx",
        )
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(InstanceRow {
                unit: r.try_get("unit")?,
                host_id: r.try_get("host_id")?,
                host_name: r.try_get("host_name")?,
                service: r.try_get("service")?,
                index: idx(r)?,
                kind: r.try_get("kind")?,
                from_version: r.try_get("from_version")?,
                to_version: r.try_get("to_version")?,
                to_state: r.try_get("to_state")?,
                gated: r.try_get::<i64, _>("gated")? != 0,
                status: r.try_get("status")?,
                gate_started_at: r.try_get("gate_started_at")?,
                lb_epoch: r.try_get("lb_epoch")?,
                lb_ready_at: r.try_get("lb_ready_at")?,
                healthy_since: r.try_get("healthy_since")?,
                error: r.try_get("error")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let steps = sqlx::query(
            "SELECT unit, host_id, service, idx, pos, transition, version, status, command_id, \
             error, output FROM rollout_steps WHERE execution_id = $1 \
             ORDER BY unit, service, host_id, idx, pos",
        )
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StepRow {
                unit: r.try_get("unit")?,
                host_id: r.try_get("host_id")?,
                service: r.try_get("service")?,
                index: idx(r)?,
                pos: r.try_get("pos")?,
                transition: r.try_get("transition")?,
                version: r.try_get("version")?,
                status: r.try_get("status")?,
                command_id: r.try_get("command_id")?,
                error: r.try_get("error")?,
                output: r.try_get("output")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(RolloutDetail {
            rollout,
            units,
            instances,
            steps,
        }))
    }

    /// Queues a pending step's command for its host's agent. Returns the command id, or
    /// `None` if the step was not pending (another controller got there first).
    pub async fn dispatch_step(&self, at: &UnitInstance<'_>, pos: i64) -> Result<Option<String>> {
        let now = now_ms();
        let command_id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.begin_write().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE rollout_steps SET status = 'dispatched', command_id = $1, started_at = $2 \
             WHERE execution_id = $3 AND unit = $4 AND host_id = $5 AND service = $6 AND idx = $7 \
             AND pos = $8 AND status = 'pending' RETURNING spec",
        )
        .bind(&command_id)
        .bind(now)
        .bind(at.execution_id)
        .bind(at.unit)
        .bind(at.host_id)
        .bind(at.service)
        .bind(i64::from(at.index))
        .bind(pos)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((spec,)) = row else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO commands (id, execution_id, host_id, spec, status, created_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5)",
        )
        .bind(&command_id)
        .bind(at.execution_id)
        .bind(at.host_id)
        .bind(&spec)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Commands {
            host_id: at.host_id.to_string(),
        });
        Ok(Some(command_id))
    }

    /// Moves an instance from one of `from` statuses to `to`, setting the gate times and
    /// error given. Returns false if it was in none of `from`.
    pub async fn set_rollout_instance(
        &self,
        at: &UnitInstance<'_>,
        from: &[&str],
        to: &str,
        gate_started_at: Option<i64>,
        healthy_since: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool> {
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let n = sqlx::query(sql!(
            "UPDATE rollout_instances SET status = $1, gate_started_at = $2, healthy_since = $3, \
             error = $4 WHERE execution_id = $5 AND unit = $6 AND host_id = $7 AND service = $8 \
             AND idx = $9 AND status IN ({list})"
        ))
        .bind(to)
        .bind(gate_started_at)
        .bind(healthy_since)
        .bind(error)
        .bind(at.execution_id)
        .bind(at.unit)
        .bind(at.host_id)
        .bind(at.service)
        .bind(i64::from(at.index))
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if n > 0 && to == "passed" {
            sqlx::query("UPDATE rollouts SET last_progress_at = $1 WHERE execution_id = $2")
                .bind(now_ms())
                .bind(at.execution_id)
                .execute(&mut *self.writer().await?)
                .await?;
        }
        Ok(n > 0)
    }

    /// Moves a rollout from one of `from` states to `to`, optionally to another unit,
    /// with an event (`rollout.<to>`), finishing its execution when `to` is final.
    /// Returns false if it was in none of `from` (someone else moved it).
    pub async fn set_rollout_state(
        &self,
        execution_id: &str,
        from: &[&str],
        to: &str,
        unit: Option<i64>,
        error: Option<&str>,
        actor: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(sql!(
            "UPDATE rollouts SET state = $1, unit = COALESCE($2, unit), \
             error = COALESCE($3, error), updated_at = $4, \
             last_progress_at = CASE WHEN $2 IS NULL THEN last_progress_at ELSE $4 END \
             WHERE execution_id = $5 AND state IN ({list})"
        ))
        .bind(to)
        .bind(unit)
        .bind(error)
        .bind(now)
        .bind(execution_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        let mut ids = Vec::new();
        let changed_state = !from.contains(&to);
        if changed_state {
            ids.push(
                append_in(
                    &mut tx,
                    self.dialect,
                    &NewEvent::new(
                        &format!("rollout.{}", to.replace('-', "_")),
                        actor,
                        json!({ "execution_id": execution_id, "error": error }),
                    ),
                )
                .await?,
            );
        }
        if let Some(status) = final_execution_status(to) {
            sqlx::query("UPDATE executions SET status = $1, finished_at = $2 WHERE id = $3")
                .bind(status)
                .bind(now)
                .bind(execution_id)
                .execute(&mut *tx)
                .await?;
            // Nothing of it may run any more.
            crate::executions::drop_queued_commands(&mut tx, execution_id).await?;
            ids.push(
                append_in(
                    &mut tx,
                    self.dialect,
                    &NewEvent::new(
                        types::EXECUTION_FINISHED,
                        actor,
                        json!({ "execution_id": execution_id, "kind": "deploy", "status": status, "rollout": to, "error": error }),
                    ),
                )
                .await?,
            );
        }
        tx.commit().await?;
        for id in ids {
            self.notifier.publish(Notice::Event { id });
        }
        self.notifier.publish(Notice::Execution {
            execution_id: execution_id.to_string(),
        });
        Ok(true)
    }

    /// Appends revert units after the current ones and points the rollout at the first
    /// of them (state stays `running`, `reverting` set).
    pub async fn start_revert(
        &self,
        execution_id: &str,
        units: &[NewUnit],
        error: &str,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT units, reverting FROM rollouts WHERE execution_id = $1 AND state = 'running'",
        )
        .bind(execution_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((count, reverting)) = row else {
            return Ok(false);
        };
        if reverting != 0 {
            return Ok(false);
        }
        insert_units(&mut tx, execution_id, count, units).await?;
        sqlx::query(
            "UPDATE rollouts SET reverting = 1, unit = $1, units = $2, error = $3, \
             last_progress_at = $4, updated_at = $4 WHERE execution_id = $5",
        )
        .bind(count)
        .bind(count + units.len() as i64)
        .bind(error)
        .bind(now_ms())
        .bind(execution_id)
        .execute(&mut *tx)
        .await?;
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::ROLLOUT_REVERTING,
                "system",
                json!({ "execution_id": execution_id, "error": error, "units": units.len() }),
            ),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        self.notifier.publish(Notice::Execution {
            execution_id: execution_id.to_string(),
        });
        Ok(true)
    }

    /// Marks a rollout step's command started. Returns its execution, or `None` if the
    /// command is not a rollout step of this host.
    pub async fn step_started(&self, command_id: &str, host_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE rollout_steps SET status = 'running' WHERE command_id = $1 AND host_id = $2 \
             AND status IN ('dispatched', 'running') RETURNING execution_id",
        )
        .bind(command_id)
        .bind(host_id)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        if row.is_some() {
            sqlx::query("UPDATE commands SET status = 'started' WHERE id = $1 AND status IN ('queued', 'delivered')")
                .bind(command_id)
                .execute(&mut *self.writer().await?)
                .await?;
        }
        Ok(row.map(|r| r.0))
    }

    /// Records a rollout step's result (a resend changes nothing). Returns its
    /// execution, or `None` if the command is not a rollout step of this host.
    pub async fn finish_step(
        &self,
        command_id: &str,
        host_id: &str,
        result: &CommandResult,
    ) -> Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT execution_id, status FROM rollout_steps WHERE command_id = $1 AND host_id = $2",
        )
        .bind(command_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((execution_id, status)) = row else {
            return Ok(None);
        };
        sqlx::query("UPDATE commands SET status = 'done' WHERE id = $1")
            .bind(command_id)
            .execute(&mut *tx)
            .await?;
        if status != "ok" && status != "failed" {
            let ok = result.outcome == CommandOutcome::Ok;
            let error = (!ok).then(|| {
                result
                    .error
                    .clone()
                    .unwrap_or_else(|| match (result.exit_code, result.signal) {
                        (Some(c), _) => format!("{} with exit code {c}", result.outcome.as_str()),
                        (_, Some(s)) => format!("{} by signal {s}", result.outcome.as_str()),
                        _ => result.outcome.as_str().to_string(),
                    })
            });
            sqlx::query(
                "UPDATE rollout_steps SET status = $1, error = $2, finished_at = $3 WHERE command_id = $4",
            )
            .bind(if ok { "ok" } else { "failed" })
            .bind(error)
            .bind(now_ms())
            .bind(command_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.notifier.publish(Notice::Execution {
            execution_id: execution_id.clone(),
        });
        Ok(Some(execution_id))
    }

    /// Keeps the tail of a rollout step's output. Returns false if the command is not a
    /// rollout step of this host.
    pub async fn append_step_output(
        &self,
        command_id: &str,
        host_id: &str,
        chunks: &[OutputChunk],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT output FROM rollout_steps WHERE command_id = $1 AND host_id = $2",
        )
        .bind(command_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((mut output,)) = row else {
            return Ok(false);
        };
        for c in chunks {
            output.push_str(&c.data);
        }
        if output.len() > STEP_OUTPUT_TAIL {
            let mut cut = output.len() - STEP_OUTPUT_TAIL;
            while !output.is_char_boundary(cut) {
                cut += 1;
            }
            output = output[cut..].to_string();
        }
        sqlx::query("UPDATE rollout_steps SET output = $1 WHERE command_id = $2")
            .bind(output)
            .bind(command_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The newest rollout's id, if any.
    pub async fn latest_rollout(&self) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT execution_id FROM rollouts ORDER BY execution_id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError::Corrupt {
            table: "json",
            reason: e.to_string(),
        }
    }
}
