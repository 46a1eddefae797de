//! The delta: the desired instances (static model) compared with the live ones (live
//! model), one [`InstanceDelta`] per instance — glu's third noun.
//!
//! [`delta`] is a pure function: same inputs (in any order) → same output, sorted by
//! [`InstanceKey`].
//!
//! # Precedence
//!
//! Each instance gets exactly one [`DeltaStatus`], the first rule that applies:
//!
//! 1. its host is unreachable → [`DeltaStatus::Unreachable`], `stale: true`. Never `ok`:
//!    whatever we last heard from that host is not the truth now.
//! 2. not desired (no desired instance, or one whose state is `none`), live and not
//!    `none` → [`DeltaStatus::Unexpected`].
//! 3. not desired and not live (or live state `none`) → [`DeltaStatus::Ok`] (absent, as
//!    wanted).
//! 4. desired, not live (or live state `none`) → [`DeltaStatus::Missing`].
//! 5. version or `spec_hash` differ → [`DeltaStatus::WrongVersion`]; the reason says which.
//!    This outranks the state: the upgrade brings the state along.
//! 6. lifecycle state differs → [`DeltaStatus::WrongState`].
//! 7. desired running, running, and [`Health::Unhealthy`] → [`DeltaStatus::Unhealthy`].
//! 8. otherwise [`DeltaStatus::Ok`].
//!
//! [`Health::Unknown`] on a running instance is `ok` for the delta: a service without a
//! health check never becomes healthy, and an instance whose check has not settled yet
//! is not drift. The rollout's health gate is stricter: it waits for
//! [`Health::Healthy`]. Health of an instance that is not running is ignored.
//!
//! Keys are unique in both inputs (model validation and the live store guarantee it). If
//! a key is repeated anyway, the delta stays deterministic: the entry with the smallest
//! `(version, spec_hash, state)` wins.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::instance::{DesiredInstance, Health, InstanceKey, LifecycleState, LiveInstance};

/// The status of one instance in the delta (the vocabulary of DESIGN.md).
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
pub enum DeltaStatus {
    /// Live matches desired (or absent, as wanted).
    Ok,
    /// Desired, but nothing installed.
    Missing,
    /// Installed, but not in the model.
    Unexpected,
    /// Other version, or same version built from another spec (`spec_hash`).
    WrongVersion,
    /// Right release, other lifecycle state.
    WrongState,
    /// Should run, runs, and its health check fails.
    Unhealthy,
    /// The host does not answer; the live view is stale.
    Unreachable,
}

impl DeltaStatus {
    /// Every status, in declaration order.
    pub const ALL: [DeltaStatus; 7] = [
        DeltaStatus::Ok,
        DeltaStatus::Missing,
        DeltaStatus::Unexpected,
        DeltaStatus::WrongVersion,
        DeltaStatus::WrongState,
        DeltaStatus::Unhealthy,
        DeltaStatus::Unreachable,
    ];

    /// The kebab-case name, as in JSON and in `drover status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaStatus::Ok => "ok",
            DeltaStatus::Missing => "missing",
            DeltaStatus::Unexpected => "unexpected",
            DeltaStatus::WrongVersion => "wrong-version",
            DeltaStatus::WrongState => "wrong-state",
            DeltaStatus::Unhealthy => "unhealthy",
            DeltaStatus::Unreachable => "unreachable",
        }
    }

    /// `true` for [`DeltaStatus::Ok`] only.
    pub fn is_ok(self) -> bool {
        self == DeltaStatus::Ok
    }
}

impl fmt::Display for DeltaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance of the delta: what the model wants, what the agent last reported, and
/// the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceDelta {
    /// Which instance.
    pub key: InstanceKey,
    /// The verdict.
    pub status: DeltaStatus,
    /// What the model wants, if the model has this instance.
    pub desired: Option<DesiredInstance>,
    /// What the agent last reported, if anything.
    pub live: Option<LiveInstance>,
    /// The host is unreachable: `live` (if any) is an old view, not the truth now.
    pub stale: bool,
    /// Human text, e.g. `wants 2.0.1, runs 1.0.0`.
    pub reason: String,
}

