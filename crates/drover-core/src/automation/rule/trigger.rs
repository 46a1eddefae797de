//! Trigger types: drover's names, StackStorm's aliases, and the parameters of the
//! built-in triggers (webhook and the three timers).

use serde_json::Value as Json;

use crate::model::decode::{Fields, choice, integer, push_inside, string};
use crate::model::error::Sink;
use crate::model::load::{Node, Value};

/// The namespaces of drover's event types (`host.down`, `kv.set`, …).
pub const NAMESPACES: &[&str] = &[
    "host",
    "instance",
    "execution",
    "kv",
    "provider",
    "generator",
    "model",
    "rollout",
    "controller",
    "action",
    "pack",
    "rule",
];

/// StackStorm's built-in trigger names and drover's names for them.
pub const ALIASES: &[(&str, &str)] = &[
    ("core.st2.webhook", "webhook"),
    ("core.st2.IntervalTimer", "timer.interval"),
    ("core.st2.CronTimer", "timer.cron"),
    ("core.st2.DateTimer", "timer.date"),
    ("core.st2.generic.actiontrigger", "action.finished"),
];

/// The built-in trigger types that are not in an event namespace.
const BUILT_IN: &[&str] = &["webhook", "timer.interval", "timer.cron", "timer.date"];

fn is_word(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// drover's name for the trigger type `name`: a StackStorm alias translated, a built-in
/// or event type (`namespace.word`) or wildcard (`namespace.*`) as is; `None` when it
/// is none of these.
pub fn canonical_trigger(name: &str) -> Option<String> {
    if let Some((_, canonical)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some((*canonical).to_string());
    }
    if BUILT_IN.contains(&name) {
        return Some(name.to_string());
    }
    let (namespace, word) = name.split_once('.')?;
    (NAMESPACES.contains(&namespace) && (word == "*" || is_word(word))).then(|| name.to_string())
}

/// Whether a rule on `rule_trigger` fires for an event of type `event_type` (either may
/// be written as a StackStorm alias); `namespace.*` matches every event of the namespace.
pub fn trigger_matches(rule_trigger: &str, event_type: &str) -> bool {
    let rule = canonical_trigger(rule_trigger).unwrap_or_else(|| rule_trigger.to_string());
    let event = canonical_trigger(event_type).unwrap_or_else(|| event_type.to_string());
    match rule.strip_suffix(".*") {
        Some(namespace) => event
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with('.') && rest != ".*"),
        None => rule == event,
    }
}

