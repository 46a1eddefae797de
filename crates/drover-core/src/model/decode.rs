//! Reading typed values out of [`Node`]s, recording every problem instead of
//! stopping at the first.
//!
//! Each reader returns `Some(value)` when the node was good, and otherwise records
//! an error (at the node, under the given field path) and returns `None`.

use std::time::Duration;

use super::error::{Sink, did_you_mean};
use super::load::{Node, Pos, Value, content_offset, raw_scalar};
use crate::duration::parse_duration;

/// The entries of a mapping whose keys are field names.
pub(crate) struct Fields<'n> {
    /// Dotted path of the mapping itself (`services.web.rollout`).
    pub path: String,
    /// Where to report a missing field: the key that introduced the mapping, or the
    /// document's start.
    pub at: Pos,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// Reads `node` as a mapping whose keys must all be in `allowed`.
    ///
    /// Non-string keys and unknown keys are reported (with a suggestion when one of
    /// `allowed` is close) and left out. Returns `None` when `node` is no mapping.
    pub fn read(
        sink: &mut Sink<'_>,
        node: &'n Node,
        at: Pos,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            sink.push(
                node.pos,
                path,
                format!("expected a mapping, found {}", node.value.describe()),
            );
            return None;
        };
        let mut kept = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Value::Str(name) = &key.value else {
                sink.push(
                    key.pos,
                    path,
                    format!("keys must be strings, found {}", key.value.describe()),
                );
                continue;
            };
            if let Some(&(_, first, _)) = kept.iter().find(|(n, _, _)| *n == name) {
                sink.push(key.pos, &join(path, name), repeated_key(name, first));
                continue;
            }
            if !allowed.contains(&name.as_str()) {
                let hint = did_you_mean(name, allowed.iter().copied());
                let reason = if hint.is_empty() {
                    format!(
                        "unknown field `{name}`; expected one of {}",
                        allowed.join(", ")
                    )
                } else {
                    format!("unknown field `{name}`{hint}")
                };
                sink.push(key.pos, &join(path, name), reason);
                continue;
            }
            kept.push((name.as_str(), key, value));
        }
        Some(Fields {
            path: path.to_string(),
            at,
            entries: kept,
        })
    }

    /// The value of `key`, unless it is absent or null.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key)
            .map(|(_, v)| v)
            .filter(|v| v.value != Value::Null)
    }

    /// The key node and value of `key`, if present (also when null).
    pub fn entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(name, _, _)| *name == key)
            .map(|&(_, k, v)| (k, v))
    }

    /// The value of `key`, recording a "missing field" error when it is absent.
    pub fn require(&self, sink: &mut Sink<'_>, key: &str) -> Option<&'n Node> {
        match self.entry(key) {
            Some((_, v)) => Some(v),
            None => {
                sink.push(self.at, &self.path, format!("missing field `{key}`"));
                None
            }
        }
    }

    /// Field `key` read as a nested mapping with keys from `allowed`; `None` when it
    /// is absent or null (or not a mapping, which is reported).
    pub fn sub(&self, sink: &mut Sink<'_>, key: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let (k, v) = self.entry(key)?;
        if v.value == Value::Null {
            return None;
        }
        Fields::read(sink, v, k.pos, &self.field(key), allowed)
    }

    /// Like [`sub`](Self::sub), but a missing or null mapping is an error.
    pub fn require_sub(
        &self,
        sink: &mut Sink<'_>,
        key: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let (k, v) = match self.entry(key) {
            Some(entry) => entry,
            None => {
                sink.push(self.at, &self.path, format!("missing field `{key}`"));
                return None;
            }
        };
        Fields::read(sink, v, k.pos, &self.field(key), allowed)
    }

    /// Which of `keys` are present, in the order they were written.
    pub fn present(&self, keys: &[&str]) -> Vec<(&'n str, &'n Node, &'n Node)> {
        let mut found: Vec<_> = self
            .entries
            .iter()
            .filter(|(name, _, _)| keys.contains(name))
            .copied()
            .collect();
        found.sort_by_key(|(_, k, _)| k.pos);
        found
    }

    /// Path of field `key` of this mapping.
    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

/// `path.key`, or `key` alone at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Reports "expected WHAT, found …" at `node`.
pub(crate) fn wrong_type(sink: &mut Sink<'_>, node: &Node, field: &str, what: &str) {
    let found = match &node.value {
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            format!(
                "{} `{}`",
                node.value.describe(),
                raw_scalar(sink.text, node.pos)
            )
        }
        other => other.describe().to_string(),
    };
    sink.push(node.pos, field, format!("expected {what}, found {found}"));
}

/// Reports `reason` at column `inner` (1-based) of the string scalar at `node`.
pub(crate) fn push_inside(
    sink: &mut Sink<'_>,
    node: &Node,
    inner: usize,
    field: &str,
    reason: String,
) {
    let offset = content_offset(sink.text, node.pos);
    let pos = Pos {
        line: node.pos.line,
        column: node.pos.column + offset + inner.saturating_sub(1),
    };
    sink.push(pos, field, reason);
}

/// A string.
pub(crate) fn string<'n>(sink: &mut Sink<'_>, node: &'n Node, field: &str) -> Option<&'n str> {
    match &node.value {
        Value::Str(s) => Some(s),
        _ => {
            wrong_type(sink, node, field, "a string");
            None
        }
    }
}

