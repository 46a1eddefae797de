//! Timer triggers: keeps the stored schedules in line with the enabled timer rules and
//! fires the due ones (one controller wins each firing) as `timer.*` events.

use std::sync::Arc;
use std::time::Duration;

use drover_store::{NewEvent, TimerRow};
use serde_json::json;

use super::schedule::{self, NEVER};
use crate::state::AppState;

/// Longest sleep between two looks at the schedule.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// Runs the timers until shutdown.
pub(crate) async fn run(state: Arc<AppState>) {
    let mut synced_epoch = -1;
    loop {
        if let Err(e) = tick(&state, &mut synced_epoch).await {
            tracing::warn!(error = %e, "timer step failed");
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(MAX_SLEEP) => {}
        }
    }
}

async fn tick(state: &Arc<AppState>, synced_epoch: &mut i64) -> anyhow::Result<()> {
    let catalog = state.automation.catalog.get(state).await?;
    let now = chrono::Utc::now().timestamp_millis();
    if catalog.epoch != *synced_epoch {
        let mut wanted = Vec::new();
        for r in catalog.rules.iter().filter(|r| r.enabled) {
            if !r.trigger.kind.starts_with("timer.") {
                continue;
            }
            let spec =
                json!({ "type": r.trigger.kind, "parameters": r.trigger.parameters }).to_string();
            match schedule::next_after(&r.trigger.kind, &r.trigger.parameters, now) {
                Ok(next) => wanted.push(TimerRow {
                    rule_ref: r.reference(),
                    spec,
                    next_at: next,
                }),
                Err(e) => tracing::warn!(rule = %r.reference(), error = %e, "bad timer"),
            }
        }
        state.store.sync_timers(&wanted).await?;
        *synced_epoch = catalog.epoch;
    }
    for due in state.store.due_timers(now).await? {
        if due.next_at == NEVER {
            continue;
        }
        let Some(rule) = catalog.rule(&due.rule_ref) else {
            continue;
        };
        let kind = rule.trigger.kind.clone();
        let next = match kind.as_str() {
            "timer.date" => NEVER,
            _ => schedule::next_after(&kind, &rule.trigger.parameters, now.max(due.next_at))
                .unwrap_or(NEVER),
        };
        let executed_at = chrono::Utc::now().to_rfc3339();
        let event = NewEvent::new(
            &kind,
            "system",
            json!({
                "rule": due.rule_ref,
                "executed_at": executed_at,
                "scheduled_at": due.next_at,
                "schedule": rule.trigger.parameters,
            }),
        );
        state
            .store
            .fire_timer(&due.rule_ref, due.next_at, next, &event)
            .await?;
    }
    Ok(())
}
