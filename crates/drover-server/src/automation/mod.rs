//! The automation runtime: the datastore's secrets, the catalog of packs, the rule
//! engine over the event log, the executor that runs actions, timers and webhooks.

pub(crate) mod schedule;
pub(crate) mod secrets;

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;

/// How often expired datastore keys are removed.
const KV_EXPIRY_EVERY: Duration = Duration::from_millis(500);

/// Whether an enabled rule listens on webhook `name`.
pub(crate) async fn listens_on_webhook(_state: &AppState, _name: &str) -> bool {
    false
}

/// Starts the automation background tasks.
pub(crate) fn spawn(state: Arc<AppState>) {
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KV_EXPIRY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = s.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = s.store.kv_expire().await {
                tracing::warn!(error = %e, "cannot expire datastore keys");
            }
        }
    });
}
