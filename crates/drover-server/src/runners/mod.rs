//! Runners of StackStorm-compatible actions that the controller runs itself:
//! `local-shell-cmd` and `local-shell-script` ([`shell`]) on the controller host, and
//! `http-request` ([`http`]). Each returns an [`ActionStatus`] and a result shaped like
//! StackStorm's, so workflows and rules written for StackStorm read the same fields.

// Until the automation engine runs actions through them, only the tests call these.

pub(crate) mod http;
pub(crate) mod shell;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod shell_tests;

/// How an action execution ended, in StackStorm's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ActionStatus {
    /// The action did what it was asked (exit code 0, HTTP 200–206).
    Succeeded,
    /// Anything else, including actions that could not start.
    Failed,
    /// Stopped because its timeout ran out.
    Timeout,
    /// Stopped because the execution was cancelled.
    Canceled,
}

impl ActionStatus {
    /// StackStorm's name of the status (`succeeded`, `failed`, `timeout`, `canceled`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
            ActionStatus::Timeout => "timeout",
            ActionStatus::Canceled => "canceled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_stackstorms() {
        let names: Vec<&str> = [
            ActionStatus::Succeeded,
            ActionStatus::Failed,
            ActionStatus::Timeout,
            ActionStatus::Canceled,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(names, ["succeeded", "failed", "timeout", "canceled"]);
    }
}
