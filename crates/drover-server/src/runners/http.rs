//! `http-request`: one HTTP request, with StackStorm's parameters and result
//! (contrib/runners/http_runner).
//!
//! Parameters: `url` (required), `method` (default `POST` when there is a body, else
//! `GET`, as StackStorm's client decides), `headers`, `body` (a string is sent as is; any
//! other JSON value is sent as JSON, with `Content-Type: application/json` unless a
//! content type is given), `params` (query string), `cookies`, `timeout` (seconds, default
//! 60), `allow_redirects` (default false), `verify_ssl_cert` (default true),
//! `username`/`password` (basic auth), `http_proxy`/`https_proxy`, and
//! `url_hosts_blacklist` / `url_hosts_whitelist` (mutually exclusive; hosts compared
//! without port or brackets).
//!
//! Result: `{status_code, body, parsed, headers}`; the body is parsed as JSON when the
//! response's content type is `application/json` (parameters such as `charset` ignored),
//! and `parsed` says whether it was. Status: succeeded for 200–206, failed for every other
//! code (redirects included), timeout when the request timed out (result `{error}`).
//! Parameters that cannot be used give a failed result `{error}` before anything is sent;
//! so does a response body over 16 MiB.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::ActionStatus;

/// Seconds allowed when the action gives no `timeout`.
const DEFAULT_TIMEOUT_SECS: f64 = 60.0;
/// Redirects followed when `allow_redirects` is true (Python requests' limit).
const MAX_REDIRECTS: usize = 30;
/// Largest response body read.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Status codes StackStorm counts as success.
const SUCCESS_CODES: std::ops::RangeInclusive<u16> = 200..=206;

/// A request, checked and ready to send.
#[derive(Debug)]
struct Request {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
    allow_redirects: bool,
    verify_ssl_cert: bool,
    basic_auth: Option<(String, Option<String>)>,
    http_proxy: Option<String>,
    https_proxy: Option<String>,
}

/// Runs the `http-request` action with `params` (see the module doc). Never panics: bad
/// parameters and transport errors are failed results with an `error` field.
pub(crate) async fn run_http(
    params: &Map<String, Value>,
    cancel: &CancellationToken,
) -> (ActionStatus, Value) {
    let request = match Request::from_params(params) {
        Ok(r) => r,
        Err(e) => return (ActionStatus::Failed, json!({ "error": e })),
    };
    tokio::select! {
        done = request.send() => done,
        _ = cancel.cancelled() => (
            ActionStatus::Canceled,
            json!({ "error": "the request was canceled" }),
        ),
    }
}

impl Request {
    fn from_params(params: &Map<String, Value>) -> Result<Request, String> {
        let url_text = match params.get("url") {
            None | Some(Value::Null) => return Err("parameter url is required".into()),
            Some(v) => string_param("url", v)?,
        };
        let mut url = Url::parse(url_text)
            .map_err(|e| format!("parameter url: {url_text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "parameter url: {url_text:?} is not an http or https URL"
            ));
        }
        check_host_lists(params, &url)?;

