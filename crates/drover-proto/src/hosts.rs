//! Hosts as the API shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::Facts;

/// Whether the controller hears from a host's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Heartbeats arrive.
    Up,
    /// Heartbeats stopped for longer than the controller's `--down-after`.
    Down,
}

impl HostStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Up => "up",
            HostStatus::Down => "down",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<HostStatus> {
        match s {
            "up" => Some(HostStatus::Up),
            "down" => Some(HostStatus::Down),
            _ => None,
        }
    }
}

/// A host drover knows of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Stable identity, kept across agent restarts.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Up or down.
    pub status: HostStatus,
    /// Labels (`key=value`) given to the agent.
    pub labels: BTreeMap<String, String>,
    /// Facts the agent reported last.
    pub facts: Facts,
    /// When the host first enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When the controller last heard from it.
    pub last_seen_at: DateTime<Utc>,
}
