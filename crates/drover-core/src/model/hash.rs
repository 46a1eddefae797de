//! Hashes: of a whole model (`content_hash`) and of what one instance runs
//! (`spec_hash`).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::types::{ConfigFile, Exec, HostPin, Hostclass, Service};

fn sha256_json<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("model values serialize to JSON");
    hex::encode(Sha256::digest(bytes))
}

/// Strips a serialized item of its `source`, which says where it was written, not
/// what it means.
fn without_source<T: Serialize>(item: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(item).expect("model values serialize to JSON");
    if let Some(obj) = v.as_object_mut() {
        obj.remove("source");
    }
    v
}

/// SHA-256 (lowercase hex) of a model's meaning.
///
/// It covers every service, hostclass and host pin after parsing and defaults, in
/// name order, and nothing about how they were written: the same model split
/// differently over files, in another order, with other comments, whitespace, key
/// order, quoting, or with defaults written out, has the same hash.
pub fn content_hash(
    services: &BTreeMap<String, Service>,
    hostclasses: &BTreeMap<String, Hostclass>,
    hosts: &BTreeMap<String, HostPin>,
) -> String {
    fn items<T: Serialize>(m: &BTreeMap<String, T>) -> BTreeMap<&str, serde_json::Value> {
        m.iter()
            .map(|(k, v)| (k.as_str(), without_source(v)))
            .collect()
    }
    let doc = serde_json::json!({
        "format": "drover-model-v1",
        "services": items(services),
        "hostclasses": items(hostclasses),
        "hosts": items(hosts),
    });
    sha256_json(&doc)
}

/// [`content_hash`] over a model that may also have providers and generators. A
/// model without either hashes exactly as before they existed.
pub fn content_hash_with(
    services: &BTreeMap<String, Service>,
    hostclasses: &BTreeMap<String, Hostclass>,
    hosts: &BTreeMap<String, HostPin>,
    providers: &BTreeMap<String, super::Provider>,
    generators: &BTreeMap<String, super::Generator>,
) -> String {
    if providers.is_empty() && generators.is_empty() {
        return content_hash(services, hostclasses, hosts);
    }
    fn items<T: Serialize>(m: &BTreeMap<String, T>) -> BTreeMap<&str, serde_json::Value> {
        m.iter()
            .map(|(k, v)| (k.as_str(), without_source(v)))
            .collect()
    }
    let doc = serde_json::json!({
        "format": "drover-model-v1",
        "services": items(services),
        "hostclasses": items(hostclasses),
        "hosts": items(hosts),
        "providers": items(providers),
        "generators": items(generators),
    });
    sha256_json(&doc)
}

/// What [`spec_hash`] covers.
#[derive(Serialize)]
struct Spec<'a> {
    format: &'static str,
    artifact_sha256: &'a str,
    exec: &'a Exec,
    env: &'a BTreeMap<String, String>,
    ports: &'a BTreeMap<String, u16>,
    config: &'a [ConfigFile],
}

/// SHA-256 (lowercase hex) of what instance `index` of `service` runs, version
/// aside: the artifact's digest, `run`/`scripts`, `env`, the instance's ports and the
/// config templates. Not the version, the desired state, the health check, the
/// rollout policy, the artifact's URL nor the placement: changing those alone does
/// not redeploy an instance.
pub fn spec_hash(service: &Service, ports: &BTreeMap<String, u16>) -> String {
    sha256_json(&Spec {
        format: "drover-spec-v1",
        artifact_sha256: &service.artifact.sha256,
        exec: &service.exec,
        env: &service.env,
        ports,
        config: &service.config,
    })
}
