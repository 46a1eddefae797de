//! Wire types shared by the drover controller, agent and CLI.
//!
//! Everything that crosses a process boundary is defined here once: agent ↔ controller
//! messages (`agent`, `deploy`), and the public `/api/v1` request and response bodies (`auth`,
//! `hosts`, `executions`, `events`, `error`, `page`). The crate holds plain data only:
//! serde types, no I/O.

pub mod agent;
pub mod auth;
pub mod automation;
pub mod deploy;
pub mod error;
pub mod events;
pub mod executions;
pub mod hosts;
pub mod inventory;
pub mod page;

/// The version every drover process reports (agents send it as a fact).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Prefix of every HTTP route of the public API.
pub const API_PREFIX: &str = "/api/v1";
