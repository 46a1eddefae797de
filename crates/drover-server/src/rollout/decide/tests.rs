//! Tests of the conductor: data in, decisions out.

use std::time::Duration;

use drover_core::instance::{Health, LifecycleState, RolloutPolicy};
use drover_store::{InstanceRow, RolloutDetail, RolloutRow, StepRow, UnitRow};

use super::*;

fn policy(canary: bool, auto_promote: bool) -> serde_json::Value {
    serde_json::to_value(UnitPolicy {
        policy: RolloutPolicy {
            min_healthy_time: Duration::from_secs(2),
            healthy_deadline: Duration::from_secs(30),
            progress_deadline: Duration::from_secs(300),
            auto_promote,
            canary: u32::from(canary),
            ..RolloutPolicy::default()
        },
        health_check: true,
        load_balancer: None,
    })
    .expect("json")
}

fn unit(n: i64, canary: bool, auto_promote: bool) -> UnitRow {
    UnitRow {
        unit: n,
        service: "web".into(),
        batch: n,
        canary,
        revert: false,
        policy: policy(canary, auto_promote),
    }
}

fn inst(unit: i64, host: &str, status: &str) -> InstanceRow {
    InstanceRow {
        unit,
        host_id: host.into(),
        host_name: host.into(),
        service: "web".into(),
        index: 0,
        kind: "upgrade".into(),
        from_version: Some("1".into()),
        to_version: Some("2".into()),
        to_state: Some("running".into()),
        gated: true,
        status: status.into(),
        gate_started_at: None,
        healthy_since: None,
        error: None,
        lb_epoch: None,
        lb_ready_at: None,
    }
}

fn step(unit: i64, host: &str, pos: i64, status: &str) -> StepRow {
    StepRow {
        unit,
        host_id: host.into(),
        service: "web".into(),
        index: 0,
        pos,
        transition: ["stop", "install", "configure", "start"][pos as usize % 4].into(),
        version: "2".into(),
        status: status.into(),
        command_id: None,
        error: (status == "failed").then(|| "exit code 1".to_string()),
        output: String::new(),
    }
}

fn detail(
    unit: i64,
    units: Vec<UnitRow>,
    instances: Vec<InstanceRow>,
    steps: Vec<StepRow>,
) -> RolloutDetail {
    RolloutDetail {
        rollout: RolloutRow {
            execution_id: "e".into(),
            model_version: 2,
            previous_version: Some(1),
            state: "running".into(),
            unit,
            units: units.len() as i64,
            reverting: false,
            plan_text: String::new(),
            error: None,
            last_progress_at: 0,
        },
        units,
        instances,
        steps,
    }
}

fn live(host: &str, version: &str, health: Health) -> LiveMap {
    let mut m = LiveMap::new();
    m.insert(
        (host.into(), "web".into(), 0),
        LiveState {
            version: version.into(),
            state: LifecycleState::Running,
            health,
        },
    );
    m
}

fn none() -> std::collections::HashSet<String> {
    std::collections::HashSet::new()
}

fn at(unit: i64, host: &str) -> At {
    At {
        unit,
        host_id: host.into(),
        service: "web".into(),
        index: 0,
    }
}

#[test]
fn steps_run_one_at_a_time_in_order() {
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "pending")],
        vec![step(0, "a", 0, "pending"), step(0, "a", 1, "pending")],
    );
    let actions = decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 10);
    assert_eq!(
        actions,
        vec![
            Action::Instance {
                at: at(0, "a"),
                from: "pending".into(),
                to: "stepping",
                gate_started_at: None,
                healthy_since: None,
                error: None
            },
            Action::Dispatch {
                at: at(0, "a"),
                pos: 0
            },
        ]
    );
    // First step in flight: nothing to do.
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "running"), step(0, "a", 1, "pending")],
    );
    assert!(decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 10).is_empty());
    // First done: the second goes.
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "ok"), step(0, "a", 1, "pending")],
    );
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 10),
        vec![Action::Dispatch {
            at: at(0, "a"),
            pos: 1
        }]
    );
}

