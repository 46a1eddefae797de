//! The text of a plan, as `drover plan` prints it (and as the snapshot tests hold it).
//!
//! ```text
//! phase 1 of 1
//!   web: rolling, max_parallel 1 of 3 instances, canary 1 (waits for promotion)
//!     batch 1 of 3 (canary)
//!       ~ web/h1#0  upgrade   1.0.0 running -> 2.0.0 running  (stop 1.0.0, install 2.0.0, configure, start)
//!     …
//!
//! Plan: 0 to deploy, 3 to upgrade, 0 to restart, 0 to start, 0 to stop, 0 to undeploy; 0 blocked.
//! ```

use std::fmt::{self, Write as _};

use crate::instance::{MaxParallel, Strategy};

use super::{ChangeKind, InstanceChange, Plan, ServicePlan, Step, VersionState};

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .changes()
            .map(|c| &c.key)
            .chain(self.blocked.iter().map(|b| &b.key))
            .map(|k| k.to_string().chars().count())
            .max()
            .unwrap_or(0);
        if self.is_empty() {
            writeln!(f, "No changes: every reachable instance matches the model.")?;
        }
        let phases = self.phases.len();
        for (p, phase) in self.phases.iter().enumerate() {
            if p > 0 {
                writeln!(f)?;
            }
            writeln!(f, "phase {} of {phases}", p + 1)?;
            for service in phase {
                writeln!(f, "  {}: {}", service.service, policy_text(service))?;
                let batches = service.batches.len();
                for batch in &service.batches {
                    let canary = if batch.canary { " (canary)" } else { "" };
                    writeln!(f, "    batch {} of {batches}{canary}", batch.index + 1)?;
                    for change in &batch.changes {
                        writeln!(f, "      {}", change_line(change, width))?;
                    }
                }
            }
        }
        if !self.blocked.is_empty() {
            writeln!(f)?;
            writeln!(f, "blocked (host unreachable, nothing will be done):")?;
            for b in &self.blocked {
                let key = b.key.to_string();
                writeln!(f, "  ! {key:<width$}  {}", b.reason)?;
            }
        }
        writeln!(f)?;
        write!(f, "Plan: ")?;
        for (i, kind) in ChangeKind::ALL.iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(f, "{sep}{} to {kind}", self.counts.count(*kind))?;
        }
        writeln!(f, "; {} blocked.", self.blocked.len())
    }
}

fn policy_text(service: &ServicePlan) -> String {
    let policy = &service.policy;
    let mut text = String::new();
    if service.removed {
        text.push_str("removed from the model; ");
    }
    let n = service.instances;
    let plural = if n == 1 { "" } else { "s" };
    match (policy.strategy, policy.max_parallel) {
        (Strategy::Rolling, MaxParallel::Count(_)) => {
            let m = service.max_parallel.unwrap_or(n);
            let _ = write!(text, "rolling, max_parallel {m} of {n} instance{plural}");
        }
        (Strategy::Rolling, MaxParallel::Percent(p)) => {
            let m = service.max_parallel.unwrap_or(n);
            let _ = write!(
                text,
                "rolling, max_parallel {p}% = {m} of {n} instance{plural}"
            );
        }
        (Strategy::Serial, _) => {
            let _ = write!(text, "serial, {n} instance{plural}");
        }
        (Strategy::AllAtOnce, _) => {
            let _ = write!(text, "all-at-once, {n} instance{plural}");
        }
    }
    if policy.canary > 0 {
        let promote = if policy.auto_promote {
            "promotes automatically"
        } else {
            "waits for promotion"
        };
        let _ = write!(text, ", canary {} ({promote})", policy.canary);
    }
    text
}

fn end_text(end: Option<&VersionState>) -> String {
    match end {
        Some(v) => format!("{} {}", v.version, v.state.as_str()),
        None => "none".to_string(),
    }
}

/// `stop 1.0.0, install 2.0.0, configure, start`: the release is named when it changes.
fn steps_text(steps: &[Step]) -> String {
    let mut text = String::new();
    let mut last: Option<(&str, &str)> = None;
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(step.transition.as_str());
        let release = (step.version.as_str(), step.spec_hash.as_str());
        if last != Some(release) {
            text.push(' ');
            text.push_str(&step.version);
        }
        last = Some(release);
    }
    text
}

/// `~ web/h1#0  upgrade   1.0.0 running -> 2.0.0 running  (stop 1.0.0, install 2.0.0, …)`;
/// when both ends read the same (a spec change, a restart) the delta's reason follows
/// after `#`.
fn change_line(change: &InstanceChange, width: usize) -> String {
    let mut line = format!(
        "{} {:<width$}  {:<8}  {} -> {}  ({})",
        change.kind.sign(),
        change.key.to_string(),
        change.kind.as_str(),
        end_text(change.from.as_ref()),
        end_text(change.to.as_ref()),
        steps_text(&change.steps),
    );
    if change.from == change.to {
        let _ = write!(line, "  # {}", change.reason);
    }
    line
}