/// The accepted forms, for the error on an unknown type.
pub(crate) fn accepted_forms() -> String {
    format!(
        "webhook, timer.interval, timer.cron, timer.date, NAMESPACE.EVENT or NAMESPACE.* \
         with NAMESPACE one of {}, or a StackStorm alias ({})",
        NAMESPACES.join(", "),
        ALIASES
            .iter()
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Checks the parameters of trigger `kind` (canonical) at `node` (absent: `None`);
/// returns them as JSON (an empty object when absent).
pub(crate) fn parameters(
    sink: &mut Sink<'_>,
    kind: &str,
    node: Option<&Node>,
    at: crate::model::load::Pos,
    field: &str,
) -> Option<Json> {
    let empty = Node {
        value: Value::Map(Vec::new()),
        pos: at,
    };
    let node = node.filter(|n| n.value != Value::Null).unwrap_or(&empty);
    let before = sink.count();
    match kind {
        "webhook" => {
            let f = Fields::read(sink, node, at, field, &["url"])?;
            if let Some(n) = f.require(sink, "url")
                && let Some(url) = string(sink, n, &f.field("url"))
            {
                let bad = url
                    .chars()
                    .position(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(c)));
                if url.is_empty() {
                    sink.push(n.pos, &f.field("url"), "the webhook url must not be empty");
                } else if let Some(i) = bad {
                    push_inside(
                        sink,
                        n,
                        i + 1,
                        &f.field("url"),
                        "a webhook url is a name of letters, digits and `_.-/`".into(),
                    );
                }
            }
        }
        "timer.interval" => {
            let f = Fields::read(sink, node, at, field, &["unit", "delta"])?;
            if let Some(n) = f.require(sink, "unit") {
                choice(
                    sink,
                    n,
                    &f.field("unit"),
                    &["weeks", "days", "hours", "minutes", "seconds"],
                );
            }
            if let Some(n) = f.require(sink, "delta") {
                integer(sink, n, &f.field("delta"), 1, i128::from(i64::MAX));
            }
        }
        "timer.cron" => {
            let fields = [
                ("year", 1970, 9999),
                ("month", 1, 12),
                ("day", 1, 31),
                ("week", 1, 53),
                ("day_of_week", 0, 6),
                ("hour", 0, 23),
                ("minute", 0, 59),
                ("second", 0, 59),
            ];
            let mut allowed: Vec<&str> = fields.iter().map(|(n, _, _)| *n).collect();
            allowed.push("timezone");
            let f = Fields::read(sink, node, at, field, &allowed)?;
            for (name, min, max) in fields {
                if let Some(n) = f.get(name) {
                    match &n.value {
                        Value::Int(_) => {
                            integer(sink, n, &f.field(name), min, max);
                        }
                        Value::Str(s) if !s.trim().is_empty() => {}
                        _ => sink.push(
                            n.pos,
                            &f.field(name),
                            format!(
                                "expected an integer ({min}–{max}) or a cron field such as `*/5`, found {}",
                                n.value.describe()
                            ),
                        ),
                    }
                }
            }
            timezone(sink, &f);
        }
        "timer.date" => {
            let f = Fields::read(sink, node, at, field, &["date", "timezone"])?;
            if let Some(n) = f.require(sink, "date")
                && let Some(date) = string(sink, n, &f.field("date"))
            {
                let ok = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").is_ok()
                    || chrono::DateTime::parse_from_rfc3339(date).is_ok();
                if !ok {
                    sink.push(
                        n.pos,
                        &f.field("date"),
                        format!(
                            "expected a date as `YYYY-MM-DD HH:MM:SS` or RFC 3339, found `{date}`"
                        ),
                    );
                }
            }
            timezone(sink, &f);
        }
        _ => {
            if !matches!(node.value, Value::Map(_)) {
                crate::model::decode::wrong_type(sink, node, field, "a mapping");
            }
        }
    }
    (sink.count() == before).then(|| node.to_json())
}

fn timezone(sink: &mut Sink<'_>, f: &Fields<'_>) {
    if let Some(n) = f.get("timezone")
        && let Some(tz) = string(sink, n, &f.field("timezone"))
        && tz.trim().is_empty()
    {
        sink.push(
            n.pos,
            &f.field("timezone"),
            "expected a time zone name such as `UTC` or `Europe/Paris`",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        let cases = [
            ("core.st2.webhook", Some("webhook")),
            ("core.st2.IntervalTimer", Some("timer.interval")),
            ("core.st2.CronTimer", Some("timer.cron")),
            ("core.st2.DateTimer", Some("timer.date")),
            ("core.st2.generic.actiontrigger", Some("action.finished")),
            ("host.down", Some("host.down")),
            ("kv.*", Some("kv.*")),
            ("timer.cron", Some("timer.cron")),
            ("webhook", Some("webhook")),
            ("core.st2.intervaltimer", None),
            ("bogus.down", None),
            ("host", None),
            ("host.Down", None),
            ("host.down.now", None),
            ("timer.*", None),
        ];
        for (name, want) in cases {
            assert_eq!(canonical_trigger(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn matching_types() {
        let cases = [
            ("host.down", "host.down", true),
            ("host.down", "host.up", false),
            ("host.*", "host.up", true),
            ("host.*", "hostx.up", false),
            ("host.*", "instance.up", false),
            ("core.st2.webhook", "webhook", true),
            ("action.finished", "core.st2.generic.actiontrigger", true),
            ("action.*", "core.st2.generic.actiontrigger", true),
        ];
        for (rule, event, want) in cases {
            assert_eq!(trigger_matches(rule, event), want, "{rule} vs {event}");
        }
    }
}
