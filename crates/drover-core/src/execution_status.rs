//! An execution's status and counts, derived from the statuses of its targets.

use drover_proto::executions::{ExecutionStatus, TargetCounts, TargetStatus};

/// Counts the targets per status and derives the execution's status.
///
/// Counts: `failed` includes timed-out and unreachable targets; `pending` includes
/// dispatched and running ones.
///
/// Status:
/// - no targets at all → [`Failed`](ExecutionStatus::Failed) (a run with no host is an error);
/// - every target still [`Pending`](TargetStatus::Pending) → [`Requested`](ExecutionStatus::Requested);
/// - any target not final → [`Running`](ExecutionStatus::Running) (also while a
///   cancellation is under way);
/// - all final: any cancelled target, or `cancel_requested` →
///   [`Cancelled`](ExecutionStatus::Cancelled); else any failed →
///   [`Failed`](ExecutionStatus::Failed); else [`Succeeded`](ExecutionStatus::Succeeded).
pub fn summarize(
    targets: &[TargetStatus],
    cancel_requested: bool,
) -> (TargetCounts, ExecutionStatus) {
    let mut counts = TargetCounts {
        total: u32::try_from(targets.len()).unwrap_or(u32::MAX),
        ..TargetCounts::default()
    };
    let mut started = false;
    for &t in targets {
        match t {
            TargetStatus::Pending => counts.pending += 1,
            TargetStatus::Dispatched | TargetStatus::Running => {
                counts.pending += 1;
                started = true;
            }
            TargetStatus::Ok => counts.ok += 1,
            TargetStatus::Failed | TargetStatus::TimedOut | TargetStatus::Unreachable => {
                counts.failed += 1;
            }
            TargetStatus::Cancelled => counts.cancelled += 1,
        }
    }

    let status = if targets.is_empty() {
        ExecutionStatus::Failed
    } else if counts.pending > 0 {
        let any_final = counts.pending < counts.total;
        if started || any_final {
            ExecutionStatus::Running
        } else {
            ExecutionStatus::Requested
        }
    } else if counts.cancelled > 0 || cancel_requested {
        ExecutionStatus::Cancelled
    } else if counts.failed > 0 {
        ExecutionStatus::Failed
    } else {
        ExecutionStatus::Succeeded
    };
    (counts, status)
}

#[cfg(test)]
mod tests {
    use ExecutionStatus as E;
    use TargetStatus::*;

    use super::*;

    fn counts(total: u32, pending: u32, ok: u32, failed: u32, cancelled: u32) -> TargetCounts {
        TargetCounts {
            total,
            pending,
            ok,
            failed,
            cancelled,
        }
    }

    #[test]
    fn summarize_table() {
        let table: &[(&[TargetStatus], bool, TargetCounts, ExecutionStatus)] = &[
            (&[], false, counts(0, 0, 0, 0, 0), E::Failed),
            (&[], true, counts(0, 0, 0, 0, 0), E::Failed),
            (&[Pending], false, counts(1, 1, 0, 0, 0), E::Requested),
            (
                &[Pending, Pending],
                false,
                counts(2, 2, 0, 0, 0),
                E::Requested,
            ),
            (
                &[Pending, Pending],
                true,
                counts(2, 2, 0, 0, 0),
                E::Requested,
            ),
            (
                &[Pending, Dispatched],
                false,
                counts(2, 2, 0, 0, 0),
                E::Running,
            ),
            (&[Running], false, counts(1, 1, 0, 0, 0), E::Running),
            (&[Pending, Ok], false, counts(2, 1, 1, 0, 0), E::Running),
            (&[Pending, Failed], false, counts(2, 1, 0, 1, 0), E::Running),
            (
                &[Running, Cancelled],
                true,
                counts(2, 1, 0, 0, 1),
                E::Running,
            ),
            (&[Ok], false, counts(1, 0, 1, 0, 0), E::Succeeded),
            (&[Ok, Ok, Ok], false, counts(3, 0, 3, 0, 0), E::Succeeded),
            (&[Ok, Failed], false, counts(2, 0, 1, 1, 0), E::Failed),
            (&[Ok, TimedOut], false, counts(2, 0, 1, 1, 0), E::Failed),
            (&[Unreachable], false, counts(1, 0, 0, 1, 0), E::Failed),
            (
                &[Failed, TimedOut, Unreachable],
                false,
                counts(3, 0, 0, 3, 0),
                E::Failed,
            ),
            (&[Ok, Cancelled], false, counts(2, 0, 1, 0, 1), E::Cancelled),
            (
                &[Failed, Cancelled],
                false,
                counts(2, 0, 0, 1, 1),
                E::Cancelled,
            ),
            (&[Cancelled], false, counts(1, 0, 0, 0, 1), E::Cancelled),
            (&[Ok, Ok], true, counts(2, 0, 2, 0, 0), E::Cancelled),
            (&[Failed], true, counts(1, 0, 0, 1, 0), E::Cancelled),
            (
                &[
                    Pending,
                    Dispatched,
                    Running,
                    Ok,
                    Failed,
                    TimedOut,
                    Unreachable,
                    Cancelled,
                ],
                false,
                counts(8, 3, 1, 3, 1),
                E::Running,
            ),
        ];
        for (targets, cancel, want_counts, want_status) in table {
            let (c, s) = summarize(targets, *cancel);
            assert_eq!(c, *want_counts, "{targets:?} cancel={cancel}");
            assert_eq!(s, *want_status, "{targets:?} cancel={cancel}");
            assert_eq!(c.pending + c.ok + c.failed + c.cancelled, c.total);
        }
    }
}
