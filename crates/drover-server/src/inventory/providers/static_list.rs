//! The `static` provider: hosts listed in the model itself.

use drover_core::model::StaticHost;
use drover_proto::inventory::DiscoveredHost;

/// The declared hosts, in declaration order; a host without an id gets its name.
pub(crate) fn hosts(hosts: &[StaticHost]) -> Vec<DiscoveredHost> {
    hosts
        .iter()
        .map(|h| DiscoveredHost {
            id: h.id.clone().unwrap_or_else(|| h.name.clone()),
            name: h.name.clone(),
            address: h.address.clone(),
            region: h.region.clone(),
            labels: h.labels.clone(),
            attributes: Default::default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_defaults_to_name() {
        let hosts = hosts(&[
            StaticHost {
                name: "db-1".into(),
                id: None,
                address: Some("10.0.0.1".into()),
                region: Some("dc1".into()),
                labels: [("role".to_string(), "db".to_string())].into(),
            },
            StaticHost {
                name: "db-2".into(),
                id: Some("asset-42".into()),
                address: None,
                region: None,
                labels: Default::default(),
            },
        ]);
        assert_eq!(hosts[0].id, "db-1");
        assert_eq!(hosts[0].address.as_deref(), Some("10.0.0.1"));
        assert_eq!(hosts[0].labels["role"], "db");
        assert_eq!(hosts[1].id, "asset-42");
        assert_eq!(hosts[1].name, "db-2");
    }
}
