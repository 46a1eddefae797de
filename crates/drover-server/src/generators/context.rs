//! The inventory a generator renders from, read from the store in one pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use drover_core::generate::{HostEntry, InstanceEntry, Inventory, ServiceEntry};
use drover_core::model::{Generator, Model};
use drover_core::selector;
use drover_proto::hosts::{Host, HostStatus};

use crate::state::AppState;

/// Label that sets the address a host is reached at in generated config.
pub(crate) const ADDRESS_LABEL: &str = "drover/address";

/// Everything one generator pass needs.
pub(crate) struct Snapshot {
    /// The applied model (its generators and services).
    pub model: Model,
    /// Known hosts.
    pub hosts: Vec<Host>,
    /// What templates see.
    pub inventory: Inventory,
    /// Drain epoch read before the drains: the renders reflect every change up to it.
    pub epoch: i64,
}

/// The address other hosts reach `h` at: the `drover/address` label, the provider's
/// address, the first non-loopback address the agent reported, or its name.
pub(crate) fn host_address(h: &Host) -> String {
    if let Some(a) = h.labels.get(ADDRESS_LABEL) {
        return a.clone();
    }
    if let Some(a) = &h.address {
        return a.clone();
    }
    h.facts
        .addresses
        .iter()
        .find(|a| !a.starts_with("127.") && a.as_str() != "::1")
        .or_else(|| h.facts.addresses.first())
        .cloned()
        .unwrap_or_else(|| h.name.clone())
}

/// Ports of instance `index` of `service` on `host`, as the model places them
/// (base + index, shifted by the host's `drover/port-offset`); empty for a service the
/// model does not have.
fn instance_ports(model: &Model, host: &Host, service: &str, index: u32) -> BTreeMap<String, u16> {
    let Some(s) = model.services.get(service) else {
        return BTreeMap::new();
    };
    let offset: u16 = host
        .labels
        .get(drover_core::model::placement::PORT_OFFSET_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    s.instance_ports(index)
        .into_iter()
        .map(|(name, p)| (name, p.saturating_add(offset)))
        .collect()
}

/// How templates see a host.
pub(crate) fn host_entry(h: &Host) -> HostEntry {
    HostEntry {
        name: h.name.clone(),
        address: host_address(h),
        status: h.status.as_str().to_string(),
        labels: h.labels.clone(),
        region: h.region.clone(),
        provider: h.provider.clone(),
        drained: h.drained,
    }
}

/// Reads the snapshot; `None` when no model was applied yet.
pub(crate) async fn snapshot(state: &Arc<AppState>) -> anyhow::Result<Option<Snapshot>> {
    match crate::api::deploy::applied_model(state).await? {
        Some(model) => snapshot_of(state, model).await.map(Some),
        None => Ok(None),
    }
}

/// The snapshot around `model`, the applied model the caller read already.
pub(crate) async fn snapshot_of(state: &Arc<AppState>, model: Model) -> anyhow::Result<Snapshot> {
    // The epoch first: a drain change between the two reads makes this render
    // claim an older epoch than it reflects, never a newer one.
    let (epoch, drains) = state.store.drains().await?;
    let drained: HashSet<(String, String, u32)> = drains
        .into_iter()
        .map(|d| (d.service, d.host_id, d.index))
        .collect();
    let hosts = state.store.list_hosts().await?;
    let by_id: BTreeMap<&str, &Host> = hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let instances = state
        .store
        .list_instances()
        .await?
        .into_iter()
        .filter_map(|row| {
            let host = by_id.get(row.host_id.as_str())?;
            let r = row.report;
            let drain = host.drained
                || drained.contains(&(r.service.clone(), row.host_id.clone(), r.index));
            Some(InstanceEntry {
                address: host_address(host),
                host: host.name.clone(),
                ports: instance_ports(&model, host, &r.service, r.index),
                version: r.version.clone(),
                state: r.state.as_str().to_string(),
                health: r.health.as_str().to_string(),
                service: r.service,
                index: r.index,
                drain,
            })
        })
        .collect();
    let services = model
        .services
        .values()
        .map(|s| {
            (
                s.name.clone(),
                ServiceEntry {
                    version: s.version.clone(),
                    ports: s.ports.clone(),
                },
            )
        })
        .collect();
    let inventory = Inventory {
        instances,
        hosts: hosts.iter().map(host_entry).collect(),
        services,
        kv: BTreeMap::new(),
    };
    Ok(Snapshot {
        model,
        hosts,
        inventory,
        epoch,
    })
}

/// The hosts `generator` writes on: those its `targets` selector matches that have
/// an agent (a provider-only host cannot be written to).
pub(crate) fn targets<'h>(generator: &Generator, hosts: &'h [Host]) -> Vec<&'h Host> {
    let Ok(sel) = selector::parse(&generator.targets) else {
        return Vec::new();
    };
    hosts
        .iter()
        .filter(|h| h.status != HostStatus::Missing && sel.matches(*h))
        .collect()
}
