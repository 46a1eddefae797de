use super::*;
use serde_json::json;

const NOW: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

/// One criterion `trigger.v: {type: op, pattern}` against a payload whose `v` is
/// `value` (absent when `None`; the payload keeps another field so it is never empty).
fn one(op: &str, pattern: Json, value: Option<Json>) -> bool {
    let criteria = Criteria::from_json(&json!({"trigger.v": {"type": op, "pattern": pattern}}))
        .unwrap_or_else(|e| panic!("{op} {pattern}: {e}"));
    let mut payload = json!({"other": 1});
    if let Some(v) = value {
        payload["v"] = v;
    }
    criteria.evaluate(&payload, NOW)
}

#[test]
fn every_operator() {
    let missing = None;
    let cases: Vec<(&str, Json, Option<Json>, bool)> = vec![
        // equals: Python ==
        ("equals", json!("up"), Some(json!("up")), true),
        ("eq", json!("up"), Some(json!("down")), false),
        ("equals", json!(1), Some(json!(1.0)), true),
        ("equals", json!(1), Some(json!(true)), true),
        ("equals", json!("1"), Some(json!(1)), false),
        ("equals", json!([1, 2]), Some(json!([1, 2])), true),
        ("equals", json!({"a": 1}), Some(json!({"a": 1})), true),
        ("equals", json!(null), Some(json!(null)), false),
        ("equals", json!(null), missing.clone(), false),
        ("equals", json!("x"), missing.clone(), false),
        // nequals: the only comparison accepting a null pattern
        ("nequals", json!("up"), Some(json!("down")), true),
        ("neq", json!("up"), Some(json!("up")), false),
        ("nequals", json!(null), Some(json!("x")), true),
        ("nequals", json!(null), missing.clone(), false),
        ("nequals", json!("x"), missing.clone(), true),
        ("nequals", json!("1"), Some(json!(1)), true),
        // iequals: str.lower(), Unicode
        ("iequals", json!("UP"), Some(json!("up")), true),
        ("ieq", json!("École"), Some(json!("éCOLE")), true),
        ("iequals", json!("ΣΑΣ"), Some(json!("σας")), true),
        ("iequals", json!("strasse"), Some(json!("STRAẞE")), false),
        ("iequals", json!("1"), Some(json!(1)), false),
        ("iequals", json!(1), Some(json!(1)), false),
        ("iequals", json!(null), Some(json!("x")), false),
        // contains: substring, list item, dict key
        ("contains", json!("ell"), Some(json!("hello")), true),
        ("contains", json!("x"), Some(json!("hello")), false),
        ("contains", json!("b"), Some(json!(["a", "b"])), true),
        ("contains", json!(2), Some(json!([1, 2.0])), true),
        ("contains", json!("k"), Some(json!({"k": 1})), true),
        ("contains", json!(1), Some(json!("a1")), false),
        ("contains", json!("a"), missing.clone(), false),
        ("contains", json!(null), Some(json!("null")), false),
        // icontains / ncontains / incontains
        ("icontains", json!("ELL"), Some(json!("HeLLo")), true),
        ("icontains", json!("ell"), Some(json!(["hello"])), false),
        ("ncontains", json!("x"), Some(json!("hello")), true),
        ("ncontains", json!("ell"), Some(json!("hello")), false),
        ("ncontains", json!("c"), Some(json!(["a", "b"])), true),
        ("ncontains", json!("x"), missing.clone(), false),
        ("ncontains", json!(1), Some(json!("abc")), false),
        ("incontains", json!("X"), Some(json!("hello")), true),
        ("incontains", json!("ELL"), Some(json!("hello")), false),
        ("incontains", json!("x"), missing.clone(), false),
        // startswith / endswith
        ("startswith", json!("web"), Some(json!("web-01")), true),
        ("startswith", json!("Web"), Some(json!("web-01")), false),
        ("startswith", json!("1"), Some(json!(12)), false),
        ("istartswith", json!("WEB"), Some(json!("web-01")), true),
        ("endswith", json!("01"), Some(json!("web-01")), true),
        ("endswith", json!("02"), Some(json!("web-01")), false),
        ("iendswith", json!(".LOG"), Some(json!("a.log")), true),
        ("iendswith", json!(".log"), missing.clone(), false),
        // lessthan / greaterthan: Python ordering, TypeError → false
        ("lessthan", json!(10), Some(json!(5)), true),
        ("lt", json!(10), Some(json!(10)), false),
        ("lessthan", json!(10), Some(json!(9.5)), true),
        ("lessthan", json!("b"), Some(json!("a")), true),
        ("lessthan", json!(10), Some(json!("5")), false),
        ("lessthan", json!(10), missing.clone(), false),
        ("lessthan", json!([1, 3]), Some(json!([1, 2, 9])), true),
        ("greaterthan", json!(10), Some(json!(11)), true),
        ("gt", json!(10), Some(json!(true)), false),
        ("greaterthan", json!(0), Some(json!(true)), true),
        ("greaterthan", json!(null), Some(json!(1)), false),
        // matchwildcard: fnmatch over the whole value
        ("matchwildcard", json!("web-*"), Some(json!("web-01")), true),
        (
            "matchwildcard",
            json!("web-?"),
            Some(json!("web-01")),
            false,
        ),
        ("matchwildcard", json!("*"), Some(json!(5)), false),
        ("matchwildcard", json!("*"), missing.clone(), false),
        // matchregex: re.match, anchored at the start, DOTALL
        (
            "matchregex",
            json!("web-\\d+"),
            Some(json!("web-01 ok")),
            true,
        ),
        ("matchregex", json!("\\d+"), Some(json!("web-01")), false),
        ("matchregex", json!("a.b"), Some(json!("a\nb")), true),
        ("matchregex", json!("a$"), Some(json!("ab")), false),
        ("matchregex", json!("abc\\Z"), Some(json!("abc")), true),
        // regex: re.search, no DOTALL
        ("regex", json!("\\d+"), Some(json!("web-01")), true),
        ("regex", json!("a.b"), Some(json!("a\nb")), false),
        ("regex", json!("^x"), Some(json!("yx")), false),
        ("regex", json!("1"), Some(json!(1)), false),
        ("iregex", json!("WEB"), Some(json!("a-web-b")), true),
        ("iregex", json!("ß"), Some(json!("ẞ")), true),
        ("iregex", json!("zz"), Some(json!("a-web-b")), false),
        // timediff: age of a timestamp against now
        (
            "timediff_lt",
            json!(60),
            Some(json!("2023-11-14T22:12:50Z")),
            true,
        ),
        (
            "td_lt",
            json!(20),
            Some(json!("2023-11-14T22:12:50Z")),
            false,
        ),
        (
            "timediff_lt",
            json!("60"),
            Some(json!("2023-11-14 22:12:50")),
            true,
        ),
        (
            "timediff_gt",
            json!(20),
            Some(json!("2023-11-14T23:12:50+01:00")),
            true,
        ),
        (
            "td_gt",
            json!(60),
            Some(json!("2023-11-14T22:12:50Z")),
            false,
        ),
        ("timediff_gt", json!(1), Some(json!("not a date")), false),
        ("timediff_gt", json!(1), Some(json!(1_699_999_000)), false),
        ("timediff_gt", json!(1), missing.clone(), false),
        // exists / nexists: present and not null
        ("exists", json!(null), Some(json!(0)), true),
        ("exists", json!(null), Some(json!(null)), false),
        ("exists", json!(null), missing.clone(), false),
        ("nexists", json!(null), missing.clone(), true),
        ("nexists", json!(null), Some(json!(null)), true),
        ("nexists", json!("ignored"), Some(json!("")), false),
        // inside / ninside: value in pattern
        ("inside", json!(["a", "b"]), Some(json!("a")), true),
        ("in", json!(["a", "b"]), Some(json!("c")), false),
        ("inside", json!("hello"), Some(json!("ell")), true),
        ("inside", json!({"k": 1}), Some(json!("k")), true),
        ("inside", json!([1, 2]), Some(json!(2.0)), true),
        ("inside", json!("abc"), Some(json!(1)), false),
        ("inside", json!(5), Some(json!(5)), false),
        ("inside", json!([null]), missing.clone(), true),
        ("ninside", json!(["a", "b"]), Some(json!("c")), true),
        ("nin", json!(["a", "b"]), Some(json!("a")), false),
        ("ninside", json!("abc"), Some(json!(1)), false),
        ("ninside", json!({"k": 1}), Some(json!(["k"])), false),
        ("ninside", json!(null), Some(json!("a")), false),
        // Operator names in any case
        ("EQUALS", json!("up"), Some(json!("up")), true),
        ("InSide", json!(["a"]), Some(json!("a")), true),
    ];
    for (op, pattern, value, want) in cases {
        assert_eq!(
            one(op, pattern.clone(), value.clone()),
            want,
            "{op} pattern {pattern} value {value:?}"
        );
    }
}

