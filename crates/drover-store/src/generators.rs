//! Generated config outputs: per generator and target host, what was last asked for
//! (`wanted_*`, with the `generate` execution that carries it) and what is live
//! (`applied_*`). The bytes themselves travel in the execution's per-target
//! `WriteFile` commands.

use drover_proto::events::types;
use drover_proto::executions::Execution;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::executions::NewExecution;
use crate::notify::Notice;
use crate::rows::now_ms;
use crate::{Result, Store};

/// One generator's output on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorOutput {
    /// Generator name.
    pub generator: String,
    /// Target host id.
    pub host_id: String,
    /// Target host name.
    pub host_name: String,
    /// SHA-256 of the last content sent.
    pub wanted_sha: Option<String>,
    /// The last content sent.
    pub wanted_content: Option<String>,
    /// Drain epoch that content reflects.
    pub wanted_epoch: Option<i64>,
    /// The `generate` execution that carries it.
    pub execution_id: Option<String>,
    /// SHA-256 of the content live on the host.
    pub applied_sha: Option<String>,
    /// The content live on the host.
    pub applied_content: Option<String>,
    /// Drain epoch the live content reflects.
    pub applied_epoch: i64,
    /// `pending` (sent), `ok` (applied), `failed` (check or reload failed), `error`
    /// (not delivered: host down, timed out).
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// What a generator writes on one host.
#[derive(Debug, Clone)]
pub struct GenerateItem {
    /// Host id.
    pub host_id: String,
    /// Host name.
    pub host_name: String,
    /// The content.
    pub content: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Drain epoch the render reflects.
    pub epoch: i64,
}

const COLUMNS: &str = "generator, host_id, host_name, wanted_sha, wanted_content, wanted_epoch, \
    execution_id, applied_sha, applied_content, applied_epoch, status, error, updated_at";

