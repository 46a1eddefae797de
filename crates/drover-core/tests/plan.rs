//! Delta and plan from the outside: snapshot tests of typical plans (text fixtures under
//! `tests/fixtures/plans/`) and property tests over generated desired/live sets.
//!
//! A changed rendering is reviewed by regenerating the fixtures and reading the diff:
//! `DROVER_BLESS=1 cargo test -p drover-core --test plan`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use drover_core::delta::{DeltaStatus, delta};
use drover_core::instance::{
    DesiredInstance, Health, InstanceKey, LifecycleState, LiveInstance, MaxParallel, RolloutPolicy,
    Strategy,
};
use drover_core::plan::{ChangeKind, Plan, PlanError, ServiceRollout, apply_step, plan};
use proptest::prelude::*;
// `Strategy` names the rollout strategy here; proptest's trait is needed for its methods.
use proptest::strategy::Strategy as _;

use LifecycleState::{Installed, Running, Stopped};

// ---------------------------------------------------------------- builders

fn key(service: &str, host: &str, index: u32) -> InstanceKey {
    InstanceKey {
        service: service.into(),
        host: host.into(),
        index,
    }
}

fn spec(version: &str) -> String {
    format!("{version}-spec")
}

fn want(service: &str, host: &str, version: &str, state: LifecycleState) -> DesiredInstance {
    DesiredInstance {
        key: key(service, host, 0),
        version: version.into(),
        state,
        spec_hash: spec(version),
        ports: BTreeMap::new(),
    }
}

fn have(
    service: &str,
    host: &str,
    version: &str,
    state: LifecycleState,
    health: Health,
) -> LiveInstance {
    LiveInstance {
        key: key(service, host, 0),
        version: version.into(),
        state,
        health,
        spec_hash: spec(version),
    }
}

fn running(service: &str, host: &str, version: &str) -> LiveInstance {
    have(service, host, version, Running, Health::Healthy)
}

fn rolling(max_parallel: MaxParallel) -> RolloutPolicy {
    RolloutPolicy {
        strategy: Strategy::Rolling,
        max_parallel,
        ..RolloutPolicy::default()
    }
}

fn rollouts(entries: &[(&str, RolloutPolicy, &[&str])]) -> BTreeMap<String, ServiceRollout> {
    entries
        .iter()
        .map(|(name, policy, deps)| {
            (
                name.to_string(),
                ServiceRollout {
                    policy: policy.clone(),
                    depends_on: deps.iter().map(|d| d.to_string()).collect(),
                },
            )
        })
        .collect()
}

fn hosts(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|h| h.to_string()).collect()
}

fn plan_of(
    desired: &[DesiredInstance],
    live: &[LiveInstance],
    unreachable: &BTreeSet<String>,
    rollouts: &BTreeMap<String, ServiceRollout>,
) -> Plan {
    plan(&delta(desired, live, unreachable), rollouts).expect("plan")
}

/// Compares the plan's text with `tests/fixtures/plans/NAME.txt` (or writes it, with
/// `DROVER_BLESS=1`).
fn check_snapshot(name: &str, plan: &Plan) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plans")
        .join(format!("{name}.txt"));
    let got = plan.to_string();
    if std::env::var_os("DROVER_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\n(DROVER_BLESS=1 writes it)\n--- got:\n{got}",
            path.display()
        )
    });
    assert!(
        got == want,
        "plan `{name}` differs from {} (DROVER_BLESS=1 rewrites it)\n--- want:\n{want}\n--- got:\n{got}",
        path.display()
    );
}

// ---------------------------------------------------------------- snapshots

#[test]
fn snapshot_fresh_deploy_rolling_one_at_a_time() {
    let desired: Vec<_> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| want("web", h, "1.0.0", Running))
        .collect();
    let plan = plan_of(
        &desired,
        &[],
        &hosts(&[]),
        &rollouts(&[("web", rolling(MaxParallel::Count(1)), &[])]),
    );
    assert_eq!(plan.phases.len(), 1);
    assert_eq!(plan.phases[0][0].batches.len(), 3);
    assert_eq!(plan.counts.deploy, 3);
    check_snapshot("fresh_deploy_rolling", &plan);
}

