//! From a plan to a stored rollout: units (one batch each), instances, and steps whose
//! command carries the instance's rendered [`InstanceSpec`]. A step's spec comes from the
//! model version that has the service at the step's version: the new model for the way
//! forward, earlier versions for stopping what runs now and for reverts.

use std::sync::Arc;

use drover_core::instance::{DesiredInstance, InstanceKey, LifecycleState};
use drover_core::model::{Model, Service};
use drover_core::plan::Plan;
use drover_proto::agent::CommandSpec;
use drover_proto::deploy::InstanceSpec;
use drover_store::{NewRolloutInstance, NewStep, NewUnit};

use super::decide::UnitPolicy;
use crate::api::deploy::{LiveView, load_model, to_model_files};
use crate::state::AppState;

/// Releases kept on each host per instance (the live one included).
const KEEP_RELEASES: u32 = 3;

/// Why a plan cannot become a rollout.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// A step needs a spec no stored model can give.
    #[error("cannot build {key} at version {version}: {reason}")]
    Spec {
        /// Instance.
        key: String,
        /// Version.
        version: String,
        /// Why.
        reason: String,
    },
}

/// How many stored model versions a rollout looks back through for specs.
const HISTORY: u32 = 20;

/// The stored model versions up to `newest` (all, if `None`), newest first, at most
/// [`HISTORY`] + 1 of them. Versions that no longer load are skipped.
pub(crate) async fn stored_models(
    state: &AppState,
    newest: Option<i64>,
) -> anyhow::Result<Vec<Model>> {
    let mut models = Vec::new();
    let before = newest.map(|n| n.saturating_add(1));
    for v in state.store.list_model_versions(before, 1000).await? {
        if models.len() > HISTORY as usize {
            break;
        }
        if let Some(full) = state.store.get_model_version(v.id).await?
            && let Ok(m) = load_model(&to_model_files(&full.files))
        {
            models.push(m);
        }
    }
    Ok(models)
}

/// The models a rollout may take specs from, newest first, with their desired
/// instances.
pub(crate) struct Models {
    list: Vec<(Model, Vec<DesiredInstance>)>,
}

impl Models {
    /// The model being rolled out first, then the stored versions before it.
    pub(crate) fn new(first: Model, older: Vec<Model>, view: &LiveView) -> Models {
        let list = std::iter::once(first)
            .chain(older)
            .map(|m| {
                let desired = drover_core::model::desired_instances(&m, &view.hosts);
                (m, desired)
            })
            .collect();
        Models { list }
    }

    /// Stored version `newest` and up to [`HISTORY`] versions before it.
    pub(crate) async fn load(state: &Arc<AppState>, newest: i64) -> anyhow::Result<Models> {
        let view = crate::api::deploy::live_view(state)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
        let mut it = stored_models(state, Some(newest)).await?.into_iter();
        let first = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("model version {newest} is not stored"))?;
        Ok(Models::new(first, it.collect(), &view))
    }

    fn service_at(
        &self,
        service: &str,
        version: &str,
    ) -> Option<(&Model, &Service, &[DesiredInstance])> {
        self.list.iter().find_map(|(m, d)| {
            m.services
                .get(service)
                .filter(|s| s.version == version)
                .map(|s| (m, s, d.as_slice()))
        })
    }

    /// True if the service (at the newest model that has it) has a health check.
    /// The service's load balancer, from the newest model that has the service.
    fn load_balancer(&self, service: &str) -> Option<drover_core::model::LoadBalancer> {
        self.list
            .iter()
            .find_map(|(m, _)| m.services.get(service))
            .and_then(|s| s.load_balancer.clone())
    }

    fn has_health_check(&self, service: &str) -> bool {
        self.list
            .iter()
            .find_map(|(m, _)| m.services.get(service))
            .is_some_and(|s| s.health.is_some())
    }
}

fn spec_for(
    state: &AppState,
    models: &Models,
    view: &LiveView,
    key: &InstanceKey,
    version: &str,
    spec_hash: &str,
) -> Result<InstanceSpec, BuildError> {
    let err = |reason: String| BuildError::Spec {
        key: key.to_string(),
        version: version.to_string(),
        reason,
    };
    let (model, service, desired) = models
        .service_at(&key.service, version)
        .ok_or_else(|| err("no stored model version has the service at this version".into()))?;
    let host = view
        .hosts
        .iter()
        .find(|h| h.name == key.host)
        .ok_or_else(|| err(format!("host `{}` is not known", key.host)))?;
    let instance = desired
        .iter()
        .find(|d| &d.key == key)
        .cloned()
        .unwrap_or_else(|| DesiredInstance {
            key: key.clone(),
            version: version.to_string(),
            state: LifecycleState::Running,
            spec_hash: spec_hash.to_string(),
            ports: service
                .ports
                .iter()
                .map(|(name, base)| (name.clone(), base.saturating_add(key.index as u16)))
                .collect(),
        });
    let ctx = drover_core::render::RenderContext {
        host,
        hostclass: drover_core::render::service_hostclass(model, service),
        controller_url: &state.public_url(),
    };
    drover_core::render::instance_spec(service, &instance, &ctx, KEEP_RELEASES)
        .map_err(|e| err(e.to_string()))
}

/// The units of a plan, in order: phases, then services, then batches.
pub(crate) fn build_units(
    state: &AppState,
    plan: &Plan,
    models: &Models,
    view: &LiveView,
) -> Result<Vec<NewUnit>, BuildError> {
    let mut units = Vec::new();
    for sp in plan.services() {
        let meta = UnitPolicy {
            policy: sp.policy.clone(),
            health_check: models.has_health_check(&sp.service),
            load_balancer: models.load_balancer(&sp.service),
        };
        let policy = serde_json::to_value(&meta).unwrap_or_default();
        for batch in &sp.batches {
            let mut instances = Vec::new();
            for change in &batch.changes {
                let host_id = view
                    .hosts
                    .iter()
                    .find(|h| h.name == change.key.host)
                    .map(|h| h.id.clone())
                    .ok_or_else(|| BuildError::Spec {
                        key: change.key.to_string(),
                        version: String::new(),
                        reason: format!("host `{}` is not known", change.key.host),
                    })?;
                let mut steps = Vec::with_capacity(change.steps.len());
                for step in &change.steps {
                    let instance = spec_for(
                        state,
                        models,
                        view,
                        &change.key,
                        &step.version,
                        &step.spec_hash,
                    )?;
                    let command = CommandSpec::Transition {
                        instance: Box::new(instance),
                        transition: step.transition,
                    };
                    steps.push(NewStep {
                        transition: step.transition.as_str().to_string(),
                        version: step.version.clone(),
                        spec: serde_json::to_value(&command).unwrap_or_default(),
                    });
                }
                let to_running = change
                    .to
                    .as_ref()
                    .is_some_and(|t| t.state == LifecycleState::Running);
                instances.push(NewRolloutInstance {
                    host_id,
                    host_name: change.key.host.clone(),
                    service: change.key.service.clone(),
                    index: change.key.index,
                    kind: change.kind.as_str().to_string(),
                    from_version: change.from.as_ref().map(|f| f.version.clone()),
                    to_version: change.to.as_ref().map(|t| t.version.clone()),
                    to_state: change.to.as_ref().map(|t| t.state.as_str().to_string()),
                    gated: to_running,
                    steps,
                });
            }
            units.push(NewUnit {
                service: sp.service.clone(),
                batch: u32::try_from(batch.index).unwrap_or(u32::MAX),
                canary: batch.canary,
                revert: false,
                policy: policy.clone(),
                instances,
            });
        }
    }
    Ok(units)
}
