//! The one HTTP client of the CLI: typed calls to `/api/v1`, errors turned into messages.

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A client bound to one controller and token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An API error answer, kept apart so callers can branch on the status.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: StatusCode,
    /// `detail` of the error body (or the raw body).
    pub detail: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.status)
    }
}

impl std::error::Error for ApiFailure {}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str, token: &str) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot build HTTP client")?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// The controller's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request builder with the token set.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{}{}", self.base, drover_proto::API_PREFIX, path),
            )
            .bearer_auth(&self.token)
    }

    /// Sends and decodes JSON, mapping error bodies to [`ApiFailure`].
    pub async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the controller at {}: {e}", self.base))?;
        let resp = check(resp).await?;
        resp.json::<T>()
            .await
            .context("the controller sent an answer this CLI cannot read")
    }

    /// GET a JSON resource.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    /// GET every item of a paged list, following `next` a thousand at a time. `path`
    /// may carry its own query (filters); `limit` and `after` are added here.
    pub async fn get_all<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Vec<T>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after
                .as_deref()
                .map(|a| format!("&after={}", enc(a)))
                .unwrap_or_default();
            let page: drover_proto::page::Page<T> = self
                .get(&format!(
                    "{path}{sep}limit={}{cursor}",
                    drover_proto::page::MAX_PAGE_LIMIT
                ))
                .await?;
            items.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(items),
            }
        }
    }

    /// POST JSON, get JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// DELETE, get JSON.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(Method::DELETE, path)).await
    }
}

/// Turns a non-2xx answer into an [`ApiFailure`].
pub async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<drover_proto::error::ApiError>(&text)
        .map(|e| e.detail)
        .unwrap_or(text);
    Err(ApiFailure { status, detail }.into())
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