#[test]
fn snapshot_upgrade_with_canary() {
    let hs = ["h1", "h2", "h3", "h4"];
    let desired: Vec<_> = hs
        .iter()
        .map(|h| want("web", h, "2.0.0", Running))
        .collect();
    let live: Vec<_> = hs.iter().map(|h| running("web", h, "1.0.0")).collect();
    let policy = RolloutPolicy {
        canary: 1,
        ..rolling(MaxParallel::Count(2))
    };
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&[]),
        &rollouts(&[("web", policy, &[])]),
    );
    let batches = &plan.phases[0][0].batches;
    let sizes: Vec<_> = batches
        .iter()
        .map(|b| (b.changes.len(), b.canary))
        .collect();
    assert_eq!(sizes, [(1, true), (2, false), (1, false)]);
    check_snapshot("upgrade_canary", &plan);
}

#[test]
fn snapshot_depends_on() {
    // web → api → db; cache stands alone; queue has nothing to do but sits between
    // worker and db.
    let desired = vec![
        want("db", "h1", "15.2", Running),
        want("api", "h1", "2.0.0", Running),
        want("api", "h2", "2.0.0", Running),
        want("web", "h1", "3.1.0", Running),
        want("cache", "h2", "7.0", Running),
        want("queue", "h1", "1.0", Running),
        want("worker", "h2", "0.9", Running),
    ];
    let live = vec![
        running("api", "h1", "1.0.0"),
        running("api", "h2", "1.0.0"),
        have("web", "h1", "3.1.0", Stopped, Health::Unknown),
        have("cache", "h2", "7.0", Running, Health::Unhealthy),
        running("queue", "h1", "1.0"),
    ];
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&[]),
        &rollouts(&[
            ("db", RolloutPolicy::default(), &[]),
            ("api", rolling(MaxParallel::Count(1)), &["db"]),
            ("web", RolloutPolicy::default(), &["api"]),
            ("cache", RolloutPolicy::default(), &[]),
            ("queue", RolloutPolicy::default(), &["db"]),
            ("worker", RolloutPolicy::default(), &["queue"]),
        ]),
    );
    let names: Vec<Vec<&str>> = plan
        .phases
        .iter()
        .map(|p| p.iter().map(|s| s.service.as_str()).collect())
        .collect();
    assert_eq!(
        names,
        vec![vec!["cache", "db"], vec!["api", "worker"], vec!["web"]]
    );
    check_snapshot("depends_on", &plan);
}

#[test]
fn snapshot_undeploy() {
    // `legacy` and `legacy-ui` left the model (their last rollouts are still known:
    // legacy-ui depended on legacy, so it goes first); `tmp` left with no rollout known;
    // web keeps h1 and drops its copy on h2.
    let desired = vec![want("web", "h1", "1.0.0", Running)];
    let live = vec![
        running("web", "h1", "1.0.0"),
        running("web", "h2", "1.0.0"),
        running("legacy", "h1", "0.3"),
        have("legacy", "h2", "0.3", Stopped, Health::Unknown),
        running("legacy-ui", "h1", "0.3"),
        have("tmp", "h3", "0.0.1", Installed, Health::Unknown),
    ];
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&[]),
        &rollouts(&[
            ("web", RolloutPolicy::default(), &[]),
            ("legacy", rolling(MaxParallel::Count(1)), &[]),
            ("legacy-ui", RolloutPolicy::default(), &["legacy"]),
        ]),
    );
    let names: Vec<Vec<&str>> = plan
        .phases
        .iter()
        .map(|p| p.iter().map(|s| s.service.as_str()).collect())
        .collect();
    assert_eq!(
        names,
        vec![vec!["web"], vec!["legacy-ui", "tmp"], vec!["legacy"]]
    );
    assert_eq!(plan.counts.undeploy, 5);
    check_snapshot("undeploy", &plan);
}

