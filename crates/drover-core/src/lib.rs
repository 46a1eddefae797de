//! The functional core of drover: pure domain logic over plain data.
//!
//! Nothing here does I/O, reads the clock, spawns tasks or touches the network:
//! values go in, decisions come out, so that everything can be tested
//! exhaustively. The shell (`drover-server`, `drover-agent`, the CLI) does the I/O
//! and calls into this crate.
//!
//! - [`selector`] — host selectors (`name=web-*,label.role=db`) and their matching.
//! - [`duration`] — human durations (`1m30s`) for flags, parsed and formatted.
//! - [`output`] — bounding the command output the controller stores per host.
//! - [`execution_status`] — an execution's status and counts from its targets.
//! - [`dispatch`] — how many pending targets may start now.
//! - [`instance`] — desired and live instances, lifecycle, rollout policy: the inputs
//!   of the delta and the plan.

#![warn(missing_docs)]

pub mod dispatch;
pub mod duration;
pub mod execution_status;
pub mod instance;
pub mod output;
pub mod selector;
