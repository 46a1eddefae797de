//! The rollout conductor: a pure function from a rollout's stored state, the live
//! instances and the time to the next actions. No I/O: the executor (`mod.rs`) loads,
//! calls [`decide`] and applies what it returns through the store's conditional
//! updates, so every decision can be tested as data in, data out.
//!
//! Per unit (one batch of one service), each instance walks its steps one by one, then
//! passes its health gate: the live instance must run the target version and be healthy
//! (or, without a health check, running) for `min_healthy_time` without a break, within
//! `healthy_deadline` of its last step. A failed step, an instance the agent reports
//! unhealthy, a missed deadline or no progress within `progress_deadline` fail the
//! rollout (and start a revert when the service has `auto_revert`). When every instance
//! of the unit passed, the rollout moves to the next unit, or waits for promotion after
//! the last canary batch.

use std::collections::HashMap;

use drover_core::instance::{Health, LifecycleState, RolloutPolicy};
use drover_store::{InstanceRow, RolloutDetail, StepRow};
use serde::{Deserialize, Serialize};

/// What a unit records about its service's policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UnitPolicy {
    /// The service's rollout policy.
    pub policy: RolloutPolicy,
    /// True when the service has a health check (else the gate only needs `running`).
    pub health_check: bool,
    /// The service's load balancer: running instances are drained from it before
    /// their first step and added back after their gate.
    #[serde(default)]
    pub load_balancer: Option<drover_core::model::LoadBalancer>,
}

/// Load-balancer generators by name: the drain epoch live on all their up target
/// hosts, and a failed write if any.
pub(crate) type LbMap = HashMap<String, crate::generators::LbState>;

/// An instance as its agent reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveState {
    /// Version of the live release.
    pub version: String,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// Health.
    pub health: Health,
}

/// Live instances keyed by (host id, service, index).
pub(crate) type LiveMap = HashMap<(String, String, u32), LiveState>;

/// Identifies an instance of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct At {
    /// Unit.
    pub unit: i64,
    /// Host id.
    pub host_id: String,
    /// Service.
    pub service: String,
    /// Copy on the host.
    pub index: u32,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Queue this step's command.
    Dispatch { at: At, pos: i64 },
    /// Take the instance out of its load balancer's pool, then wait in `draining`.
    Drain { at: At },
    /// Put the instance back in its pool, then wait in `undraining`.
    Undrain { at: At, from: String },
    /// Move the instance between load-balancer phases, setting their fields.
    Lb {
        at: At,
        from: &'static str,
        to: &'static str,
        lb_epoch: Option<i64>,
        lb_ready_at: Option<i64>,
    },
    /// Move the instance from `from` to `to`, with gate times and error.
    Instance {
        at: At,
        from: String,
        to: &'static str,
        gate_started_at: Option<i64>,
        healthy_since: Option<i64>,
        error: Option<String>,
    },
    /// Every instance of the unit passed: go to `unit`.
    Advance { unit: i64 },
    /// The canary batch passed: wait for `drover rollout promote`, then go to `unit`.
    AwaitPromotion { unit: i64 },
    /// The last unit passed.
    Finish,
    /// The rollout failed; `revert` names the service to revert, if it should be.
    Fail {
        error: String,
        revert: Option<String>,
    },
}

fn at(i: &InstanceRow) -> At {
    At {
        unit: i.unit,
        host_id: i.host_id.clone(),
        service: i.service.clone(),
        index: i.index,
    }
}