#[test]
fn snapshot_unreachable_host_is_blocked() {
    let hs = ["h1", "h2", "h3"];
    let desired: Vec<_> = hs
        .iter()
        .map(|h| want("web", h, "2.0.0", Running))
        .collect();
    let live: Vec<_> = hs.iter().map(|h| running("web", h, "1.0.0")).collect();
    let mut desired = desired;
    desired.push(want("db", "h2", "15.2", Running));
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&["h2"]),
        &rollouts(&[("web", RolloutPolicy::default(), &[])]),
    );
    let blocked: Vec<String> = plan.blocked.iter().map(|b| b.key.to_string()).collect();
    assert_eq!(blocked, ["db/h2#0", "web/h2#0"]);
    assert!(plan.blocked.iter().all(|b| b.stale));
    assert_eq!(plan.counts.upgrade, 2);
    check_snapshot("unreachable_blocked", &plan);
}

#[test]
fn snapshot_wrong_state() {
    let desired = vec![
        want("web", "h1", "1.0.0", Stopped),
        want("web", "h2", "1.0.0", Installed),
        want("web", "h3", "1.0.0", Running),
        want("web", "h4", "1.0.0", Running),
    ];
    let live = vec![
        running("web", "h1", "1.0.0"),
        running("web", "h2", "1.0.0"),
        have("web", "h3", "1.0.0", Installed, Health::Unknown),
        running("web", "h4", "1.0.0"),
    ];
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&[]),
        &rollouts(&[("web", rolling(MaxParallel::Count(2)), &[])]),
    );
    assert_eq!((plan.counts.start, plan.counts.stop), (1, 2));
    check_snapshot("wrong_state", &plan);
}

#[test]
fn snapshot_percentage_and_strategies() {
    let hosts_10: Vec<String> = (1..=10).map(|i| format!("h{i:02}")).collect();
    let mut desired = Vec::new();
    let mut live = Vec::new();
    for h in &hosts_10 {
        for service in ["api", "batch", "cron"] {
            desired.push(want(service, h, "2.0.0", Running));
            live.push(running(service, h, "1.0.0"));
        }
    }
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&[]),
        &rollouts(&[
            ("api", rolling(MaxParallel::Percent(25)), &[]),
            (
                "batch",
                RolloutPolicy {
                    strategy: Strategy::AllAtOnce,
                    canary: 2,
                    auto_promote: true,
                    ..RolloutPolicy::default()
                },
                &[],
            ),
            (
                "cron",
                RolloutPolicy {
                    strategy: Strategy::Serial,
                    max_parallel: MaxParallel::Count(5),
                    canary: 3,
                    ..RolloutPolicy::default()
                },
                &[],
            ),
        ]),
    );
    let sizes: BTreeMap<&str, Vec<usize>> = plan
        .services()
        .map(|s| {
            (
                s.service.as_str(),
                s.batches.iter().map(|b| b.changes.len()).collect(),
            )
        })
        .collect();
    assert_eq!(sizes["api"], [2, 2, 2, 2, 2]);
    assert_eq!(sizes["batch"], [2, 8]);
    assert_eq!(sizes["cron"], [1; 10]);
    let cron = plan.services().find(|s| s.service == "cron").unwrap();
    let canaries: Vec<bool> = cron.batches.iter().map(|b| b.canary).collect();
    assert_eq!(&canaries[..4], [true, true, true, false]);
    check_snapshot("percentage_and_strategies", &plan);
}

#[test]
fn snapshot_spec_change_and_restart() {
    let mut changed = want("web", "h1", "1.0.0", Running);
    changed.spec_hash = "9f86d081884c7d65".into();
    let desired = vec![changed, want("web", "h2", "1.0.0", Running)];
    let live = vec![
        running("web", "h1", "1.0.0"),
        have("web", "h2", "1.0.0", Running, Health::Unhealthy),
    ];
    let plan = plan_of(
        &desired,
        &live,
        &hosts(&[]),
        &rollouts(&[("web", RolloutPolicy::default(), &[])]),
    );
    check_snapshot("spec_change_and_restart", &plan);
}