/// A string or an integer (as text); booleans and other numbers must be quoted.
pub(crate) fn text(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(_) | Value::Float(_) => {
            let raw = raw_scalar(sink.text, node.pos);
            sink.push(
                node.pos,
                field,
                format!(
                    "expected a string, found {} `{raw}`; quote it: `\"{raw}\"`",
                    node.value.describe()
                ),
            );
            None
        }
        _ => {
            wrong_type(sink, node, field, "a string");
            None
        }
    }
}

/// An integer within `min..=max`.
pub(crate) fn integer(
    sink: &mut Sink<'_>,
    node: &Node,
    field: &str,
    min: i128,
    max: i128,
) -> Option<i128> {
    let Value::Int(i) = node.value else {
        wrong_type(sink, node, field, "an integer");
        return None;
    };
    if i < min || i > max {
        let reason = if max == i128::from(u32::MAX) {
            format!("must be at least {min}, found {i}")
        } else {
            format!("must be between {min} and {max}, found {i}")
        };
        sink.push(node.pos, field, reason);
        return None;
    }
    Some(i)
}

/// A `u32` within `min..=max`.
pub(crate) fn uint(
    sink: &mut Sink<'_>,
    node: &Node,
    field: &str,
    min: u32,
    max: u32,
) -> Option<u32> {
    integer(sink, node, field, min.into(), max.into()).map(|i| i as u32)
}

/// `true` or `false` (YAML 1.2: `yes`, `on` and friends are strings, refused here).
pub(crate) fn boolean(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) => {
            let hint = match s.to_ascii_lowercase().as_str() {
                "yes" | "y" | "on" => "; did you mean `true`?",
                "no" | "n" | "off" => "; did you mean `false`?",
                _ => "",
            };
            sink.push(
                node.pos,
                field,
                format!("expected `true` or `false`, found the string `{s}`{hint}"),
            );
            None
        }
        _ => {
            wrong_type(sink, node, field, "`true` or `false`");
            None
        }
    }
}

/// A human duration (`10s`, `1m30s`; see [`crate::duration`]).
pub(crate) fn duration(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<Duration> {
    let text = match &node.value {
        Value::Str(s) => s.clone(),
        // `10` or `1.5` without a unit: let the duration parser suggest one.
        Value::Int(_) | Value::Float(_) => raw_scalar(sink.text, node.pos),
        _ => {
            wrong_type(sink, node, field, "a duration such as `10s`");
            return None;
        }
    };
    match parse_duration(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            push_inside(sink, node, e.column, field, e.message);
            None
        }
    }
}

/// One of the words in `choices`.
pub(crate) fn choice<'c>(
    sink: &mut Sink<'_>,
    node: &Node,
    field: &str,
    choices: &[&'c str],
) -> Option<&'c str> {
    let Value::Str(s) = &node.value else {
        wrong_type(sink, node, field, &format!("one of {}", choices.join(", ")));
        return None;
    };
    if let Some(c) = choices.iter().find(|c| **c == s) {
        return Some(c);
    }
    let hint = did_you_mean(s, choices.iter().copied());
    sink.push(
        node.pos,
        field,
        format!(
            "unknown value `{s}`; expected one of {}{hint}",
            choices.join(", ")
        ),
    );
    None
}

/// The items of a list.
pub(crate) fn list<'n>(sink: &mut Sink<'_>, node: &'n Node, field: &str) -> Option<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            wrong_type(sink, node, field, "a list");
            None
        }
    }
}

/// A list of strings with their indices and nodes; bad items are reported one by one
/// (`field[i]`) and left out.
pub(crate) fn string_list<'n>(
    sink: &mut Sink<'_>,
    node: &'n Node,
    field: &str,
) -> Option<Vec<(usize, &'n str, &'n Node)>> {
    let items = list(sink, node, field)?;
    Some(
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                string(sink, item, &format!("{field}[{i}]")).map(|s| (i, s, item))
            })
            .collect(),
    )
}

/// The entries of a mapping with free-form string keys (`ports`, `env`, `labels`);
/// non-string keys are reported and left out.
pub(crate) fn entries<'n>(
    sink: &mut Sink<'_>,
    node: &'n Node,
    field: &str,
) -> Option<Vec<(&'n str, &'n Node, &'n Node)>> {
    let Value::Map(entries) = &node.value else {
        wrong_type(sink, node, field, "a mapping");
        return None;
    };
    let mut kept: Vec<(&str, &Node, &Node)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match &k.value {
            Value::Str(name) => {
                if let Some(&(_, first, _)) = kept.iter().find(|(n, _, _)| n == name) {
                    sink.push(k.pos, &format!("{field}.{name}"), repeated_key(name, first));
                } else {
                    kept.push((name, k, v));
                }
            }
            other => sink.push(
                k.pos,
                field,
                format!("keys must be strings, found {}", other.describe()),
            ),
        }
    }
    Some(kept)
}

/// "duplicate key" at a repeated mapping key.
fn repeated_key(name: &str, first: &Node) -> String {
    format!("duplicate key `{name}`; first at line {}", first.pos.line)
}
