//! Provider clients: ask a provider which hosts it knows now.
//!
//! [`fetch`] is the entry point. There is one submodule per provider type (`static`,
//! `exec`, `ec2`, `openstack`); each returns [`DiscoveredHost`]s or a [`ProviderError`]
//! whose message names the provider type, the URL or command, and what went wrong.
//! Nothing here keeps state between calls: merging the hosts into the store is the
//! caller's job.

pub mod ec2;
mod error;
mod exec;
mod json_path;
mod openstack;
mod sigv4;
mod static_list;

use drover_core::model::{Provider, ProviderKind};
use drover_proto::inventory::DiscoveredHost;

pub use error::ProviderError;

/// Lists the hosts a provider knows now.
///
/// `http` is used for the `ec2` and `openstack` types (its TLS and proxy settings
/// apply); `static` and `exec` do not touch it.
pub async fn fetch(
    provider: &Provider,
    http: &reqwest::Client,
) -> Result<Vec<DiscoveredHost>, ProviderError> {
    match &provider.kind {
        ProviderKind::Static { hosts } => Ok(static_list::hosts(hosts)),
        ProviderKind::Exec {
            command,
            timeout,
            map,
        } => exec::fetch(command, *timeout, map).await,
        ProviderKind::Ec2 { .. } => ec2::fetch(provider, http).await,
        ProviderKind::Openstack { .. } => openstack::fetch(provider, http).await,
    }
}

/// Reads a credential from the environment variable `var`; unset, empty or non-UTF-8
/// values are an error naming the variable and the setting (`setting`) that named it.
fn env_credential(
    provider: &'static str,
    var: &str,
    setting: &'static str,
) -> Result<String, ProviderError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(ProviderError::MissingEnv {
            provider,
            var: var.to_string(),
            setting,
        }),
    }
}
