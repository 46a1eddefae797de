//! The `openstack` provider: a Keystone v3 password token scoped to a project, then
//! Nova `GET /servers/detail`, following `servers_links` rel `next`.

use std::collections::{BTreeMap, HashSet};

use drover_core::model::{Provider, ProviderKind};
use drover_proto::inventory::DiscoveredHost;
use serde_json::{Value, json};

use super::error::{body_excerpt, transport_detail};
use super::json_path::{lookup, scalar, scalar_at};
use super::{ProviderError, env_credential};

const PROVIDER: &str = "openstack";
/// Servers per page asked of Nova.
const PAGE_SIZE: u32 = 500;

/// A compute endpoint found in the token catalog.
struct Endpoint {
    url: String,
    region: Option<String>,
}

/// Gets a token, finds the compute endpoint and lists all servers but deleted ones.
pub(crate) async fn fetch(
    provider: &Provider,
    http: &reqwest::Client,
) -> Result<Vec<DiscoveredHost>, ProviderError> {
    let ProviderKind::Openstack {
        auth_url,
        username,
        password_env,
        user_domain,
        project,
        project_domain,
        region,
        interface,
    } = &provider.kind
    else {
        return Err(ProviderError::KindMismatch {
            name: provider.name.clone(),
            expected: PROVIDER,
            found: provider.kind.type_name(),
        });
    };
    let password = env_credential(PROVIDER, password_env, "password_env")?;
    let tokens_url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"name": user_domain}, "password": password,
        }}},
        "scope": {"project": {"name": project, "domain": {"name": project_domain}}},
    }});
    let request = http.post(&tokens_url).json(&body);
    let (token_json, headers) = send(request, "POST", &tokens_url).await?;
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderError::MissingField {
            provider: PROVIDER,
            method: "POST",
            url: tokens_url.clone(),
            path: "X-Subject-Token header".into(),
        })?
        .to_string();
    let endpoint = compute_endpoint(&token_json, interface, region.as_deref(), &tokens_url)?;
    let default_region = region.clone().or(endpoint.region);

    let mut url = format!(
        "{}/servers/detail?limit={PAGE_SIZE}",
        endpoint.url.trim_end_matches('/')
    );
    let mut visited = HashSet::new();
    let mut hosts = Vec::new();
    loop {
        visited.insert(url.clone());
        let request = http
            .get(&url)
            .header("X-Auth-Token", &token)
            .header(reqwest::header::ACCEPT, "application/json");
        let (page, _) = send(request, "GET", &url).await?;
        let missing = |path: String| ProviderError::MissingField {
            provider: PROVIDER,
            method: "GET",
            url: url.clone(),
            path,
        };
        let Some(Value::Array(servers)) = lookup(&page, "servers") else {
            return Err(missing("servers".into()));
        };
        for (index, server) in servers.iter().enumerate() {
            if let Some(host) = parse_server(server, default_region.as_deref())
                .map_err(|field| missing(format!("servers.{index}.{field}")))?
            {
                hosts.push(host);
            }
        }
        match next_link(&page) {
            Some(next) if visited.contains(&next) => {
                return Err(ProviderError::PageLoop {
                    provider: PROVIDER,
                    url,
                    marker: format!("next link {next}"),
                });
            }
            Some(next) => url = next,
            None => return Ok(hosts),
        }
    }
}