#[test]
fn snapshot_no_changes() {
    let desired = vec![want("web", "h1", "1.0.0", Running)];
    let live = vec![have("web", "h1", "1.0.0", Running, Health::Unknown)];
    let plan = plan_of(&desired, &live, &hosts(&[]), &BTreeMap::new());
    assert!(plan.is_empty());
    assert!(plan.is_converged());
    check_snapshot("no_changes", &plan);
}

#[test]
fn dependency_cycle_is_an_error_not_a_panic() {
    let desired = vec![want("a", "h1", "1", Running), want("b", "h1", "1", Running)];
    let err = plan(
        &delta(&desired, &[], &hosts(&[])),
        &rollouts(&[
            ("a", RolloutPolicy::default(), &["b"]),
            ("b", RolloutPolicy::default(), &["a"]),
        ]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::DependencyCycle {
            cycle: vec!["a".into(), "b".into(), "a".into()]
        }
    );
}

#[test]
fn plan_round_trips_through_json() {
    let desired = vec![want("web", "h1", "2.0.0", Running)];
    let live = vec![running("web", "h1", "1.0.0")];
    let plan = plan_of(&desired, &live, &hosts(&[]), &BTreeMap::new());
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("\"kind\":\"upgrade\""), "{json}");
    assert!(json.contains("\"transition\":\"stop\""), "{json}");
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
}

// ---------------------------------------------------------------- properties

const SERVICES: [&str; 7] = ["s0", "s1", "s2", "s3", "s4", "r0", "r1"];
const MODEL_SERVICES: usize = 5;
const HOSTS: [&str; 5] = ["h0", "h1", "h2", "h3", "h4"];
const COPIES: u32 = 2;

#[derive(Debug, Clone)]
struct World {
    desired: Vec<DesiredInstance>,
    live: Vec<LiveInstance>,
    unreachable: BTreeSet<String>,
    rollouts: BTreeMap<String, ServiceRollout>,
}

fn arb_policy() -> impl proptest::strategy::Strategy<Value = RolloutPolicy> {
    (
        0..3u8,
        prop_oneof![
            (0..5u32).prop_map(MaxParallel::Count),
            (1..=100u8).prop_map(MaxParallel::Percent)
        ],
        prop_oneof![3 => Just(0u32), 2 => 1..4u32],
        any::<bool>(),
    )
        .prop_map(
            |(strategy, max_parallel, canary, auto_promote)| RolloutPolicy {
                strategy: [Strategy::Rolling, Strategy::Serial, Strategy::AllAtOnce]
                    [strategy as usize],
                max_parallel,
                canary,
                auto_promote,
                ..RolloutPolicy::default()
            },
        )
}

type Slot = (Option<(u8, u8, u8)>, Option<(u8, u8, u8, u8)>);

fn arb_world() -> impl proptest::strategy::Strategy<Value = World> {
    let slots = SERVICES.len() * HOSTS.len() * COPIES as usize;
    let slot = (
        prop::option::weighted(0.7, (0..2u8, 0..2u8, 0..3u8)),
        prop::option::weighted(0.7, (0..2u8, 0..2u8, 0..4u8, 0..3u8)),
    );
    (
        prop::collection::vec(slot, slots),
        prop::collection::vec((arb_policy(), any::<u8>(), any::<bool>()), SERVICES.len()),
        prop::sample::subsequence(HOSTS.to_vec(), 0..=2),
    )
        .prop_map(|(slots, policies, unreachable)| build_world(&slots, &policies, &unreachable))
}

