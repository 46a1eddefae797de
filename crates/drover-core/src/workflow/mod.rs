//! Orquesta workflows: the spec decoded from a StackStorm workflow file, the
//! expression functions Orquesta offers, and the pure conductor that decides what
//! runs next.
//!
//! - [`spec`] — decoding and validation, every problem located.
//! - [`expr`] — `ctx()`, `result()`, `succeeded()`, `item()` … over the Jinja environment.
//! - [`state`] — [`WorkflowState`](state::WorkflowState), task keys, outcomes, directives.
//! - [`conductor`] — the calls that move a workflow: start, task finished, pause,
//!   resume, cancel.

pub mod conductor;
mod decide;
pub mod expr;
pub mod spec;
pub mod state;

#[cfg(test)]
mod tests;
