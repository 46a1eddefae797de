//! Why criteria pass or fail, one [`Check`] per criterion: what `drover rules test`
//! prints.

use serde::Serialize;
use serde_json::Value as Json;

use super::ops::{Mismatch, Op, py_truthy};
use super::pattern::Prepared;
use super::{Criteria, Criterion, NULL};

/// The outcome of one criterion (or one OR group) against a payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The criterion's key as written (`trigger.status`, `trigger.x#2`), or `or` for the
    /// summary of an OR group.
    pub key: String,
    /// The operator's long name (`equals`), or `or`.
    pub operator: String,
    /// The pattern compared with.
    pub pattern: Json,
    /// The payload value found at the key; `None` when absent.
    pub value: Option<Json>,
    /// Whether it passed.
    pub passed: bool,
    /// The check in words: `trigger.status is "down", equals "up": no`.
    pub reason: String,
    /// The OR alternative this check belongs to (`or[1]`, `or[1].or#b[0]`); `None` at
    /// the top level.
    pub group: Option<String>,
}

/// JSON text, shortened past 80 characters.
fn show(v: &Json) -> String {
    let text = v.to_string();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl Criteria {
    /// One [`Check`] per criterion, and per OR group a summary after its alternatives'
    /// checks; evaluated like [`evaluate`](Self::evaluate), without stopping early.
    pub fn explain(&self, payload: &Json, now_ms: i64) -> Vec<Check> {
        let mut out = Vec::new();
        if !self.is_empty() && !py_truthy(payload) {
            out.push(Check {
                key: "trigger".into(),
                operator: String::new(),
                pattern: Json::Null,
                value: Some(payload.clone()),
                passed: false,
                reason: "the trigger payload is empty: rules with criteria never match it".into(),
                group: None,
            });
        }
        self.explain_into(payload, now_ms, None, &mut out);
        out
    }

    /// Appends the checks; returns whether everything passed.
    fn explain_into(
        &self,
        root: &Json,
        now_ms: i64,
        group: Option<&str>,
        out: &mut Vec<Check>,
    ) -> bool {
        let mut all = true;
        for c in &self.checks {
            let check = c.explain(root, now_ms, group);
            all &= check.passed;
            out.push(check);
        }
        for g in &self.groups {
            let mut passing = 0;
            for (i, alt) in g.alternatives.iter().enumerate() {
                let name = match group {
                    Some(parent) => format!("{parent}.{}[{i}]", g.key),
                    None => format!("{}[{i}]", g.key),
                };
                if alt.explain_into(root, now_ms, Some(&name), out) {
                    passing += 1;
                }
            }
            let passed = passing > 0;
            all &= passed;
            out.push(Check {
                key: g.key.clone(),
                operator: "or".into(),
                pattern: Json::Null,
                value: None,
                passed,
                reason: format!(
                    "{}: {passing} of {} alternatives pass: {}",
                    g.key,
                    g.alternatives.len(),
                    yes(passed)
                ),
                group: group.map(str::to_string),
            });
        }
        all
    }
}

impl Criterion {
    fn explain(&self, root: &Json, now_ms: i64, group: Option<&str>) -> Check {
        let found = self.lookup(root);
        let value = found.unwrap_or(&NULL);
        let base = self.key.split('#').next().unwrap_or(&self.key);
        let mut reason = match found {
            Some(v) => format!("{base} is {}, {}", show(v), self.op.name()),
            None => format!("{base} not found, {}", self.op.name()),
        };
        if !matches!(self.op, Op::Exists | Op::NExists) {
            reason.push(' ');
            if let Some(search) = &self.search {
                reason.push_str(search.condition.name());
                reason.push(' ');
            }
            reason.push_str(&show(&self.pattern));
        }
        let (passed, note) = if self.op == Op::Search {
            match self.search_items(value, now_ms) {
                Ok((ok, hits, total)) => (ok, format!(" ({hits} of {total} items match)")),
                Err(Mismatch) => (false, " (not a list)".to_string()),
            }
        } else {
            match self.apply(value, now_ms) {
                Ok(b) => (b, String::new()),
                Err(Mismatch) if matches!(self.prepared, Prepared::Unrendered) => (
                    false,
                    " (the pattern is a template, not rendered)".to_string(),
                ),
                Err(Mismatch)
                    if matches!(self.op, Op::TimediffLt | Op::TimediffGt) && value.is_string() =>
                {
                    (false, " (not a timestamp)".to_string())
                }
                Err(Mismatch) => (false, " (the types do not compare)".to_string()),
            }
        };
        reason.push_str(": ");
        reason.push_str(yes(passed));
        reason.push_str(&note);
        Check {
            key: self.key.clone(),
            operator: self.op.name().into(),
            pattern: self.pattern.clone(),
            value: found.cloned(),
            passed,
            reason,
            group: group.map(str::to_string),
        }
    }
}