#[test]
fn null_pattern_is_false_except_nequals_exists_nexists() {
    for name in ops::Op::names() {
        if name == "search" {
            continue;
        }
        let got = one(name, Json::Null, Some(json!("x")));
        let want = matches!(name, "nequals" | "neq" | "exists");
        assert_eq!(got, want, "{name} with a null pattern");
    }
}

fn search(condition: &str, items: Json) -> bool {
    let criteria = Criteria::from_json(&json!({
        "trigger.fields": {
            "type": "search",
            "condition": condition,
            "pattern": {
                "item.name": {"type": "equals", "pattern": "Status"},
                "item.value": {"type": "equals", "pattern": "Approved"},
            }
        }
    }))
    .unwrap();
    criteria.evaluate(&json!({"fields": items}), NOW)
}

#[test]
fn search_conditions() {
    let both = json!({"name": "Status", "value": "Approved"});
    let name_only = json!({"name": "Status", "value": "Denied"});
    let neither = json!({"name": "Other", "value": "Denied"});
    let cases = [
        ("any", json!([neither, both]), true),
        ("any", json!([neither, name_only]), false),
        ("all", json!([both, both]), true),
        ("all", json!([both, name_only]), false),
        ("all2any", json!([both, name_only]), true),
        ("all2any", json!([both, neither]), false),
        ("any2any", json!([neither, name_only]), true),
        ("any2any", json!([neither, neither]), false),
        // Python's any([]) / all([])
        ("any", json!([]), false),
        ("all", json!([]), true),
        // A mapping is searched as a one-item list
        ("any", both.clone(), true),
        // Not iterable: false
        ("all", json!(5), false),
        ("all", json!(null), false),
    ];
    for (condition, items, want) in cases {
        assert_eq!(
            search(condition, items.clone()),
            want,
            "{condition} {items}"
        );
    }
}

