//! Executions, their per-host targets, the agents' command queue, and stored output.
//!
//! Every method that changes an execution runs in one write transaction and appends the
//! matching event (`execution.requested`, `.started`, `.cancel_requested`, `.finished`)
//! in that same transaction, so state and audit trail never disagree. Notices are
//! published after commit.

use drover_core::output::{Admit, admit};
use drover_proto::agent::{AgentCommand, CommandOutcome, CommandResult, CommandSpec, OutputChunk};
use drover_proto::events::types;
use drover_proto::executions::{
    Execution, ExecutionStatus, HostOutput, STORED_OUTPUT_LIMIT, TRUNCATION_MARKER, Target,
    TargetStatus,
};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json, now_ms, opt_time, parse_enum, time, to_json};
use crate::{Dialect, Result, Store};

/// Extra time the controller waits past a command's own timeout before it gives up on
/// hearing from the agent.
const DEADLINE_GRACE_MS: i64 = 30_000;

/// One host an execution will run on.
#[derive(Debug, Clone)]
pub struct NewTarget {
    /// Host id.
    pub host_id: String,
    /// Host name (kept as it was at the time of the run).
    pub host_name: String,
    /// This target's own command, instead of the execution's (a generator writes
    /// different bytes per host).
    pub command: Option<CommandSpec>,
}

/// An execution to record.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// Unique id.
    pub id: String,
    /// Kind (`run`).
    pub kind: String,
    /// Who asked.
    pub actor: String,
    /// Selector as given.
    pub selector: String,
    /// The request as given, for display and rerun.
    pub spec: serde_json::Value,
    /// What every target runs.
    pub command: CommandSpec,
    /// At most this many targets at once.
    pub parallel: Option<u32>,
    /// Per-target timeout.
    pub timeout_ms: Option<u64>,
    /// The hosts, in dispatch order.
    pub targets: Vec<NewTarget>,
    /// The action execution this run is the remote part of, and its key there.
    pub parent: Option<(String, String)>,
}

/// A command handed to a host's queue by [`Store::dispatch`].
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchedCommand {
    /// The host.
    pub host_id: String,
    /// The command id.
    pub command_id: String,
}

/// What a state change led to.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Commands newly queued.
    pub dispatched: Vec<DispatchedCommand>,
    /// Executions that became final.
    pub finished: Vec<Execution>,
}

/// Result of accepting output from an agent.
#[derive(Debug, Clone)]
pub struct OutputAccepted {
    /// The execution the output belongs to.
    pub execution_id: String,
    /// Chunks not seen before (duplicates from a resend are left out), stored or not.
    pub fresh: Vec<HostOutput>,
}

/// Which executions to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only executions older than this id (paging cursor).
    pub before: Option<String>,
    /// Only the steps of this workflow (or the remote part of this action).
    pub parent_id: Option<String>,
    /// Only executions created at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only executions created before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

const EXEC_COLUMNS: &str = "id, kind, status, actor, selector, spec, command, parallel, \
     timeout_ms, cancel_requested, created_at, started_at, finished_at, action_ref, parent_id, \
     task_key, rule_ref, event_id, params, result, attempt";

/// The action part of an execution row, when it has one.
fn action_info(row: &AnyRow) -> Result<Option<drover_proto::executions::ActionInfo>> {
    let Some(action_ref) = row.try_get::<Option<String>, _>("action_ref")? else {
        return Ok(None);
    };
    let spec: String = row.try_get("spec")?;
    let spec: serde_json::Value = json("executions", &spec)?;
    let result: Option<String> = row.try_get("result")?;
    let attempt: i64 = row.try_get("attempt")?;
    Ok(Some(drover_proto::executions::ActionInfo {
        action_ref,
        parent_id: row.try_get("parent_id")?,
        task_key: row.try_get("task_key")?,
        rule_ref: row.try_get("rule_ref")?,
        event_id: row.try_get("event_id")?,
        // The shown parameters (secrets masked) live in `spec`; the `params` column is
        // what runs, with secrets encrypted, and is never shown.
        parameters: spec
            .get("parameters")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        result: result.map(|r| json("executions", &r)).transpose()?,
        attempt: u32::try_from(attempt).unwrap_or(0),
    }))
}
const TARGET_COLUMNS: &str = "execution_id, host_id, ord, host_name, status, command_id, \
     exit_code, signal, error, dispatched_at, started_at, finished_at, deadline, duration_ms, \
     output_bytes, truncated, next_seq";

