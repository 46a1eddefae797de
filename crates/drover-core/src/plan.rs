//! The plan: what to do, in which order and in which batches, to close a delta.
//!
//! [`plan`] is a pure function of the delta and each service's rollout (policy and
//! `depends_on`); it changes nothing, and the same inputs always give the same plan.
//! `drover plan` prints it ([`Plan`]'s `Display`, like a Terraform plan), `drover apply`
//! hands it to the executor, which runs the batches with their health gates.
//!
//! # Changes
//!
//! Every instance whose delta is not `ok` gets one [`InstanceChange`], a walk over
//! glu's lifecycle graph (none → installed → stopped → running and back):
//!
//! | delta | [`ChangeKind`] | steps (running → running) |
//! |---|---|---|
//! | missing | deploy | install v2, configure, start |
//! | wrong-version | upgrade | stop v1, install v2, configure, start |
//! | unhealthy | restart | stop, start |
//! | wrong-state, moving up | start | (configure,) start |
//! | wrong-state, moving down | stop | stop(, unconfigure) |
//! | unexpected | undeploy | stop, unconfigure, uninstall |
//! | unreachable | — | none: listed in [`Plan::blocked`] |
//!
//! An **upgrade does not unconfigure nor uninstall the old release**: releases live
//! side by side on the host (`…/releases/<version>/`) and the agent switches the live
//! one atomically, so the old release stays on disk for a rollback with no download.
//! The old release is only stopped (if it runs); the new one is installed and walked up
//! to the desired state. A change of `spec_hash` alone (same version, new config) is an
//! upgrade too: the release is reinstalled from the new spec. Pruning old releases is
//! the agent's business, not a step of the plan.
//!
//! # Batches
//!
//! Within a service, changes are ordered by kind — deploy, upgrade, restart, start,
//! stop, undeploy — then by key: new releases first (so that the canary and the first
//! health gates test the new version), repairs next, reductions last; undeploys come
//! after deploys (make before break). The batch size comes from the strategy: `rolling`
//! → `max_parallel` resolved against the service's desired instance count, `serial` → 1,
//! `all-at-once` → everything. Every change counts against the batch size, not only
//! the ones that take a running instance out of service, so each batch is a health gate
//! for at most `max_parallel` instances; hence the invariant: **no batch takes more than
//! `max_parallel` running instances out of service**.
//!
//! `canary: N` makes the first `min(N, changes)` changes the canary stage; the rollout
//! waits for promotion after it. When `N` exceeds the batch size, the canary stage spans
//! several batches (all marked canary), so the invariant above still holds.
//!
//! # Phases
//!
//! Services are grouped into phases: a service comes after every service it depends on
//! (directly or through services that have nothing to do), and the services of one phase
//! are independent of each other. Services no longer in the model (no desired instance
//! left) are removed in final phases, dependents before their dependencies when their
//! `depends_on` is known; their batches follow their policy if one is given, else they
//! go all at once (there is nothing to keep in service). A service with desired
//! instances but no [`ServiceRollout`] uses [`RolloutPolicy::default`] and no
//! dependencies.

mod phases;
mod render;
mod steps;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::delta::{DeltaStatus, InstanceDelta};
use crate::instance::{InstanceKey, LifecycleState, RolloutPolicy, Strategy, Transition};

pub use steps::{StepError, apply_step};

/// A service's rollout as the plan needs it: its policy and the services it depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRollout {
    /// Batching, canary, health gates.
    pub policy: RolloutPolicy,
    /// Services that must be deployed (and healthy) first.
    pub depends_on: Vec<String>,
}

/// What a change does to an instance. The order of the variants is the order of the
/// changes within a service.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Missing → install and bring up the desired release.
    Deploy,
    /// Wrong version or spec → stop the old release, install and bring up the new one.
    Upgrade,
    /// Unhealthy → stop and start the same release.
    Restart,
    /// Wrong state, below the desired one → configure and/or start.
    Start,
    /// Wrong state, above the desired one → stop and/or unconfigure.
    Stop,
    /// Unexpected → stop, unconfigure, uninstall.
    Undeploy,
}

impl ChangeKind {
    /// Every kind, in order.
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::Deploy,
        ChangeKind::Upgrade,
        ChangeKind::Restart,
        ChangeKind::Start,
        ChangeKind::Stop,
        ChangeKind::Undeploy,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deploy => "deploy",
            ChangeKind::Upgrade => "upgrade",
            ChangeKind::Restart => "restart",
            ChangeKind::Start => "start",
            ChangeKind::Stop => "stop",
            ChangeKind::Undeploy => "undeploy",
        }
    }

    /// Terraform's sign: `+` adds, `~` changes in place, `-` removes.
    pub fn sign(self) -> char {
        match self {
            ChangeKind::Deploy => '+',
            ChangeKind::Undeploy => '-',
            _ => '~',
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One transition of one instance's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    /// Which edge of the lifecycle graph.
    pub transition: Transition,
    /// The release's version.
    pub version: String,
    /// The release's spec (what `configure` renders, what `install` unpacks).
    pub spec_hash: String,
}

/// A release and its lifecycle state: one end of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionState {
    /// Version.
    pub version: String,
    /// Lifecycle state.
    pub state: LifecycleState,
}

