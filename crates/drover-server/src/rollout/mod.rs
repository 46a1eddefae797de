//! The rollout executor: turns a plan into a stored rollout ([`build`]) and drives it
//! ([`tick`]): every monitor tick, and at once when a step's result or an instance report
//! arrives. Decisions come from [`decide`]; this module only loads, applies and reverts.

mod build;
mod decide;
mod reconcile;

use std::collections::BTreeSet;
use std::sync::Arc;

use drover_core::delta::delta;
use drover_core::instance::RolloutPolicy;
use drover_store::{NewUnit, UnitInstance};

pub(crate) use build::{Models, build_units, stored_models};
use decide::{Action, LiveMap, LiveState, decide};
pub(crate) use reconcile::Reconciler;

use crate::api::deploy::{live_view, load_model, to_model_files};
use crate::state::AppState;

/// Drives one rollout as far as it can go now. Errors are logged; the next tick retries.
/// When an instance is waiting out `min_healthy_time`, another tick is scheduled for
/// the moment it can pass, so a gate costs its policy's time and not a monitor period.
pub(crate) async fn tick(state: &Arc<AppState>, execution_id: &str) {
    tick_once(state, execution_id).await;
    if let Some(wait) = gate_wait(state, execution_id).await {
        let state = state.clone();
        let id = execution_id.to_string();
        tokio::spawn(async move {
            let mut wait = wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = state.shutdown.cancelled() => return,
                }
                tick_once(&state, &id).await;
                match gate_wait(&state, &id).await {
                    Some(w) => wait = w,
                    None => return,
                }
            }
        });
    }
}

async fn tick_once(state: &Arc<AppState>, execution_id: &str) {
    if let Err(e) = tick_inner(state, execution_id).await {
        tracing::warn!(execution_id, error = %e, "rollout tick failed");
    }
}

async fn gate_wait(state: &Arc<AppState>, execution_id: &str) -> Option<std::time::Duration> {
    next_gate_deadline(state, execution_id)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(execution_id, error = %e, "cannot schedule the next gate check");
            None
        })
}

/// How long until the earliest gating instance of the current unit has been healthy for
/// `min_healthy_time` (if any is on its way there).
async fn next_gate_deadline(
    state: &Arc<AppState>,
    execution_id: &str,
) -> anyhow::Result<Option<std::time::Duration>> {
    let Some(d) = state.store.rollout_detail(execution_id).await? else {
        return Ok(None);
    };
    if d.rollout.state != "running" {
        return Ok(None);
    }
    let Some(unit) = d.units.iter().find(|u| u.unit == d.rollout.unit) else {
        return Ok(None);
    };
    let policy: decide::UnitPolicy = serde_json::from_value(unit.policy.clone())?;
    let min = i64::try_from(policy.policy.min_healthy_time.as_millis()).unwrap_or(i64::MAX);
    let now = chrono::Utc::now().timestamp_millis();
    let grace = policy.load_balancer.as_ref().map_or(0, |lb| {
        i64::try_from(lb.drain_grace.as_millis()).unwrap_or(i64::MAX)
    });
    let gates = d
        .instances
        .iter()
        .filter(|i| i.unit == d.rollout.unit && i.status == "gating")
        .filter_map(|i| i.healthy_since.map(|since| since.saturating_add(min)));
    let drains = d
        .instances
        .iter()
        .filter(|i| i.unit == d.rollout.unit && i.status == "draining")
        .filter_map(|i| i.lb_ready_at.map(|ready| ready.saturating_add(grace)));
    let due = gates.chain(drains).min();
    Ok(due.map(|at| {
        std::time::Duration::from_millis(u64::try_from((at - now).max(0)).unwrap_or(0) + 5)
    }))
}