#[test]
fn search_nests_and_reads_item_itself() {
    let criteria = Criteria::from_json(&json!({
        "trigger.hosts": {
            "type": "search",
            "condition": "any",
            "pattern": {
                "item.tags": {
                    "type": "search",
                    "condition": "any",
                    "pattern": {"item": {"type": "equals", "pattern": "db"}}
                }
            }
        }
    }))
    .unwrap();
    let yes = json!({"hosts": [{"tags": ["web"]}, {"tags": ["db", "x"]}]});
    let no = json!({"hosts": [{"tags": ["web"]}, {"tags": []}]});
    assert!(criteria.evaluate(&yes, NOW));
    assert!(!criteria.evaluate(&no, NOW));
}

#[test]
fn suffixed_keys_test_one_field_twice() {
    let criteria = Criteria::from_json(&json!({
        "trigger.load": {"type": "greaterthan", "pattern": 40},
        "trigger.load#max": {"type": "lessthan", "pattern": 50},
    }))
    .unwrap();
    assert!(criteria.evaluate(&json!({"load": 45}), NOW));
    assert!(!criteria.evaluate(&json!({"load": 55}), NOW));
    assert!(!criteria.evaluate(&json!({"load": 35}), NOW));
}

#[test]
fn paths_with_indexes() {
    let payload = json!({"items": [{"n": "a"}, {"n": "b"}], "m": {"k": [1, 2]}});
    let cases = [
        ("trigger.items.1.n", json!("b"), true),
        ("trigger.items[0].n", json!("a"), true),
        ("trigger.m.k.1", json!(2), true),
        ("trigger.items.5.n", json!("a"), false),
        ("trigger.m.k.x", json!(1), false),
    ];
    for (key, pattern, want) in cases {
        let c = Criteria::from_json(&json!({key: {"type": "eq", "pattern": pattern}})).unwrap();
        assert_eq!(c.evaluate(&payload, NOW), want, "{key}");
    }
}