        let mut headers = HeaderMap::new();
        if let Some(map) = object_param(params, "headers")? {
            for (name, value) in map {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("parameter headers: {name:?} is not a header name"))?;
                let text = scalar_text(value).ok_or_else(|| {
                    format!(
                        "parameter headers.{name}: a header value must be text, not {}",
                        kind(value)
                    )
                })?;
                let value = HeaderValue::from_str(&text).map_err(|_| {
                    format!("parameter headers.{name}: {text:?} is not a valid header value")
                })?;
                headers.append(header, value);
            }
        }
        if !headers.contains_key(reqwest::header::USER_AGENT) {
            headers.insert(
                reqwest::header::USER_AGENT,
                HeaderValue::from_static(concat!("drover/", env!("CARGO_PKG_VERSION"))),
            );
        }
        if let Some(map) = object_param(params, "cookies")? {
            let mut pairs = Vec::new();
            let mut map: Vec<_> = map.iter().collect();
            map.sort_by(|a, b| a.0.cmp(b.0));
            for (name, value) in map {
                let text = scalar_text(value).ok_or_else(|| {
                    format!(
                        "parameter cookies.{name}: a cookie value must be text, not {}",
                        kind(value)
                    )
                })?;
                pairs.push(format!("{name}={text}"));
            }
            if !pairs.is_empty() {
                let joined = pairs.join("; ");
                let value = HeaderValue::from_str(&joined).map_err(|_| {
                    format!("parameter cookies: {joined:?} is not a valid cookie header")
                })?;
                headers.append(reqwest::header::COOKIE, value);
            }
        }

        if let Some(map) = object_param(params, "params")? {
            let mut query = url.query_pairs_mut();
            let mut map: Vec<_> = map.iter().collect();
            map.sort_by(|a, b| a.0.cmp(b.0));
            for (name, value) in map {
                let values = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for v in values {
                    let text = scalar_text(v).ok_or_else(|| {
                        format!(
                            "parameter params.{name}: a query value must be text, not {}",
                            kind(v)
                        )
                    })?;
                    query.append_pair(name, &text);
                }
            }
        }

        let body = match params.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone().into_bytes()),
            Some(other) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(other.to_string().into_bytes())
            }
        };
        let method = match params.get("method") {
            None | Some(Value::Null) => {
                if body.as_ref().is_some_and(|b| !b.is_empty()) {
                    Method::POST
                } else {
                    Method::GET
                }
            }
            Some(v) => {
                let text = string_param("method", v)?;
                Method::from_bytes(text.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("parameter method: {text:?} is not an HTTP method"))?
            }
        };

        let timeout = match params.get("timeout") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT_SECS,
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    format!("parameter timeout: {v} is not a positive number of seconds")
                })?,
        };
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| format!("parameter timeout: {timeout} seconds is too long"))?;

        let username = optional_string(params, "username")?;
        let password = optional_string(params, "password")?;
        let basic_auth = match (username, password) {
            (None, None) => None,
            (u, p) => Some((u.unwrap_or_default(), p)),
        };
        Ok(Request {
            url,
            method,
            headers,
            body,
            timeout,
            allow_redirects: bool_param(params, "allow_redirects", false)?,
            verify_ssl_cert: bool_param(params, "verify_ssl_cert", true)?,
            basic_auth,
            http_proxy: optional_string(params, "http_proxy")?,
            https_proxy: optional_string(params, "https_proxy")?,
        })
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        let redirects = if self.allow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(self.timeout)
            .tls_danger_accept_invalid_certs(!self.verify_ssl_cert)
            .no_proxy();
        if let Some(proxy) = &self.http_proxy {
            let p = reqwest::Proxy::http(proxy)
                .map_err(|e| format!("parameter http_proxy: {proxy:?}: {}", error_text(&e)))?;
            builder = builder.proxy(p);
        }
        if let Some(proxy) = &self.https_proxy {
            let p = reqwest::Proxy::https(proxy)
                .map_err(|e| format!("parameter https_proxy: {proxy:?}: {}", error_text(&e)))?;
            builder = builder.proxy(p);
        }
        builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", error_text(&e)))
    }

    async fn send(self) -> (ActionStatus, Value) {
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => return (ActionStatus::Failed, json!({ "error": e })),
        };
        let mut builder = client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some((user, password)) = &self.basic_auth {
            builder = builder.basic_auth(user, password.as_ref());
        }
        if let Some(body) = self.body.clone() {
            builder = builder.body(body);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return self.transport_error(&e),
        };
        let status_code = response.status().as_u16();
        let headers = headers_json(response.headers());
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        let text = match self.read_body(response).await {
            Ok(t) => t,
            Err(failed) => return failed,
        };
        let (body, parsed) = if is_json {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => (v, true),
                Err(_) => (Value::String(text), false),
            }
        } else {
            (Value::String(text), false)
        };
        let status = if SUCCESS_CODES.contains(&status_code) {
            ActionStatus::Succeeded
        } else {
            ActionStatus::Failed
        };
        (
            status,
            json!({
                "status_code": status_code,
                "body": body,
                "parsed": parsed,
                "headers": headers,
            }),
        )
    }

    /// The response body as text (invalid UTF-8 replaced), at most
    /// [`MAX_RESPONSE_BYTES`].
    async fn read_body(
        &self,
        mut response: reqwest::Response,
    ) -> Result<String, (ActionStatus, Value)> {
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        let error = format!(
                            "{} {} answered with a body over {} MiB; not reading it",
                            self.method,
                            self.url,
                            MAX_RESPONSE_BYTES / (1024 * 1024)
                        );
                        return Err((ActionStatus::Failed, json!({ "error": error })));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) => return Err(self.transport_error(&e)),
            }
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> (ActionStatus, Value) {
        if e.is_timeout() {
            let error = format!(
                "{} {} timed out after {} seconds",
                self.method,
                self.url,
                self.timeout.as_secs_f64()
            );
            return (ActionStatus::Timeout, json!({ "error": error }));
        }
        let error = format!("{} {} failed: {}", self.method, self.url, error_text(e));
        (ActionStatus::Failed, json!({ "error": error }))
    }
}

