//! StackStorm-compatible automation, the pure part.
//!
//! - [`jinja`] — the Jinja environment StackStorm renders with (trim/lstrip blocks, strict
//!   undefined, StackStorm's extra filters, `st2kv`), and rendering of parameter values.
//! - [`pack`] — a pack's files (`pack.yaml`, `actions/`, `rules/`, `actions/workflows/`)
//!   decoded and checked as one unit, every error located.
//! - [`action`] — action metadata (StackStorm's schema) and the supported runners.
//! - [`params`] — parameter schemas: validation, defaults (Jinja over other parameters
//!   and the datastore), casting, secret redaction.
//! - [`args`] — StackStorm's shell argument serialisation.
//! - [`rule`] — rules: trigger, criteria (with OR groups), action, throttle.
//! - [`criteria`] — the criteria operators with StackStorm's semantics, and the
//!   explanation `drover rules test` prints.

pub mod action;
pub mod args;
pub mod criteria;
pub mod jinja;
pub mod pack;
pub mod params;
pub mod rule;
