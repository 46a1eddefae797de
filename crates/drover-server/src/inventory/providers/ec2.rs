//! The `ec2` provider: `DescribeInstances` (query API, version 2016-11-15), signed with
//! SigV4, following `NextToken` until the last page.

mod xml;

use std::collections::{BTreeMap, HashSet};

use drover_core::model::{Provider, ProviderKind};
use drover_proto::inventory::DiscoveredHost;

use super::error::{body_excerpt, transport_detail};
use super::sigv4::{self, Credentials};
use super::{ProviderError, env_credential};

const PROVIDER: &str = "ec2";
/// `MaxResults` of each page ([`fetch`]); AWS accepts 5 to 1000.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
const API_VERSION: &str = "2016-11-15";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// Environment variable of a session token (temporary credentials).
const SESSION_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";

/// Lists the provider's instances, 1000 per page.
pub(crate) async fn fetch(
    provider: &Provider,
    http: &reqwest::Client,
) -> Result<Vec<DiscoveredHost>, ProviderError> {
    fetch_with_page_size(provider, http, DEFAULT_PAGE_SIZE).await
}

/// Lists an `ec2` provider's instances asking for `page_size` per page (`MaxResults`),
/// following `NextToken` until it is absent. [`super::fetch`] uses
/// [`DEFAULT_PAGE_SIZE`]; a smaller size exercises paging. Instances that are
/// `terminated` or `shutting-down` are left out.
pub async fn fetch_with_page_size(
    provider: &Provider,
    http: &reqwest::Client,
    page_size: u32,
) -> Result<Vec<DiscoveredHost>, ProviderError> {
    let ProviderKind::Ec2 {
        region,
        endpoint,
        filters,
        access_key_env,
        secret_key_env,
    } = &provider.kind
    else {
        return Err(ProviderError::KindMismatch {
            name: provider.name.clone(),
            expected: PROVIDER,
            found: provider.kind.type_name(),
        });
    };
    let credentials = Credentials {
        access_key: env_credential(PROVIDER, access_key_env, "access_key_env")?,
        secret_key: env_credential(PROVIDER, secret_key_env, "secret_key_env")?,
        session_token: std::env::var(SESSION_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let url = endpoint
        .clone()
        .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com/"));
    let target = reqwest::Url::parse(&url).map_err(|e| ProviderError::InvalidUrl {
        provider: PROVIDER,
        url: url.clone(),
        detail: e.to_string(),
    })?;
    let mut hosts = Vec::new();
    let mut next_token: Option<String> = None;
    let mut seen = HashSet::new();
    loop {
        let body = form_body(filters, page_size, next_token.as_deref());
        let xml = post_signed(http, &target, &credentials, region, body).await?;
        let page = xml::parse_page(&xml, region).map_err(|e| match e {
            xml::XmlError::Invalid(detail) => ProviderError::Malformed {
                provider: PROVIDER,
                method: "POST",
                url: target.to_string(),
                detail,
            },
            xml::XmlError::Missing(path) => ProviderError::MissingField {
                provider: PROVIDER,
                method: "POST",
                url: target.to_string(),
                path,
            },
        })?;
        hosts.extend(page.hosts);
        match page.next_token {
            Some(token) if !seen.insert(token.clone()) => {
                return Err(ProviderError::PageLoop {
                    provider: PROVIDER,
                    url: target.to_string(),
                    marker: format!("NextToken {token}"),
                });
            }
            Some(token) => next_token = Some(token),
            None => return Ok(hosts),
        }
    }
}

/// The form body of one `DescribeInstances` call: filters as `Filter.N.Name` and
/// `Filter.N.Value.M` (N and M from 1, filters in name order).
fn form_body(
    filters: &BTreeMap<String, Vec<String>>,
    page_size: u32,
    next_token: Option<&str>,
) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "DescribeInstances");
    form.append_pair("Version", API_VERSION);
    form.append_pair("MaxResults", &page_size.to_string());
    if let Some(token) = next_token {
        form.append_pair("NextToken", token);
    }
    for (n, (name, values)) in filters.iter().enumerate() {
        form.append_pair(&format!("Filter.{}.Name", n + 1), name);
        for (m, value) in values.iter().enumerate() {
            form.append_pair(&format!("Filter.{}.Value.{}", n + 1, m + 1), value);
        }
    }
    form.finish()
}

/// POSTs `body` signed for `ec2` in `region`; returns the body of a 2xx answer.
async fn post_signed(
    http: &reqwest::Client,
    target: &reqwest::Url,
    credentials: &Credentials,
    region: &str,
    body: String,
) -> Result<String, ProviderError> {
    let url = target.to_string();
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    // The Host header as the HTTP client writes it: the port only when not the default.
    let host = match (target.host_str(), target.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => {
            return Err(ProviderError::InvalidUrl {
                provider: PROVIDER,
                url,
                detail: "no host".into(),
            });
        }
    };
    let mut headers = vec![
        ("host", host),
        ("content-type", FORM.to_string()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    let query: Vec<(String, String)> = target.query_pairs().into_owned().collect();
    let authorization = sigv4::authorization(
        credentials,
        &sigv4::Scope {
            region,
            service: "ec2",
            amz_date: &amz_date,
        },
        &sigv4::Request {
            method: "POST",
            path: target.path(),
            query: &query,
            headers: &headers,
            payload: body.as_bytes(),
        },
    );
    let mut request = http
        .post(target.clone())
        .header(reqwest::header::AUTHORIZATION, authorization)
        .body(body);
    // Host is set by the client from the URL, exactly as signed above.
    for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
        request = request.header(*name, value);
    }
    let transport = |e| ProviderError::Transport {
        provider: PROVIDER,
        method: "POST",
        url: url.clone(),
        detail: transport_detail(e),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let text = response.text().await.map_err(transport)?;
    if status.is_success() {
        return Ok(text);
    }
    let (code, message) = match xml::parse_error(&text) {
        Some(remote) => (remote.code, remote.message),
        None => (None, body_excerpt(&text)),
    };
    Err(ProviderError::Remote {
        provider: PROVIDER,
        method: "POST",
        url,
        status,
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_body_numbers_filters_and_values() {
        let filters: BTreeMap<String, Vec<String>> = [
            (
                "tag:role".to_string(),
                vec!["web".to_string(), "db".to_string()],
            ),
            (
                "instance-state-name".to_string(),
                vec!["running".to_string()],
            ),
        ]
        .into();
        assert_eq!(
            form_body(&filters, 5, Some("tok/en+1")),
            "Action=DescribeInstances&Version=2016-11-15&MaxResults=5&NextToken=tok%2Fen%2B1\
             &Filter.1.Name=instance-state-name&Filter.1.Value.1=running\
             &Filter.2.Name=tag%3Arole&Filter.2.Value.1=web&Filter.2.Value.2=db"
        );
    }
}
