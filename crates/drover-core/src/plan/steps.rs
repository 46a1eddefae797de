//! Walks over glu's lifecycle graph: the steps of one change, and the effect of one
//! step on the live model.

use crate::delta::{DeltaStatus, InstanceDelta};
use crate::instance::{Health, InstanceKey, LifecycleState, LiveInstance, Transition};

use super::{ChangeKind, InstanceChange, Step, VersionState};

const UP: [Transition; 3] = [
    Transition::Install,
    Transition::Configure,
    Transition::Start,
];
const DOWN: [Transition; 3] = [
    Transition::Stop,
    Transition::Unconfigure,
    Transition::Uninstall,
];

/// The transitions from `from` to `to` along the lifecycle graph (none when equal).
fn walk(from: LifecycleState, to: LifecycleState, version: &str, spec_hash: &str) -> Vec<Step> {
    let path = if from < to {
        UP.iter()
            .filter(|t| t.edge().0 >= from && t.edge().1 <= to)
            .collect::<Vec<_>>()
    } else {
        DOWN.iter()
            .filter(|t| t.edge().0 <= from && t.edge().1 >= to)
            .collect()
    };
    path.into_iter()
        .map(|t| step(*t, version, spec_hash))
        .collect()
}

fn step(transition: Transition, version: &str, spec_hash: &str) -> Step {
    Step {
        transition,
        version: version.to_string(),
        spec_hash: spec_hash.to_string(),
    }
}

/// The change that closes one instance's delta; `None` for `ok` and `unreachable`
/// (and for a delta whose status contradicts its desired/live sides).
pub(super) fn change_for(d: &InstanceDelta) -> Option<InstanceChange> {
    let wanted = d.wanted();
    let present = d.present();
    let (kind, steps) = match d.status {
        DeltaStatus::Ok | DeltaStatus::Unreachable => return None,
        DeltaStatus::Missing => {
            let w = wanted?;
            let steps = walk(LifecycleState::None, w.state, &w.version, &w.spec_hash);
            (ChangeKind::Deploy, steps)
        }
        DeltaStatus::Unexpected => {
            let l = present?;
            let steps = walk(l.state, LifecycleState::None, &l.version, &l.spec_hash);
            (ChangeKind::Undeploy, steps)
        }
        DeltaStatus::WrongVersion => {
            let (w, l) = (wanted?, present?);
            let mut steps = Vec::with_capacity(4);
            if l.state == LifecycleState::Running {
                steps.push(step(Transition::Stop, &l.version, &l.spec_hash));
            }
            steps.extend(walk(
                LifecycleState::None,
                w.state,
                &w.version,
                &w.spec_hash,
            ));
            (ChangeKind::Upgrade, steps)
        }
        DeltaStatus::WrongState => {
            let (w, l) = (wanted?, present?);
            let kind = if w.state > l.state {
                ChangeKind::Start
            } else {
                ChangeKind::Stop
            };
            (kind, walk(l.state, w.state, &l.version, &l.spec_hash))
        }
        DeltaStatus::Unhealthy => {
            let l = present?;
            let steps = vec![
                step(Transition::Stop, &l.version, &l.spec_hash),
                step(Transition::Start, &l.version, &l.spec_hash),
            ];
            (ChangeKind::Restart, steps)
        }
    };
    Some(InstanceChange {
        key: d.key.clone(),
        kind,
        from: present.map(|l| VersionState {
            version: l.version.clone(),
            state: l.state,
        }),
        to: wanted.map(|w| VersionState {
            version: w.version.clone(),
            state: w.state,
        }),
        steps,
        reason: d.reason.clone(),
    })
}

/// A step that cannot apply to the live model as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The step needs an installed release and there is none.
    #[error("{key}: cannot {} {version}: nothing installed", .transition)]
    NotInstalled {
        /// Which instance.
        key: InstanceKey,
        /// The step's transition.
        transition: Transition,
        /// The step's version.
        version: String,
    },
    /// The step is for another release than the live one.
    #[error(
        "{key}: cannot {} {version}: the live release is {live_version}",
        .transition
    )]
    OtherRelease {
        /// Which instance.
        key: InstanceKey,
        /// The step's transition.
        transition: Transition,
        /// The step's version.
        version: String,
        /// The live version.
        live_version: String,
    },
    /// The step does not start from the live state.
    #[error("{key}: cannot {} from state {}", .transition, .state)]
    WrongState {
        /// Which instance.
        key: InstanceKey,
        /// The step's transition.
        transition: Transition,
        /// The live state.
        state: LifecycleState,
    },
}

