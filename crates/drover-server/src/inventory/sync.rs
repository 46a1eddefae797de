//! The provider sync loop: every provider of the applied model is asked for its hosts
//! on its own interval, and the answer is merged into drover's hosts.
//!
//! Several controllers may share the store: each sync is claimed first
//! (`claim_provider_sync`), so one controller runs it. A provider that fails keeps
//! its last good inventory, which is marked stale, with a `provider.failed` event;
//! it never empties the fleet.

use std::sync::Arc;
use std::time::Duration;

use drover_core::model::Provider;

use super::providers;
use crate::state::AppState;

/// How often the loop looks for providers that are due.
const PERIOD: Duration = Duration::from_millis(500);
/// The longest one sync may take before it counts as failed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts the loop.
pub(crate) fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the provider HTTP client");
                return;
            }
        };
        let mut ticker = tokio::time::interval(PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(e) = round(&state, &http).await {
                tracing::warn!(error = %e, "provider round failed");
            }
        }
    });
}

/// Syncs every provider that is due now.
async fn round(state: &Arc<AppState>, http: &reqwest::Client) -> anyhow::Result<()> {
    let Some(model) = crate::api::deploy::applied_model(state).await? else {
        return Ok(());
    };
    let names: Vec<String> = model.providers.keys().cloned().collect();
    for gone in state.store.forget_providers_except(&names).await? {
        tracing::info!(provider = %gone, "provider left the model: its hosts are forgotten");
    }
    for p in model.providers.values() {
        let now = chrono::Utc::now().timestamp_millis();
        if state
            .store
            .claim_provider_sync(&p.name, p.interval, now)
            .await?
        {
            sync_one(state, http, p).await?;
        }
    }
    Ok(())
}

/// Asks one provider and merges its answer (or records its failure).
pub(crate) async fn sync_one(
    state: &Arc<AppState>,
    http: &reqwest::Client,
    p: &Provider,
) -> anyhow::Result<()> {
    let fetched = tokio::time::timeout(SYNC_TIMEOUT, providers::fetch(p, http)).await;
    match fetched {
        Ok(Ok(hosts)) => {
            let out = state.store.sync_provider(&p.name, &hosts, "system").await?;
            tracing::debug!(provider = %p.name, ?out, "provider synced");
        }
        Ok(Err(e)) => {
            tracing::warn!(provider = %p.name, error = %e, "provider failed: keeping its last inventory");
            state
                .store
                .provider_failed(&p.name, &e.to_string(), "system")
                .await?;
        }
        Err(_) => {
            let e = format!(
                "{} provider did not answer within {}s",
                p.kind.type_name(),
                SYNC_TIMEOUT.as_secs()
            );
            state.store.provider_failed(&p.name, &e, "system").await?;
        }
    }
    Ok(())
}
