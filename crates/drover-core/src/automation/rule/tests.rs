use super::*;
use serde_json::json;

const GOOD: &str = "\
---
name: notify_down
pack: ops
description: Page when a host goes down.
enabled: true
trigger:
  type: core.st2.webhook
  parameters:
    url: alerts/hosts
criteria:
  trigger.body.status:
    type: equals
    pattern: down
  trigger.body.host#web:
    type: MatchWildcard
    pattern: \"web-*\"
  or:
    - trigger.body.env:
        type: equals
        pattern: prod
    - trigger.body.page:
        type: equals
        pattern: true
action:
  ref: core.local
  parameters:
    cmd: \"echo {{ trigger.body.host }}\"
type:
  ref: standard
throttle:
  key: \"{{ trigger.body.host }}\"
  window: 10m
max_rate:
  count: 5
  per: 1m
";

#[test]
fn decodes_a_full_rule() {
    let rule = decode_rule("rules/notify_down.yaml", GOOD, "ops").unwrap();
    assert_eq!(rule.reference(), "ops.notify_down");
    assert_eq!(
        rule.description.as_deref(),
        Some("Page when a host goes down.")
    );
    assert!(rule.enabled);
    assert_eq!(rule.trigger.kind, "webhook");
    assert_eq!(rule.trigger.written, "core.st2.webhook");
    assert_eq!(rule.trigger.parameters, json!({"url": "alerts/hosts"}));
    assert_eq!(rule.action.reference, "core.local");
    assert_eq!(
        rule.action.parameters,
        json!({"cmd": "echo {{ trigger.body.host }}"})
    );
    assert_eq!(rule.kind, RuleKind::Standard);
    assert_eq!(
        rule.throttle,
        Some(Throttle {
            key: "{{ trigger.body.host }}".into(),
            window: Duration::from_secs(600)
        })
    );
    assert_eq!(
        rule.max_rate,
        Some(MaxRate {
            count: 5,
            per: Duration::from_secs(60)
        })
    );
    assert_eq!(rule.file, "rules/notify_down.yaml");
    let hit = json!({"body": {"status": "down", "host": "web-3", "env": "prod"}});
    let miss = json!({"body": {"status": "down", "host": "web-3", "env": "dev"}});
    assert!(rule.criteria.evaluate(&hit, 0));
    assert!(!rule.criteria.evaluate(&miss, 0));
}

#[test]
fn defaults_follow_stackstorm() {
    let text = "name: r\ntrigger:\n  type: host.down\naction:\n  ref: core.noop\n";
    let rule = decode_rule("r.yaml", text, "p").unwrap();
    assert!(!rule.enabled, "rules are disabled unless enabled: true");
    assert_eq!(rule.kind, RuleKind::Standard);
    assert!(rule.criteria.is_empty());
    assert_eq!(rule.throttle, None);
    assert_eq!(rule.max_rate, None);
    assert_eq!(rule.action.parameters, json!({}));
    assert_eq!(rule.trigger.parameters, json!({}));
}