/// Simulates one step on the live model, as an agent that succeeds would carry it out.
///
/// - `install` puts a release in place at `installed` (health unknown). It applies when
///   nothing is installed, or beside another release that does not run (an upgrade:
///   the new release becomes the live one, the old stays on disk).
/// - every other step needs the live release to be the step's (version and spec) and
///   the live state to be the transition's start; `start` makes the instance healthy,
///   `stop` makes its health unknown, `uninstall` removes the instance.
pub fn apply_step(
    live: &mut Vec<LiveInstance>,
    key: &InstanceKey,
    step: &Step,
) -> Result<(), StepError> {
    let position = live
        .iter()
        .position(|l| &l.key == key && l.state != LifecycleState::None);
    let (from, to) = step.transition.edge();
    let Some(position) = position else {
        if step.transition != Transition::Install {
            return Err(StepError::NotInstalled {
                key: key.clone(),
                transition: step.transition,
                version: step.version.clone(),
            });
        }
        live.retain(|l| &l.key != key);
        live.push(LiveInstance {
            key: key.clone(),
            version: step.version.clone(),
            state: to,
            health: Health::Unknown,
            spec_hash: step.spec_hash.clone(),
        });
        return Ok(());
    };
    let instance = &mut live[position];
    let same_release = instance.version == step.version && instance.spec_hash == step.spec_hash;
    if step.transition == Transition::Install {
        if same_release || instance.state == LifecycleState::Running {
            return Err(StepError::WrongState {
                key: key.clone(),
                transition: step.transition,
                state: instance.state,
            });
        }
        instance.version = step.version.clone();
        instance.spec_hash = step.spec_hash.clone();
        instance.state = to;
        instance.health = Health::Unknown;
        return Ok(());
    }
    if !same_release {
        return Err(StepError::OtherRelease {
            key: key.clone(),
            transition: step.transition,
            version: step.version.clone(),
            live_version: instance.version.clone(),
        });
    }
    if instance.state != from {
        return Err(StepError::WrongState {
            key: key.clone(),
            transition: step.transition,
            state: instance.state,
        });
    }
    instance.state = to;
    match step.transition {
        Transition::Start => instance.health = Health::Healthy,
        Transition::Stop => instance.health = Health::Unknown,
        Transition::Uninstall => {
            live.remove(position);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleState::{Installed, Running, Stopped};

    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| format!("{} {}", s.transition.as_str(), s.version))
            .collect()
    }

    #[test]
    fn walks_up_and_down() {
        let table: &[(LifecycleState, LifecycleState, &[&str])] = &[
            (
                LifecycleState::None,
                Running,
                &["install", "configure", "start"],
            ),
            (LifecycleState::None, Stopped, &["install", "configure"]),
            (LifecycleState::None, Installed, &["install"]),
            (Installed, Running, &["configure", "start"]),
            (Stopped, Running, &["start"]),
            (Running, Running, &[]),
            (Running, Stopped, &["stop"]),
            (Running, Installed, &["stop", "unconfigure"]),
            (
                Running,
                LifecycleState::None,
                &["stop", "unconfigure", "uninstall"],
            ),
            (Stopped, LifecycleState::None, &["unconfigure", "uninstall"]),
            (Installed, LifecycleState::None, &["uninstall"]),
        ];
        for (from, to, want) in table {
            let got: Vec<_> = walk(*from, *to, "1", "s")
                .iter()
                .map(|s| s.transition.as_str())
                .collect();
            assert_eq!(&got, want, "{from:?} -> {to:?}");
        }
    }

    fn key() -> InstanceKey {
        InstanceKey {
            service: "web".into(),
            host: "h1".into(),
            index: 0,
        }
    }

    fn live(version: &str, state: LifecycleState) -> Vec<LiveInstance> {
        vec![LiveInstance {
            key: key(),
            version: version.into(),
            state,
            health: Health::Unhealthy,
            spec_hash: "s".into(),
        }]
    }

    #[test]
    fn apply_upgrade_keeps_one_live_release() {
        let mut model = live("1", Running);
        for s in [
            step(Transition::Stop, "1", "s"),
            step(Transition::Install, "2", "s"),
            step(Transition::Configure, "2", "s"),
            step(Transition::Start, "2", "s"),
        ] {
            apply_step(&mut model, &key(), &s).unwrap();
        }
        assert_eq!(model.len(), 1);
        assert_eq!(model[0].version, "2");
        assert_eq!(model[0].state, Running);
        assert_eq!(model[0].health, Health::Healthy);
    }

    #[test]
    fn apply_undeploy_removes_the_instance() {
        let mut model = live("1", Running);
        for s in walk(Running, LifecycleState::None, "1", "s") {
            apply_step(&mut model, &key(), &s).unwrap();
        }
        assert!(model.is_empty());
    }

    #[test]
    fn apply_deploy_replaces_a_none_entry() {
        let mut model = live("0", LifecycleState::None);
        for s in walk(LifecycleState::None, Stopped, "1", "s") {
            apply_step(&mut model, &key(), &s).unwrap();
        }
        assert_eq!(model.len(), 1);
        assert_eq!((model[0].version.as_str(), model[0].state), ("1", Stopped));
    }

    #[test]
    fn apply_rejects_invalid_steps() {
        let cases: Vec<(Vec<LiveInstance>, Step, &str)> = vec![
            (
                vec![],
                step(Transition::Start, "1", "s"),
                "web/h1#0: cannot start 1: nothing installed",
            ),
            (
                live("1", Running),
                step(Transition::Install, "2", "s"),
                "web/h1#0: cannot install from state running",
            ),
            (
                live("1", Stopped),
                step(Transition::Install, "1", "s"),
                "web/h1#0: cannot install from state stopped",
            ),
            (
                live("1", Stopped),
                step(Transition::Start, "2", "s"),
                "web/h1#0: cannot start 2: the live release is 1",
            ),
            (
                live("1", Stopped),
                step(Transition::Start, "1", "t"),
                "web/h1#0: cannot start 1: the live release is 1",
            ),
            (
                live("1", Stopped),
                step(Transition::Stop, "1", "s"),
                "web/h1#0: cannot stop from state stopped",
            ),
        ];
        for (mut model, s, want) in cases {
            let before = model.clone();
            let err = apply_step(&mut model, &key(), &s).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(model, before, "{want}: unchanged");
        }
    }

    #[test]
    fn step_names_in_errors_and_walks() {
        assert_eq!(
            names(&walk(Stopped, Running, "1", "s")),
            vec!["start 1".to_string()]
        );
    }
}