fn build_world(
    slots: &[Slot],
    policies: &[(RolloutPolicy, u8, bool)],
    unreachable: &[&str],
) -> World {
    let versions = ["1.0", "2.0"];
    let specs = ["a", "b"];
    let want_states = [Running, Stopped, Installed];
    let live_states = [LifecycleState::None, Installed, Stopped, Running];
    let healths = [Health::Unknown, Health::Healthy, Health::Unhealthy];
    let mut desired = Vec::new();
    let mut live = Vec::new();
    let mut slots = slots.iter();
    for (s, service) in SERVICES.iter().enumerate() {
        for host in HOSTS {
            for index in 0..COPIES {
                let (d, l) = slots.next().expect("enough slots");
                let key = InstanceKey {
                    service: service.to_string(),
                    host: host.to_string(),
                    index,
                };
                if let (Some((v, sp, st)), true) = (d, s < MODEL_SERVICES) {
                    desired.push(DesiredInstance {
                        key: key.clone(),
                        version: versions[*v as usize].into(),
                        state: want_states[*st as usize],
                        spec_hash: specs[*sp as usize].into(),
                        ports: BTreeMap::new(),
                    });
                }
                if let Some((v, sp, st, h)) = l {
                    live.push(LiveInstance {
                        key,
                        version: versions[*v as usize].into(),
                        state: live_states[*st as usize],
                        health: healths[*h as usize],
                        spec_hash: specs[*sp as usize].into(),
                    });
                }
            }
        }
    }
    // Model services s0..s4 always have a rollout; r0, r1 (not in the model) sometimes
    // keep theirs. Dependencies only point to earlier services (a DAG).
    let mut rollouts = BTreeMap::new();
    for (s, service) in SERVICES.iter().enumerate() {
        let (policy, dep_bits, known) = &policies[s];
        if s >= MODEL_SERVICES && !known {
            continue;
        }
        let group = if s < MODEL_SERVICES {
            0..s
        } else {
            MODEL_SERVICES..s
        };
        let depends_on = group
            .filter(|d| dep_bits & (1 << d) != 0)
            .map(|d| SERVICES[d].to_string())
            .collect();
        rollouts.insert(
            service.to_string(),
            ServiceRollout {
                policy: policy.clone(),
                depends_on,
            },
        );
    }
    World {
        desired,
        live,
        unreachable: unreachable.iter().map(|h| h.to_string()).collect(),
        rollouts,
    }
}