fn output(r: &AnyRow) -> Result<GeneratorOutput> {
    Ok(GeneratorOutput {
        generator: r.try_get("generator")?,
        host_id: r.try_get("host_id")?,
        host_name: r.try_get("host_name")?,
        wanted_sha: r.try_get("wanted_sha")?,
        wanted_content: r.try_get("wanted_content")?,
        wanted_epoch: r.try_get("wanted_epoch")?,
        execution_id: r.try_get("execution_id")?,
        applied_sha: r.try_get("applied_sha")?,
        applied_content: r.try_get("applied_content")?,
        applied_epoch: r.try_get("applied_epoch")?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Outputs of one generator, or of all, by generator and host name.
    pub async fn generator_outputs(&self, generator: Option<&str>) -> Result<Vec<GeneratorOutput>> {
        let rows = match generator {
            Some(g) => {
                sqlx::query(sql!(
                    "SELECT {COLUMNS} FROM generator_outputs WHERE generator = $1 \
                     ORDER BY generator, host_name"
                ))
                .bind(g)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sql!(
                    "SELECT {COLUMNS} FROM generator_outputs ORDER BY generator, host_name"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(output).collect()
    }

    /// A render for `host_id` equals what is live: the live content now reflects
    /// `epoch` too.
    pub async fn generator_unchanged(
        &self,
        generator: &str,
        host_id: &str,
        epoch: i64,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE generator_outputs SET applied_epoch = $1, updated_at = $2 \
             WHERE generator = $3 AND host_id = $4 AND applied_epoch < $1",
        )
        .bind(epoch)
        .bind(now_ms())
        .bind(generator)
        .bind(host_id)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if n > 0 {
            self.notifier.publish(Notice::Generator {
                generator: generator.to_string(),
            });
        }
        Ok(())
    }

    /// Records a `generate` execution (its targets carry their own `WriteFile`
    /// commands) and marks each host's output pending, in one transaction.
    pub async fn start_generate(
        &self,
        generator: &str,
        new: &NewExecution,
        items: &[GenerateItem],
    ) -> Result<Execution> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let event_id = self.insert_execution(&mut tx, new).await?;
        for item in items {
            sqlx::query(
                "INSERT INTO generator_outputs (generator, host_id, host_name, wanted_sha, \
                 wanted_content, wanted_epoch, execution_id, applied_epoch, status, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 'pending', $8) \
                 ON CONFLICT (generator, host_id) DO UPDATE SET host_name = excluded.host_name, \
                 wanted_sha = excluded.wanted_sha, wanted_content = excluded.wanted_content, \
                 wanted_epoch = excluded.wanted_epoch, execution_id = excluded.execution_id, \
                 status = 'pending', error = NULL, updated_at = excluded.updated_at",
            )
            .bind(generator)
            .bind(&item.host_id)
            .bind(&item.host_name)
            .bind(&item.sha256)
            .bind(&item.content)
            .bind(item.epoch)
            .bind(&new.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id: event_id });
        self.notifier.publish(Notice::Execution {
            execution_id: new.id.clone(),
        });
        self.get_execution_row(&new.id).await
    }

    /// Records how a `generate` execution's target ended: `status` is `ok`, `failed`
    /// (the check or the reload said no) or `error` (not delivered). A failure gets a
    /// `generator.failed` event with `error`. Returns the output, or `None` when the
    /// execution no longer carries that host's output (a newer render replaced it).
    pub async fn finish_generate(
        &self,
        execution_id: &str,
        host_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<Option<GeneratorOutput>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM generator_outputs WHERE execution_id = $1 AND host_id = $2"
        ))
        .bind(execution_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let before = output(&row)?;
        if before.status != "pending" {
            return Ok(Some(before));
        }
        if status == "ok" {
            sqlx::query(
                "UPDATE generator_outputs SET applied_sha = wanted_sha, \
                 applied_content = wanted_content, \
                 applied_epoch = CASE WHEN wanted_epoch > applied_epoch THEN wanted_epoch \
                 ELSE applied_epoch END, status = 'ok', error = NULL, updated_at = $1 \
                 WHERE generator = $2 AND host_id = $3",
            )
            .bind(now)
            .bind(&before.generator)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "UPDATE generator_outputs SET status = $1, error = $2, updated_at = $3 \
                 WHERE generator = $4 AND host_id = $5",
            )
            .bind(status)
            .bind(error)
            .bind(now)
            .bind(&before.generator)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        }
        let event = if status == "ok" {
            NewEvent::new(
                types::GENERATOR_APPLIED,
                "system",
                json!({
                    "generator": before.generator,
                    "host": before.host_name,
                    "host_id": host_id,
                    "sha256": before.wanted_sha,
                    "execution_id": execution_id,
                }),
            )
        } else {
            NewEvent::new(
                types::GENERATOR_FAILED,
                "system",
                json!({
                    "generator": before.generator,
                    "host": before.host_name,
                    "host_id": host_id,
                    "status": status,
                    "error": error,
                    "execution_id": execution_id,
                }),
            )
        };
        let event_id = append_in(&mut tx, self.dialect, &event).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id: event_id });
        self.notifier.publish(Notice::Generator {
            generator: before.generator.clone(),
        });
        let after = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM generator_outputs WHERE generator = $1 AND host_id = $2"
        ))
        .bind(&before.generator)
        .bind(host_id)
        .fetch_optional(&self.pool)
        .await?;
        after.as_ref().map(output).transpose()
    }

    /// Forgets the outputs of generators no longer in the model, and of hosts no
    /// longer targeted by `generator`.
    pub async fn forget_generator_outputs(
        &self,
        generator: Option<&str>,
        keep: &[String],
    ) -> Result<u64> {
        let list = keep
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let keep_clause = if keep.is_empty() {
            String::new()
        } else {
            match generator {
                Some(_) => format!(" AND host_id NOT IN ({list})"),
                None => format!(" AND generator NOT IN ({list})"),
            }
        };
        let n = match generator {
            Some(g) => {
                sqlx::query(sql!(
                    "DELETE FROM generator_outputs WHERE generator = $1{keep_clause}"
                ))
                .bind(g)
                .execute(&mut *self.writer().await?)
                .await?
            }
            None => {
                sqlx::query(sql!(
                    "DELETE FROM generator_outputs WHERE 1 = 1{keep_clause}"
                ))
                .execute(&mut *self.writer().await?)
                .await?
            }
        };
        Ok(n.rows_affected())
    }
}