/// The change of one instance: its steps, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceChange {
    /// Which instance.
    pub key: InstanceKey,
    /// What kind of change.
    pub kind: ChangeKind,
    /// Before (`None`: nothing installed).
    pub from: Option<VersionState>,
    /// After (`None`: nothing installed).
    pub to: Option<VersionState>,
    /// The transitions, in order.
    pub steps: Vec<Step>,
    /// The delta's reason, e.g. `wants 2.0.1, runs 1.0.0`.
    pub reason: String,
}

impl InstanceChange {
    /// The change stops an instance that is running now: it is out of service while the
    /// change runs.
    pub fn takes_out_of_service(&self) -> bool {
        matches!(&self.from, Some(f) if f.state == LifecycleState::Running)
            && self.steps.iter().any(|s| s.transition == Transition::Stop)
    }
}

/// A group of changes of one service that run together, then pass a health gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Batch {
    /// Position in the service's batches, from 0.
    pub index: usize,
    /// Part of the canary stage: the rollout waits for promotion after the last one.
    pub canary: bool,
    /// The changes.
    pub changes: Vec<InstanceChange>,
}

impl Batch {
    /// How many running instances this batch takes out of service.
    pub fn out_of_service(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.takes_out_of_service())
            .count()
    }
}

/// The batches of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServicePlan {
    /// Service name.
    pub service: String,
    /// The service is no longer in the model: every change is an undeploy.
    pub removed: bool,
    /// The policy the batches follow.
    pub policy: RolloutPolicy,
    /// The instance count `max_parallel` was resolved against: desired instances, or
    /// for a removed service the instances to undeploy.
    pub instances: u32,
    /// Most changes per batch; `None` for all-at-once.
    pub max_parallel: Option<u32>,
    /// The batches, in order.
    pub batches: Vec<Batch>,
}

impl ServicePlan {
    /// All changes of the service, batch after batch.
    pub fn changes(&self) -> impl Iterator<Item = &InstanceChange> {
        self.batches.iter().flat_map(|b| b.changes.iter())
    }
}

/// How many changes of each kind — Terraform's "2 to add, 1 to change, 1 to destroy".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct ChangeCounts {
    /// [`ChangeKind::Deploy`].
    pub deploy: usize,
    /// [`ChangeKind::Upgrade`].
    pub upgrade: usize,
    /// [`ChangeKind::Restart`].
    pub restart: usize,
    /// [`ChangeKind::Start`].
    pub start: usize,
    /// [`ChangeKind::Stop`].
    pub stop: usize,
    /// [`ChangeKind::Undeploy`].
    pub undeploy: usize,
}

impl ChangeCounts {
    /// The count for one kind.
    pub fn count(&self, kind: ChangeKind) -> usize {
        match kind {
            ChangeKind::Deploy => self.deploy,
            ChangeKind::Upgrade => self.upgrade,
            ChangeKind::Restart => self.restart,
            ChangeKind::Start => self.start,
            ChangeKind::Stop => self.stop,
            ChangeKind::Undeploy => self.undeploy,
        }
    }

    fn add(&mut self, kind: ChangeKind) {
        let n = match kind {
            ChangeKind::Deploy => &mut self.deploy,
            ChangeKind::Upgrade => &mut self.upgrade,
            ChangeKind::Restart => &mut self.restart,
            ChangeKind::Start => &mut self.start,
            ChangeKind::Stop => &mut self.stop,
            ChangeKind::Undeploy => &mut self.undeploy,
        };
        *n += 1;
    }

    /// All changes.
    pub fn total(&self) -> usize {
        ChangeKind::ALL.iter().map(|k| self.count(*k)).sum()
    }
}

/// The whole plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// Services grouped so that every service comes after all its dependencies; the
    /// services of one phase are independent (sorted by name). Removals come last.
    pub phases: Vec<Vec<ServicePlan>>,
    /// Instances on unreachable hosts: nothing can be done for them now.
    pub blocked: Vec<InstanceDelta>,
    /// Changes per kind.
    pub counts: ChangeCounts,
}