impl InstanceDelta {
    /// The desired instance, unless the model has none for this key or wants it absent
    /// (state `none`).
    pub fn wanted(&self) -> Option<&DesiredInstance> {
        self.desired
            .as_ref()
            .filter(|d| d.state != LifecycleState::None)
    }

    /// The live instance, unless there is none or it reports state `none`.
    pub fn present(&self) -> Option<&LiveInstance> {
        self.live
            .as_ref()
            .filter(|l| l.state != LifecycleState::None)
    }
}

/// How many instances of a delta have each status.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct DeltaSummary {
    /// [`DeltaStatus::Ok`].
    pub ok: usize,
    /// [`DeltaStatus::Missing`].
    pub missing: usize,
    /// [`DeltaStatus::Unexpected`].
    pub unexpected: usize,
    /// [`DeltaStatus::WrongVersion`].
    pub wrong_version: usize,
    /// [`DeltaStatus::WrongState`].
    pub wrong_state: usize,
    /// [`DeltaStatus::Unhealthy`].
    pub unhealthy: usize,
    /// [`DeltaStatus::Unreachable`].
    pub unreachable: usize,
}

impl DeltaSummary {
    /// Counts the statuses of `deltas`.
    pub fn of(deltas: &[InstanceDelta]) -> DeltaSummary {
        let mut summary = DeltaSummary::default();
        for d in deltas {
            *summary.count_mut(d.status) += 1;
        }
        summary
    }

    /// The count for one status.
    pub fn count(&self, status: DeltaStatus) -> usize {
        match status {
            DeltaStatus::Ok => self.ok,
            DeltaStatus::Missing => self.missing,
            DeltaStatus::Unexpected => self.unexpected,
            DeltaStatus::WrongVersion => self.wrong_version,
            DeltaStatus::WrongState => self.wrong_state,
            DeltaStatus::Unhealthy => self.unhealthy,
            DeltaStatus::Unreachable => self.unreachable,
        }
    }

    fn count_mut(&mut self, status: DeltaStatus) -> &mut usize {
        match status {
            DeltaStatus::Ok => &mut self.ok,
            DeltaStatus::Missing => &mut self.missing,
            DeltaStatus::Unexpected => &mut self.unexpected,
            DeltaStatus::WrongVersion => &mut self.wrong_version,
            DeltaStatus::WrongState => &mut self.wrong_state,
            DeltaStatus::Unhealthy => &mut self.unhealthy,
            DeltaStatus::Unreachable => &mut self.unreachable,
        }
    }

    /// All instances.
    pub fn total(&self) -> usize {
        DeltaStatus::ALL.iter().map(|s| self.count(*s)).sum()
    }

    /// Every instance is ok (an unreachable one is not).
    pub fn is_converged(&self) -> bool {
        self.ok == self.total()
    }
}

impl fmt::Display for DeltaSummary {
    /// `3 ok, 1 missing, 0 unexpected, …` — every status, always in the same order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, status) in DeltaStatus::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", self.count(*status), status)?;
        }
        Ok(())
    }
}

/// Compares the desired instances with the live ones. Instances on a host in
/// `unreachable_hosts` are [`DeltaStatus::Unreachable`] and stale. The result has one
/// entry per key of `desired` ∪ `live`, sorted by key. See the module docs for the
/// precedence of the rules.
pub fn delta(
    desired: &[DesiredInstance],
    live: &[LiveInstance],
    unreachable_hosts: &BTreeSet<String>,
) -> Vec<InstanceDelta> {
    let mut want: Vec<&DesiredInstance> = desired.iter().collect();
    want.sort_unstable_by(|a, b| {
        a.key.cmp(&b.key).then_with(|| {
            (a.version.as_str(), a.spec_hash.as_str(), a.state).cmp(&(
                b.version.as_str(),
                b.spec_hash.as_str(),
                b.state,
            ))
        })
    });
    want.dedup_by(|later, earlier| later.key == earlier.key);
    let mut have: Vec<&LiveInstance> = live.iter().collect();
    have.sort_unstable_by(|a, b| {
        a.key.cmp(&b.key).then_with(|| {
            (a.version.as_str(), a.spec_hash.as_str(), a.state).cmp(&(
                b.version.as_str(),
                b.spec_hash.as_str(),
                b.state,
            ))
        })
    });
    have.dedup_by(|later, earlier| later.key == earlier.key);

    let mut out = Vec::with_capacity(want.len().max(have.len()));
    let (mut i, mut j) = (0, 0);
    while i < want.len() || j < have.len() {
        let (d, l) = match (want.get(i), have.get(j)) {
            (Some(d), Some(l)) => match d.key.cmp(&l.key) {
                Ordering::Less => (Some(*d), None),
                Ordering::Greater => (None, Some(*l)),
                Ordering::Equal => (Some(*d), Some(*l)),
            },
            (Some(d), None) => (Some(*d), None),
            (None, Some(l)) => (None, Some(*l)),
            (None, None) => unreachable!("loop condition"),
        };
        i += usize::from(d.is_some());
        j += usize::from(l.is_some());
        out.push(compare(d, l, unreachable_hosts));
    }
    out
}

