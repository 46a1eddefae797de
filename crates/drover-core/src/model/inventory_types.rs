//! Typed `kind: provider` and `kind: generator` documents.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::Source;

/// Where hosts come from besides agents (`kind: provider`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Unique provider name; hosts it lists carry it.
    pub name: String,
    /// Time between syncs.
    pub interval: Duration,
    /// What it asks, and how.
    pub kind: ProviderKind,
    /// Where it was declared.
    pub source: Source,
}

/// The provider types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Hosts listed in the model itself.
    Static {
        /// The hosts, in declaration order.
        hosts: Vec<StaticHost>,
    },
    /// A command that prints JSON (e.g. `openstack server list -f json`).
    Exec {
        /// Program and arguments (no shell).
        command: Vec<String>,
        /// Time the command may take.
        timeout: Duration,
        /// How to read hosts out of the JSON it prints.
        map: FieldMap,
    },
    /// Amazon EC2 `DescribeInstances` (or an EC2-compatible endpoint).
    Ec2 {
        /// AWS region, e.g. `us-east-1`.
        region: String,
        /// Endpoint URL; default `https://ec2.<region>.amazonaws.com`.
        endpoint: Option<String>,
        /// `DescribeInstances` filters: name → values (e.g. `tag:role: [web]`).
        filters: BTreeMap<String, Vec<String>>,
        /// Environment variable holding the access key id (default `AWS_ACCESS_KEY_ID`).
        access_key_env: String,
        /// Environment variable holding the secret key (default `AWS_SECRET_ACCESS_KEY`).
        secret_key_env: String,
    },
    /// OpenStack: Keystone v3 password auth, then Nova `servers/detail`.
    Openstack {
        /// Keystone URL, e.g. `https://keystone.example.com:5000/v3`.
        auth_url: String,
        /// User name.
        username: String,
        /// Environment variable holding the password (default `OS_PASSWORD`).
        password_env: String,
        /// The user's domain (default `Default`).
        user_domain: String,
        /// Project to scope the token to.
        project: String,
        /// The project's domain (default `Default`).
        project_domain: String,
        /// Region of the compute endpoint in the catalog; the first when absent.
        region: Option<String>,
        /// Endpoint interface (default `public`).
        interface: String,
    },
}

impl ProviderKind {
    /// `static`, `exec`, `ec2` or `openstack`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ProviderKind::Static { .. } => "static",
            ProviderKind::Exec { .. } => "exec",
            ProviderKind::Ec2 { .. } => "ec2",
            ProviderKind::Openstack { .. } => "openstack",
        }
    }
}

/// A host of a `static` provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticHost {
    /// Host name.
    pub name: String,
    /// Stable id; the name when absent.
    pub id: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Region or datacenter.
    pub region: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// How an `exec` provider's JSON becomes hosts. Each value is a path into one
/// record: keys separated by `.`, list indexes as numbers (`addresses.private.0.addr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMap {
    /// Path to the list of records in the output; empty when the output is the list.
    pub list: String,
    /// Path to the stable id (default `id`).
    pub id: String,
    /// Path to the name (default `name`).
    pub name: String,
    /// Path to the address.
    pub address: Option<String>,
    /// Path to the region.
    pub region: Option<String>,
    /// Label name → path.
    pub labels: BTreeMap<String, String>,
    /// Path to an object whose string entries all become labels (e.g. `tags`).
    pub labels_from: Option<String>,
}

/// Derived configuration rendered from the live inventory (`kind: generator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    /// Unique generator name.
    pub name: String,
    /// MiniJinja template text.
    pub template: String,
    /// Hosts the file is written on (canonical selector).
    pub targets: String,
    /// Absolute destination path on those hosts.
    pub path: String,
    /// Shell command run on the staged file before it replaces the old one;
    /// `{{ staged }}` is the staged file's path. The file is kept only when it exits 0.
    pub check: Option<String>,
    /// Shell command run after a changed file was written.
    pub reload: Option<String>,
    /// Quiet time after an input change before rendering.
    pub debounce: Duration,
    /// Where it was declared.
    pub source: Source,
}
