//! Placement: which instances the model wants, given the live hosts; and the
//! order in which services are deployed.

use std::collections::{BTreeMap, BTreeSet};

use drover_proto::hosts::Host;

use super::hash::spec_hash;
use super::types::{Model, Target};
use crate::instance::{DesiredInstance, InstanceKey};
use crate::selector;

/// Names of the members of hostclass `class`: the hosts pinned to it (whether or not
/// they are live), and the live hosts that match its selector and are pinned to no
/// hostclass (a pin wins over every selector). Any [`Selectable`](selector::Selectable)
/// will do as a host: names and labels are enough when
/// [`hostclasses_use_facts`] is false.
pub fn hostclass_members<H: selector::Selectable>(
    model: &Model,
    class: &str,
    hosts: &[H],
) -> BTreeSet<String> {
    let mut members: BTreeSet<String> = model
        .hosts
        .values()
        .filter(|pin| pin.hostclass == class)
        .map(|pin| pin.name.clone())
        .collect();
    let selector = model
        .hostclasses
        .get(class)
        .and_then(|c| c.selector.as_deref())
        .and_then(|s| selector::parse(s).ok());
    if let Some(selector) = selector {
        members.extend(
            hosts
                .iter()
                .filter(|h| !model.hosts.contains_key(h.name()) && selector.matches(*h))
                .map(|h| h.name().to_string()),
        );
    }
    members
}

/// Whether some hostclass selector tests a fact, so that membership needs whole hosts
/// rather than names and labels.
pub fn hostclasses_use_facts(model: &Model) -> bool {
    model.hostclasses.values().any(|c| {
        c.selector
            .as_deref()
            .and_then(|s| selector::parse(s).ok())
            .is_some_and(|s| s.uses_facts())
    })
}

/// The hosts a service's placement names, given the live hosts.
fn target_hosts(model: &Model, target: &Target, hosts: &[Host]) -> BTreeSet<String> {
    match target {
        Target::Hostclass(class) => hostclass_members(model, class, hosts),
        Target::Hosts(names) => names.iter().cloned().collect(),
        Target::Selector(s) => match selector::parse(s) {
            Ok(sel) => hosts
                .iter()
                .filter(|h| sel.matches(*h))
                .map(|h| h.name.clone())
                .collect(),
            Err(_) => BTreeSet::new(),
        },
    }
}

/// Label that shifts every port of every instance on a host by its value, so that
/// several agents can share one machine (demos, tests, a laptop): `drover/port-offset=100`.
pub const PORT_OFFSET_LABEL: &str = "drover/port-offset";

/// The port offset of a host (0 when it has no valid `drover/port-offset` label).
fn port_offset(hosts: &[Host], name: &str) -> u16 {
    hosts
        .iter()
        .find(|h| h.name == name)
        .and_then(|h| h.labels.get(PORT_OFFSET_LABEL))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every instance the model wants, sorted by key (service, host, index).
///
/// Hosts named by the model (`placement.hosts`, `kind: host` pins) are wanted
/// whether or not they are in `hosts`, so the delta can report them; hosts found by
/// selectors come from `hosts`, whatever their status (the delta tells up from down).
pub fn desired_instances(model: &Model, hosts: &[Host]) -> Vec<DesiredInstance> {
    let mut out = Vec::new();
    for service in model.services.values() {
        let per_instance: Vec<_> = (0..service.placement.per_host)
            .map(|index| {
                let ports = service.instance_ports(index);
                let hash = spec_hash(service, &ports);
                (index, ports, hash)
            })
            .collect();
        for host in target_hosts(model, &service.placement.target, hosts) {
            let offset = port_offset(hosts, &host);
            for (index, ports, hash) in &per_instance {
                let (ports, hash) = if offset == 0 {
                    (ports.clone(), hash.clone())
                } else {
                    let shifted: BTreeMap<String, u16> = ports
                        .iter()
                        .map(|(name, p)| (name.clone(), p.saturating_add(offset)))
                        .collect();
                    let hash = spec_hash(service, &shifted);
                    (shifted, hash)
                };
                out.push(DesiredInstance {
                    key: InstanceKey {
                        service: service.name.clone(),
                        host: host.clone(),
                        index: *index,
                    },
                    version: service.version.clone(),
                    state: service.state,
                    spec_hash: hash,
                    ports,
                });
            }
        }
    }
    out
}

/// Service names, dependencies first, ties broken by name.
///
/// A valid model has no cycle; should one be given anyway (say, built by hand), the
/// services on or behind it come last, in name order.
pub fn topo_order(model: &Model) -> Vec<String> {
    // Unmet dependencies (on known services) per service, and who waits for whom.
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, service) in &model.services {
        let deps: BTreeSet<&str> = service
            .depends_on
            .iter()
            .map(String::as_str)
            .filter(|d| model.services.contains_key(*d))
            .collect();
        waiting.insert(name, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|&(_, &n)| n == 0)
        .map(|(&k, _)| k)
        .collect();
    let mut order = Vec::with_capacity(model.services.len());
    while let Some(next) = ready.pop_first() {
        order.push(next.to_string());
        waiting.remove(next);
        for &d in dependents.get(next).map(Vec::as_slice).unwrap_or_default() {
            if let Some(n) = waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    order.extend(waiting.keys().map(|k| k.to_string()));
    order
}
