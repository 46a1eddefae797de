//! [`ProviderError`] and the helpers that keep its messages on one line.

use std::time::Duration;

/// Why a provider could not list its hosts. Its message is one line for operators:
/// the provider type first, then the URL or command, then what went wrong (HTTP status
/// and the remote error code and message, the missing path, the exit code and stderr).
/// Secrets (passwords, keys, tokens) never appear in it.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider is not of the type the called function handles.
    #[error("provider `{name}` is of type {found}, not {expected}")]
    KindMismatch {
        /// Provider name.
        name: String,
        /// Type the function handles.
        expected: &'static str,
        /// Type the provider has.
        found: &'static str,
    },
    /// A credential's environment variable is unset, empty or not UTF-8.
    #[error("{provider}: environment variable {var} (named by {setting}) is not set")]
    MissingEnv {
        /// Provider type.
        provider: &'static str,
        /// The variable.
        var: String,
        /// The provider setting that names it (e.g. `secret_key_env`).
        setting: &'static str,
    },
    /// A configured or remote-supplied URL cannot be used.
    #[error("{provider}: invalid URL `{url}`: {detail}")]
    InvalidUrl {
        /// Provider type.
        provider: &'static str,
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The request could not be sent or its answer could not be read.
    #[error("{provider}: {method} {url} failed: {detail}")]
    Transport {
        /// Provider type.
        provider: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The error and its causes.
        detail: String,
    },
    /// The remote answered with an error status.
    #[error("{provider}: {method} {url} answered HTTP {status}{}", remote_detail(.code, .message))]
    Remote {
        /// Provider type.
        provider: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The status.
        status: reqwest::StatusCode,
        /// The remote error code (EC2 `Code`, Keystone `title`, Nova fault name).
        code: Option<String>,
        /// The remote error message (or an excerpt of a body that had none).
        message: Option<String>,
    },
    /// The answer is not XML or JSON, or not of the expected shape.
    #[error("{provider}: {method} {url}: {detail}")]
    Malformed {
        /// Provider type.
        provider: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A value the provider needs is missing from a successful answer.
    #[error("{provider}: {method} {url}: response has no `{path}`")]
    MissingField {
        /// Provider type.
        provider: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// Where the value should be (`token.catalog`, `servers.3.id`,
        /// `X-Subject-Token` header…).
        path: String,
    },
    /// Keystone's token catalog has no usable compute endpoint.
    #[error(
        "openstack: POST {url}: the token catalog has no `compute` endpoint with interface `{interface}`{}",
        region_suffix(.region)
    )]
    NoComputeEndpoint {
        /// The Keystone tokens URL.
        url: String,
        /// Interface asked for.
        interface: String,
        /// Region asked for, if any.
        region: Option<String>,
    },
    /// Pagination returned a page marker that was already followed.
    #[error("{provider}: {url}: pagination repeats {marker}; stopped")]
    PageLoop {
        /// Provider type.
        provider: &'static str,
        /// Request URL.
        url: String,
        /// The repeated token or link.
        marker: String,
    },
    /// An `exec` provider has an empty command.
    #[error("exec: the command is empty")]
    EmptyCommand,
    /// An `exec` command could not be started or waited for.
    #[error("exec: cannot run `{command}`: {detail}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        detail: String,
    },
    /// An `exec` command did not finish in time (it was killed).
    #[error("exec: `{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// Its time limit.
        timeout: Duration,
    },
    /// An `exec` command failed.
    #[error("exec: `{command}` {status}; stderr: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// `exited with code N` or `was killed by signal N`.
        status: String,
        /// The last lines of its stderr, joined with ` | `.
        stderr: String,
    },
    /// An `exec` command's output is not JSON.
    #[error("exec: output of `{command}` is not JSON: {detail}")]
    NotJson {
        /// The command line.
        command: String,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// The `list` path of an `exec` mapping does not lead to an array.
    #[error("exec: output of `{command}` has no array at list path `{path}` (found {found})")]
    NoList {
        /// The command line.
        command: String,
        /// The `map.list` path (empty: the output itself).
        path: String,
        /// What is there instead (`nothing`, `an object`…).
        found: String,
    },
    /// A record of an `exec` command's output lacks a required value.
    #[error("exec: record {index} in the output of `{command}` has no {field} at path `{path}`")]
    RecordField {
        /// The command line.
        command: String,
        /// The record's index in the list.
        index: usize,
        /// `id` or `name`.
        field: &'static str,
        /// The path that found nothing usable.
        path: String,
    },
}

fn remote_detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(": {c}: {m}"),
        (Some(c), None) => format!(": {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

fn region_suffix(region: &Option<String>) -> String {
    region
        .as_deref()
        .map(|r| format!(" in region `{r}`"))
        .unwrap_or_default()
}

/// Collapses all whitespace runs to one space and cuts the text at `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max).collect();
    cut.push('…');
    cut
}

/// A one-line excerpt of an error body that has no structured error (HTML, text), with
/// markup tags removed; `None` when nothing is left.
pub(crate) fn body_excerpt(body: &str) -> Option<String> {
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let line = one_line(&text, 200);
    (!line.is_empty()).then_some(line)
}

/// A `reqwest` error and its causes on one line, without the URL (the message has it).
pub(crate) fn transport_detail(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    one_line(&parts.join(": "), 400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_strips_html_and_newlines() {
        let html = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Boom</h1>";
        assert_eq!(
            body_excerpt(html).as_deref(),
            Some("500 Internal Server Error Boom")
        );
        assert_eq!(body_excerpt(" \n "), None);
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn remote_message_is_one_line() {
        let e = ProviderError::Remote {
            provider: "ec2",
            method: "POST",
            url: "http://x/".into(),
            status: reqwest::StatusCode::UNAUTHORIZED,
            code: Some("AuthFailure".into()),
            message: Some("no".into()),
        };
        assert_eq!(
            e.to_string(),
            "ec2: POST http://x/ answered HTTP 401 Unauthorized: AuthFailure: no"
        );
    }
}