/// Ticks every active rollout.
pub(crate) async fn tick_all(state: &Arc<AppState>) {
    match state.store.active_rollouts().await {
        Ok(ids) => {
            for id in ids {
                tick(state, &id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list rollouts"),
    }
}

async fn live_map(state: &AppState) -> anyhow::Result<LiveMap> {
    Ok(state
        .store
        .list_instances()
        .await?
        .into_iter()
        .map(|row| {
            (
                (row.host_id, row.report.service, row.report.index),
                LiveState {
                    version: row.report.version,
                    state: row.report.state,
                    health: row.report.health,
                },
            )
        })
        .collect())
}

async fn tick_inner(state: &Arc<AppState>, execution_id: &str) -> anyhow::Result<()> {
    // A few rounds, so that one tick carries a rollout through steps that complete at
    // once (instance passes → next unit dispatches) without waiting for the next tick.
    for _ in 0..4 {
        let Some(detail) = state.store.rollout_detail(execution_id).await? else {
            return Ok(());
        };
        let live = live_map(state).await?;
        let down: std::collections::HashSet<String> = state
            .store
            .list_hosts()
            .await?
            .into_iter()
            .filter(|h| h.status != drover_proto::hosts::HostStatus::Up)
            .map(|h| h.id)
            .collect();
        // Only rollouts of a service behind a load balancer need its drain state.
        let behind_lb = detail.units.iter().any(|u| {
            serde_json::from_value::<decide::UnitPolicy>(u.policy.clone())
                .is_ok_and(|p| p.load_balancer.is_some())
        });
        let lbs = if behind_lb {
            crate::generators::lb_states(state).await?
        } else {
            decide::LbMap::new()
        };
        let now = chrono::Utc::now().timestamp_millis();
        let actions = decide(&detail, &live, &down, &lbs, now);
        if actions.is_empty() {
            return Ok(());
        }
        let mut moved_unit = false;
        for action in actions {
            match action {
                Action::Drain { at } => {
                    let epoch = state
                        .store
                        .drain_instance(&at.service, &at.host_id, at.index, execution_id)
                        .await?;
                    state
                        .store
                        .set_rollout_instance_lb(
                            &unit_instance(execution_id, &at),
                            &["pending"],
                            "draining",
                            Some(epoch),
                            None,
                        )
                        .await?;
                    tracing::info!(execution_id, service = %at.service, host_id = %at.host_id, index = at.index, epoch, "draining from the load balancer");
                }
                Action::Undrain { at, from } => {
                    let epoch = state
                        .store
                        .undrain_instance(&at.service, &at.host_id, at.index)
                        .await?;
                    state
                        .store
                        .set_rollout_instance_lb(
                            &unit_instance(execution_id, &at),
                            &[from.as_str()],
                            "undraining",
                            Some(epoch),
                            None,
                        )
                        .await?;
                }
                Action::Lb {
                    at,
                    from,
                    to,
                    lb_epoch,
                    lb_ready_at,
                } => {
                    state
                        .store
                        .set_rollout_instance_lb(
                            &unit_instance(execution_id, &at),
                            &[from],
                            to,
                            lb_epoch,
                            lb_ready_at,
                        )
                        .await?;
                }
                Action::Dispatch { at, pos } => {
                    state
                        .store
                        .dispatch_step(
                            &UnitInstance {
                                execution_id,
                                unit: at.unit,
                                host_id: &at.host_id,
                                service: &at.service,
                                index: at.index,
                            },
                            pos,
                        )
                        .await?;
                }
                Action::Instance {
                    at,
                    from,
                    to,
                    gate_started_at,
                    healthy_since,
                    error,
                } => {
                    if to == "failed" {
                        tracing::warn!(execution_id, service = %at.service, error = ?error, "rollout instance failed");
                    }
                    state
                        .store
                        .set_rollout_instance(
                            &UnitInstance {
                                execution_id,
                                unit: at.unit,
                                host_id: &at.host_id,
                                service: &at.service,
                                index: at.index,
                            },
                            &[from.as_str()],
                            to,
                            gate_started_at,
                            healthy_since,
                            error.as_deref(),
                        )
                        .await?;
                }
                Action::Advance { unit } => {
                    moved_unit |= state
                        .store
                        .set_rollout_state(
                            execution_id,
                            &["running"],
                            "running",
                            Some(unit),
                            None,
                            "system",
                        )
                        .await?;
                }
                Action::AwaitPromotion { unit } => {
                    state
                        .store
                        .set_rollout_state(
                            execution_id,
                            &["running"],
                            "awaiting-promotion",
                            Some(unit),
                            None,
                            "system",
                        )
                        .await?;
                }
                Action::Finish => {
                    let to = if detail.rollout.reverting {
                        "reverted"
                    } else {
                        "succeeded"
                    };
                    state
                        .store
                        .set_rollout_state(execution_id, &["running"], to, None, None, "system")
                        .await?;
                    state.store.undrain_execution(execution_id).await?;
                    tracing::info!(execution_id, state = to, "rollout finished");
                }
                Action::Fail { error, revert } => {
                    let reverted = match revert {
                        Some(service) => start_revert(state, &detail, &service, &error).await?,
                        None => false,
                    };
                    if !reverted
                        && state
                            .store
                            .set_rollout_state(
                                execution_id,
                                &["running"],
                                "failed",
                                None,
                                Some(&error),
                                "system",
                            )
                            .await?
                    {
                        tracing::warn!(execution_id, %error, "rollout failed");
                    }
                    if !reverted {
                        state.store.undrain_execution(execution_id).await?;
                    }
                }
            }
        }
        if !moved_unit {
            // Dispatches and gate moves wait for agents; a unit change can go on now.
            let again = state.store.rollout_detail(execution_id).await?;
            if again.as_ref().map(|d| (&d.rollout.state, d.rollout.unit))
                == Some((&detail.rollout.state, detail.rollout.unit))
                && again.as_ref().map(|d| &d.instances) == Some(&detail.instances)
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn unit_instance<'a>(execution_id: &'a str, at: &'a decide::At) -> UnitInstance<'a> {
    UnitInstance {
        execution_id,
        unit: at.unit,
        host_id: &at.host_id,
        service: &at.service,
        index: at.index,
    }
}

/// Plans the way back for every instance of `service` this rollout touched: toward the
/// previous model version (or toward nothing, if there was none), with the service's
/// own batches and health gates, and appends it to the rollout.
async fn start_revert(
    state: &Arc<AppState>,
    detail: &drover_store::RolloutDetail,
    service: &str,
    error: &str,
) -> anyhow::Result<bool> {
    let execution_id = &detail.rollout.execution_id;
    let touched: BTreeSet<(String, u32)> = detail
        .instances
        .iter()
        .filter(|i| i.service == service && i.status != "pending")
        .map(|i| (i.host_name.clone(), i.index))
        .collect();
    let previous = match detail.rollout.previous_version {
        Some(v) => state.store.get_model_version(v).await?,
        None => None,
    };
    let previous_model = match &previous {
        Some(v) => Some(
            load_model(&to_model_files(&v.files)).map_err(|e| anyhow::anyhow!("{}", e.detail()))?,
        ),
        None => None,
    };
    let view = live_view(state)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
    let desired: Vec<_> = match &previous_model {
        Some(m) => drover_core::model::desired_instances(m, &view.hosts),
        None => Vec::new(),
    }
    .into_iter()
    .filter(|d| d.key.service == service && touched.contains(&(d.key.host.clone(), d.key.index)))
    .collect();
    let live: Vec<_> = view
        .live
        .iter()
        .filter(|l| {
            l.key.service == service && touched.contains(&(l.key.host.clone(), l.key.index))
        })
        .cloned()
        .collect();
    let deltas = delta(&desired, &live, &view.unreachable);
    let policy = previous_model
        .as_ref()
        .and_then(|m| m.services.get(service))
        .map(|s| s.rollout.clone())
        .or_else(|| {
            detail
                .units
                .iter()
                .find(|u| u.service == service)
                .and_then(|u| serde_json::from_value::<decide::UnitPolicy>(u.policy.clone()).ok())
                .map(|p| p.policy)
        })
        .unwrap_or_default();
    let revert_policy = RolloutPolicy {
        canary: 0,
        auto_revert: false,
        ..policy
    };
    let mut rollouts = std::collections::BTreeMap::new();
    rollouts.insert(
        service.to_string(),
        drover_core::plan::ServiceRollout {
            policy: revert_policy,
            depends_on: Vec::new(),
        },
    );
    let plan = drover_core::plan::plan(&deltas, &rollouts)?;
    let models = Models::load(state, detail.rollout.model_version).await?;
    let mut units: Vec<NewUnit> = build_units(state, &plan, &models, &view)?;
    for u in &mut units {
        u.revert = true;
    }
    tracing::warn!(execution_id, service, %error, units = units.len(), "health gate failed: reverting");
    if units.is_empty() {
        return Ok(false);
    }
    Ok(state
        .store
        .start_revert(
            execution_id,
            &units,
            &format!("{error}; reverting {service}"),
        )
        .await?)
}