/// Whether a `Content-Type` value is JSON (`application/json`, any parameters).
fn is_json_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Response headers as an object; repeated headers joined with `, ` as Python's requests
/// does.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(name.as_str().to_string(), Value::String(joined));
    }
    Value::Object(out)
}

/// Refuses a URL whose host is on `url_hosts_blacklist` or not on a non-empty
/// `url_hosts_whitelist`.
fn check_host_lists(params: &Map<String, Value>, url: &Url) -> Result<(), String> {
    let blacklist = string_list(params, "url_hosts_blacklist")?;
    let whitelist = string_list(params, "url_hosts_whitelist")?;
    if !blacklist.is_empty() && !whitelist.is_empty() {
        return Err(
            "parameters url_hosts_blacklist and url_hosts_whitelist are mutually exclusive: \
             give only one"
                .into(),
        );
    }
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let listed = |list: &[String]| {
        list.iter().any(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host)
        })
    };
    if listed(&blacklist) {
        return Err(format!("URL \"{url}\" is blacklisted (host {host})"));
    }
    if !whitelist.is_empty() && !listed(&whitelist) {
        return Err(format!("URL \"{url}\" is not whitelisted (host {host})"));
    }
    Ok(())
}

/// JSON type name, for errors.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string, number or boolean as text (what Python's `str()` gives for the first two).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        _ => None,
    }
}

fn string_param<'a>(name: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("parameter {name} must be a string, not {}", kind(v)))
}

fn optional_string(params: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string_param(name, v).map(|s| Some(s.to_string())),
    }
}

fn object_param<'a>(
    params: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(v) => Err(format!(
            "parameter {name} must be an object, not {}",
            kind(v)
        )),
    }
}

fn bool_param(params: &Map<String, Value>, name: &str, default: bool) -> Result<bool, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!(
            "parameter {name} must be a boolean, not {}",
            kind(v)
        )),
    }
}

fn string_list(params: &Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    format!("parameter {name}[{i}] must be a string, not {}", kind(v))
                })
            })
            .collect(),
        Some(v) => Err(format!(
            "parameter {name} must be an array of strings, not {}",
            kind(v)
        )),
    }
}

