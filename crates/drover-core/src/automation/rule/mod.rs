//! StackStorm rules: a trigger, criteria, an action; plus drover's `throttle` and
//! `max_rate`.
//!
//! - [`decode_rule`] reads one rule file, every error located;
//! - [`trigger`] — trigger type names (drover's and StackStorm's) and the built-in
//!   triggers' parameters;
//! - [`set`] — [`RuleSet`]: the enabled rules indexed by trigger type, matched with
//!   backstop semantics.

pub mod set;
pub mod trigger;

use std::time::Duration;

use serde_json::Value as Json;

pub use set::RuleSet;
pub use trigger::{canonical_trigger, trigger_matches};

use super::criteria::{self, Criteria};
use crate::model::decode::{Fields, boolean, choice, duration, string, uint, wrong_type};
use crate::model::error::{ModelError, Sink};
use crate::model::load::{Node, Value, parse_documents};

/// A rule, as read from a pack's `rules/` folder.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name.
    pub name: String,
    /// The pack it belongs to.
    pub pack: String,
    /// What it is for.
    pub description: Option<String>,
    /// Whether it fires at all (StackStorm's default: false).
    pub enabled: bool,
    /// What it listens to.
    pub trigger: Trigger,
    /// What the trigger payload must look like.
    pub criteria: Criteria,
    /// What it runs.
    pub action: RuleAction,
    /// Standard, or backstop (fires only when no standard rule matched the event).
    pub kind: RuleKind,
    /// At most one firing per rendered key within a window.
    pub throttle: Option<Throttle>,
    /// A bound on firings per period (runaway-loop guard); `None`: the global default.
    pub max_rate: Option<MaxRate>,
    /// The file it was read from.
    pub file: String,
}

impl Rule {
    /// `pack.name`.
    pub fn reference(&self) -> String {
        format!("{}.{}", self.pack, self.name)
    }
}

/// A rule's trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// drover's name for the type (`webhook`, `timer.interval`, `host.down`, `kv.*`).
    pub kind: String,
    /// The type as written (`core.st2.webhook`).
    pub written: String,
    /// The trigger's parameters (an object; empty when none).
    pub parameters: Json,
}

/// The action a rule runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAction {
    /// `pack.action`.
    pub reference: String,
    /// Parameters, raw: templates are rendered by the shell over `trigger` and `st2kv`.
    pub parameters: Json,
}

/// StackStorm's rule types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Fires whenever it matches.
    Standard,
    /// Fires only when no standard rule matched the same event.
    Backstop,
}

/// `throttle: {key, window}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// A Jinja template over the payload (`{{ trigger.host }}`).
    pub key: String,
    /// The window in which a key fires at most once.
    pub window: Duration,
}

/// `max_rate: {count, per}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxRate {
    /// Firings allowed…
    pub count: u32,
    /// …per this period.
    pub per: Duration,
}

const RULE_FIELDS: &[&str] = &[
    "name",
    "pack",
    "ref",
    "description",
    "enabled",
    "trigger",
    "criteria",
    "action",
    "type",
    "tags",
    "metadata_file",
    "throttle",
    "max_rate",
];