/// `file:line:column: field: reason` of every error.
fn errors(text: &str) -> Vec<String> {
    match decode_rule("r.yaml", text, "ops") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

const HEAD: &str = "name: r\naction:\n  ref: core.noop\n";

#[test]
fn decode_errors_are_located() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{HEAD}trigger:\n  type: host.down\nenabeld: true\n"),
            "r.yaml:6:1: enabeld: unknown field `enabeld`; did you mean `enabled`?",
        ),
        (HEAD.to_string(), "r.yaml:1:1: missing field `trigger`"),
        (
            format!("{HEAD}pack: other\ntrigger:\n  type: host.down\n"),
            "r.yaml:4:7: pack: this rule is in pack `ops`, but says `pack: other`",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: host.down\ncriteria:\n  trigger.a:\n    type: equal\n    pattern: 1\n"
            ),
            "r.yaml:8:11: criteria.trigger.a.type: unknown operator `equal`; did you mean `equals`?",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: host.down\ncriteria:\n  trigger.a:\n    type: regex\n    pattern: \"ab(c\"\n"
            ),
            "r.yaml:9:17: criteria.trigger.a.pattern: invalid regular expression: unclosed group",
        ),
        (
            format!("{HEAD}trigger:\n  type: host.down\ncriteria:\n  a.b:\n    type: exists\n"),
            "r.yaml:7:3: criteria.a.b: criteria keys are paths into the trigger payload and start with `trigger.`; found `a.b`",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: host.down\ncriteria:\n  or:\n    - trigger.a:\n        type: eq\n        pattern: [\n"
            ),
            "r.yaml:10:18: invalid YAML: unclosed bracket '['",
        ),
        (
            format!("{HEAD}trigger:\n  type: core.st2.webhook\n"),
            "r.yaml:5:9: trigger.parameters: missing field `url`",
        ),
        (
            format!("{HEAD}trigger:\n  type: core.st2.webhook\n  parameters:\n    url: \"a b\"\n"),
            "r.yaml:7:12: trigger.parameters.url: a webhook url is a name of letters, digits and `_.-/`",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: minute\n    delta: 0\n"
            ),
            "r.yaml:7:11: trigger.parameters.unit: unknown value `minute`; expected one of weeks, days, hours, minutes, seconds; did you mean `minutes`?",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: minutes\n    delta: 0\n"
            ),
            "r.yaml:8:12: trigger.parameters.delta: must be between 1 and 9223372036854775807, found 0",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: core.st2.CronTimer\n  parameters:\n    hour: 25\n    minute: \"*/5\"\n    secnd: 1\n"
            ),
            "r.yaml:7:11: trigger.parameters.hour: must be between 0 and 23, found 25",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: core.st2.DateTimer\n  parameters:\n    date: 2024-13-01\n"
            ),
            "r.yaml:7:11: trigger.parameters.date: expected a date as `YYYY-MM-DD HH:MM:SS` or RFC 3339, found `2024-13-01`",
        ),
        (
            format!("{HEAD}trigger:\n  type: core.st2.Webhook\n"),
            "r.yaml:5:9: trigger.type: unknown trigger type `core.st2.Webhook`; did you mean `core.st2.webhook`?; expected webhook, timer.interval, timer.cron, timer.date, NAMESPACE.EVENT or NAMESPACE.* with NAMESPACE one of host, instance, execution, kv, provider, generator, model, rollout, controller, action, pack, rule, or a StackStorm alias (core.st2.webhook, core.st2.IntervalTimer, core.st2.CronTimer, core.st2.DateTimer, core.st2.generic.actiontrigger)",
        ),
        (
            format!(
                "{HEAD}trigger:\n  type: host.down\nthrottle:\n  key: \"{{{{ trigger.host \"\n"
            ),
            "r.yaml:7:8: throttle.key: bad template",
        ),
        (
            format!("{HEAD}trigger:\n  type: host.down\nmax_rate:\n  count: 0\n  per: 1m\n"),
            "r.yaml:7:10: max_rate.count: must be at least 1, found 0",
        ),
        (
            format!("{HEAD}trigger:\n  type: host.down\ntype:\n  ref: fallback\n"),
            "r.yaml:7:8: type.ref: unknown value `fallback`; expected one of standard, backstop",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, want) in cases {
        let got = errors(&text);
        if !got.iter().any(|e| e.starts_with(want)) {
            wrong.push(format!("want {want}\n got {got:#?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn cron_errors_are_all_reported() {
    let text = format!(
        "{HEAD}trigger:\n  type: core.st2.CronTimer\n  parameters:\n    hour: 25\n    minute: \"*/5\"\n    secnd: 1\n"
    );
    let got = errors(&text);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        got[0],
        "r.yaml:9:5: trigger.parameters.secnd: unknown field `secnd`; did you mean `second`?"
    );
}

fn rule(name: &str, trigger: &str, kind: &str, criteria: &str, enabled: bool) -> Rule {
    let text = format!(
        "name: {name}\nenabled: {enabled}\ntrigger:\n  type: {trigger}\ntype:\n  ref: {kind}\naction:\n  ref: core.noop\ncriteria:\n{criteria}"
    );
    decode_rule("r.yaml", &text, "p").unwrap()
}

const DOWN: &str = "  trigger.status:\n    type: eq\n    pattern: down\n";
const WEB: &str = "  trigger.host:\n    type: startswith\n    pattern: web\n";

#[test]
fn rule_set_backstops_and_wildcards() {
    let set = RuleSet::new(vec![
        rule("down", "host.down", "standard", DOWN, true),
        rule("web", "host.down", "standard", WEB, true),
        rule("fallback", "host.down", "backstop", "", true),
        rule("any_host", "host.*", "standard", WEB, true),
        rule("off", "host.down", "standard", "", false),
        rule(
            "hook",
            "core.st2.webhook\n  parameters:\n    url: hook",
            "standard",
            "",
            true,
        ),
    ]);
    let names = |event: &str, payload: Json| -> Vec<String> {
        set.matching(event, &payload, 0)
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(
        names("host.down", json!({"status": "down", "host": "web-1"})),
        ["down", "web", "any_host"]
    );
    assert_eq!(
        names("host.down", json!({"status": "down", "host": "db-1"})),
        ["down"]
    );
    assert_eq!(
        names("host.down", json!({"status": "flapping", "host": "db-1"})),
        ["fallback"],
        "the backstop fires only when no standard rule matched"
    );
    assert_eq!(names("host.up", json!({"host": "web-2"})), ["any_host"]);
    assert!(names("host.up", json!({"host": "db-2"})).is_empty());
    assert!(names("instance.down", json!({"host": "web-2"})).is_empty());
    assert_eq!(names("webhook", json!({"body": {}})), ["hook"]);
    assert_eq!(names("core.st2.webhook", json!({"body": {}})), ["hook"]);
    assert_eq!(set.rules().len(), 6);
}
