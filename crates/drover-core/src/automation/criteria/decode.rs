//! Criteria read from a rule file (every error located) or from JSON (API use).

use serde_json::Value as Json;

use super::ops::Op;
use super::pattern::prepare;
use super::{Condition, Criteria, Criterion, OrGroup, Prepared, Search, Segment};
use crate::model::decode::{Fields, entries, join, list, push_inside, string, wrong_type};
use crate::model::error::{Sink, did_you_mean};
use crate::model::load::{Node, Pos, Value};

/// Reads the criteria mapping at `node` (field path `field`); keys are paths under
/// `root` (`trigger`, or `item` inside `search`). `None` when something was wrong.
pub(crate) fn decode(
    sink: &mut Sink<'_>,
    node: &Node,
    field: &str,
    root: &str,
) -> Option<Criteria> {
    if node.value == Value::Null {
        return Some(Criteria::default());
    }
    let before = sink.count();
    let mut criteria = Criteria::default();
    for (key, key_node, value) in entries(sink, node, field)? {
        let here = join(field, key);
        let base = key.split('#').next().unwrap_or(key);
        if base == "or" {
            if let Some(group) = or_group(sink, key, value, &here, root) {
                criteria.groups.push(group);
            }
            continue;
        }
        let Some(path) = key_path(sink, base, key_node, &here, root) else {
            continue;
        };
        if let Some(c) = criterion(sink, key, path, key_node.pos, value, &here) {
            criteria.checks.push(c);
        }
    }
    (sink.count() == before).then_some(criteria)
}

fn or_group(
    sink: &mut Sink<'_>,
    key: &str,
    node: &Node,
    field: &str,
    root: &str,
) -> Option<OrGroup> {
    let items = list(sink, node, field)?;
    if items.is_empty() {
        sink.push(
            node.pos,
            field,
            "an `or` group needs at least one set of criteria",
        );
        return None;
    }
    let mut alternatives = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        if !matches!(item.value, Value::Map(_)) {
            wrong_type(sink, item, &path, "a mapping of criteria");
            ok = false;
            continue;
        }
        match decode(sink, item, &path, root) {
            Some(c) => alternatives.push(c),
            None => ok = false,
        }
    }
    ok.then(|| OrGroup {
        key: key.to_string(),
        alternatives,
    })
}

/// `trigger.a.b[0].c` → segments `a`, `b`, `0`, `c` (below the root).
fn key_path(
    sink: &mut Sink<'_>,
    base: &str,
    key_node: &Node,
    field: &str,
    root: &str,
) -> Option<Vec<Segment>> {
    let rest = if base == root {
        ""
    } else if let Some(rest) = base.strip_prefix(root).and_then(|r| r.strip_prefix('.')) {
        rest
    } else {
        sink.push(
            key_node.pos,
            field,
            format!(
                "criteria keys are paths into the {} and start with `{root}.`; found `{base}`",
                if root == "trigger" {
                    "trigger payload"
                } else {
                    "list item"
                }
            ),
        );
        return None;
    };
    let mut segments = Vec::new();
    if rest.is_empty() {
        return Some(segments);
    }
    for part in rest.split('.') {
        let mut pieces = part.split('[');
        let name = pieces.next().unwrap_or_default();
        let mut parts = vec![name.to_string()];
        for index in pieces {
            match index.strip_suffix(']') {
                Some(i) if i.parse::<usize>().is_ok() => parts.push(i.to_string()),
                _ => {
                    sink.push(
                        key_node.pos,
                        field,
                        format!("bad index in `{part}`: write `name[0]` or `name.0`"),
                    );
                    return None;
                }
            }
        }
        for (i, p) in parts.into_iter().enumerate() {
            if p.is_empty() && !(i == 0 && part.starts_with('[')) {
                sink.push(
                    key_node.pos,
                    field,
                    format!("empty part in the path `{base}`"),
                );
                return None;
            }
            if p.is_empty() {
                continue;
            }
            segments.push(Segment {
                index: p.parse().ok(),
                name: p,
            });
        }
    }
    Some(segments)
}

