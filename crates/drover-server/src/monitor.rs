//! Background work of the controller: marking silent hosts down, giving up on commands
//! past their deadline, and dispatching executions (which also resumes them after a
//! restart). Every controller runs these loops; the store makes each transition happen
//! once.

use std::sync::Arc;
use std::time::Duration;

use drover_store::Settled;

use crate::state::AppState;

/// Starts the monitor loop.
pub(crate) fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let period =
            (state.config.down_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = state.shutdown.cancelled() => return,
            }
            // A controller that just (re)started gives agents one `down_after` to reach
            // it before judging them: their silence was its own downtime, and a command
            // they finished meanwhile must not be failed as "host went down".
            let judge = started.elapsed() >= state.config.down_after;
            if let Err(e) = tick(&state, judge).await {
                tracing::warn!(error = %e, "monitor tick failed");
            }
        }
    });
}

async fn tick(state: &Arc<AppState>, judge_hosts: bool) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let down_after = i64::try_from(state.config.down_after.as_millis()).unwrap_or(i64::MAX);
    let stale = if judge_hosts {
        state.store.mark_down_stale(now - down_after).await?
    } else {
        Vec::new()
    };
    for host in stale {
        tracing::warn!(host = %host.name, "host is down: no heartbeat");
        let settled = state
            .store
            .fail_host_targets(&host.id, "host went down while the command ran")
            .await?;
        after_settle(state, settled).await;
    }
    let settled = state.store.expire_overdue(now).await?;
    after_settle(state, settled).await;
    for id in state.store.unfinished_executions().await? {
        dispatch(state, &id).await;
    }
    crate::rollout::tick_all(state).await;
    state.reconciler.tick(state).await;
    Ok(())
}

/// Dispatches what an execution may start now; errors are logged (the next tick retries).
pub(crate) async fn dispatch(state: &AppState, execution_id: &str) {
    match state.store.dispatch(execution_id).await {
        Ok(settled) => after_settle(state, settled).await,
        Err(e) => tracing::warn!(error = %e, execution_id, "dispatch failed"),
    }
}

/// Logs executions that just finished.
pub(crate) async fn after_settle(_state: &AppState, settled: Settled) {
    for exec in settled.finished {
        tracing::info!(
            execution_id = %exec.id,
            status = exec.status.as_str(),
            ok = exec.counts.ok,
            failed = exec.counts.failed,
            "execution finished"
        );
    }
}
