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
    let actions = decide(&d, &LiveMap::new(), &none(), 10);
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
    assert!(decide(&d, &LiveMap::new(), &none(), 10).is_empty());
    // First done: the second goes.
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "ok"), step(0, "a", 1, "pending")],
    );
    assert_eq!(
        decide(&d, &LiveMap::new(), &none(), 10),
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
        decide(&d, &LiveMap::new(), &none(), 10),
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
    match &decide(&d, &LiveMap::new(), &none(), 10)[..] {
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
        &decide(&d, &live("a", "2", Health::Healthy), &none(), 1000)[..],
        [Action::Instance {
            to: "gating",
            healthy_since: Some(1000),
            ..
        }]
    ));
    // Still on the old version: not healthy for the gate.
    assert!(decide(&d, &live("a", "1", Health::Healthy), &none(), 1000).is_empty());
    i.healthy_since = Some(1000);
    let d = detail(
        0,
        vec![unit(0, false, false), unit(1, false, false)],
        vec![i.clone()],
        vec![],
    );
    assert!(
        decide(&d, &live("a", "2", Health::Healthy), &none(), 2500).is_empty(),
        "1.5 s < 2 s"
    );
    assert!(matches!(
        &decide(&d, &live("a", "2", Health::Healthy), &none(), 3000)[..],
        [Action::Instance { to: "passed", .. }]
    ));
    // Health lost (unknown again): the clock resets.
    assert!(matches!(
        &decide(&d, &live("a", "2", Health::Unknown), &none(), 2500)[..],
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
        &decide(&d, &live("a", "2", Health::Unhealthy), &none(), 100)[..],
        [Action::Instance { to: "failed", .. }]
    ));
    match &decide(&d, &LiveMap::new(), &none(), 31_000)[..] {
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
        decide(&d, &LiveMap::new(), &none(), 5),
        vec![Action::Fail {
            error: "web/a#0: 2 is unhealthy".into(),
            revert: Some("web".into()),
        }]
    );
    // A revert unit does not revert itself.
    let mut d2 = d.clone();
    d2.rollout.reverting = true;
    assert!(matches!(
        &decide(&d2, &LiveMap::new(), &none(), 5)[..],
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
        decide(&d, &LiveMap::new(), &none(), 5),
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
        decide(&d, &LiveMap::new(), &none(), 5),
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
        decide(&d, &LiveMap::new(), &none(), 5),
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
    assert!(decide(&d, &LiveMap::new(), &none(), 5).is_empty());
}

#[test]
fn no_progress_within_the_deadline_fails() {
    let d = detail(
        0,
        vec![unit(0, false, false)],
        vec![inst(0, "a", "stepping")],
        vec![step(0, "a", 0, "running")],
    );
    match &decide(&d, &LiveMap::new(), &none(), 301_000)[..] {
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
    match &decide(&d, &LiveMap::new(), &down, 5)[..] {
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
