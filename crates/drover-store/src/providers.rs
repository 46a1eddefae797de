//! Inventory providers: their sync state, failures, and the claim that lets one
//! controller among several sync each provider.

use std::time::Duration;

use drover_proto::events::types;
use drover_proto::inventory::ProviderState;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::inventory::lock_inventory;
use crate::notify::Notice;
use crate::rows::now_ms;
use crate::{Result, Store};

fn provider(row: &AnyRow) -> Result<ProviderState> {
    let count: i64 = row.try_get("host_count")?;
    Ok(ProviderState {
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        host_count: u64::try_from(count).unwrap_or_default(),
        error: row.try_get("error")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        last_ok_at: row.try_get("last_ok_at")?,
    })
}

impl Store {
    /// Records a failed sync of `provider`: every host is kept (the last good inventory)
    /// and marked stale, and the provider is `stale` with `error`. A `provider.failed`
    /// event is emitted when the provider was not stale yet or the error changed, not
    /// for every failed attempt.
    pub async fn provider_failed(&self, provider: &str, error: &str, actor: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        lock_inventory(&mut tx, self.dialect).await?;
        let previous: Option<(String, Option<String>)> = sqlx::query_as(sql!(
            "SELECT status, error FROM providers WHERE name = $1{}",
            self.dialect.for_update()
        ))
        .bind(provider)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("UPDATE hosts SET stale = 1 WHERE provider = $1 AND stale = 0")
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO providers (name, status, host_count, error, last_attempt_at, \
             next_due_at) VALUES ($1, 'stale', 0, $2, $3, 0) \
             ON CONFLICT (name) DO UPDATE SET status = 'stale', error = $2, \
             last_attempt_at = $3",
        )
        .bind(provider)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let news = match &previous {
            Some((status, old)) => status != "stale" || old.as_deref() != Some(error),
            None => true,
        };
        let event_id = if news {
            Some(
                append_in(
                    &mut tx,
                    self.dialect,
                    &NewEvent::new(
                        types::PROVIDER_FAILED,
                        actor,
                        json!({ "provider": provider, "error": error }),
                    ),
                )
                .await?,
            )
        } else {
            None
        };
        tx.commit().await?;
        if let Some(id) = event_id {
            self.notifier.publish(Notice::Event { id });
        }
        Ok(())
    }

    /// Claims the next sync of `provider` for this caller: true when it is due (or the
    /// provider is new) and this caller won it; it is then due again `interval` after
    /// `now_ms`. Several controllers sharing the store call this on their own timers;
    /// only one of them syncs each time.
    pub async fn claim_provider_sync(
        &self,
        provider: &str,
        interval: Duration,
        now_ms: i64,
    ) -> Result<bool> {
        sqlx::query(
            "INSERT INTO providers (name, status, host_count, next_due_at) \
             VALUES ($1, 'pending', 0, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(provider)
        .execute(&mut *self.writer().await?)
        .await?;
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let won = sqlx::query(
            "UPDATE providers SET next_due_at = $1 WHERE name = $2 AND next_due_at <= $3",
        )
        .bind(now_ms.saturating_add(interval_ms))
        .bind(provider)
        .bind(now_ms)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected()
            == 1;
        Ok(won)
    }

    /// Makes `provider`'s next sync due now (`drover inventory sync`).
    pub async fn request_provider_sync(&self, provider: &str) -> Result<()> {
        sqlx::query("UPDATE providers SET next_due_at = 0 WHERE name = $1")
            .bind(provider)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Every provider's state, by name.
    pub async fn providers(&self) -> Result<Vec<ProviderState>> {
        let rows = sqlx::query(
            "SELECT name, status, host_count, error, last_attempt_at, last_ok_at \
             FROM providers ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(provider).collect()
    }
}