fn or_rule() -> Criteria {
    Criteria::from_json(&json!({
        "trigger.env": {"type": "equals", "pattern": "prod"},
        "or": [
            {"trigger.status": {"type": "equals", "pattern": "down"}},
            {
                "trigger.load": {"type": "gt", "pattern": 90},
                "or": [
                    {"trigger.host": {"type": "startswith", "pattern": "db"}},
                    {"trigger.host": {"type": "startswith", "pattern": "web"}},
                ]
            }
        ],
        "or#2": [
            {"trigger.team": {"type": "exists"}},
            {"trigger.page": {"type": "equals", "pattern": true}},
        ]
    }))
    .unwrap()
}

#[test]
fn or_groups_nest() {
    let criteria = or_rule();
    let cases = [
        (json!({"env": "prod", "status": "down", "team": "a"}), true),
        (json!({"env": "prod", "status": "down"}), false),
        (json!({"env": "prod", "status": "down", "page": true}), true),
        (json!({"env": "dev", "status": "down", "team": "a"}), false),
        (
            json!({"env": "prod", "load": 95, "host": "web-1", "team": "a"}),
            true,
        ),
        (
            json!({"env": "prod", "load": 95, "host": "lb-1", "team": "a"}),
            false,
        ),
        (
            json!({"env": "prod", "load": 50, "host": "db-1", "team": "a"}),
            false,
        ),
    ];
    for (payload, want) in cases {
        assert_eq!(criteria.evaluate(&payload, NOW), want, "{payload}");
        let checks = criteria.explain(&payload, NOW);
        let top_ok = checks
            .iter()
            .filter(|c| c.group.is_none())
            .all(|c| c.passed);
        assert_eq!(top_ok, want, "explain agrees for {payload}");
    }
}

#[test]
fn empty_payload_never_matches_criteria() {
    let criteria = Criteria::from_json(&json!({"trigger.x": {"type": "nexists"}})).unwrap();
    assert!(!criteria.evaluate(&json!({}), NOW));
    assert!(!criteria.evaluate(&json!(null), NOW));
    assert!(criteria.evaluate(&json!({"y": 1}), NOW));
    assert!(Criteria::default().evaluate(&json!({}), NOW));
    let checks = criteria.explain(&json!({}), NOW);
    assert!(!checks[0].passed);
    assert!(checks[0].reason.contains("empty"), "{}", checks[0].reason);
}

#[test]
fn explain_passing_and_failing() {
    // Keys in sorted order: a JSON object's order depends on serde_json's
    // `preserve_order` feature, which other crates of the workspace switch on.
    let criteria = Criteria::from_json(&json!({
        "trigger.n": {"type": "lt", "pattern": 3},
        "trigger.status": {"type": "equals", "pattern": "up"},
        "trigger.x": {"type": "exists"},
    }))
    .unwrap();
    let checks = criteria.explain(&json!({"status": "down", "n": "2"}), NOW);
    let reasons: Vec<&str> = checks.iter().map(|c| c.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "trigger.n is \"2\", lessthan 3: no (the types do not compare)",
            "trigger.status is \"down\", equals \"up\": no",
            "trigger.x not found, exists: no",
        ]
    );
    assert_eq!(checks[1].value, Some(json!("down")));
    assert_eq!(checks[2].value, None);
    assert!(checks.iter().all(|c| !c.passed && c.group.is_none()));

    let checks = criteria.explain(&json!({"status": "up", "x": 1, "n": 2}), NOW);
    assert!(checks.iter().all(|c| c.passed));
    assert_eq!(
        checks[1].reason,
        "trigger.status is \"up\", equals \"up\": yes"
    );
    assert_eq!(checks[1].operator, "equals");
    assert_eq!(checks[1].pattern, json!("up"));
}

