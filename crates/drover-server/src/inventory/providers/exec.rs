//! The `exec` provider: a command (no shell) that prints JSON, read through a
//! [`FieldMap`].

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use drover_core::model::FieldMap;
use drover_proto::inventory::DiscoveredHost;
use serde_json::Value;

use super::ProviderError;
use super::error::one_line;
use super::json_path::{describe, lookup, scalar, scalar_at};

/// How many of the last stderr lines a failure shows.
const STDERR_LINES: usize = 5;

/// Runs `command` with `timeout` (it is killed when the time is up) and maps its JSON
/// output to hosts.
pub(crate) async fn fetch(
    command: &[String],
    timeout: Duration,
    map: &FieldMap,
) -> Result<Vec<DiscoveredHost>, ProviderError> {
    let (program, args) = command.split_first().ok_or(ProviderError::EmptyCommand)?;
    let shown = show_command(command);
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProviderError::Spawn {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
    // On timeout the future, and with it the child, is dropped: kill_on_drop kills it.
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(result) => result.map_err(|e| ProviderError::Spawn {
            command: shown.clone(),
            detail: e.to_string(),
        })?,
        Err(_) => {
            return Err(ProviderError::Timeout {
                command: shown,
                timeout,
            });
        }
    };
    if !output.status.success() {
        return Err(ProviderError::Failed {
            command: shown,
            status: describe_status(output.status),
            stderr: stderr_tail(&output.stderr),
        });
    }
    let value: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| ProviderError::NotJson {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
    records(&value, map, &shown)
}

/// Maps the parsed output to hosts. `command` is only used in errors.
pub(crate) fn records(
    output: &Value,
    map: &FieldMap,
    command: &str,
) -> Result<Vec<DiscoveredHost>, ProviderError> {
    let list = lookup(output, &map.list);
    let Some(Value::Array(items)) = list else {
        return Err(ProviderError::NoList {
            command: command.to_string(),
            path: map.list.clone(),
            found: describe(list).to_string(),
        });
    };
    let mapped: BTreeSet<&str> = [Some(&map.id), Some(&map.name)]
        .into_iter()
        .chain([map.address.as_ref(), map.region.as_ref()])
        .chain(map.labels.values().map(Some))
        .flatten()
        .map(String::as_str)
        .collect();
    items
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let required = |field: &'static str, path: &str| {
                scalar_at(record, path)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| ProviderError::RecordField {
                        command: command.to_string(),
                        index,
                        field,
                        path: path.to_string(),
                    })
            };
            Ok(DiscoveredHost {
                id: required("id", &map.id)?,
                name: required("name", &map.name)?,
                address: map.address.as_deref().and_then(|p| scalar_at(record, p)),
                region: map.region.as_deref().and_then(|p| scalar_at(record, p)),
                labels: labels(record, map),
                attributes: attributes(record, &mapped),
            })
        })
        .collect()
}

/// `labels_from` entries first, then the explicit `labels` (which win).
fn labels(record: &Value, map: &FieldMap) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(Value::Object(from)) = map.labels_from.as_deref().and_then(|p| lookup(record, p)) {
        for (key, value) in from {
            if let Some(text) = scalar(value) {
                labels.insert(key.clone(), text);
            }
        }
    }
    for (label, path) in &map.labels {
        if let Some(text) = scalar_at(record, path) {
            labels.insert(label.clone(), text);
        }
    }
    labels
}

/// Top-level string and number fields that no mapping path names.
fn attributes(record: &Value, mapped: &BTreeSet<&str>) -> BTreeMap<String, String> {
    let Value::Object(fields) = record else {
        return BTreeMap::new();
    };
    fields
        .iter()
        .filter(|(key, value)| {
            matches!(value, Value::String(_) | Value::Number(_)) && !mapped.contains(key.as_str())
        })
        .filter_map(|(key, value)| Some((key.clone(), scalar(value)?)))
        .collect()
}

/// The command line as shown in errors: arguments with spaces or quotes are quoted.
fn show_command(command: &[String]) -> String {
    command
        .iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            {
                format!("{arg:?}")
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("failed ({status})"),
    }
}

/// The last non-empty lines of stderr, joined with ` | `, at most 500 characters.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "(empty)".to_string();
    }
    let tail = &lines[lines.len().saturating_sub(STDERR_LINES)..];
    one_line(&tail.join(" | "), 500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map() -> FieldMap {
        FieldMap {
            list: "data.servers".into(),
            id: "uuid".into(),
            name: "hostname".into(),
            address: Some("addresses.private.0.addr".into()),
            region: None,
            labels: [("tier".to_string(), "meta.tier".to_string())].into(),
            labels_from: Some("tags".into()),
        }
    }

    #[test]
    fn maps_records() {
        let out = json!({"data": {"servers": [{
            "uuid": "u-1", "hostname": "web-1", "flavor": "m1", "vcpus": 2, "up": true,
            "addresses": {"private": [{"addr": "10.0.0.1"}]},
            "meta": {"tier": "front"}, "tags": {"role": "web", "n": 3, "deep": {}}
        }]}});
        let hosts = records(&out, &map(), "cmd").unwrap();
        assert_eq!(hosts.len(), 1);
        let h = &hosts[0];
        assert_eq!((h.id.as_str(), h.name.as_str()), ("u-1", "web-1"));
        assert_eq!(h.address.as_deref(), Some("10.0.0.1"));
        assert_eq!(h.labels["role"], "web");
        assert_eq!(h.labels["n"], "3");
        assert_eq!(h.labels["tier"], "front");
        assert!(!h.labels.contains_key("deep"));
        // uuid and hostname are mapped, booleans and objects are not attributes.
        assert_eq!(
            h.attributes,
            [
                ("flavor".to_string(), "m1".to_string()),
                ("vcpus".to_string(), "2".to_string())
            ]
            .into()
        );
    }

    #[test]
    fn stderr_tail_keeps_last_lines() {
        assert_eq!(stderr_tail(b"a\nb\n\nc\nd\ne\nf\n"), "b | c | d | e | f");
        assert_eq!(stderr_tail(b""), "(empty)");
    }

    #[test]
    fn command_is_shown_quoted() {
        let cmd = ["sh".to_string(), "-c".to_string(), "echo hi".to_string()];
        assert_eq!(show_command(&cmd), "sh -c \"echo hi\"");
    }
}
