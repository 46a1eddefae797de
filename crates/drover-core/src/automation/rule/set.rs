//! The enabled rules indexed by trigger type, for matching many events quickly.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::{Rule, RuleKind, canonical_trigger};

/// Rules indexed by exact trigger type, plus the few on `namespace.*`.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Exact type → indexes of enabled rules, in the order given.
    by_type: HashMap<String, Vec<usize>>,
    /// (namespace, index) of enabled wildcard rules.
    wildcards: Vec<(String, usize)>,
}

impl RuleSet {
    /// Indexes `rules`; disabled rules are kept (see [`rules`](Self::rules)) but never match.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcards = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            match rule.trigger.kind.strip_suffix(".*") {
                Some(namespace) => wildcards.push((namespace.to_string(), i)),
                None => by_type
                    .entry(rule.trigger.kind.clone())
                    .or_default()
                    .push(i),
            }
        }
        RuleSet {
            rules,
            by_type,
            wildcards,
        }
    }

    /// Every rule, enabled or not.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules that fire for an event of type `event_type` with trigger `payload`, in
    /// the order given: the standard rules that match or, when none does, the backstop
    /// rules that match.
    pub fn matching(&self, event_type: &str, payload: &Json, now_ms: i64) -> Vec<&Rule> {
        let canonical;
        let event_type = if event_type.starts_with("core.") {
            canonical = canonical_trigger(event_type).unwrap_or_else(|| event_type.to_string());
            canonical.as_str()
        } else {
            event_type
        };
        let exact = self.by_type.get(event_type).map_or(&[][..], Vec::as_slice);
        let namespace = event_type.split('.').next().unwrap_or(event_type);
        let wild = self
            .wildcards
            .iter()
            .filter(|(ns, _)| ns == namespace)
            .map(|&(_, i)| i);
        let mut candidates: Vec<usize> = exact.iter().copied().chain(wild).collect();
        if candidates.len() != exact.len() {
            candidates.sort_unstable();
        }
        let fires = |kind: RuleKind| -> Vec<&Rule> {
            candidates
                .iter()
                .map(|&i| &self.rules[i])
                .filter(|r| r.kind == kind && r.criteria.evaluate(payload, now_ms))
                .collect()
        };
        let standard = fires(RuleKind::Standard);
        if standard.is_empty() {
            fires(RuleKind::Backstop)
        } else {
            standard
        }
    }
}
