//! Orquesta workflows: the spec decoded from a StackStorm workflow file, the
//! expression functions Orquesta offers, and the pure conductor that decides what
//! runs next.
//!
//! - [`spec`] — decoding and validation, every problem located.
//! - [`expr`] — `ctx()`, `result()`, `succeeded()`, `item()` … over the Jinja environment.
//! - [`conductor`] — [`WorkflowState`](conductor::WorkflowState) and the calls that move it.

pub mod conductor;
pub mod expr;
pub mod spec;

#[cfg(test)]
mod tests;