fn transitive_deps(rollouts: &BTreeMap<String, ServiceRollout>, service: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![service.to_string()];
    while let Some(s) = todo.pop() {
        for d in rollouts
            .get(&s)
            .map(|r| r.depends_on.as_slice())
            .unwrap_or(&[])
        {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

fn world_plan(w: &World) -> Plan {
    plan(&delta(&w.desired, &w.live, &w.unreachable), &w.rollouts).expect("DAG plans")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Applying every step, batch by batch, brings every reachable instance to `ok`.
    #[test]
    fn applying_the_plan_converges(w in arb_world()) {
        let before = delta(&w.desired, &w.live, &w.unreachable);
        let plan = plan(&before, &w.rollouts).unwrap();
        let mut live = w.live.clone();
        for change in plan.changes() {
            for step in &change.steps {
                if let Err(e) = apply_step(&mut live, &change.key, step) {
                    panic!("{e}\nplan:\n{plan}");
                }
            }
        }
        let after = delta(&w.desired, &live, &w.unreachable);
        for d in &after {
            prop_assert!(
                matches!(d.status, DeltaStatus::Ok | DeltaStatus::Unreachable),
                "{} is {} ({}) after the plan:\n{plan}", d.key, d.status, d.reason
            );
        }
        let unreachable: Vec<_> = after.iter().filter(|d| d.status == DeltaStatus::Unreachable).map(|d| &d.key).collect();
        let blocked: Vec<_> = plan.blocked.iter().map(|d| &d.key).collect();
        prop_assert_eq!(unreachable, blocked);
        // One change per instance that is neither ok nor unreachable.
        let to_change = before.iter().filter(|d| !matches!(d.status, DeltaStatus::Ok | DeltaStatus::Unreachable)).count();
        prop_assert_eq!(plan.changes().count(), to_change);
        prop_assert_eq!(plan.counts.total(), to_change);
        for kind in ChangeKind::ALL {
            prop_assert_eq!(plan.counts.count(kind), plan.changes().filter(|c| c.kind == kind).count());
        }
        // The plan of the result is empty.
        let again = drover_core::plan::plan(&after, &w.rollouts).unwrap();
        prop_assert!(again.is_empty(), "{again}");
    }

    /// No batch takes more than max_parallel running instances out of service (nor holds
    /// more changes than that); the canary stage is the first min(canary, changes).
    #[test]
    fn batches_respect_max_parallel_and_canary(w in arb_world()) {
        let plan = world_plan(&w);
        for sp in plan.services() {
            let desired = w.desired.iter().filter(|d| d.key.service == sp.service && d.state != LifecycleState::None).count() as u32;
            let changes = sp.changes().count() as u32;
            let removed = desired == 0;
            prop_assert_eq!(sp.removed, removed);
            let policy = match w.rollouts.get(&sp.service) {
                Some(r) => r.policy.clone(),
                None => { prop_assert!(removed); RolloutPolicy { strategy: Strategy::AllAtOnce, ..RolloutPolicy::default() } }
            };
            let instances = if removed { changes } else { desired };
            let limit = match policy.strategy {
                Strategy::Rolling => Some(match policy.max_parallel {
                    MaxParallel::Count(n) => n.max(1),
                    MaxParallel::Percent(p) => (instances * u32::from(p) / 100).max(1),
                }),
                Strategy::Serial => Some(1),
                Strategy::AllAtOnce => None,
            };
            let canary = policy.canary.min(changes) as usize;
            let mut seen = 0usize;
            for (i, batch) in sp.batches.iter().enumerate() {
                prop_assert_eq!(batch.index, i);
                prop_assert!(!batch.changes.is_empty());
                if let Some(limit) = limit {
                    prop_assert!(batch.out_of_service() <= limit as usize, "{}", plan);
                    prop_assert!(batch.changes.len() <= limit as usize, "{}", plan);
                }
                prop_assert_eq!(batch.canary, seen < canary, "batch {} of {}:\n{}", i, sp.service, plan);
                seen += batch.changes.len();
                if batch.canary {
                    prop_assert!(seen <= canary);
                }
            }
            if limit.is_none() {
                prop_assert!(sp.batches.len() <= 1 + usize::from(canary > 0));
            }
        }
    }

    /// Every service comes after its (transitive) dependencies; removals come last,
    /// dependents first; every service appears once.
    #[test]
    fn services_come_after_their_dependencies(w in arb_world()) {
        let plan = world_plan(&w);
        let mut phase_of: BTreeMap<&str, usize> = BTreeMap::new();
        for (p, phase) in plan.phases.iter().enumerate() {
            prop_assert!(!phase.is_empty());
            for sp in phase {
                prop_assert!(phase_of.insert(&sp.service, p).is_none(), "{} twice", sp.service);
            }
        }
        let removed: BTreeSet<&str> = plan.services().filter(|s| s.removed).map(|s| s.service.as_str()).collect();
        let last_kept = plan.services().filter(|s| !s.removed).map(|s| phase_of[s.service.as_str()]).max();
        for sp in plan.services() {
            let p = phase_of[sp.service.as_str()];
            if let (true, Some(k)) = (sp.removed, last_kept) {
                prop_assert!(p > k);
            }
            for dep in transitive_deps(&w.rollouts, &sp.service) {
                let Some(&q) = phase_of.get(dep.as_str()) else { continue };
                match (sp.removed, removed.contains(dep.as_str())) {
                    (false, false) => prop_assert!(q < p, "{} (phase {}) before its dependency {} (phase {})", sp.service, p, dep, q),
                    (true, true) => prop_assert!(q > p, "removed {} (phase {}) after its removed dependency {} (phase {})", sp.service, p, dep, q),
                    _ => {}
                }
            }
        }
    }

    /// Same inputs in another order → the same plan, to the byte.
    #[test]
    fn plans_are_deterministic(
        (w, desired, live) in arb_world().prop_flat_map(|w| {
            let d = Just(w.desired.clone()).prop_shuffle();
            let l = Just(w.live.clone()).prop_shuffle();
            (Just(w), d, l)
        })
    ) {
        let one = world_plan(&w);
        let two = world_plan(&World { desired, live, ..w.clone() });
        prop_assert_eq!(one.to_string(), two.to_string());
        prop_assert_eq!(one, two);
    }
}