/// One instance's verdict. At least one of `desired` and `live` is `Some`.
fn compare(
    desired: Option<&DesiredInstance>,
    live: Option<&LiveInstance>,
    unreachable_hosts: &BTreeSet<String>,
) -> InstanceDelta {
    let key = desired
        .map(|d| &d.key)
        .or(live.map(|l| &l.key))
        .expect("desired or live")
        .clone();
    let wanted = desired.filter(|d| d.state != LifecycleState::None);
    let present = live.filter(|l| l.state != LifecycleState::None);

    let (status, stale, reason) = if unreachable_hosts.contains(&key.host) {
        let reason = match present {
            Some(l) => format!(
                "host {} unreachable; last seen {} {}",
                key.host,
                l.state.as_str(),
                l.version
            ),
            None => format!("host {} unreachable; no live report", key.host),
        };
        (DeltaStatus::Unreachable, true, reason)
    } else {
        let (status, reason) = match (wanted, present) {
            (None, Some(l)) => (
                DeltaStatus::Unexpected,
                format!("not in the model; {} {}", l.state.as_str(), l.version),
            ),
            (None, None) => (DeltaStatus::Ok, "absent, as wanted".to_string()),
            (Some(d), None) => (
                DeltaStatus::Missing,
                format!(
                    "wants {} {}, nothing installed",
                    d.state.as_str(),
                    d.version
                ),
            ),
            (Some(d), Some(l)) => compare_both(d, l),
        };
        (status, false, reason)
    };
    InstanceDelta {
        key,
        status,
        desired: desired.cloned(),
        live: live.cloned(),
        stale,
        reason,
    }
}

fn compare_both(d: &DesiredInstance, l: &LiveInstance) -> (DeltaStatus, String) {
    let version_differs = d.version != l.version;
    let spec_differs = d.spec_hash != l.spec_hash;
    if version_differs || spec_differs {
        let mut reason = String::new();
        if version_differs {
            let verb = if l.state == LifecycleState::Running {
                "runs"
            } else {
                "has"
            };
            reason.push_str(&format!("wants {}, {verb} {}", d.version, l.version));
        }
        if spec_differs {
            if !version_differs {
                reason.push_str(&format!("same version {}, ", d.version));
            } else {
                reason.push_str("; ");
            }
            reason.push_str(&format!(
                "spec changed ({} -> {})",
                short_hash(&l.spec_hash),
                short_hash(&d.spec_hash)
            ));
        }
        return (DeltaStatus::WrongVersion, reason);
    }
    if d.state != l.state {
        return (
            DeltaStatus::WrongState,
            format!(
                "wants {}, is {} ({})",
                d.state.as_str(),
                l.state.as_str(),
                l.version
            ),
        );
    }
    if l.state == LifecycleState::Running && l.health == Health::Unhealthy {
        return (
            DeltaStatus::Unhealthy,
            format!("running {}, health check failing", l.version),
        );
    }
    let reason = match (l.state, l.health) {
        (LifecycleState::Running, Health::Healthy) => format!("running {}, healthy", l.version),
        (LifecycleState::Running, _) => format!("running {}, health unknown", l.version),
        (state, _) => format!("{} {}", state.as_str(), l.version),
    };
    (DeltaStatus::Ok, reason)
}