fn steps_of<'a>(d: &'a RolloutDetail, i: &InstanceRow) -> Vec<&'a StepRow> {
    let mut steps: Vec<&StepRow> = d
        .steps
        .iter()
        .filter(|s| {
            s.unit == i.unit
                && s.host_id == i.host_id
                && s.service == i.service
                && s.index == i.index
        })
        .collect();
    steps.sort_by_key(|s| s.pos);
    steps
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The next actions for a rollout in state `running` (other states decide nothing).
/// `down` holds the ids of hosts that are down: their instances fail at once rather
/// than wait for a deadline.
pub(crate) fn decide(
    d: &RolloutDetail,
    live: &LiveMap,
    down: &std::collections::HashSet<String>,
    lbs: &LbMap,
    now: i64,
) -> Vec<Action> {
    let r = &d.rollout;
    if r.state != "running" {
        return Vec::new();
    }
    if r.unit >= r.units {
        return vec![Action::Finish];
    }
    let Some(unit) = d.units.iter().find(|u| u.unit == r.unit) else {
        return vec![Action::Fail {
            error: format!("unit {} is missing", r.unit),
            revert: None,
        }];
    };
    let meta: UnitPolicy = match serde_json::from_value(unit.policy.clone()) {
        Ok(m) => m,
        Err(e) => {
            return vec![Action::Fail {
                error: format!("unit {} has an unreadable policy: {e}", r.unit),
                revert: None,
            }];
        }
    };
    let policy = &meta.policy;
    let revert_target =
        (policy.auto_revert && !r.reverting && !unit.revert).then(|| unit.service.clone());
    if now - r.last_progress_at > ms(policy.progress_deadline) {
        return vec![Action::Fail {
            error: format!(
                "no progress within progress_deadline ({})",
                drover_core::duration::format_duration(policy.progress_deadline)
            ),
            revert: revert_target,
        }];
    }
    // The load balancer to drain from, when the service has one with draining on.
    // A generator no longer in the applied model (the model was emptied) has no pool
    // to drain from.
    let lb = meta
        .load_balancer
        .as_ref()
        .filter(|lb| lb.drain && lbs.contains_key(&lb.generator));
    let lb_state = lb.and_then(|lb| lbs.get(&lb.generator).cloned());
    // An instance that passed: added back to its pool first if it was drained.
    let pass = |inst: &InstanceRow, from: &str, gate_started_at, healthy_since| {
        if inst.lb_epoch.is_some() && lb.is_some() {
            Action::Undrain {
                at: at(inst),
                from: from.to_string(),
            }
        } else {
            Action::Instance {
                at: at(inst),
                from: from.to_string(),
                to: "passed",
                gate_started_at,
                healthy_since,
                error: None,
            }
        }
    };
    let mut actions = Vec::new();
    let mut all_passed = true;
    for inst in d.instances.iter().filter(|i| i.unit == r.unit) {
        if matches!(
            inst.status.as_str(),
            "pending" | "draining" | "stepping" | "gating" | "undraining"
        ) && down.contains(&inst.host_id)
        {
            actions.push(Action::Instance {
                at: at(inst),
                from: inst.status.clone(),
                to: "failed",
                gate_started_at: inst.gate_started_at,
                healthy_since: None,
                error: Some(format!("host {} is down", inst.host_name)),
            });
            all_passed = false;
            continue;
        }
        match inst.status.as_str() {
            "passed" => continue,
            "failed" => {
                return vec![Action::Fail {
                    error: format!(
                        "{}/{}#{}: {}",
                        inst.service,
                        inst.host_name,
                        inst.index,
                        inst.error.clone().unwrap_or_else(|| "failed".into())
                    ),
                    revert: revert_target,
                }];
            }
            "pending"
                if lb.is_some()
                    && live
                        .get(&(inst.host_id.clone(), inst.service.clone(), inst.index))
                        .is_some_and(|l| l.state == LifecycleState::Running) =>
            {
                // Out of the pool before anything stops it.
                all_passed = false;
                actions.push(Action::Drain { at: at(inst) });
            }
            "draining" => {
                all_passed = false;
                let (Some(lb), Some(s)) = (lb, &lb_state) else {
                    // The policy lost its load balancer: nothing to wait for.
                    actions.push(Action::Lb {
                        at: at(inst),
                        from: "draining",
                        to: "stepping",
                        lb_epoch: inst.lb_epoch,
                        lb_ready_at: Some(now),
                    });
                    continue;
                };
                if let Some(failure) = &s.failure {
                    actions.push(Action::Instance {
                        at: at(inst),
                        from: "draining".into(),
                        to: "failed",
                        gate_started_at: None,
                        healthy_since: None,
                        error: Some(format!("cannot drain: {failure}")),
                    });
                } else if s.applied_epoch >= inst.lb_epoch.unwrap_or(0) {
                    match inst.lb_ready_at {
                        None => actions.push(Action::Lb {
                            at: at(inst),
                            from: "draining",
                            to: "draining",
                            lb_epoch: inst.lb_epoch,
                            lb_ready_at: Some(now),
                        }),
                        Some(ready) if now - ready >= ms(lb.drain_grace) => {
                            actions.push(Action::Lb {
                                at: at(inst),
                                from: "draining",
                                to: "stepping",
                                lb_epoch: inst.lb_epoch,
                                lb_ready_at: Some(ready),
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
            "undraining" => {
                all_passed = false;
                let back = lb_state
                    .as_ref()
                    .is_none_or(|s| s.applied_epoch >= inst.lb_epoch.unwrap_or(0));
                if let Some(failure) = lb_state.as_ref().and_then(|s| s.failure.clone()) {
                    actions.push(Action::Instance {
                        at: at(inst),
                        from: "undraining".into(),
                        to: "failed",
                        gate_started_at: inst.gate_started_at,
                        healthy_since: inst.healthy_since,
                        error: Some(format!("cannot add it back: {failure}")),
                    });
                } else if back {
                    actions.push(Action::Instance {
                        at: at(inst),
                        from: "undraining".into(),
                        to: "passed",
                        gate_started_at: inst.gate_started_at,
                        healthy_since: inst.healthy_since,
                        error: None,
                    });
                }
            }
            "pending" | "stepping" => {
                all_passed = false;
                let steps = steps_of(d, inst);
                match steps.iter().find(|s| s.status != "ok") {
                    Some(s) if s.status == "failed" => actions.push(Action::Instance {
                        at: at(inst),
                        from: inst.status.clone(),
                        to: "failed",
                        gate_started_at: None,
                        healthy_since: None,
                        error: Some(format!(
                            "{} {} failed: {}{}",
                            s.transition,
                            s.version,
                            s.error.clone().unwrap_or_default(),
                            if s.output.trim().is_empty() {
                                String::new()
                            } else {
                                format!(" (output: {})", s.output.trim())
                            }
                        )),
                    }),
                    Some(s) => {
                        if inst.status == "pending" {
                            actions.push(Action::Instance {
                                at: at(inst),
                                from: "pending".into(),
                                to: "stepping",
                                gate_started_at: None,
                                healthy_since: None,
                                error: None,
                            });
                        }
                        if s.status == "pending" {
                            actions.push(Action::Dispatch {
                                at: at(inst),
                                pos: s.pos,
                            });
                        }
                    }
                    None => actions.push(if inst.gated {
                        Action::Instance {
                            at: at(inst),
                            from: inst.status.clone(),
                            to: "gating",
                            gate_started_at: Some(now),
                            healthy_since: None,
                            error: None,
                        }
                    } else {
                        pass(inst, &inst.status, None, None)
                    }),
                }
            }
            "gating" => {
                all_passed = false;
                let started = inst.gate_started_at.unwrap_or(now);
                let l = live.get(&(inst.host_id.clone(), inst.service.clone(), inst.index));
                let want = inst.to_version.as_deref().unwrap_or("");
                let on_target =
                    l.is_some_and(|l| l.version == want && l.state == LifecycleState::Running);
                let healthy = on_target
                    && l.is_some_and(|l| {
                        if meta.health_check {
                            l.health == Health::Healthy
                        } else {
                            l.health != Health::Unhealthy
                        }
                    });
                let unhealthy = on_target && l.is_some_and(|l| l.health == Health::Unhealthy);
                let gate = |to: &'static str, healthy_since: Option<i64>, error: Option<String>| {
                    Action::Instance {
                        at: at(inst),
                        from: "gating".into(),
                        to,
                        gate_started_at: Some(started),
                        healthy_since,
                        error,
                    }
                };
                if unhealthy {
                    actions.push(gate("failed", None, Some(format!("{want} is unhealthy"))));
                } else if healthy {
                    match inst.healthy_since {
                        None => actions.push(gate("gating", Some(now), None)),
                        Some(since) if now - since >= ms(policy.min_healthy_time) => {
                            actions.push(pass(inst, "gating", Some(started), Some(since)))
                        }
                        Some(_) => {}
                    }
                } else if now - started > ms(policy.healthy_deadline) {
                    let seen = l
                        .map(|l| format!("{} {} {}", l.version, l.state, l.health))
                        .unwrap_or_else(|| "no report".into());
                    actions.push(gate(
                        "failed",
                        None,
                        Some(format!(
                            "not healthy within healthy_deadline ({}); last seen: {seen}",
                            drover_core::duration::format_duration(policy.healthy_deadline)
                        )),
                    ));
                } else if inst.healthy_since.is_some() {
                    actions.push(gate("gating", None, None));
                }
            }
            other => actions.push(Action::Fail {
                error: format!("instance in unknown status `{other}`"),
                revert: None,
            }),
        }
    }
    if all_passed {
        let next = r.unit + 1;
        let next_is_canary = d.units.iter().any(|u| u.unit == next && u.canary);
        if next >= r.units {
            actions.push(Action::Finish);
        } else if unit.canary && !next_is_canary && !policy.auto_promote {
            actions.push(Action::AwaitPromotion { unit: next });
        } else {
            actions.push(Action::Advance { unit: next });
        }
    }
    actions
}

#[cfg(test)]
mod tests;
