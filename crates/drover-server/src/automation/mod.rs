//! The automation runtime: the datastore's secrets, the catalog of packs, the rule
//! engine over the event log, the executor that runs actions, timers and webhooks.

mod builtin;
pub(crate) mod catalog;
pub(crate) mod engine;
mod executor;
pub(crate) mod prepare;
mod remote;
pub(crate) mod schedule;
pub(crate) mod secrets;
mod timers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use drover_core::workflow::spec::WorkflowSpec;

use crate::state::AppState;

/// How often expired datastore keys are removed.
const KV_EXPIRY_EVERY: Duration = Duration::from_millis(500);

/// Decoded workflow definitions by workflow execution id, with who started them: a
/// running workflow's definition never changes, so it is decoded once, not at every
/// task. Bounded; cleared when full.
#[derive(Default)]
pub(crate) struct WorkflowCache {
    entries: std::sync::Mutex<HashMap<String, (Arc<WorkflowSpec>, String)>>,
}

/// Workflows whose definitions are kept decoded.
const CACHED_WORKFLOWS: usize = 1024;

impl WorkflowCache {
    /// The definition and actor of workflow execution `id`, if cached.
    pub fn get(&self, id: &str) -> Option<(Arc<WorkflowSpec>, String)> {
        self.entries.lock().ok()?.get(id).cloned()
    }

    /// Keeps a decoded definition.
    pub fn put(&self, id: &str, spec: Arc<WorkflowSpec>, actor: &str) {
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= CACHED_WORKFLOWS {
                m.clear();
            }
            m.insert(id.to_string(), (spec, actor.to_string()));
        }
    }

    /// Forgets a finished workflow.
    pub fn forget(&self, id: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(id);
        }
    }
}

/// What the automation runtime keeps per controller.
pub(crate) struct Automation {
    /// The decoded catalog, rebuilt when packs or rule switches change.
    pub catalog: catalog::CatalogCache,
    /// Decoded definitions of running workflows.
    pub workflows: WorkflowCache,
    /// This controller's id in action claims.
    pub controller_id: String,
    /// The last datastore snapshot, while it is current.
    pub kv: prepare::KvCache,
}

impl Default for Automation {
    fn default() -> Automation {
        Automation {
            catalog: catalog::CatalogCache::default(),
            workflows: WorkflowCache::default(),
            controller_id: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            kv: prepare::KvCache::default(),
        }
    }
}

/// Whether an enabled rule listens on webhook `name`.
pub(crate) async fn listens_on_webhook(state: &AppState, name: &str) -> bool {
    let Ok(catalog) = state.automation.catalog.get(state).await else {
        return false;
    };
    catalog.rules.iter().any(|r| {
        r.enabled
            && r.trigger.kind == "webhook"
            && r.trigger
                .parameters
                .get("url")
                .and_then(serde_json::Value::as_str)
                .map(|u| u.trim_start_matches('/'))
                == Some(name)
    })
}

/// Starts the automation background tasks.
pub(crate) fn spawn(state: Arc<AppState>) {
    tokio::spawn(engine::run(state.clone()));
    tokio::spawn(executor::run(state.clone()));
    tokio::spawn(timers::run(state.clone()));
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
