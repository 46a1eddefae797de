//! Generated config: a generator's template rendered against the live inventory.
//!
//! The controller gathers a [`Inventory`] (hosts, live instances with their health
//! and drain state, the model's services, the datastore) and renders each
//! generator once per target host. This module is the pure half: the template
//! variables, the rendering, and the content digest that decides whether anything
//! changed.
//!
//! | variable | value |
//! |---|---|
//! | `instances` | every live instance: `id`, `service`, `host`, `index`, `address`, `ports.NAME`, `version`, `state`, `health`, `drain`, `up` |
//! | `services.NAME` | `name`, `version`, `ports` (base ports) and `instances` (that service's entries of `instances`) |
//! | `hosts` | every host: `name`, `address`, `status`, `labels`, `region`, `provider`, `drained` |
//! | `target` | the host the file is written on (same fields as `hosts`) |
//! | `kv` | datastore keys → values (empty until the datastore exists) |
//! | `generator` | the generator's name |
//!
//! `drain` is true while an instance is being taken out of its pool (a rollout
//! drains it before stopping it) or its host is drained (`drover hosts drain`).
//! `up` is true for a running instance whose health is `healthy` or `unknown`
//! (no health check), and that is not drained: the natural filter for a backend
//! list. Lists are sorted (instances by service, host, index; hosts by name), so
//! the same inventory always renders the same bytes.
//!
//! ```
//! use drover_core::generate::{Inventory, HostEntry, InstanceEntry, render};
//! let web = InstanceEntry {
//!     service: "web".into(), host: "h1".into(), index: 0,
//!     address: "10.0.0.1".into(),
//!     ports: [("http".to_string(), 8080)].into(),
//!     version: "2".into(), state: "running".into(), health: "healthy".into(),
//!     drain: false,
//! };
//! let lb = HostEntry { name: "lb".into(), address: "10.0.0.9".into(), ..Default::default() };
//! let inv = Inventory { instances: vec![web], hosts: vec![lb.clone()], ..Default::default() };
//! let out = render("haproxy",
//!     "{% for i in instances if i.up %}server {{ i.id }} {{ i.address }}:{{ i.ports.http }}\n{% endfor %}",
//!     &inv, &lb).unwrap();
//! assert_eq!(out.content, "server web-h1-0 10.0.0.1:8080\n");
//! ```

use std::collections::BTreeMap;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Instructions one render may execute (a bound on runaway loops; thousands of
/// backends take a small fraction of it).
const FUEL: u64 = 50_000_000;

/// A live instance as templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Service name.
    pub service: String,
    /// Host name.
    pub host: String,
    /// Instance number on the host.
    pub index: u32,
    /// Address of the host.
    pub address: String,
    /// Ports by name.
    pub ports: BTreeMap<String, u16>,
    /// Version it runs.
    pub version: String,
    /// Lifecycle state (`running`, `stopped`, …).
    pub state: String,
    /// Health (`healthy`, `unhealthy`, `unknown`, …).
    pub health: String,
    /// Being taken out of its pools.
    pub drain: bool,
}

/// A host as templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// Host name.
    pub name: String,
    /// Address (provider address, `drover/address` label, or first reported address).
    pub address: String,
    /// `up`, `down` or `missing`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Region or datacenter.
    pub region: Option<String>,
    /// Provider name, for provider-known hosts.
    pub provider: Option<String>,
    /// Taken out of every pool (`drover hosts drain`).
    pub drained: bool,
}

/// A service of the model as templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// Desired version.
    pub version: String,
    /// Base ports by name.
    pub ports: BTreeMap<String, u16>,
}

/// Everything a generator renders from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Live instances (any order; sorted when rendered).
    pub instances: Vec<InstanceEntry>,
    /// Hosts (any order; sorted when rendered).
    pub hosts: Vec<HostEntry>,
    /// The model's services by name.
    pub services: BTreeMap<String, ServiceEntry>,
    /// Datastore keys.
    pub kv: BTreeMap<String, String>,
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The bytes to write.
    pub content: String,
    /// SHA-256 of `content`, lowercase hex.
    pub sha256: String,
}

/// Why a template did not render: the reason, with its line when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("generator {generator}: {reason}")]
pub struct GenerateError {
    /// Generator name.
    pub generator: String,
    /// MiniJinja's message, with `(line N)`.
    pub reason: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    if let Ok(syntax) = SyntaxConfig::builder().keep_trailing_newline(true).build() {
        env.set_syntax(syntax);
    }
    env.set_debug(true);
    env.set_fuel(Some(FUEL));
    env
}

fn reason(e: &minijinja::Error) -> String {
    let mut out = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        out.push_str(&format!(" (line {line})"));
    }
    out
}

/// Checks a template's syntax. On error: the 1-based line in the template and the reason.
pub fn check_template(source: &str) -> Result<(), (usize, String)> {
    let env = environment();
    match env.template_from_str(source) {
        Ok(_) => Ok(()),
        Err(e) => Err((e.line().unwrap_or(1), reason(&e))),
    }
}