impl Plan {
    /// Nothing to do (instances may still be blocked).
    pub fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }

    /// Nothing to do and nothing blocked: the live state is the model.
    pub fn is_converged(&self) -> bool {
        self.is_empty() && self.blocked.is_empty()
    }

    /// Every service plan, phase after phase.
    pub fn services(&self) -> impl Iterator<Item = &ServicePlan> {
        self.phases.iter().flatten()
    }

    /// Every change, in plan order.
    pub fn changes(&self) -> impl Iterator<Item = &InstanceChange> {
        self.services().flat_map(ServicePlan::changes)
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `depends_on` forms a cycle (model validation rejects this before).
    #[error("dependency cycle: {}", .cycle.join(" -> "))]
    DependencyCycle {
        /// The services on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
}

/// The batch size of a policy for a service of `instances` instances: `None` is
/// unbounded (all-at-once).
pub fn batch_limit(policy: &RolloutPolicy, instances: u32) -> Option<u32> {
    match policy.strategy {
        Strategy::Rolling => Some(policy.max_parallel.resolve(instances)),
        Strategy::Serial => Some(1),
        Strategy::AllAtOnce => None,
    }
}

/// Computes the plan that closes `delta`, given each service's rollout (see the module
/// docs for the rules). Fails only on a dependency cycle.
pub fn plan(
    delta: &[InstanceDelta],
    rollouts: &BTreeMap<String, ServiceRollout>,
) -> Result<Plan, PlanError> {
    let mut blocked = Vec::new();
    let mut changes: BTreeMap<&str, Vec<InstanceChange>> = BTreeMap::new();
    let mut desired: BTreeMap<&str, u32> = BTreeMap::new();
    for d in delta {
        if d.wanted().is_some() {
            *desired.entry(d.key.service.as_str()).or_default() += 1;
        }
        if d.status == DeltaStatus::Unreachable {
            blocked.push(d.clone());
        } else if let Some(change) = steps::change_for(d) {
            changes
                .entry(d.key.service.as_str())
                .or_default()
                .push(change);
        }
    }
    blocked.sort_by(|a, b| a.key.cmp(&b.key));

    let removed: BTreeSet<&str> = changes
        .keys()
        .copied()
        .filter(|s| !desired.contains_key(s))
        .collect();
    let kept: BTreeSet<&str> = changes
        .keys()
        .copied()
        .filter(|s| !removed.contains(s))
        .collect();

    let mut depends_on: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for service in rollouts
        .keys()
        .map(String::as_str)
        .chain(changes.keys().copied())
    {
        depends_on.entry(service).or_default();
        dependents.entry(service).or_default();
    }
    for (service, rollout) in rollouts {
        for dep in &rollout.depends_on {
            depends_on.entry(service).or_default().push(dep);
            dependents.entry(dep).or_default().push(service);
        }
    }
    let forward = phases::layers(&depends_on, &kept)?;
    let backward = phases::layers(&dependents, &removed)?;

    let mut counts = ChangeCounts::default();
    let mut grouped: Vec<Vec<ServicePlan>> = Vec::new();
    for (layers, is_removed) in [(forward, false), (backward, true)] {
        for layer in layers {
            let mut phase = Vec::with_capacity(layer.len());
            for service in layer {
                let service_changes = changes.remove(service).unwrap_or_default();
                for c in &service_changes {
                    counts.add(c.kind);
                }
                phase.push(service_plan(
                    service,
                    is_removed,
                    rollouts.get(service),
                    desired.get(service).copied().unwrap_or(0),
                    service_changes,
                ));
            }
            grouped.push(phase);
        }
    }
    Ok(Plan {
        phases: grouped,
        blocked,
        counts,
    })
}

fn service_plan(
    service: &str,
    removed: bool,
    rollout: Option<&ServiceRollout>,
    desired: u32,
    mut changes: Vec<InstanceChange>,
) -> ServicePlan {
    changes.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.key.cmp(&b.key)));
    let policy = match rollout {
        Some(r) => r.policy.clone(),
        None if removed => RolloutPolicy {
            strategy: Strategy::AllAtOnce,
            ..RolloutPolicy::default()
        },
        None => RolloutPolicy::default(),
    };
    let instances = if removed {
        u32::try_from(changes.len()).unwrap_or(u32::MAX)
    } else {
        desired
    };
    let max_parallel = batch_limit(&policy, instances);
    let size = max_parallel.map_or(usize::MAX, |m| m.max(1) as usize);
    let mut canary_left = (policy.canary as usize).min(changes.len());
    let mut batches = Vec::new();
    let mut pending = changes.into_iter().peekable();
    while pending.peek().is_some() {
        let canary = canary_left > 0;
        let take = if canary { size.min(canary_left) } else { size };
        let batch: Vec<InstanceChange> = pending.by_ref().take(take).collect();
        if canary {
            canary_left -= batch.len();
        }
        batches.push(Batch {
            index: batches.len(),
            canary,
            changes: batch,
        });
    }
    ServicePlan {
        service: service.to_string(),
        removed,
        policy,
        instances,
        max_parallel,
        batches,
    }
}