/// Reads rule file `file` (its `text`) of the pack being installed, `pack`.
pub fn decode_rule(file: &str, text: &str, pack: &str) -> Result<Rule, Vec<ModelError>> {
    let mut docs = parse_documents(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut sink = Sink {
        file,
        text,
        errors: &mut errors,
    };
    let start = crate::model::load::Pos { line: 1, column: 1 };
    let node = match docs.len() {
        1 => docs.remove(0),
        0 => {
            sink.push(start, "", "the file holds no rule");
            return Err(errors);
        }
        _ => {
            sink.push(
                docs[1].pos,
                "",
                "a rule file holds one document; found more",
            );
            return Err(errors);
        }
    };
    match read_rule(&mut sink, &node, pack) {
        Some(mut rule) if errors.is_empty() => {
            rule.file = file.to_string();
            Ok(rule)
        }
        _ => Err(errors),
    }
}

fn read_rule(sink: &mut Sink<'_>, node: &Node, pack: &str) -> Option<Rule> {
    let f = Fields::read(sink, node, node.pos, "", RULE_FIELDS)?;
    let name = f.require(sink, "name").and_then(|n| {
        let s = string(sink, n, "name")?;
        if s.trim().is_empty() || s.contains(char::is_whitespace) {
            sink.push(n.pos, "name", "a rule name is one word");
            return None;
        }
        Some(s.to_string())
    });
    if let Some(n) = f.get("pack")
        && let Some(p) = string(sink, n, "pack")
        && p != pack
    {
        sink.push(
            n.pos,
            "pack",
            format!("this rule is in pack `{pack}`, but says `pack: {p}`"),
        );
    }
    if let (Some(n), Some(name)) = (f.get("ref"), &name)
        && let Some(r) = string(sink, n, "ref")
        && r != format!("{pack}.{name}")
    {
        sink.push(
            n.pos,
            "ref",
            format!("`ref` must be `{pack}.{name}`, found `{r}`"),
        );
    }
    let description = f
        .get("description")
        .and_then(|n| string(sink, n, "description"))
        .map(str::to_string);
    let enabled = match f.get("enabled") {
        Some(n) => boolean(sink, n, "enabled"),
        None => Some(false),
    };
    if let Some(n) = f.get("tags")
        && !matches!(n.value, Value::Seq(_))
    {
        wrong_type(sink, n, "tags", "a list");
    }
    if let Some(n) = f.get("metadata_file") {
        string(sink, n, "metadata_file");
    }
    let trigger = read_trigger(sink, &f);
    let criteria = match f.entry("criteria") {
        Some((_, n)) => criteria::decode(sink, n, "criteria", "trigger"),
        None => Some(Criteria::default()),
    };
    let action = read_action(sink, &f);
    let kind = match f.sub(sink, "type", &["ref", "parameters"]) {
        Some(t) => t
            .require(sink, "ref")
            .and_then(|n| choice(sink, n, "type.ref", &["standard", "backstop"]))
            .map(|k| {
                if k == "backstop" {
                    RuleKind::Backstop
                } else {
                    RuleKind::Standard
                }
            }),
        None => Some(RuleKind::Standard),
    };
    let throttle = match f.sub(sink, "throttle", &["key", "window"]) {
        Some(t) => {
            let key = t.require(sink, "key").and_then(|n| {
                let s = string(sink, n, "throttle.key")?;
                if let Err(e) = super::jinja::environment().template_from_str(s) {
                    sink.push(
                        n.pos,
                        "throttle.key",
                        format!("bad template: {}", super::jinja::describe(&e)),
                    );
                    return None;
                }
                Some(s.to_string())
            });
            let window = t
                .require(sink, "window")
                .and_then(|n| duration(sink, n, "throttle.window"));
            Some(
                key.zip(window)
                    .map(|(key, window)| Throttle { key, window }),
            )
        }
        None => Some(None).filter(|_| f.get("throttle").is_none()),
    };
    let max_rate = match f.sub(sink, "max_rate", &["count", "per"]) {
        Some(m) => {
            let count = m
                .require(sink, "count")
                .and_then(|n| uint(sink, n, "max_rate.count", 1, u32::MAX));
            let per = m
                .require(sink, "per")
                .and_then(|n| duration(sink, n, "max_rate.per"));
            Some(count.zip(per).map(|(count, per)| MaxRate { count, per }))
        }
        None => Some(None).filter(|_| f.get("max_rate").is_none()),
    };
    Some(Rule {
        name: name?,
        pack: pack.to_string(),
        description,
        enabled: enabled?,
        trigger: trigger?,
        criteria: criteria?,
        action: action?,
        kind: kind?,
        throttle: throttle?,
        max_rate: max_rate?,
        file: String::new(),
    })
}

fn read_trigger(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<Trigger> {
    let t = f.require_sub(sink, "trigger", &["type", "parameters"])?;
    let type_node = t.require(sink, "type")?;
    let written = string(sink, type_node, "trigger.type")?;
    let Some(kind) = canonical_trigger(written) else {
        let hint = crate::model::error::did_you_mean(
            written,
            trigger::ALIASES.iter().map(|(a, _)| *a).chain([
                "webhook",
                "timer.interval",
                "timer.cron",
                "timer.date",
            ]),
        );
        sink.push(
            type_node.pos,
            "trigger.type",
            format!(
                "unknown trigger type `{written}`{hint}; expected {}",
                trigger::accepted_forms()
            ),
        );
        return None;
    };
    let at = t.entry("parameters").map_or(type_node.pos, |(k, _)| k.pos);
    let parameters = trigger::parameters(
        sink,
        &kind,
        t.entry("parameters").map(|(_, v)| v),
        at,
        "trigger.parameters",
    )?;
    Some(Trigger {
        kind,
        written: written.to_string(),
        parameters,
    })
}

fn read_action(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<RuleAction> {
    let a = f.require_sub(sink, "action", &["ref", "parameters"])?;
    let reference = a.require(sink, "ref").and_then(|n| {
        let s = string(sink, n, "action.ref")?;
        match s.split_once('.') {
            Some((p, name)) if !p.is_empty() && !name.is_empty() => Some(s.to_string()),
            _ => {
                sink.push(
                    n.pos,
                    "action.ref",
                    format!("expected `pack.action`, found `{s}`"),
                );
                None
            }
        }
    });
    let parameters = match a.get("parameters") {
        Some(n) if matches!(n.value, Value::Map(_)) => Some(n.to_json()),
        Some(n) => {
            wrong_type(sink, n, "action.parameters", "a mapping");
            None
        }
        None => Some(Json::Object(serde_json::Map::new())),
    };
    Some(RuleAction {
        reference: reference?,
        parameters: parameters?,
    })
}

#[cfg(test)]
mod tests;