fn short_hash(hash: &str) -> &str {
    match hash.char_indices().nth(8) {
        Some((i, _)) => &hash[..i],
        None => hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use LifecycleState::{Installed, Running, Stopped};

    fn key(service: &str, host: &str) -> InstanceKey {
        InstanceKey {
            service: service.into(),
            host: host.into(),
            index: 0,
        }
    }

    fn want(host: &str, version: &str, state: LifecycleState) -> DesiredInstance {
        DesiredInstance {
            key: key("web", host),
            version: version.into(),
            state,
            spec_hash: "spec-a".into(),
            ports: BTreeMap::new(),
        }
    }

    fn have(host: &str, version: &str, state: LifecycleState, health: Health) -> LiveInstance {
        LiveInstance {
            key: key("web", host),
            version: version.into(),
            state,
            health,
            spec_hash: "spec-a".into(),
        }
    }

    fn with_spec<T>(mut value: T, spec: &str, set: fn(&mut T, String)) -> T {
        set(&mut value, spec.into());
        value
    }

    #[test]
    fn every_status_and_precedence() {
        use DeltaStatus::*;
        use Health::{Healthy, Unhealthy as Bad, Unknown};
        let d = |v, s| Some(want("h1", v, s));
        let l = |v, s, h| Some(have("h1", v, s, h));
        let spec_b = |x: Option<DesiredInstance>| {
            x.map(|x| with_spec(x, "spec-b", |d: &mut DesiredInstance, s| d.spec_hash = s))
        };
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            &str,
            Option<DesiredInstance>,
            Option<LiveInstance>,
            bool,
            DeltaStatus,
            &str,
        )> = vec![
            // (case, desired, live, host unreachable, status, reason)
            (
                "ok healthy",
                d("1", Running),
                l("1", Running, Healthy),
                false,
                Ok,
                "running 1, healthy",
            ),
            (
                "ok unknown health",
                d("1", Running),
                l("1", Running, Unknown),
                false,
                Ok,
                "running 1, health unknown",
            ),
            (
                "ok stopped",
                d("1", Stopped),
                l("1", Stopped, Unknown),
                false,
                Ok,
                "stopped 1",
            ),
            (
                "ok stopped ignores health",
                d("1", Stopped),
                l("1", Stopped, Bad),
                false,
                Ok,
                "stopped 1",
            ),
            (
                "ok installed",
                d("1", Installed),
                l("1", Installed, Unknown),
                false,
                Ok,
                "installed 1",
            ),
            (
                "missing",
                d("1", Running),
                None,
                false,
                Missing,
                "wants running 1, nothing installed",
            ),
            (
                "missing: live none",
                d("1", Running),
                l("1", LifecycleState::None, Unknown),
                false,
                Missing,
                "wants running 1, nothing installed",
            ),
            (
                "unexpected",
                None,
                l("1", Running, Healthy),
                false,
                Unexpected,
                "not in the model; running 1",
            ),
            (
                "unexpected: desired none",
                d("1", LifecycleState::None),
                l("1", Stopped, Unknown),
                false,
                Unexpected,
                "not in the model; stopped 1",
            ),
            (
                "absent as wanted",
                None,
                l("1", LifecycleState::None, Unknown),
                false,
                Ok,
                "absent, as wanted",
            ),
            (
                "wrong version running",
                d("2", Running),
                l("1", Running, Healthy),
                false,
                WrongVersion,
                "wants 2, runs 1",
            ),
            (
                "wrong version stopped",
                d("2", Running),
                l("1", Stopped, Unknown),
                false,
                WrongVersion,
                "wants 2, has 1",
            ),
            (
                "wrong spec",
                spec_b(d("1", Running)),
                l("1", Running, Healthy),
                false,
                WrongVersion,
                "same version 1, spec changed (spec-a -> spec-b)",
            ),
            (
                "wrong version and spec",
                spec_b(d("2", Running)),
                l("1", Running, Healthy),
                false,
                WrongVersion,
                "wants 2, runs 1; spec changed (spec-a -> spec-b)",
            ),
            (
                "wrong version beats state",
                d("2", Running),
                l("1", Installed, Unknown),
                false,
                WrongVersion,
                "wants 2, has 1",
            ),
            (
                "wrong version beats health",
                d("2", Running),
                l("1", Running, Bad),
                false,
                WrongVersion,
                "wants 2, runs 1",
            ),
            (
                "wrong state up",
                d("1", Running),
                l("1", Stopped, Unknown),
                false,
                WrongState,
                "wants running, is stopped (1)",
            ),
            (
                "wrong state down",
                d("1", Installed),
                l("1", Running, Healthy),
                false,
                WrongState,
                "wants installed, is running (1)",
            ),
            (
                "wrong state beats health",
                d("1", Stopped),
                l("1", Running, Bad),
                false,
                WrongState,
                "wants stopped, is running (1)",
            ),
            (
                "unhealthy",
                d("1", Running),
                l("1", Running, Bad),
                false,
                Unhealthy,
                "running 1, health check failing",
            ),
            (
                "unreachable ok",
                d("1", Running),
                l("1", Running, Healthy),
                true,
                Unreachable,
                "host h1 unreachable; last seen running 1",
            ),
            (
                "unreachable missing",
                d("1", Running),
                None,
                true,
                Unreachable,
                "host h1 unreachable; no live report",
            ),
            (
                "unreachable unexpected",
                None,
                l("1", Running, Healthy),
                true,
                Unreachable,
                "host h1 unreachable; last seen running 1",
            ),
            (
                "unreachable wrong version",
                d("2", Running),
                l("1", Running, Bad),
                true,
                Unreachable,
                "host h1 unreachable; last seen running 1",
            ),
        ];
        for (case, desired, live, unreachable, status, reason) in table {
            let hosts: BTreeSet<String> = if unreachable {
                ["h1".to_string()].into()
            } else {
                BTreeSet::new()
            };
            let got = delta(desired.as_slice(), live.as_slice(), &hosts);
            assert_eq!(got.len(), 1, "{case}");
            let got = &got[0];
            assert_eq!(got.status, status, "{case}");
            assert_eq!(got.reason, reason, "{case}");
            assert_eq!(got.stale, unreachable, "{case}: stale");
            assert_eq!(got.desired, desired, "{case}");
            assert_eq!(got.live, live, "{case}");
        }
    }

    #[test]
    fn sorted_by_key_and_joined() {
        let desired = vec![
            want("h3", "1", Running),
            want("h1", "1", Running),
            want("h2", "1", Running),
        ];
        let live = vec![
            have("h4", "1", Running, Health::Healthy),
            have("h2", "1", Running, Health::Healthy),
        ];
        let got = delta(&desired, &live, &BTreeSet::new());
        let hosts: Vec<_> = got.iter().map(|d| d.key.host.as_str()).collect();
        assert_eq!(hosts, ["h1", "h2", "h3", "h4"]);
        let statuses: Vec<_> = got.iter().map(|d| d.status).collect();
        assert_eq!(
            statuses,
            [
                DeltaStatus::Missing,
                DeltaStatus::Ok,
                DeltaStatus::Missing,
                DeltaStatus::Unexpected
            ]
        );
        let summary = DeltaSummary::of(&got);
        assert_eq!(summary.missing, 2);
        assert_eq!(summary.total(), 4);
        assert!(!summary.is_converged());
        assert_eq!(
            summary.to_string(),
            "1 ok, 2 missing, 1 unexpected, 0 wrong-version, 0 wrong-state, 0 unhealthy, 0 unreachable"
        );
    }

    #[test]
    fn duplicate_keys_resolve_independent_of_order() {
        let a = want("h1", "1", Running);
        let b = want("h1", "2", Running);
        let live = [have("h1", "2", Running, Health::Healthy)];
        let one = delta(&[a.clone(), b.clone()], &live, &BTreeSet::new());
        let two = delta(&[b, a], &live, &BTreeSet::new());
        assert_eq!(one, two);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].desired.as_ref().unwrap().version, "1");
    }

    #[test]
    fn status_serde_is_kebab_case() {
        for status in DeltaStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            let back: DeltaStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(back, status);
        }
    }

    #[test]
    fn short_hash_cuts_at_eight_chars() {
        assert_eq!(short_hash("0123456789abcdef"), "01234567");
        assert_eq!(short_hash("abc"), "abc");
    }
}