#[test]
fn explain_names_or_groups() {
    let checks = or_rule().explain(
        &json!({"env": "prod", "load": 95, "host": "web-1", "page": true}),
        NOW,
    );
    let rows: Vec<(Option<&str>, &str, bool)> = checks
        .iter()
        .map(|c| (c.group.as_deref(), c.key.as_str(), c.passed))
        .collect();
    assert_eq!(
        rows,
        [
            (None, "trigger.env", true),
            (Some("or[0]"), "trigger.status", false),
            (Some("or[1]"), "trigger.load", true),
            (Some("or[1].or[0]"), "trigger.host", false),
            (Some("or[1].or[1]"), "trigger.host", true),
            (Some("or[1]"), "or", true),
            (None, "or", true),
            (Some("or#2[0]"), "trigger.team", false),
            (Some("or#2[1]"), "trigger.page", true),
            (None, "or#2", true),
        ]
    );
    let summary = checks
        .iter()
        .find(|c| c.key == "or" && c.group.is_none())
        .unwrap();
    assert_eq!(summary.reason, "or: 1 of 2 alternatives pass: yes");
}

#[test]
fn templates_render_and_recompile() {
    let criteria = Criteria::from_json(&json!({
        "trigger.host": {"type": "regex", "pattern": "^{{ st2kv.system.prefix }}-"},
        "trigger.n": {"type": "inside", "pattern": "{{ allowed }}"},
        "trigger.s": {"type": "equals", "pattern": "plain"},
    }))
    .unwrap();
    assert!(criteria.has_templates());
    let payload = json!({"host": "web-1", "n": 2, "s": "plain"});
    assert!(
        !criteria.evaluate(&payload, NOW),
        "unrendered templates match nothing"
    );
    let mut seen = Vec::new();
    let rendered = criteria
        .render(&mut |t: &str| {
            seen.push(t.to_string());
            Ok(if t.contains("allowed") {
                json!([1, 2])
            } else {
                json!("^web-")
            })
        })
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert!(!rendered.has_templates());
    assert!(rendered.evaluate(&payload, NOW));
    let bad = criteria.render(&mut |_| Ok(json!("(")));
    assert!(
        bad.unwrap_err()
            .starts_with("trigger.host: invalid regular expression")
    );
    let failed = criteria.render(&mut |_| Err("undefined value".into()));
    assert_eq!(failed.unwrap_err(), "trigger.host: undefined value");
    assert!(
        !Criteria::from_json(&json!({"trigger.a": {"type": "eq", "pattern": "x"}}))
            .unwrap()
            .has_templates()
    );
}

#[test]
fn json_errors() {
    let cases = [
        (
            json!({"host": {"type": "eq", "pattern": 1}}),
            "criteria.host: criteria keys are paths into the trigger payload and start with `trigger.`; found `host`",
        ),
        (
            json!({"trigger.a": {"type": "equal", "pattern": 1}}),
            "criteria.trigger.a.type: unknown operator `equal`; did you mean `equals`?",
        ),
        (
            json!({"trigger.a": {"type": "eq"}}),
            "criteria.trigger.a: missing field `pattern` (`equals` compares with it)",
        ),
        (
            json!({"trigger.a": {"type": "search", "condition": "some", "pattern": {}}}),
            "criteria.trigger.a.condition: unknown search condition `some`; expected one of any, all, all2any, any2any",
        ),
        (
            json!({"trigger.a": {"type": "search", "condition": "any", "pattern": {"trigger.x": {"type": "exists"}}}}),
            "criteria.trigger.a.pattern.trigger.x: criteria keys are paths into the list item and start with `item.`; found `trigger.x`",
        ),
        (
            json!({"trigger.a": {"type": "eq", "pattern": 1, "condition": "any"}}),
            "criteria.trigger.a.condition: `condition` only applies to `type: search`",
        ),
        (
            json!({"trigger.a": {"type": "td_lt", "pattern": "soon"}}),
            "criteria.trigger.a.pattern: `timediff_lt` needs a number of seconds, found the string \"soon\"",
        ),
        (
            json!({"or": []}),
            "criteria.or: an `or` group needs at least one set of criteria",
        ),
        (
            json!({"trigger.a": {"type": "regex", "pattern": "x["}}),
            "criteria.trigger.a.pattern: invalid regular expression: unclosed character class",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Criteria::from_json(&input).unwrap_err(), want, "{input}");
    }
}