/// Sends `request`; on 2xx returns the JSON body and the headers, otherwise a
/// [`ProviderError::Remote`] with the error's code and message.
async fn send(
    request: reqwest::RequestBuilder,
    method: &'static str,
    url: &str,
) -> Result<(Value, reqwest::header::HeaderMap), ProviderError> {
    let transport = |e| ProviderError::Transport {
        provider: PROVIDER,
        method,
        url: url.to_string(),
        detail: transport_detail(e),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.map_err(transport)?;
    if !status.is_success() {
        let (code, message) = remote_error(&text);
        return Err(ProviderError::Remote {
            provider: PROVIDER,
            method,
            url: url.to_string(),
            status,
            code,
            message,
        });
    }
    let value = serde_json::from_str(&text).map_err(|e| ProviderError::Malformed {
        provider: PROVIDER,
        method,
        url: url.to_string(),
        detail: format!("response is not JSON: {e}"),
    })?;
    Ok((value, headers))
}

/// Code and message of an OpenStack error body: Keystone's
/// `{"error": {"code": 401, "title": "Unauthorized", "message": …}}` or Nova's
/// `{"itemNotFound": {"code": 404, "message": …}}`; an excerpt of any other body.
fn remote_error(body: &str) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) else {
        return (None, body_excerpt(body));
    };
    for (key, value) in &fields {
        if let Some(message) = scalar_at(value, "message") {
            let code = if key == "error" {
                scalar_at(value, "title").or_else(|| scalar_at(value, "code"))
            } else {
                Some(key.clone())
            };
            return (code, Some(message));
        }
    }
    (None, scalar_at(&Value::Object(fields), "message"))
}

/// The compute endpoint of the catalog with `interface`, in `region` when given
/// (else the first such endpoint).
fn compute_endpoint(
    token: &Value,
    interface: &str,
    region: Option<&str>,
    tokens_url: &str,
) -> Result<Endpoint, ProviderError> {
    let Some(Value::Array(catalog)) = lookup(token, "token.catalog") else {
        return Err(ProviderError::MissingField {
            provider: PROVIDER,
            method: "POST",
            url: tokens_url.to_string(),
            path: "token.catalog".into(),
        });
    };
    let endpoints = catalog
        .iter()
        .filter(|service| scalar_at(service, "type").as_deref() == Some("compute"))
        .filter_map(|service| match lookup(service, "endpoints") {
            Some(Value::Array(endpoints)) => Some(endpoints),
            _ => None,
        })
        .flatten();
    for endpoint in endpoints {
        let endpoint_region =
            scalar_at(endpoint, "region_id").or_else(|| scalar_at(endpoint, "region"));
        let region_matches = region.is_none_or(|want| {
            scalar_at(endpoint, "region_id").as_deref() == Some(want)
                || scalar_at(endpoint, "region").as_deref() == Some(want)
        });
        if scalar_at(endpoint, "interface").as_deref() == Some(interface)
            && region_matches
            && let Some(url) = scalar_at(endpoint, "url").filter(|u| !u.is_empty())
        {
            return Ok(Endpoint {
                url,
                region: endpoint_region,
            });
        }
    }
    Err(ProviderError::NoComputeEndpoint {
        url: tokens_url.to_string(),
        interface: interface.to_string(),
        region: region.map(str::to_string),
    })
}

/// The `href` of the `servers_links` entry with `rel` `next`.
fn next_link(page: &Value) -> Option<String> {
    let Some(Value::Array(links)) = lookup(page, "servers_links") else {
        return None;
    };
    links
        .iter()
        .find(|l| scalar_at(l, "rel").as_deref() == Some("next"))
        .and_then(|l| scalar_at(l, "href"))
        .filter(|h| !h.is_empty())
}

/// One server; `None` when it is `DELETED`. The error is the missing field's path.
fn parse_server(
    server: &Value,
    default_region: Option<&str>,
) -> Result<Option<DiscoveredHost>, &'static str> {
    let id = scalar_at(server, "id").ok_or("id")?;
    let name = scalar_at(server, "name").ok_or("name")?;
    let status = scalar_at(server, "status");
    if status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("DELETED"))
    {
        return Ok(None);
    }
    let labels: BTreeMap<String, String> = match lookup(server, "metadata") {
        Some(Value::Object(metadata)) => metadata
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let mut attributes = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            attributes.insert(key.to_string(), v);
        }
    };
    put("status", status);
    put(
        "flavor",
        scalar_at(server, "flavor.id").or_else(|| scalar_at(server, "flavor.original_name")),
    );
    // `image` is "" for servers booted from a volume.
    put("image", scalar_at(server, "image.id"));
    put("host_status", scalar_at(server, "host_status"));
    let region = scalar_at(server, "OS-EXT-AZ:availability_zone")
        .filter(|z| !z.is_empty())
        .or_else(|| default_region.map(str::to_string));
    Ok(Some(DiscoveredHost {
        id,
        name,
        address: fixed_ipv4(server),
        region,
        labels,
        attributes,
    }))
}

