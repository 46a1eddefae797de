//! Rule criteria with StackStorm's semantics, plus drover's OR groups.
//!
//! Criteria are a mapping `key -> {type, pattern}`: the key is a path into the trigger
//! payload (`trigger.a.b`, list indexes as parts: `trigger.items.0`), a `#suffix` lets
//! one field be tested twice (`trigger.x#1`). All criteria must pass. drover adds keys
//! `or` (or `or#suffix`) holding a list of criteria mappings, at least one of which must
//! pass.
//!
//! - [`ops`] — the operators and the Python semantics they inherit;
//! - [`pattern`] — patterns compiled once (regexes, globs, periods);
//! - `decode` — reading criteria from a rule file or JSON ([`Criteria::from_json`]);
//! - `explain` — [`Check`]s, what `drover rules test` prints.

mod decode;
mod explain;
pub mod ops;
pub mod pattern;

use serde_json::Value as Json;

pub(crate) use decode::decode;
pub use explain::Check;

use ops::{Mismatch, Op, lower, py_eq, py_in, py_lt, py_truthy, strings};
use pattern::{Prepared, is_template, parse_timestamp_ms, prepare};

/// A set of criteria: all [`Criterion`]s, and one alternative of every OR group.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    checks: Vec<Criterion>,
    groups: Vec<OrGroup>,
}

/// An OR group: `or: [criteria, …]`.
#[derive(Debug, Clone)]
struct OrGroup {
    /// The key as written (`or`, `or#2`).
    key: String,
    alternatives: Vec<Criteria>,
}

/// One `key: {type, pattern}` criterion.
#[derive(Debug, Clone)]
pub struct Criterion {
    /// The key as written, with its `#suffix`.
    pub key: String,
    path: Vec<Segment>,
    /// The operator.
    pub op: Op,
    /// The pattern as written (or as rendered).
    pub pattern: Json,
    prepared: Prepared,
    search: Option<Box<Search>>,
}

/// The pattern of a `search` criterion.
#[derive(Debug, Clone)]
struct Search {
    condition: Condition,
    children: Criteria,
}

/// How `search` combines items and child criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Some item matches every child criterion.
    Any,
    /// Every item matches every child criterion.
    All,
    /// Every item matches some child criterion.
    All2Any,
    /// Some item matches some child criterion.
    Any2Any,
}

impl Condition {
    /// Every condition name.
    pub const NAMES: &'static [&'static str] = &["any", "all", "all2any", "any2any"];

    fn parse(s: &str) -> Option<Condition> {
        match s {
            "any" => Some(Condition::Any),
            "all" => Some(Condition::All),
            "all2any" => Some(Condition::All2Any),
            "any2any" => Some(Condition::Any2Any),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Condition::Any => "any",
            Condition::All => "all",
            Condition::All2Any => "all2any",
            Condition::Any2Any => "any2any",
        }
    }
}

/// One part of a key's path: a mapping key, or a list index when it is a number.
#[derive(Debug, Clone)]
struct Segment {
    name: String,
    index: Option<usize>,
}

/// Null, for values that are absent (StackStorm sees `None` either way).
static NULL: Json = Json::Null;

impl Criteria {
    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.groups.is_empty()
    }

    /// The plain criteria (OR groups aside), in the order written.
    pub fn criteria(&self) -> &[Criterion] {
        &self.checks
    }

    /// Whether the trigger `payload` passes, at time `now_ms` (for `timediff_*`).
    ///
    /// As in StackStorm, criteria never pass against an empty payload.
    pub fn evaluate(&self, payload: &Json, now_ms: i64) -> bool {
        if !self.is_empty() && !py_truthy(payload) {
            return false;
        }
        self.passes(payload, now_ms)
    }

    fn passes(&self, root: &Json, now_ms: i64) -> bool {
        self.checks.iter().all(|c| c.passes(root, now_ms))
            && self
                .groups
                .iter()
                .all(|g| g.alternatives.iter().any(|a| a.passes(root, now_ms)))
    }

    /// `search`'s "some child criterion passes" (an OR group counts as one).
    fn any_passes(&self, root: &Json, now_ms: i64) -> bool {
        self.checks.iter().any(|c| c.passes(root, now_ms))
            || self
                .groups
                .iter()
                .any(|g| g.alternatives.iter().any(|a| a.passes(root, now_ms)))
    }

    /// Whether some pattern is a Jinja template, to be [`render`](Self::render)ed
    /// against the payload and datastore before matching.
    pub fn has_templates(&self) -> bool {
        self.checks.iter().any(|c| {
            is_template(&c.pattern)
                || c.search
                    .as_ref()
                    .is_some_and(|s| s.children.has_templates())
        }) || self
            .groups
            .iter()
            .any(|g| g.alternatives.iter().any(Criteria::has_templates))
    }

    /// These criteria with every template pattern replaced by `f(template)`, and the
    /// patterns made ready again (regexes recompiled).
    ///
    /// Templates inside a `search` pattern are rendered once, with the shell's context,
    /// not once per list item.
    pub fn render(
        &self,
        f: &mut dyn FnMut(&str) -> Result<Json, String>,
    ) -> Result<Criteria, String> {
        let mut checks = Vec::with_capacity(self.checks.len());
        for c in &self.checks {
            let mut c = c.clone();
            if let Json::String(text) = &c.pattern
                && is_template(&c.pattern)
            {
                let rendered = f(text).map_err(|e| format!("{}: {e}", c.key))?;
                c.prepared =
                    prepare(c.op, &rendered).map_err(|e| format!("{}: {}", c.key, e.reason))?;
                c.pattern = rendered;
            }
            if let Some(search) = &mut c.search {
                search.children = search.children.render(f)?;
            }
            checks.push(c);
        }
        let mut groups = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let mut alternatives = Vec::with_capacity(g.alternatives.len());
            for a in &g.alternatives {
                alternatives.push(a.render(f)?);
            }
            groups.push(OrGroup {
                key: g.key.clone(),
                alternatives,
            });
        }
        Ok(Criteria { checks, groups })
    }
}

