//! `reconcile: auto`: when a service that opted in drifts from the applied model (an
//! instance missing on a new host of its hostclass, stopped, on the wrong version,
//! unhealthy…), drover plans and rolls out the fix on its own, as the actor `reconcile`.
//! Services with `reconcile: manual` (the default) are only shown in `drover status`.
//!
//! A reconcile runs only while no rollout is active, and at most once a minute per
//! service, so that a fix that cannot take (a release that never becomes healthy) does
//! not loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_core::delta::DeltaStatus;
use drover_core::model::Reconcile;
use drover_core::plan::plan;

use super::{Models, build_units};
use crate::api::deploy::{live_view, load_model, model_delta, rollouts, to_model_files};
use crate::state::AppState;

/// Least time before a service whose last reconcile did not succeed is tried again.
const BACKOFF: Duration = Duration::from_secs(60);
/// Least time between two looks at the delta.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Each service's last reconcile rollout (per controller; a second controller may
/// reconcile once more, which the active-rollout check then serialises).
#[derive(Default)]
pub(crate) struct Reconciler {
    last: Mutex<HashMap<String, (Instant, String)>>,
    checked: Mutex<Option<Instant>>,
}

impl Reconciler {
    /// Starts a reconcile rollout if an opted-in service drifted. Errors are logged.
    pub(crate) async fn tick(&self, state: &Arc<AppState>) {
        if let Err(e) = self.tick_inner(state).await {
            tracing::warn!(error = %e, "reconcile failed");
        }
    }

    async fn tick_inner(&self, state: &Arc<AppState>) -> anyhow::Result<()> {
        {
            let mut checked = self
                .checked
                .lock()
                .map_err(|_| anyhow::anyhow!("reconcile state poisoned"))?;
            if checked.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
                return Ok(());
            }
            *checked = Some(Instant::now());
        }
        if !state.store.active_rollouts().await?.is_empty() {
            return Ok(());
        }
        let Some(current) = state.store.current_model_version().await? else {
            return Ok(());
        };
        let model = load_model(&to_model_files(&current.files))
            .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
        let auto: Vec<String> = model
            .services
            .values()
            .filter(|s| s.reconcile == Reconcile::Auto)
            .map(|s| s.name.clone())
            .collect();
        if auto.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let recent: Vec<(String, String)> = {
            let last = self
                .last
                .lock()
                .map_err(|_| anyhow::anyhow!("reconcile state poisoned"))?;
            last.iter()
                .filter(|(_, (t, _))| now.duration_since(*t) < BACKOFF)
                .map(|(s, (_, id))| (s.clone(), id.clone()))
                .collect()
        };
        let mut held = Vec::new();
        for (service, id) in recent {
            let ok = state
                .store
                .rollout_detail(&id)
                .await?
                .is_some_and(|d| d.rollout.state == "succeeded");
            if !ok {
                held.push(service);
            }
        }
        let due: Vec<String> = auto.into_iter().filter(|s| !held.contains(s)).collect();
        if due.is_empty() {
            return Ok(());
        }
        let view = live_view(state)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
        let deltas: Vec<_> = model_delta(&model, &view)
            .into_iter()
            .filter(|d| due.contains(&d.key.service))
            .filter(|d| !matches!(d.status, DeltaStatus::Ok | DeltaStatus::Unreachable))
            .collect();
        if deltas.is_empty() {
            return Ok(());
        }
        let policies: BTreeMap<_, _> = rollouts(&model)
            .into_iter()
            .filter(|(name, _)| due.contains(name))
            .collect();
        let plan = plan(&deltas, &policies)?;
        if plan.is_empty() {
            return Ok(());
        }
        let models = Models::load(state, current.id).await?;
        let units = build_units(state, &plan, &models, &view)?;
        if units.is_empty() {
            return Ok(());
        }
        let execution_id = uuid::Uuid::now_v7().to_string();
        {
            let mut last = self
                .last
                .lock()
                .map_err(|_| anyhow::anyhow!("reconcile state poisoned"))?;
            for s in plan.services() {
                last.insert(s.service.clone(), (now, execution_id.clone()));
            }
        }
        tracing::info!(%execution_id, changes = plan.counts.total(), "reconciling drift");
        state
            .store
            .create_rollout(&drover_store::NewRollout {
                execution_id: execution_id.clone(),
                actor: "reconcile".to_string(),
                model_version: current.id,
                previous_version: Some(current.id),
                plan_text: plan.to_string(),
                counts: serde_json::to_value(plan.counts).unwrap_or_default(),
                units,
            })
            .await?;
        super::tick(state, &execution_id).await;
        Ok(())
    }
}
