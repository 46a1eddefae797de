//! Delta and plan at fleet scale: 10,000 hosts × 10 services = 100,000 desired
//! instances, with about 10% drift of every kind (missing, wrong version, spec change,
//! wrong state, unhealthy, unexpected, 0.5% of hosts unreachable). Target: delta + plan
//! under 1 s.
//!
//! `cargo bench -p drover-core --bench delta_plan`

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_core::delta::{DeltaSummary, delta};
use drover_core::instance::{
    DesiredInstance, Health, InstanceKey, LifecycleState, LiveInstance, MaxParallel, RolloutPolicy,
    Strategy,
};
use drover_core::plan::{ServiceRollout, plan};

const HOSTS: usize = 10_000;
const SERVICES: usize = 10;

struct Fleet {
    desired: Vec<DesiredInstance>,
    live: Vec<LiveInstance>,
    unreachable: BTreeSet<String>,
    rollouts: BTreeMap<String, ServiceRollout>,
}

/// xorshift64*: deterministic drift without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn fleet() -> Fleet {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let services: Vec<String> = (0..SERVICES).map(|s| format!("svc-{s:02}")).collect();
    let mut desired = Vec::with_capacity(HOSTS * SERVICES);
    let mut live = Vec::with_capacity(HOSTS * SERVICES);
    let mut unreachable = BTreeSet::new();
    for h in 0..HOSTS {
        let host = format!("host-{h:05}");
        if rng.below(1000) < 5 {
            unreachable.insert(host.clone());
        }
        for service in &services {
            let key = InstanceKey {
                service: service.clone(),
                host: host.clone(),
                index: 0,
            };
            let ports = BTreeMap::from([("http".to_string(), 8080)]);
            desired.push(DesiredInstance {
                key: key.clone(),
                version: "2.0.0".into(),
                state: LifecycleState::Running,
                spec_hash: "5d41402abc4b2a76b9719d911017c592".into(),
                ports,
            });
            let mut instance = LiveInstance {
                key,
                version: "2.0.0".into(),
                state: LifecycleState::Running,
                health: Health::Healthy,
                spec_hash: "5d41402abc4b2a76b9719d911017c592".into(),
            };
            match rng.below(1000) {
                0..20 => continue, // missing
                20..40 => instance.version = "1.9.3".into(),
                40..55 => instance.spec_hash = "7d793037a0760186574b0282f2f435e7".into(),
                55..70 => {
                    instance.state = LifecycleState::Stopped;
                    instance.health = Health::Unknown;
                }
                70..85 => instance.health = Health::Unhealthy,
                85..95 => {
                    // an extra copy nobody asked for
                    let mut extra = instance.clone();
                    extra.key.index = 1;
                    live.push(extra);
                }
                _ => {}
            }
            live.push(instance);
        }
    }
    let policies = [
        RolloutPolicy {
            max_parallel: MaxParallel::Percent(10),
            canary: 5,
            ..RolloutPolicy::default()
        },
        RolloutPolicy {
            max_parallel: MaxParallel::Count(50),
            ..RolloutPolicy::default()
        },
        RolloutPolicy {
            strategy: Strategy::Serial,
            ..RolloutPolicy::default()
        },
        RolloutPolicy {
            strategy: Strategy::AllAtOnce,
            canary: 1,
            ..RolloutPolicy::default()
        },
    ];
    let rollouts = services
        .iter()
        .enumerate()
        .map(|(s, name)| {
            // svc-01 and svc-02 depend on svc-00, svc-03 on svc-01 and svc-02, …
            let depends_on = match s {
                0 => vec![],
                1 | 2 => vec![services[0].clone()],
                _ => vec![services[s - 2].clone(), services[s - 1].clone()],
            };
            let rollout = ServiceRollout {
                policy: policies[s % policies.len()].clone(),
                depends_on,
            };
            (name.clone(), rollout)
        })
        .collect();
    Fleet {
        desired,
        live,
        unreachable,
        rollouts,
    }
}

fn bench(c: &mut Criterion) {
    let fleet = fleet();
    let deltas = delta(&fleet.desired, &fleet.live, &fleet.unreachable);
    let the_plan = plan(&deltas, &fleet.rollouts).expect("no cycle");
    eprintln!(
        "fleet: {} desired, {} live, {} unreachable hosts; delta: {}; plan: {} changes in {} phases, {} blocked",
        fleet.desired.len(),
        fleet.live.len(),
        fleet.unreachable.len(),
        DeltaSummary::of(&deltas),
        the_plan.counts.total(),
        the_plan.phases.len(),
        the_plan.blocked.len(),
    );

    let mut group = c.benchmark_group("100k_instances");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("delta", |b| {
        b.iter(|| {
            delta(
                black_box(&fleet.desired),
                black_box(&fleet.live),
                black_box(&fleet.unreachable),
            )
        })
    });
    group.bench_function("plan", |b| {
        b.iter(|| plan(black_box(&deltas), black_box(&fleet.rollouts)))
    });
    group.bench_function("delta+plan", |b| {
        b.iter(|| {
            let deltas = delta(
                black_box(&fleet.desired),
                black_box(&fleet.live),
                black_box(&fleet.unreachable),
            );
            plan(&deltas, black_box(&fleet.rollouts))
        })
    });
    group.bench_function("render", |b| b.iter(|| black_box(&the_plan).to_string()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