#[test]
fn all_steps_done_starts_the_gate_and_a_failed_step_fails_the_instance() {
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "ok")],
    );
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 10),
        vec![Action::Instance {
            at: at(0, "a"),
            from: "stepping".into(),
            to: "gating",
            gate_started_at: Some(10),
            healthy_since: None,
            error: None,
        }]
    );
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "ok"), step(0, "a", 1, "failed")],
    );
    match &decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 10)[..] {
        [
            Action::Instance {
                to: "failed",
                error: Some(e),
                ..
            },
        ] => assert!(e.contains("install 2 failed: exit code 1"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gate_needs_min_healthy_time_without_a_break() {
    let mut i = inst(0, "a", "gating");
    i.gate_started_at = Some(0);
    let d = detail(
        0,
        vec![unit(0, false, false), unit(1, false, false)],
        vec![i.clone()],
        vec![],
    );
    // Healthy on the target version: the clock starts.
    assert!(matches!(
        &decide(
            &d,
            &live("a", "2", Health::Healthy),
            &none(),
            &LbMap::new(),
            1000
        )[..],
        [Action::Instance {
            to: "gating",
            healthy_since: Some(1000),
            ..
        }]
    ));
    // Still on the old version: not healthy for the gate.
    assert!(
        decide(
            &d,
            &live("a", "1", Health::Healthy),
            &none(),
            &LbMap::new(),
            1000
        )
        .is_empty()
    );
    i.healthy_since = Some(1000);
    let d = detail(
        0,
        vec![unit(0, false, false), unit(1, false, false)],
        vec![i.clone()],
        vec![],
    );
    assert!(
        decide(
            &d,
            &live("a", "2", Health::Healthy),
            &none(),
            &LbMap::new(),
            2500
        )
        .is_empty(),
        "1.5 s < 2 s"
    );
    assert!(matches!(
        &decide(
            &d,
            &live("a", "2", Health::Healthy),
            &none(),
            &LbMap::new(),
            3000
        )[..],
        [Action::Instance { to: "passed", .. }]
    ));
    // Health lost (unknown again): the clock resets.
    assert!(matches!(
        &decide(
            &d,
            &live("a", "2", Health::Unknown),
            &none(),
            &LbMap::new(),
            2500
        )[..],
        [Action::Instance {
            to: "gating",
            healthy_since: None,
            ..
        }]
    ));
}

#[test]
fn unhealthy_or_late_fails_the_gate() {
    let mut i = inst(0, "a", "gating");
    i.gate_started_at = Some(0);
    let d = detail(0, vec![unit(0, false, false)], vec![i], vec![]);
    assert!(matches!(
        &decide(
            &d,
            &live("a", "2", Health::Unhealthy),
            &none(),
            &LbMap::new(),
            100
        )[..],
        [Action::Instance { to: "failed", .. }]
    ));
    match &decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 31_000)[..] {
        [
            Action::Instance {
                to: "failed",
                error: Some(e),
                ..
            },
        ] => assert!(e.contains("healthy_deadline"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_instance_fails_the_rollout_and_reverts_with_auto_revert() {
    let mut i = inst(0, "a", "failed");
    i.error = Some("2 is unhealthy".into());
    let d = detail(0, vec![unit(0, false, false)], vec![i], vec![]);
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 5),
        vec![Action::Fail {
            error: "web/a#0: 2 is unhealthy".into(),
            revert: Some("web".into()),
        }]
    );
    // A revert unit does not revert itself.
    let mut d2 = d.clone();
    d2.rollout.reverting = true;
    assert!(matches!(
        &decide(&d2, &LiveMap::new(), &none(), &LbMap::new(), 5)[..],
        [Action::Fail { revert: None, .. }]
    ));
}

#[test]
fn units_advance_await_promotion_and_finish() {
    let passed = |u| inst(u, "a", "passed");
    // Canary unit passed, no auto_promote: wait.
    let d = detail(
        0,
        vec![unit(0, true, false), unit(1, false, false)],
        vec![passed(0), inst(1, "b", "pending")],
        vec![],
    );
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 5),
        vec![Action::AwaitPromotion { unit: 1 }]
    );
    // With auto_promote: go on.
    let d = detail(
        0,
        vec![unit(0, true, true), unit(1, false, true)],
        vec![passed(0)],
        vec![],
    );
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 5),
        vec![Action::Advance { unit: 1 }]
    );
    // Last unit passed: finish.
    let d = detail(
        1,
        vec![unit(0, false, false), unit(1, false, false)],
        vec![passed(0), passed(1)],
        vec![],
    );
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 5),
        vec![Action::Finish]
    );
    // Paused rollouts decide nothing.
    let mut d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "pending")],
        vec![step(0, "a", 0, "pending")],
    );
    d.rollout.state = "paused".into();
    assert!(decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 5).is_empty());
}

#[test]
fn no_progress_within_the_deadline_fails() {
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "running")],
    );
    match &decide(&d, &LiveMap::new(), &none(), &LbMap::new(), 301_000)[..] {
        [
            Action::Fail {
                error,
                revert: Some(_),
            },
        ] => assert!(error.contains("progress_deadline")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_instance_on_a_host_that_is_down_fails_at_once() {
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "dispatched")],
    );
    let down: std::collections::HashSet<String> = ["a".to_string()].into();
    match &decide(&d, &LiveMap::new(), &down, &LbMap::new(), 5)[..] {
        [
            Action::Instance {
                to: "failed",
                error: Some(e),
                ..
            },
        ] => assert!(e.contains("host a is down"), "{e}"),
        other => panic!("{other:?}"),
    }
}

