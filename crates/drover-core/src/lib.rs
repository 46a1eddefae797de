//! The functional core of drover: pure domain logic over plain data.
//!
//! Nothing here does I/O, reads the clock, spawns tasks or touches the network:
//! values go in, decisions come out, so that everything can be tested
//! exhaustively. The shell (`drover-server`, `drover-agent`, the CLI) does the I/O
//! and calls into this crate.
//!
//! - [`automation`] — StackStorm-compatible packs, actions, parameters, rules and their
//!   criteria, and the Jinja environment they render with.
//! - [`workflow`] — Orquesta workflows: the spec and the pure conductor that decides the
//!   next tasks from task results.
//! - [`names`] — host names and label keys, checked alike everywhere.
//! - [`selector`] — host selectors (`name=web-*,label.role=db`) and their matching.
//! - [`duration`] — human durations (`1m30s`) for flags, parsed and formatted.
//! - [`output`] — bounding the command output the controller stores per host.
//! - [`execution_status`] — an execution's status and counts from its targets.
//! - [`dispatch`] — how many pending targets may start now.
//! - [`instance`] — desired and live instances, lifecycle, rollout policy: the inputs
//!   of the delta and the plan.
//! - [`model`] — the deploy model (services, hostclasses, host pins) from YAML files,
//!   with every error located; desired instances on the live hosts.
//! - [`delta`] — desired against live, one status per instance (`ok`, `missing`,
//!   `unexpected`, `wrong-version`, `wrong-state`, `unhealthy`, `unreachable`).
//! - [`plan`] — the steps, batches and phases that close a delta, per rollout policy
//!   and `depends_on`; its text is what `drover plan` prints.
//! - [`generate`] — generator templates rendered against the live inventory (HAProxy
//!   backends and other derived config).
//! - [`render`] — one desired instance into the `InstanceSpec` its agent runs: templates
//!   (`run`, `scripts`, `config`) rendered with the instance's ports, version, host and
//!   hostclass; artifact URL and health ports resolved.

#![warn(missing_docs)]

pub mod automation;
pub mod delta;
pub mod dispatch;
pub mod duration;
pub mod execution_status;
pub mod generate;
pub mod instance;
pub mod model;
pub mod names;
pub mod output;
pub mod plan;
pub mod render;
pub mod selector;
pub mod workflow;