/// The first IPv4 address of `addresses` (networks in name order) that is `fixed` or
/// has no `OS-EXT-IPS:type`; else the first IPv4 address of any type.
fn fixed_ipv4(server: &Value) -> Option<String> {
    let Some(Value::Object(networks)) = lookup(server, "addresses") else {
        return None;
    };
    let v4: Vec<&Value> = networks
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter(|a| {
            scalar_at(a, "version").as_deref() == Some("4")
                || scalar_at(a, "addr").is_some_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok())
        })
        .collect();
    let fixed = v4
        .iter()
        .find(|a| scalar_at(a, "OS-EXT-IPS:type").is_none_or(|t| t == "fixed"));
    fixed.or(v4.first()).and_then(|a| scalar_at(a, "addr"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_fields() {
        let server = json!({
            "id": "9168b536-cd40-4630-b43f-b259807c6e87",
            "name": "web-1",
            "status": "ACTIVE",
            "OS-EXT-AZ:availability_zone": "nova",
            "addresses": {
                "a-public": [{"addr": "2001:db8::5", "version": 6}],
                "private": [
                    {"addr": "172.24.4.3", "version": 4, "OS-EXT-IPS:type": "floating"},
                    {"addr": "192.168.0.3", "version": 4, "OS-EXT-IPS:type": "fixed"}
                ]
            },
            "flavor": {"id": "1", "links": []},
            "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b"},
            "metadata": {"role": "web"},
            "host_status": "UP"
        });
        let host = parse_server(&server, Some("RegionOne")).unwrap().unwrap();
        assert_eq!(host.address.as_deref(), Some("192.168.0.3"));
        assert_eq!(host.region.as_deref(), Some("nova"));
        assert_eq!(host.labels["role"], "web");
        assert_eq!(host.attributes["flavor"], "1");
        assert_eq!(host.attributes["host_status"], "UP");
        assert_eq!(host.attributes["status"], "ACTIVE");
    }

    #[test]
    fn newer_flavor_volume_boot_and_deleted() {
        let server = json!({
            "id": "x", "name": "db", "status": "SHUTOFF", "image": "",
            "flavor": {"original_name": "m1.small", "vcpus": 1},
            "addresses": {"net": [{"addr": "10.1.0.4", "version": 4}]}
        });
        let host = parse_server(&server, Some("RegionOne")).unwrap().unwrap();
        assert_eq!(host.attributes["flavor"], "m1.small");
        assert!(!host.attributes.contains_key("image"));
        assert_eq!(host.region.as_deref(), Some("RegionOne"));
        assert_eq!(host.address.as_deref(), Some("10.1.0.4"));
        let deleted = json!({"id": "y", "name": "old", "status": "DELETED"});
        assert_eq!(parse_server(&deleted, None), Ok(None));
        assert_eq!(parse_server(&json!({"name": "n"}), None), Err("id"));
    }

    #[test]
    fn error_bodies() {
        let keystone = r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        assert_eq!(
            remote_error(keystone),
            (
                Some("Unauthorized".into()),
                Some("The request you have made requires authentication.".into())
            )
        );
        let nova = r#"{"itemNotFound": {"code": 404, "message": "Flavor 7 could not be found."}}"#;
        assert_eq!(
            remote_error(nova),
            (
                Some("itemNotFound".into()),
                Some("Flavor 7 could not be found.".into())
            )
        );
        assert_eq!(
            remote_error("<h1>Bad Gateway</h1>"),
            (None, Some("Bad Gateway".into()))
        );
    }
}