fn lb_unit() -> UnitRow {
    let mut u = unit(0, false, true);
    u.policy = serde_json::to_value(UnitPolicy {
        policy: RolloutPolicy {
            min_healthy_time: Duration::from_secs(2),
            healthy_deadline: Duration::from_secs(30),
            progress_deadline: Duration::from_secs(300),
            auto_promote: true,
            ..RolloutPolicy::default()
        },
        health_check: true,
        load_balancer: Some(drover_core::model::LoadBalancer {
            generator: "haproxy".into(),
            drain: true,
            drain_grace: Duration::from_millis(500),
        }),
    })
    .expect("json");
    u
}

fn lbs(applied_epoch: i64, failure: Option<&str>) -> LbMap {
    let mut m = LbMap::new();
    m.insert(
        "haproxy".into(),
        crate::generators::LbState {
            applied_epoch,
            failure: failure.map(str::to_string),
        },
    );
    m
}

#[test]
fn a_running_instance_leaves_its_pool_before_its_first_step() {
    let live = live("a", "1", Health::Healthy);
    let d = detail(
        0,
        vec![lb_unit()],
        vec![inst(0, "a", "pending")],
        vec![step(0, "a", 0, "pending")],
    );
    assert_eq!(
        decide(&d, &live, &none(), &lbs(0, None), 10),
        [Action::Drain { at: at(0, "a") }]
    );
    // Nothing is dispatched while the pool without it is not live everywhere.
    let mut draining = inst(0, "a", "draining");
    draining.lb_epoch = Some(7);
    let d = detail(
        0,
        vec![lb_unit()],
        vec![draining.clone()],
        vec![step(0, "a", 0, "pending")],
    );
    assert!(decide(&d, &live, &none(), &lbs(6, None), 10).is_empty());
    // Live: the grace starts…
    assert_eq!(
        decide(&d, &live, &none(), &lbs(7, None), 10),
        [Action::Lb {
            at: at(0, "a"),
            from: "draining",
            to: "draining",
            lb_epoch: Some(7),
            lb_ready_at: Some(10)
        }]
    );
    // …and only when it is over do the steps start.
    draining.lb_ready_at = Some(10);
    let d = detail(
        0,
        vec![lb_unit()],
        vec![draining],
        vec![step(0, "a", 0, "pending")],
    );
    assert!(decide(&d, &live, &none(), &lbs(7, None), 400).is_empty());
    assert_eq!(
        decide(&d, &live, &none(), &lbs(7, None), 510),
        [Action::Lb {
            at: at(0, "a"),
            from: "draining",
            to: "stepping",
            lb_epoch: Some(7),
            lb_ready_at: Some(10)
        }]
    );
    // A load balancer that refuses its config fails the instance, naming why.
    match &decide(&d, &live, &none(), &lbs(6, Some("haproxy -c: bad")), 510)[..] {
        [
            Action::Instance {
                to: "failed",
                error: Some(e),
                ..
            },
        ] => {
            assert!(e.contains("haproxy -c: bad"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_drained_instance_rejoins_after_its_gate_and_then_passes() {
    let mut gating = inst(0, "a", "gating");
    gating.lb_epoch = Some(7);
    gating.gate_started_at = Some(0);
    gating.healthy_since = Some(0);
    let d = detail(
        0,
        vec![lb_unit()],
        vec![gating],
        vec![step(0, "a", 0, "ok")],
    );
    let live2 = live("a", "2", Health::Healthy);
    assert_eq!(
        decide(&d, &live2, &none(), &lbs(7, None), 3_000),
        [Action::Undrain {
            at: at(0, "a"),
            from: "gating".into()
        }]
    );
    let mut back = inst(0, "a", "undraining");
    back.lb_epoch = Some(8);
    let d = detail(0, vec![lb_unit()], vec![back], vec![step(0, "a", 0, "ok")]);
    // Not passed (and the unit not finished) until the pool with it is live.
    assert!(decide(&d, &live2, &none(), &lbs(7, None), 3_000).is_empty());
    let actions = decide(&d, &live2, &none(), &lbs(8, None), 3_000);
    assert!(
        matches!(&actions[..], [Action::Instance { to: "passed", .. }]),
        "{actions:?}"
    );
}

#[test]
fn a_generator_gone_from_the_model_drains_nothing() {
    let d = detail(
        0,
        vec![lb_unit()],
        vec![inst(0, "a", "pending")],
        vec![step(0, "a", 0, "pending")],
    );
    let actions = decide(
        &d,
        &live("a", "1", Health::Healthy),
        &none(),
        &LbMap::new(),
        10,
    );
    assert!(
        actions.iter().any(|a| matches!(a, Action::Dispatch { .. })),
        "{actions:?}"
    );
}

#[test]
fn an_instance_that_is_not_running_is_not_drained() {
    let d = detail(
        0,
        vec![lb_unit()],
        vec![inst(0, "a", "pending")],
        vec![step(0, "a", 0, "pending")],
    );
    let actions = decide(&d, &LiveMap::new(), &none(), &lbs(0, None), 10);
    assert!(
        actions.iter().any(|a| matches!(a, Action::Dispatch { .. })),
        "{actions:?}"
    );
}