impl Criterion {
    /// The payload value at this criterion's path, if present.
    fn lookup<'p>(&self, root: &'p Json) -> Option<&'p Json> {
        let mut cur = root;
        for seg in &self.path {
            cur = match cur {
                Json::Object(map) => map.get(&seg.name)?,
                Json::Array(items) => items.get(seg.index?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn passes(&self, root: &Json, now_ms: i64) -> bool {
        let value = self.lookup(root).unwrap_or(&NULL);
        self.apply(value, now_ms) == Ok(true)
    }

    /// The operator applied to `value` (null when absent).
    fn apply(&self, value: &Json, now_ms: i64) -> Result<bool, Mismatch> {
        let pattern = &self.pattern;
        match self.op {
            Op::Exists => return Ok(!value.is_null()),
            Op::NExists => return Ok(value.is_null()),
            Op::NEquals => return Ok(!py_eq(value, pattern)),
            _ if pattern.is_null() => return Ok(false),
            _ => {}
        }
        let folded = || match (&self.prepared, value) {
            (Prepared::Lower(p), Json::String(v)) => Ok((lower(v), p.as_str())),
            _ => Err(Mismatch),
        };
        match self.op {
            Op::Equals => Ok(py_eq(value, pattern)),
            Op::IEquals => folded().map(|(v, p)| v == p),
            Op::Contains => py_in(pattern, value),
            Op::NContains => py_in(pattern, value).map(|b| !b),
            Op::IContains => folded().map(|(v, p)| v.contains(p)),
            Op::INContains => folded().map(|(v, p)| !v.contains(p)),
            Op::StartsWith => strings(value, pattern).map(|(v, p)| v.starts_with(p)),
            Op::IStartsWith => folded().map(|(v, p)| v.starts_with(p)),
            Op::EndsWith => strings(value, pattern).map(|(v, p)| v.ends_with(p)),
            Op::IEndsWith => folded().map(|(v, p)| v.ends_with(p)),
            Op::LessThan => py_lt(value, pattern),
            Op::GreaterThan => py_lt(pattern, value),
            Op::MatchWildcard | Op::MatchRegex | Op::Regex | Op::IRegex => {
                match (&self.prepared, value) {
                    (Prepared::Regex(r), Json::String(v)) => Ok(r.is_match(v)),
                    _ => Err(Mismatch),
                }
            }
            Op::TimediffLt | Op::TimediffGt => {
                let (Prepared::Seconds(period), Json::String(v)) = (&self.prepared, value) else {
                    return Err(Mismatch);
                };
                let at = parse_timestamp_ms(v).ok_or(Mismatch)?;
                let age = (now_ms - at) as f64 / 1000.0;
                Ok(if self.op == Op::TimediffLt {
                    age < *period
                } else {
                    age > *period
                })
            }
            Op::Inside => py_in(value, pattern),
            Op::NInside => py_in(value, pattern).map(|b| !b),
            Op::Search => self.search_items(value, now_ms).map(|(ok, _, _)| ok),
            Op::Exists | Op::NExists | Op::NEquals => Ok(false),
        }
    }

    /// `search`: (result, items matching, items). A mapping counts as a one-item list,
    /// a string as the list of its characters; anything else is not iterable.
    fn search_items(&self, value: &Json, now_ms: i64) -> Result<(bool, usize, usize), Mismatch> {
        let search = self.search.as_deref().ok_or(Mismatch)?;
        let item_ok = |item: &Json| match search.condition {
            Condition::Any | Condition::All => search.children.passes(item, now_ms),
            Condition::All2Any | Condition::Any2Any => search.children.any_passes(item, now_ms),
        };
        let results: Vec<bool> = match value {
            Json::Object(_) => vec![item_ok(value)],
            Json::Array(items) => items.iter().map(item_ok).collect(),
            Json::String(s) => s
                .chars()
                .map(|c| item_ok(&Json::String(c.to_string())))
                .collect(),
            _ => return Err(Mismatch),
        };
        let hits = results.iter().filter(|b| **b).count();
        let ok = match search.condition {
            Condition::Any | Condition::Any2Any => hits > 0,
            Condition::All | Condition::All2Any => hits == results.len(),
        };
        Ok((ok, hits, results.len()))
    }
}

#[cfg(test)]
mod tests;
