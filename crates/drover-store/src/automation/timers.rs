//! Timer triggers: each timer rule's next firing, advanced by compare-and-set so that
//! of several controllers exactly one fires it.

use sqlx::Row;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::{Result, Store};

/// A timer rule's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRow {
    /// The rule.
    pub rule_ref: String,
    /// The trigger as the rule declares it (to notice a changed schedule).
    pub spec: String,
    /// Next firing (Unix ms); `i64::MAX` when it will not fire again.
    pub next_at: i64,
}

impl Store {
    /// Makes the stored timers match `wanted` (rule, spec, first firing): new or changed
    /// timers are (re)scheduled, timers of rules no longer there are dropped.
    pub async fn sync_timers(&self, wanted: &[TimerRow]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT rule_ref, spec FROM timers")
            .fetch_all(&mut *tx)
            .await?;
        let mut have = std::collections::HashMap::new();
        for r in &rows {
            let rule: String = r.try_get("rule_ref")?;
            let spec: String = r.try_get("spec")?;
            have.insert(rule, spec);
        }
        for w in wanted {
            if have.remove(&w.rule_ref).as_deref() == Some(w.spec.as_str()) {
                continue;
            }
            sqlx::query(
                "INSERT INTO timers (rule_ref, spec, next_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (rule_ref) DO UPDATE SET spec = $2, next_at = $3",
            )
            .bind(&w.rule_ref)
            .bind(&w.spec)
            .bind(w.next_at)
            .execute(&mut *tx)
            .await?;
        }
        for gone in have.keys() {
            sqlx::query("DELETE FROM timers WHERE rule_ref = $1")
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Timers due at `now_ms`.
    pub async fn due_timers(&self, now_ms: i64) -> Result<Vec<TimerRow>> {
        let rows = sqlx::query(
            "SELECT rule_ref, spec, next_at FROM timers WHERE next_at <= $1 ORDER BY next_at",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TimerRow {
                    rule_ref: r.try_get("rule_ref")?,
                    spec: r.try_get("spec")?,
                    next_at: r.try_get("next_at")?,
                })
            })
            .collect()
    }

    /// The earliest next firing of any timer.
    pub async fn next_timer_at(&self) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT MIN(next_at) FROM timers")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Fires a timer: moves it from `due` to `next` and appends `event`, if no other
    /// controller did first (then `Ok(false)`).
    pub async fn fire_timer(
        &self,
        rule_ref: &str,
        due: i64,
        next: i64,
        event: &NewEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let moved =
            sqlx::query("UPDATE timers SET next_at = $1 WHERE rule_ref = $2 AND next_at = $3")
                .bind(next)
                .bind(rule_ref)
                .bind(due)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        let id = append_in(&mut tx, self.dialect, event).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        Ok(true)
    }
}
