//! Load-balancer drains: instances a rollout took out of their pool, and the drain
//! epoch that tells when a generator's output reflects a drain change.
//!
//! Every drain change bumps `drain_epoch` in the same transaction. A generator stamps
//! each render with the epoch it read *before* reading the drains, so a render at
//! epoch `E` reflects every change up to `E`. A rollout that drained an instance at
//! epoch `E` waits until every target host of the generator applied epoch `E` or later.

use sqlx::Row;

use crate::notify::Notice;
use crate::rollouts::UnitInstance;
use crate::rows::now_ms;
use crate::{Result, Store};

/// An instance taken out of its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRow {
    /// Service.
    pub service: String,
    /// Host id.
    pub host_id: String,
    /// Copy on the host.
    pub index: u32,
    /// The rollout that drained it.
    pub execution_id: String,
    /// When (Unix ms).
    pub created_at: i64,
}

type Tx = crate::write::WriteTx;

async fn bump(tx: &mut Tx) -> Result<i64> {
    let (epoch,): (i64,) = sqlx::query_as(
        "UPDATE counters SET value = value + 1 WHERE name = 'drain_epoch' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(epoch)
}

impl Store {
    /// The current drain epoch, then every drained instance (in that order: see the
    /// module docs).
    pub async fn drains(&self) -> Result<(i64, Vec<DrainRow>)> {
        let (epoch,): (i64,) =
            sqlx::query_as("SELECT value FROM counters WHERE name = 'drain_epoch'")
                .fetch_one(&self.pool)
                .await?;
        let rows = sqlx::query(
            "SELECT service, host_id, idx, execution_id, created_at FROM drains \
             ORDER BY service, host_id, idx",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let idx: i64 = r.try_get("idx")?;
            Ok(DrainRow {
                service: r.try_get("service")?,
                host_id: r.try_get("host_id")?,
                index: u32::try_from(idx).unwrap_or(0),
                execution_id: r.try_get("execution_id")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok((epoch, rows))
    }

    /// Takes an instance out of its pool for a rollout. Returns the new drain epoch.
    pub async fn drain_instance(
        &self,
        service: &str,
        host_id: &str,
        index: u32,
        execution_id: &str,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO drains (service, host_id, idx, execution_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (service, host_id, idx) \
             DO UPDATE SET execution_id = excluded.execution_id",
        )
        .bind(service)
        .bind(host_id)
        .bind(i64::from(index))
        .bind(execution_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let epoch = bump(&mut tx).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Drains { epoch });
        Ok(epoch)
    }

    /// Puts an instance back in its pool. Returns the new drain epoch.
    pub async fn undrain_instance(&self, service: &str, host_id: &str, index: u32) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM drains WHERE service = $1 AND host_id = $2 AND idx = $3")
            .bind(service)
            .bind(host_id)
            .bind(i64::from(index))
            .execute(&mut *tx)
            .await?;
        let epoch = bump(&mut tx).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Drains { epoch });
        Ok(epoch)
    }

    /// Puts back every instance a rollout drained (it ended). Returns the new epoch,
    /// or `None` when it had none.
    pub async fn undrain_execution(&self, execution_id: &str) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM drains WHERE execution_id = $1")
            .bind(execution_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let epoch = bump(&mut tx).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Drains { epoch });
        Ok(Some(epoch))
    }

    /// Bumps the drain epoch (a host was drained or undrained: every generator must
    /// render again). Returns the new epoch.
    pub async fn bump_drain_epoch(&self) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let epoch = bump(&mut tx).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Drains { epoch });
        Ok(epoch)
    }

    /// Moves a rollout instance from one of `from` to `to` and sets its load-balancer
    /// fields. Returns false if it was in none of `from` (another controller moved it).
    pub async fn set_rollout_instance_lb(
        &self,
        at: &UnitInstance<'_>,
        from: &[&str],
        to: &str,
        lb_epoch: Option<i64>,
        lb_ready_at: Option<i64>,
    ) -> Result<bool> {
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let n = sqlx::query(sql!(
            "UPDATE rollout_instances SET status = $1, lb_epoch = $2, lb_ready_at = $3 \
             WHERE execution_id = $4 AND unit = $5 AND host_id = $6 AND service = $7 \
             AND idx = $8 AND status IN ({list})"
        ))
        .bind(to)
        .bind(lb_epoch)
        .bind(lb_ready_at)
        .bind(at.execution_id)
        .bind(at.unit)
        .bind(at.host_id)
        .bind(at.service)
        .bind(i64::from(at.index))
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query("UPDATE rollouts SET last_progress_at = $1 WHERE execution_id = $2")
                .bind(now_ms())
                .bind(at.execution_id)
                .execute(&mut *self.writer().await?)
                .await?;
        }
        Ok(n > 0)
    }
}