fn criterion(
    sink: &mut Sink<'_>,
    key: &str,
    path: Vec<Segment>,
    at: Pos,
    node: &Node,
    field: &str,
) -> Option<Criterion> {
    let f = Fields::read(sink, node, at, field, &["type", "pattern", "condition"])?;
    let op_node = f.require(sink, "type")?;
    let name = string(sink, op_node, &f.field("type"))?;
    let Some(op) = Op::parse(name) else {
        let hint = did_you_mean(name, Op::names());
        let reason = if hint.is_empty() {
            format!(
                "unknown operator `{name}`; expected one of {}",
                Op::names().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!("unknown operator `{name}`{hint}")
        };
        sink.push(op_node.pos, &f.field("type"), reason);
        return None;
    };
    let pattern_node = f.entry("pattern").map(|(_, v)| v);
    let condition_node = f.get("condition");
    if op != Op::Search {
        if let Some((k, _)) = f.entry("condition") {
            sink.push(
                k.pos,
                &f.field("condition"),
                "`condition` only applies to `type: search`",
            );
            return None;
        }
        let pattern = match pattern_node {
            Some(n) => n.to_json(),
            None if matches!(op, Op::Exists | Op::NExists) => Json::Null,
            None => {
                sink.push(
                    f.at,
                    field,
                    format!("missing field `pattern` (`{}` compares with it)", op.name()),
                );
                return None;
            }
        };
        let prepared = match prepare(op, &pattern) {
            Ok(p) => p,
            Err(e) => {
                let n = pattern_node.unwrap_or(node);
                match e.column {
                    Some(column) if matches!(n.value, Value::Str(_)) => {
                        push_inside(sink, n, column, &f.field("pattern"), e.reason)
                    }
                    _ => sink.push(n.pos, &f.field("pattern"), e.reason),
                }
                return None;
            }
        };
        return Some(Criterion {
            key: key.to_string(),
            path,
            op,
            pattern,
            prepared,
            search: None,
        });
    }
    let Some(condition_node) = condition_node else {
        sink.push(
            f.at,
            field,
            format!(
                "missing field `condition` (one of {})",
                Condition::NAMES.join(", ")
            ),
        );
        return None;
    };
    let text = string(sink, condition_node, &f.field("condition"))?;
    let Some(condition) = Condition::parse(text) else {
        sink.push(
            condition_node.pos,
            &f.field("condition"),
            format!(
                "unknown search condition `{text}`; expected one of {}{}",
                Condition::NAMES.join(", "),
                did_you_mean(text, Condition::NAMES.iter().copied())
            ),
        );
        return None;
    };
    let Some(pattern_node) = pattern_node.filter(|n| n.value != Value::Null) else {
        sink.push(
            f.at,
            field,
            "missing field `pattern` (the criteria each item is tested with)",
        );
        return None;
    };
    if !matches!(pattern_node.value, Value::Map(_)) {
        wrong_type(
            sink,
            pattern_node,
            &f.field("pattern"),
            "a mapping of criteria over `item.…`",
        );
        return None;
    }
    let children = decode(sink, pattern_node, &f.field("pattern"), "item")?;
    Some(Criterion {
        key: key.to_string(),
        path,
        op,
        pattern: pattern_node.to_json(),
        prepared: Prepared::Plain,
        search: Some(Box::new(Search {
            condition,
            children,
        })),
    })
}

/// A JSON value as a YAML tree (every position at 1:1), to share the decoder.
fn to_node(v: &Json) -> Node {
    let value = match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i.into()),
            None => match n.as_u64() {
                Some(u) => Value::Int(u.into()),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::Seq(items.iter().map(to_node).collect()),
        Json::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (to_node(&Json::String(k.clone())), to_node(v)))
                .collect(),
        ),
    };
    Node {
        value,
        pos: Pos { line: 1, column: 1 },
    }
}

impl Criteria {
    /// Criteria from JSON (StackStorm's API shape, plus `or` groups); the error lists
    /// every problem as `field: reason`.
    pub fn from_json(v: &Json) -> Result<Criteria, String> {
        let node = to_node(v);
        let mut errors = Vec::new();
        let mut sink = Sink {
            file: "criteria",
            text: "",
            errors: &mut errors,
        };
        match decode(&mut sink, &node, "criteria", "trigger") {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.reason))
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}