/// An error with its causes, `outer: inner: innermost`.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn bad_parameters_are_refused_with_the_reason() {
        let cases = [
            (json!({}), "parameter url is required"),
            (
                json!({"url": 5}),
                "parameter url must be a string, not a number",
            ),
            (
                json!({"url": "not a url"}),
                "parameter url: \"not a url\" is not a URL: relative URL without a base",
            ),
            (
                json!({"url": "ftp://example.com/x"}),
                "parameter url: \"ftp://example.com/x\" is not an http or https URL",
            ),
            (
                json!({"url": "http://h/", "method": "GE T"}),
                "parameter method: \"GE T\" is not an HTTP method",
            ),
            (
                json!({"url": "http://h/", "headers": ["a"]}),
                "parameter headers must be an object, not an array",
            ),
            (
                json!({"url": "http://h/", "headers": {"X-A": {"b": 1}}}),
                "parameter headers.X-A: a header value must be text, not an object",
            ),
            (
                json!({"url": "http://h/", "headers": {"bad name": "v"}}),
                "parameter headers: \"bad name\" is not a header name",
            ),
            (
                json!({"url": "http://h/", "timeout": 0}),
                "parameter timeout: 0 is not a positive number of seconds",
            ),
            (
                json!({"url": "http://h/", "timeout": "soon"}),
                "parameter timeout: \"soon\" is not a positive number of seconds",
            ),
            (
                json!({"url": "http://h/", "allow_redirects": "yes"}),
                "parameter allow_redirects must be a boolean, not a string",
            ),
            (
                json!({"url": "http://h/", "url_hosts_blacklist": ["a"], "url_hosts_whitelist": ["b"]}),
                "parameters url_hosts_blacklist and url_hosts_whitelist are mutually exclusive: give only one",
            ),
            (
                json!({"url": "http://h/", "url_hosts_blacklist": "h"}),
                "parameter url_hosts_blacklist must be an array of strings, not a string",
            ),
            (
                json!({"url": "http://h:8080/x", "url_hosts_blacklist": ["h"]}),
                "URL \"http://h:8080/x\" is blacklisted (host h)",
            ),
            (
                json!({"url": "http://[::1]:80/", "url_hosts_blacklist": ["::1"]}),
                "URL \"http://[::1]/\" is blacklisted (host ::1)",
            ),
            (
                json!({"url": "https://other.example/", "url_hosts_whitelist": ["good.example"]}),
                "URL \"https://other.example/\" is not whitelisted (host other.example)",
            ),
        ];
        for (p, expected) in cases {
            let err = Request::from_params(&params(p.clone())).expect_err(&p.to_string());
            assert_eq!(err, expected, "{p}");
        }
    }

    #[test]
    fn the_method_defaults_to_post_with_a_body_and_get_without() {
        let cases = [
            (json!({"url": "http://h/"}), Method::GET),
            (json!({"url": "http://h/", "body": ""}), Method::GET),
            (json!({"url": "http://h/", "body": "x"}), Method::POST),
            (json!({"url": "http://h/", "body": {"a": 1}}), Method::POST),
            (
                json!({"url": "http://h/", "body": "x", "method": "put"}),
                Method::PUT,
            ),
            (
                json!({"url": "http://h/", "method": "PURGE"}),
                Method::from_bytes(b"PURGE").unwrap(),
            ),
        ];
        for (p, method) in cases {
            let r = Request::from_params(&params(p.clone())).unwrap();
            assert_eq!(r.method, method, "{p}");
        }
    }

    #[test]
    fn query_params_and_cookies_are_encoded() {
        let r = Request::from_params(&params(json!({
            "url": "http://h/p?x=1",
            "params": {"q": "a b&c", "n": 2, "many": ["1", "2"]},
            "cookies": {"sid": "abc", "n": 1},
            "whitelisted": true,
            "url_hosts_whitelist": ["h"],
        })))
        .unwrap();
        assert_eq!(r.url.as_str(), "http://h/p?x=1&many=1&many=2&n=2&q=a+b%26c");
        assert_eq!(r.headers.get("cookie").unwrap(), "n=1; sid=abc");
        assert_eq!(r.timeout, Duration::from_secs(60));
        assert!(!r.allow_redirects);
        assert!(r.verify_ssl_cert);
    }

    #[test]
    fn json_content_types_are_recognised() {
        for (value, json) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("text/plain", false),
            ("application/jsonx", false),
            ("application/problem+json", false),
        ] {
            assert_eq!(is_json_content_type(value), json, "{value}");
        }
    }
}