fn execution(row: &AnyRow) -> Result<Execution> {
    let status: String = row.try_get("status")?;
    let spec: String = row.try_get("spec")?;
    Ok(Execution {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        status: parse_enum("executions", &status, ExecutionStatus::parse)?,
        actor: row.try_get("actor")?,
        selector: row.try_get("selector")?,
        spec: json("executions", &spec)?,
        created_at: time(row.try_get("created_at")?),
        started_at: opt_time(row.try_get("started_at")?),
        finished_at: opt_time(row.try_get("finished_at")?),
        counts: Default::default(),
        targets: Vec::new(),
        action: action_info(row)?,
    })
}

fn target(row: &AnyRow) -> Result<Target> {
    let status: String = row.try_get("status")?;
    let exit_code: Option<i64> = row.try_get("exit_code")?;
    let signal: Option<i64> = row.try_get("signal")?;
    let duration: Option<i64> = row.try_get("duration_ms")?;
    let output_bytes: i64 = row.try_get("output_bytes")?;
    let truncated: i64 = row.try_get("truncated")?;
    Ok(Target {
        host_id: row.try_get("host_id")?,
        host_name: row.try_get("host_name")?,
        status: parse_enum("targets", &status, TargetStatus::parse)?,
        exit_code: exit_code.and_then(|c| i32::try_from(c).ok()),
        signal: signal.and_then(|s| i32::try_from(s).ok()),
        error: row.try_get("error")?,
        started_at: opt_time(row.try_get("started_at")?),
        finished_at: opt_time(row.try_get("finished_at")?),
        duration_ms: duration.and_then(|d| u64::try_from(d).ok()),
        output_bytes: u64::try_from(output_bytes).unwrap_or(0),
        truncated: truncated != 0,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

type Tx = crate::write::WriteTx;

/// Marks an execution's commands that no agent took yet as done: they will never be
/// delivered (cancel, abort, a finished rollout).
pub(crate) async fn drop_queued_commands(tx: &mut Tx, execution_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE commands SET status = 'done' WHERE execution_id = $1 AND status = 'queued'",
    )
    .bind(execution_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// First key of the PostgreSQL advisory locks that order the output inserts of one
/// execution ("drov"); the second is a hash of the execution id.
const OUTPUT_LOCK_CLASS: i32 = 0x6472_6f76;

/// Locks an execution's row until the transaction ends (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers). Writers that change an execution's
/// targets take it first, so they queue per execution in one order and never deadlock.
async fn lock_execution(tx: &mut Tx, dialect: Dialect, execution_id: &str) -> Result<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT id FROM executions WHERE id = $1 FOR UPDATE")
            .bind(execution_id)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Which in-flight targets [`Store::fail_targets`] gives up on.
enum Overdue<'a> {
    /// Those of this host.
    Host(&'a str),
    /// Those whose deadline is before this time (Unix ms).
    DeadlineBefore(i64),
}

impl Store {
    /// Records an execution and its targets (all `pending`) with an
    /// `execution.requested` event.
    pub async fn create_execution(&self, new: &NewExecution) -> Result<Execution> {
        let mut tx = self.begin_write().await?;
        let event_id = self.insert_execution(&mut tx, new).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id: event_id });
        self.notifier.publish(Notice::Execution {
            execution_id: new.id.clone(),
        });
        self.get_execution_row(&new.id).await
    }

    /// The writes of [`create_execution`](Self::create_execution), inside `tx`. Returns
    /// the id of its `execution.requested` event; the caller publishes the notices.
    pub(crate) async fn insert_execution(&self, tx: &mut Tx, new: &NewExecution) -> Result<i64> {
        let now = now_ms();
        sqlx::query(sql!(
            "INSERT INTO executions (id, kind, status, actor, selector, spec, command, parallel, \
             timeout_ms, cancel_requested, created_at, parent_id, task_key) \
             VALUES ($1, $2, 'requested', $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)"
        ))
        .bind(&new.id)
        .bind(&new.kind)
        .bind(&new.actor)
        .bind(&new.selector)
        .bind(to_json(&new.spec))
        .bind(to_json(&new.command))
        .bind(new.parallel.map(i64::from))
        .bind(new.timeout_ms.map(to_i64))
        .bind(now)
        .bind(new.parent.as_ref().map(|p| p.0.clone()))
        .bind(new.parent.as_ref().map(|p| p.1.clone()))
        .execute(&mut **tx)
        .await?;
        for (ord, t) in new.targets.iter().enumerate() {
            sqlx::query(
                "INSERT INTO targets (execution_id, host_id, ord, host_name, status, command) \
                 VALUES ($1, $2, $3, $4, 'pending', $5)",
            )
            .bind(&new.id)
            .bind(&t.host_id)
            .bind(to_i64(ord as u64))
            .bind(&t.host_name)
            .bind(t.command.as_ref().map(to_json))
            .execute(&mut **tx)
            .await?;
        }
        append_in(
            tx,
            self.dialect,
            &NewEvent::new(
                types::EXECUTION_REQUESTED,
                &new.actor,
                json!({
                    "execution_id": new.id,
                    "kind": new.kind,
                    "selector": new.selector,
                    "spec": new.spec,
                    "targets": new.targets.iter().map(|t| &t.host_name).collect::<Vec<_>>(),
                }),
            ),
        )
        .await
    }

    pub(crate) async fn get_execution_row(&self, id: &str) -> Result<Execution> {
        self.get_execution(id).await?.ok_or_else(|| {
            crate::StoreError::Conflict(format!("execution {id} vanished after write"))
        })
    }

    /// Queues commands for as many pending targets as the execution's `parallel` allows,
    /// marks targets of hosts that are down `unreachable`, and finishes the execution if
    /// nothing is left. Safe to call any number of times, from any controller.
    pub async fn dispatch(&self, execution_id: &str) -> Result<Settled> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut notices = Vec::new();
        let mut settled = Settled::default();
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let row = sqlx::query(sql!(
            "SELECT status, command, parallel, timeout_ms, cancel_requested, actor \
             FROM executions WHERE id = $1{lock}"
        ))
        .bind(execution_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(settled);
        };
        let status: String = row.try_get("status")?;
        let status = parse_enum("executions", &status, ExecutionStatus::parse)?;
        let cancel: i64 = row.try_get("cancel_requested")?;
        if status.is_final() || cancel != 0 {
            return Ok(settled);
        }
        let command: String = row.try_get("command")?;
        let parallel: Option<i64> = row.try_get("parallel")?;
        let timeout: Option<i64> = row.try_get("timeout_ms")?;
        let actor: String = row.try_get("actor")?;

        // Targets whose host is down will not be reached.
        sqlx::query(
            "UPDATE targets SET status = 'unreachable', \
             error = CASE WHEN (SELECT status FROM hosts WHERE hosts.id = targets.host_id) \
             = 'missing' THEN 'host has no agent' ELSE 'host is down' END, finished_at = $1 \
             WHERE execution_id = $2 AND status = 'pending' \
             AND host_id IN (SELECT id FROM hosts WHERE status IN ('down', 'missing'))",
        )
        .bind(now)
        .bind(execution_id)
        .execute(&mut *tx)
        .await?;
        let (in_flight,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM targets WHERE execution_id = $1 \
             AND status IN ('dispatched', 'running')",
        )
        .bind(execution_id)
        .fetch_one(&mut *tx)
        .await?;
        let free = drover_core::dispatch::slots_free(
            parallel.and_then(|p| u32::try_from(p).ok()),
            u32::try_from(in_flight).unwrap_or(u32::MAX),
        );
        if free > 0 {
            let pending: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT host_id, command FROM targets WHERE execution_id = $1 \
                 AND status = 'pending' ORDER BY ord LIMIT $2",
            )
            .bind(execution_id)
            .bind(i64::from(free))
            .fetch_all(&mut *tx)
            .await?;
            let deadline = timeout.map(|t| now + t + DEADLINE_GRACE_MS);
            for (host_id, own) in pending {
                let command_id = uuid::Uuid::now_v7().to_string();
                sqlx::query(
                    "INSERT INTO commands (id, execution_id, host_id, spec, status, created_at) \
                     VALUES ($1, $2, $3, $4, 'queued', $5)",
                )
                .bind(&command_id)
                .bind(execution_id)
                .bind(&host_id)
                .bind(own.as_deref().unwrap_or(&command))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE targets SET status = 'dispatched', command_id = $1, dispatched_at = $2, \
                     deadline = $3 WHERE execution_id = $4 AND host_id = $5",
                )
                .bind(&command_id)
                .bind(now)
                .bind(deadline)
                .bind(execution_id)
                .bind(&host_id)
                .execute(&mut *tx)
                .await?;
                notices.push(Notice::Commands {
                    host_id: host_id.clone(),
                });
                settled.dispatched.push(DispatchedCommand {
                    host_id,
                    command_id,
                });
            }
        }
        if status == ExecutionStatus::Requested && !settled.dispatched.is_empty() {
            sqlx::query("UPDATE executions SET status = 'running', started_at = $1 WHERE id = $2")
                .bind(now)
                .bind(execution_id)
                .execute(&mut *tx)
                .await?;
            let id = append_in(
                &mut tx,
                self.dialect,
                &NewEvent::new(
                    types::EXECUTION_STARTED,
                    &actor,
                    json!({ "execution_id": execution_id }),
                ),
            )
            .await?;
            notices.push(Notice::Event { id });
        }
        self.settle(&mut tx, execution_id, &mut settled, &mut notices)
            .await?;
        tx.commit().await?;
        self.publish_all(execution_id, notices);
        Ok(settled)
    }

    fn publish_all(&self, execution_id: &str, notices: Vec<Notice>) {
        for n in notices {
            self.notifier.publish(n);
        }
        self.notifier.publish(Notice::Execution {
            execution_id: execution_id.to_string(),
        });
    }

    /// Finishes the execution if every target is final: sets its status from
    /// [`drover_core::execution_status::summarize`] and appends `execution.finished`.
    async fn settle(
        &self,
        tx: &mut Tx,
        execution_id: &str,
        settled: &mut Settled,
        notices: &mut Vec<Notice>,
    ) -> Result<()> {
        let row = sqlx::query(sql!(
            "SELECT {EXEC_COLUMNS} FROM executions WHERE id = $1{}",
            self.dialect.for_update()
        ))
        .bind(execution_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let mut exec = execution(&row)?;
        if exec.status.is_final() || exec.kind == "deploy" || exec.kind == "action" {
            return Ok(());
        }
        let cancel: i64 = row.try_get("cancel_requested")?;
        let rows = sqlx::query(sql!(
            "SELECT {TARGET_COLUMNS} FROM targets WHERE execution_id = $1 ORDER BY ord"
        ))
        .bind(execution_id)
        .fetch_all(&mut **tx)
        .await?;
        let targets = rows.iter().map(target).collect::<Result<Vec<_>>>()?;
        let statuses: Vec<TargetStatus> = targets.iter().map(|t| t.status).collect();
        let (counts, status) = drover_core::execution_status::summarize(&statuses, cancel != 0);
        if !status.is_final() {
            return Ok(());
        }
        let now = now_ms();
        sqlx::query("UPDATE executions SET status = $1, finished_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(now)
            .bind(execution_id)
            .execute(&mut **tx)
            .await?;
        let id = append_in(
            tx,
            self.dialect,
            &NewEvent::new(
                types::EXECUTION_FINISHED,
                &exec.actor,
                json!({
                    "execution_id": execution_id,
                    "kind": exec.kind,
                    "status": status.as_str(),
                    "counts": counts,
                }),
            ),
        )
        .await?;
        notices.push(Notice::Event { id });
        exec.status = status;
        exec.finished_at = Some(time(now));
        exec.counts = counts;
        exec.targets = targets;
        settled.finished.push(exec);
        Ok(())
    }

    /// Hands a host's agent its queued commands (and re-delivers ones delivered more than
    /// `redeliver_after_ms` ago without a `started`), plus the ids it must cancel (each
    /// cancel once). A re-delivered command whose cancel was requested is still handed
    /// over: the agent answers with its recorded result, and the cancel follows.
    pub async fn take_commands(
        &self,
        host_id: &str,
        redeliver_after_ms: i64,
    ) -> Result<(Vec<AgentCommand>, Vec<String>)> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE commands SET status = 'delivered', delivered_at = $1 \
             WHERE host_id = $2 \
             AND (status = 'queued' OR (status = 'delivered' AND delivered_at < $3)) \
             RETURNING id, execution_id, spec",
        )
        .bind(now)
        .bind(host_id)
        .bind(now - redeliver_after_ms)
        .fetch_all(&mut *self.writer().await?)
        .await?;
        let mut commands = Vec::with_capacity(rows.len());
        for row in &rows {
            let spec: String = row.try_get("spec")?;
            commands.push(AgentCommand {
                id: row.try_get("id")?,
                execution_id: row.try_get("execution_id")?,
                spec: json("commands", &spec)?,
            });
        }
        commands.sort_by(|a, b| a.id.cmp(&b.id));
        // Each cancel is handed over once (a reconnect hands it over again, see
        // `requeue_started`), so a poll does not spin while the process group dies.
        let cancel: Vec<(String,)> = sqlx::query_as(
            "UPDATE commands SET cancel_delivered = 1 WHERE host_id = $1 \
             AND cancel_requested = 1 AND cancel_delivered = 0 \
             AND status IN ('delivered', 'started') RETURNING id",
        )
        .bind(host_id)
        .fetch_all(&mut *self.writer().await?)
        .await?;
        Ok((commands, cancel.into_iter().map(|c| c.0).collect()))
    }

    /// True if the host has anything to take right now (used by the long-poll to decide
    /// whether to wait).
    pub async fn has_work(&self, host_id: &str, redeliver_after_ms: i64) -> Result<bool> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM commands WHERE host_id = $1 AND (\
               status = 'queued' OR (status = 'delivered' AND delivered_at < $2) \
               OR (cancel_requested = 1 AND cancel_delivered = 0 \
                   AND status IN ('delivered', 'started')))",
        )
        .bind(host_id)
        .bind(now_ms() - redeliver_after_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Puts a host's `started` commands back in its queue, so that an agent that
    /// reconnects answers for each one: its recorded result, or "restarted while
    /// running". Returns how many were re-queued.
    pub async fn requeue_started(&self, host_id: &str) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE commands SET status = 'queued', cancel_delivered = 0 \
             WHERE host_id = $1 AND status = 'started'",
        )
        .bind(host_id)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if n > 0 {
            self.notifier.publish(Notice::Commands {
                host_id: host_id.to_string(),
            });
        }
        Ok(n)
    }

    /// Records that the agent started a command. Returns false for an unknown command or
    /// one that belongs to another host.
    pub async fn command_started(&self, command_id: &str, host_id: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String,)> =
            sqlx::query_as("SELECT execution_id FROM commands WHERE id = $1 AND host_id = $2")
                .bind(command_id)
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((execution_id,)) = row else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE commands SET status = 'started' WHERE id = $1 AND status IN ('queued', 'delivered')",
        )
        .bind(command_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE targets SET status = 'running', started_at = $1 \
             WHERE command_id = $2 AND status = 'dispatched'",
        )
        .bind(now)
        .bind(command_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.publish_all(&execution_id, Vec::new());
        Ok(true)
    }

    /// Accepts output chunks. Duplicates (by `seq`) are dropped; the rest is stored up to
    /// [`STORED_OUTPUT_LIMIT`] bytes per host, then once [`TRUNCATION_MARKER`], then
    /// nothing — but every fresh chunk is returned and published for live streams.
    /// Returns `None` for an unknown command or one of another host.
    pub async fn append_output(
        &self,
        command_id: &str,
        host_id: &str,
        chunks: &[OutputChunk],
    ) -> Result<Option<OutputAccepted>> {
        let mut tx = self.begin_write().await?;
        // Locked: a resend racing the first attempt waits, then sees its `next_seq`.
        let row = sqlx::query(sql!(
            "SELECT {TARGET_COLUMNS} FROM targets WHERE command_id = $1 AND host_id = $2{}",
            self.dialect.for_update()
        ))
        .bind(command_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let execution_id: String = row.try_get("execution_id")?;
        if self.dialect == Dialect::Postgres {
            // Output row ids of one execution become visible in order (see `append_in`
            // for events): a stream paging by id must not pass a row committed later.
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(OUTPUT_LOCK_CLASS)
                .bind(&execution_id)
                .execute(&mut *tx)
                .await?;
        }
        let host_name: String = row.try_get("host_name")?;
        let mut stored: i64 = row.try_get("output_bytes")?;
        let mut truncated = row.try_get::<i64, _>("truncated")? != 0;
        let mut next_seq: i64 = row.try_get("next_seq")?;
        let mut fresh = Vec::new();
        for chunk in chunks {
            let seq = to_i64(chunk.seq);
            if seq < next_seq {
                continue;
            }
            next_seq = seq + 1;
            let mut pieces: Vec<String> = Vec::new();
            match admit(
                u64::try_from(stored).unwrap_or(0),
                truncated,
                STORED_OUTPUT_LIMIT,
                &chunk.data,
            ) {
                Admit::Store(s) => {
                    stored += to_i64(s.len() as u64);
                    pieces.push(s);
                }
                Admit::StoreAndTruncate(s) => {
                    stored += to_i64(s.len() as u64);
                    truncated = true;
                    if !s.is_empty() {
                        pieces.push(s);
                    }
                    pieces.push(TRUNCATION_MARKER.to_string());
                }
                Admit::Drop => {}
            }
            for piece in pieces {
                sqlx::query(
                    "INSERT INTO output (execution_id, host_id, seq, stream, data) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&execution_id)
                .bind(host_id)
                .bind(seq)
                .bind(chunk.stream.as_str())
                .bind(piece)
                .execute(&mut *tx)
                .await?;
            }
            fresh.push(HostOutput {
                host_id: host_id.to_string(),
                host_name: host_name.clone(),
                seq: chunk.seq,
                stream: chunk.stream,
                data: chunk.data.clone(),
            });
        }
        sqlx::query(
            "UPDATE targets SET output_bytes = $1, truncated = $2, next_seq = $3 \
             WHERE command_id = $4",
        )
        .bind(stored)
        .bind(i64::from(truncated))
        .bind(next_seq)
        .bind(command_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        for chunk in &fresh {
            self.notifier.publish(Notice::Output {
                execution_id: execution_id.clone(),
                chunk: Some(chunk.clone()),
            });
        }
        Ok(Some(OutputAccepted {
            execution_id,
            fresh,
        }))
    }

    /// Records a command's result on its target and finishes the execution if that was
    /// the last one. A result for a target already final (a resend) changes nothing.
    /// Returns `None` for an unknown command or one of another host.
    pub async fn finish_command(
        &self,
        command_id: &str,
        host_id: &str,
        result: &CommandResult,
    ) -> Result<Option<Settled>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT execution_id FROM targets WHERE command_id = $1 AND host_id = $2",
        )
        .bind(command_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((execution_id,)) = row else {
            return Ok(None);
        };
        // The execution row first (as every writer of its targets does): the results of
        // its last targets, arriving together at two controllers, queue here, so the
        // last one sees all the others and finishes the execution.
        lock_execution(&mut tx, self.dialect, &execution_id).await?;
        let (status,): (String,) =
            sqlx::query_as("SELECT status FROM targets WHERE command_id = $1")
                .bind(command_id)
                .fetch_one(&mut *tx)
                .await?;
        let mut settled = Settled::default();
        let mut notices = Vec::new();
        sqlx::query("UPDATE commands SET status = 'done' WHERE id = $1")
            .bind(command_id)
            .execute(&mut *tx)
            .await?;
        let status = parse_enum("targets", &status, TargetStatus::parse)?;
        if !status.is_final() {
            let new_status = match result.outcome {
                CommandOutcome::Ok => TargetStatus::Ok,
                CommandOutcome::Failed | CommandOutcome::Error => TargetStatus::Failed,
                CommandOutcome::TimedOut => TargetStatus::TimedOut,
                CommandOutcome::Cancelled => TargetStatus::Cancelled,
            };
            let duration = to_i64(result.duration_ms);
            sqlx::query(
                "UPDATE targets SET status = $1, exit_code = $2, signal = $3, error = $4, \
                 duration_ms = $5, finished_at = $6, started_at = COALESCE(started_at, $7) \
                 WHERE command_id = $8",
            )
            .bind(new_status.as_str())
            .bind(result.exit_code.map(i64::from))
            .bind(result.signal.map(i64::from))
            .bind(&result.error)
            .bind(duration)
            .bind(now)
            .bind(now - duration)
            .bind(command_id)
            .execute(&mut *tx)
            .await?;
            self.settle(&mut tx, &execution_id, &mut settled, &mut notices)
                .await?;
        }
        tx.commit().await?;
        self.publish_all(&execution_id, notices);
        Ok(Some(settled))
    }

    /// Marks the in-flight targets of a host that went down `unreachable` and finishes
    /// the executions that had nothing else left.
    pub async fn fail_host_targets(&self, host_id: &str, reason: &str) -> Result<Settled> {
        self.fail_targets(Overdue::Host(host_id), TargetStatus::Unreachable, reason)
            .await
    }

    /// Gives up on targets whose agent did not answer within their timeout plus a grace
    /// period (`now_ms` is passed in so that tests need no clock).
    pub async fn expire_overdue(&self, now_ms: i64) -> Result<Settled> {
        self.fail_targets(
            Overdue::DeadlineBefore(now_ms),
            TargetStatus::TimedOut,
            "no result from the agent within the timeout",
        )
        .await
    }

    async fn fail_targets(
        &self,
        which: Overdue<'_>,
        status: TargetStatus,
        reason: &str,
    ) -> Result<Settled> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let condition = match which {
            Overdue::Host(_) => "host_id = $1",
            Overdue::DeadlineBefore(_) => "deadline < $1",
        };
        let bind = |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>| match which
        {
            Overdue::Host(h) => q.bind(h.to_string()),
            Overdue::DeadlineBefore(t) => q.bind(t),
        };
        let in_flight = "status IN ('dispatched', 'running')";
        let executions: Vec<String> = bind(sqlx::query(sql!(
            "SELECT DISTINCT execution_id FROM targets WHERE {condition} AND {in_flight} \
             ORDER BY execution_id"
        )))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("execution_id"))
        .collect::<std::result::Result<_, _>>()?;
        let mut settled = Settled::default();
        let mut notices = Vec::new();
        // Execution rows first, in id order (see `finish_command`); then per execution
        // ask the agents to stop (in case they still run it) and mark the targets; then
        // settle, which appends events, last (see `append_in`).
        for execution_id in &executions {
            lock_execution(&mut tx, self.dialect, execution_id).await?;
        }
        for execution_id in &executions {
            // Never delivered yet: it never will be.
            bind(sqlx::query(sql!(
                "UPDATE commands SET status = 'done' WHERE status = 'queued' AND id IN \
                 (SELECT command_id FROM targets WHERE {condition} AND {in_flight} \
                  AND execution_id = $2)"
            )))
            .bind(execution_id)
            .execute(&mut *tx)
            .await?;
            bind(sqlx::query(sql!(
                "UPDATE commands SET cancel_requested = 1 WHERE status <> 'done' AND id IN \
                 (SELECT command_id FROM targets WHERE {condition} AND {in_flight} \
                  AND execution_id = $2)"
            )))
            .bind(execution_id)
            .execute(&mut *tx)
            .await?;
            bind(sqlx::query(sql!(
                "UPDATE targets SET status = $3, error = $4, finished_at = $5 \
                 WHERE {condition} AND {in_flight} AND execution_id = $2"
            )))
            .bind(execution_id)
            .bind(status.as_str())
            .bind(reason.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for execution_id in &executions {
            self.settle(&mut tx, execution_id, &mut settled, &mut notices)
                .await?;
        }
        tx.commit().await?;
        for n in notices {
            self.notifier.publish(n);
        }
        for execution_id in executions {
            self.notifier.publish(Notice::Execution { execution_id });
        }
        Ok(settled)
    }

    /// Cancels an execution: pending and queued targets become `cancelled` at once,
    /// running ones are cancelled through their agents. Returns `None` for an unknown
    /// execution; a final one is returned unchanged.
    pub async fn request_cancel(&self, execution_id: &str, actor: &str) -> Result<Option<Settled>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String,)> = sqlx::query_as(sql!(
            "SELECT status FROM executions WHERE id = $1{}",
            self.dialect.for_update()
        ))
        .bind(execution_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status,)) = row else {
            return Ok(None);
        };
        let mut settled = Settled::default();
        if parse_enum("executions", &status, ExecutionStatus::parse)?.is_final() {
            return Ok(Some(settled));
        }
        let mut notices = Vec::new();
        sqlx::query("UPDATE executions SET cancel_requested = 1 WHERE id = $1")
            .bind(execution_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE targets SET status = 'cancelled', finished_at = $1 WHERE execution_id = $2 \
             AND (status = 'pending' OR (status = 'dispatched' AND command_id IN \
               (SELECT id FROM commands WHERE execution_id = $2 AND status = 'queued')))",
        )
        .bind(now)
        .bind(execution_id)
        .execute(&mut *tx)
        .await?;
        drop_queued_commands(&mut tx, execution_id).await?;
        let hosts: Vec<(String,)> = sqlx::query_as(
            "UPDATE commands SET cancel_requested = 1 WHERE execution_id = $1 \
             AND status IN ('delivered', 'started') RETURNING host_id",
        )
        .bind(execution_id)
        .fetch_all(&mut *tx)
        .await?;
        for (host_id,) in hosts {
            notices.push(Notice::Commands { host_id });
        }
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::EXECUTION_CANCEL_REQUESTED,
                actor,
                json!({ "execution_id": execution_id }),
            ),
        )
        .await?;
        notices.push(Notice::Event { id });
        self.settle(&mut tx, execution_id, &mut settled, &mut notices)
            .await?;
        tx.commit().await?;
        self.publish_all(execution_id, notices);
        Ok(Some(settled))
    }

    /// An execution with its targets and counts.
    pub async fn get_execution(&self, id: &str) -> Result<Option<Execution>> {
        let row = sqlx::query(sql!("SELECT {EXEC_COLUMNS} FROM executions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut exec = execution(&row)?;
        let cancel: i64 = row.try_get("cancel_requested")?;
        let rows = sqlx::query(sql!(
            "SELECT {TARGET_COLUMNS} FROM targets WHERE execution_id = $1 ORDER BY ord"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        exec.targets = rows.iter().map(target).collect::<Result<Vec<_>>>()?;
        let statuses: Vec<TargetStatus> = exec.targets.iter().map(|t| t.status).collect();
        exec.counts = drover_core::execution_status::summarize(&statuses, cancel != 0).0;
        Ok(Some(exec))
    }

    /// Executions, newest first, with counts but without per-host detail.
    pub async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let mut sql = format!("SELECT {EXEC_COLUMNS} FROM executions WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut push = |clause: &str, value: String, binds: &mut Vec<String>| {
            binds.push(value);
            sql.push_str(&format!(" AND {clause} ${}", binds.len()));
        };
        if let Some(k) = &filter.kind {
            push("kind =", k.clone(), &mut binds);
        }
        if let Some(s) = filter.status {
            push("status =", s.as_str().to_string(), &mut binds);
        }
        if let Some(a) = &filter.actor {
            push("actor =", a.clone(), &mut binds);
        }
        if let Some(b) = &filter.before {
            push("id <", b.clone(), &mut binds);
        }
        if let Some(parent) = &filter.parent_id {
            push("parent_id =", parent.clone(), &mut binds);
        }
        // Numbers from the caller's own types, not text: written into the statement.
        if let Some(ms) = filter.since_ms {
            sql.push_str(&format!(" AND created_at >= {ms}"));
        }
        if let Some(ms) = filter.until_ms {
            sql.push_str(&format!(" AND created_at < {ms}"));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", filter.limit));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Every listed execution's target statuses in one query, not one per row.
        let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
        let mut tq = sqlx::query(sql!(
            "SELECT execution_id, status FROM targets WHERE execution_id IN ({})",
            placeholders.join(", ")
        ));
        let mut out = Vec::with_capacity(rows.len());
        let mut cancels = Vec::with_capacity(rows.len());
        for row in &rows {
            let exec = execution(row)?;
            tq = tq.bind(exec.id.clone());
            cancels.push(row.try_get::<i64, _>("cancel_requested")? != 0);
            out.push(exec);
        }
        let mut statuses: std::collections::HashMap<String, Vec<TargetStatus>> =
            std::collections::HashMap::new();
        for t in tq.fetch_all(&self.pool).await? {
            let id: String = t.try_get("execution_id")?;
            let status: String = t.try_get("status")?;
            statuses.entry(id).or_default().push(parse_enum(
                "targets",
                &status,
                TargetStatus::parse,
            )?);
        }
        for (exec, cancel) in out.iter_mut().zip(cancels) {
            let st = statuses.remove(&exec.id).unwrap_or_default();
            exec.counts = drover_core::execution_status::summarize(&st, cancel).0;
        }
        Ok(out)
    }

    /// Stored output of an execution in arrival order, after the row id `after` (0 for
    /// all). Each item comes with its row id, the cursor for the next call.
    pub async fn list_output(
        &self,
        execution_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, HostOutput)>> {
        let rows = sqlx::query(
            "SELECT o.id, o.host_id, t.host_name, o.seq, o.stream, o.data FROM output o \
             JOIN targets t ON t.execution_id = o.execution_id AND t.host_id = o.host_id \
             WHERE o.execution_id = $1 AND o.id > $2 ORDER BY o.id LIMIT $3",
        )
        .bind(execution_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let stream: String = row.try_get("stream")?;
            let seq: i64 = row.try_get("seq")?;
            out.push((
                row.try_get("id")?,
                HostOutput {
                    host_id: row.try_get("host_id")?,
                    host_name: row.try_get("host_name")?,
                    seq: u64::try_from(seq).unwrap_or(0),
                    stream: parse_enum(
                        "output",
                        &stream,
                        drover_proto::agent::OutputStream::parse,
                    )?,
                    data: row.try_get("data")?,
                },
            ));
        }
        Ok(out)
    }

    /// The execution a command belongs to.
    pub async fn execution_of_command(&self, command_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT execution_id FROM commands WHERE id = $1")
                .bind(command_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Ids of command executions (`run`, `logs`) not final yet (the controller resumes
    /// them at start; rollouts have their own executor).
    pub async fn unfinished_executions(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM executions WHERE status IN ('requested', 'running') \
             AND kind NOT IN ('deploy', 'action') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