/// Instance id in templates: `service-host-index`, with every character other
/// than letters, digits, `-` and `_` turned into `_` (HAProxy server names).
pub fn instance_id(service: &str, host: &str, index: u32) -> String {
    format!("{service}-{host}-{index}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn strings<'a>(m: impl Iterator<Item = (&'a String, &'a String)>) -> Value {
    Value::from_pairs(m.map(|(k, v)| (k.as_str(), Value::from(v.as_str()))))
}

fn ports(m: &BTreeMap<String, u16>) -> Value {
    Value::from_pairs(m.iter().map(|(k, v)| (k.as_str(), Value::from(*v))))
}

fn host_value(h: &HostEntry) -> Value {
    Value::from_pairs([
        ("name", Value::from(h.name.as_str())),
        ("address", Value::from(h.address.as_str())),
        ("status", Value::from(h.status.as_str())),
        ("labels", strings(h.labels.iter())),
        ("region", Value::from(h.region.clone())),
        ("provider", Value::from(h.provider.clone())),
        ("drained", Value::from(h.drained)),
    ])
}

fn instance_value(i: &InstanceEntry) -> Value {
    let up = i.state == "running" && matches!(i.health.as_str(), "healthy" | "unknown") && !i.drain;
    Value::from_pairs([
        ("id", Value::from(instance_id(&i.service, &i.host, i.index))),
        ("service", Value::from(i.service.as_str())),
        ("host", Value::from(i.host.as_str())),
        ("index", Value::from(i.index)),
        ("address", Value::from(i.address.as_str())),
        ("ports", ports(&i.ports)),
        ("version", Value::from(i.version.as_str())),
        ("state", Value::from(i.state.as_str())),
        ("health", Value::from(i.health.as_str())),
        ("drain", Value::from(i.drain)),
        ("up", Value::from(up)),
    ])
}

/// Renders `template` of generator `name` for `target`.
pub fn render(
    name: &str,
    template: &str,
    inventory: &Inventory,
    target: &HostEntry,
) -> Result<Rendered, GenerateError> {
    let mut instances: Vec<&InstanceEntry> = inventory.instances.iter().collect();
    instances.sort_by(|a, b| (&a.service, &a.host, a.index).cmp(&(&b.service, &b.host, b.index)));
    let mut hosts: Vec<&HostEntry> = inventory.hosts.iter().collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));

    let instance_values: Vec<(&str, Value)> = instances
        .iter()
        .map(|i| (i.service.as_str(), instance_value(i)))
        .collect();
    let services = inventory.services.iter().map(|(svc, entry)| {
        let mine: Vec<Value> = instance_values
            .iter()
            .filter(|(s, _)| *s == svc)
            .map(|(_, v)| v.clone())
            .collect();
        (
            svc.as_str(),
            Value::from_pairs([
                ("name", Value::from(svc.as_str())),
                ("version", Value::from(entry.version.as_str())),
                ("ports", ports(&entry.ports)),
                ("instances", Value::from(mine)),
            ]),
        )
    });
    let vars = Value::from_pairs([
        (
            "instances",
            Value::from(
                instance_values
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>(),
            ),
        ),
        ("services", Value::from_pairs(services)),
        (
            "hosts",
            Value::from(hosts.iter().map(|h| host_value(h)).collect::<Vec<_>>()),
        ),
        ("target", host_value(target)),
        ("kv", strings(inventory.kv.iter())),
        ("generator", Value::from(name)),
    ]);
    let env = environment();
    let content = env
        .render_named_str(name, template, vars)
        .map_err(|e| GenerateError {
            generator: name.to_string(),
            reason: reason(&e),
        })?;
    let sha256 = hex::encode(Sha256::digest(content.as_bytes()));
    Ok(Rendered { content, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(service: &str, host: &str, index: u32, health: &str, drain: bool) -> InstanceEntry {
        InstanceEntry {
            service: service.into(),
            host: host.into(),
            index,
            address: format!("10.0.0.{}", index + 1),
            ports: [("http".to_string(), 8080 + index as u16)].into(),
            version: "1".into(),
            state: "running".into(),
            health: health.into(),
            drain,
        }
    }

    const BACKENDS: &str = "{% for i in services.web.instances %}server {{ i.id }} {{ i.address }}:{{ i.ports.http }}{% if not i.up %} disabled{% endif %}\n{% endfor %}";

    #[test]
    fn drained_and_unhealthy_instances_are_not_up() {
        let inv = Inventory {
            instances: vec![
                inst("web", "b", 0, "healthy", true),
                inst("web", "a", 1, "unhealthy", false),
                inst("web", "a", 0, "healthy", false),
                inst("db", "a", 0, "healthy", false),
            ],
            services: [("web".to_string(), ServiceEntry::default())].into(),
            ..Default::default()
        };
        let out = render("lb", BACKENDS, &inv, &HostEntry::default()).unwrap();
        assert_eq!(
            out.content,
            "server web-a-0 10.0.0.1:8080\nserver web-a-1 10.0.0.2:8081 disabled\nserver web-b-0 10.0.0.1:8080 disabled\n"
        );
        // Same inventory in another order: same bytes, same digest.
        let mut shuffled = inv.clone();
        shuffled.instances.reverse();
        assert_eq!(
            render("lb", BACKENDS, &shuffled, &HostEntry::default()).unwrap(),
            out
        );
    }

    #[test]
    fn undefined_values_and_syntax_errors_are_reported_with_lines() {
        let inv = Inventory::default();
        let err = render(
            "lb",
            "ok\n{{ services.web.version }}",
            &inv,
            &HostEntry::default(),
        )
        .unwrap_err();
        assert!(err.reason.contains("(line 2)"), "{err}");
        assert_eq!(check_template("a\n{% for %}").unwrap_err().0, 2);
        assert!(check_template("{{ target.name }}").is_ok());
    }

    #[test]
    fn ids_are_safe_server_names() {
        assert_eq!(
            instance_id("web", "h1.example.com", 2),
            "web-h1_example_com-2"
        );
    }

    #[test]
    fn a_thousand_backends_render() {
        let inv = Inventory {
            instances: (0..1000)
                .map(|i| inst("web", &format!("h{i}"), 0, "healthy", false))
                .collect(),
            services: [("web".to_string(), ServiceEntry::default())].into(),
            ..Default::default()
        };
        let out = render("lb", BACKENDS, &inv, &HostEntry::default()).unwrap();
        assert_eq!(out.content.lines().count(), 1000);
    }
}
