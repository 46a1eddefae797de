//! Automation state (issue 4): installed packs, rule switches, the datastore, webhooks,
//! action executions and their claims, workflow state, and the rule engine's batches.
//!
//! The rule engine reads the event log in order from a cursor (`counters.automation_cursor`)
//! and commits everything one batch of events led to — enforcements, new executions,
//! workflow state, new events — in one transaction that also moves the cursor by
//! compare-and-set. Two controllers may read the same batch; only one commits it.

mod actions;
mod batch;
mod kv;
mod packs;
mod timers;
mod webhooks;

pub use actions::{ClaimedAction, NewAction};
pub use batch::{Batch, Enforcement, EnforcementRow, WorkflowWrite};
pub use kv::{KvQuery, KvRow, KvWrite};
pub use packs::{PackRow, PackWrite};
pub use timers::TimerRow;
pub use webhooks::WebhookRow;

/// Reads a counter inside or outside a transaction.
pub(crate) async fn counter(conn: &mut sqlx::AnyConnection, name: &str) -> crate::Result<i64> {
    let (v,): (i64,) = sqlx::query_as("SELECT value FROM counters WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    Ok(v)
}

/// Adds one to a counter and returns the new value.
pub(crate) async fn bump(conn: &mut sqlx::AnyConnection, name: &str) -> crate::Result<i64> {
    let (v,): (i64,) =
        sqlx::query_as("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    Ok(v)
}
