use super::*;
use crate::automation::jinja::KvMap;
use serde_json::json;

const SCHEMA: &str = r#"
name: {type: string, required: true}
count: {type: integer, default: 3, minimum: 1}
ratio: {type: number}
enabled: {type: boolean}
tags: {type: array, items: {type: string}}
opts: {type: object}
greeting: {type: string, default: "hello {{ name }}"}
shout: {type: string, default: "{{ greeting | upper }}!"}
db: {type: string, default: "{{ st2kv.system.db_host }}"}
password: {type: string, secret: true, default: "{{ st2kv.system.pw | decrypt_kv }}"}
mode: {type: string, default: fast, immutable: true}
color: {type: string, enum: [red, blue]}
list_default: {type: array, default: ["{{ name }}", "x"]}
"#;

fn kv() -> Arc<dyn KvSource> {
    Arc::new(
        KvMap::new()
            .with("system", "db_host", "db1", false)
            .with("system", "pw", "hunter2", true),
    )
}

fn resolved(given: Json) -> Result<Map<String, Json>, Vec<String>> {
    let schema = schema_from_yaml("p.yaml", SCHEMA).unwrap();
    resolve(&schema, given.as_object().unwrap(), kv())
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn defaults_render_in_dependency_order() {
    let v = resolved(json!({"name": "web"})).unwrap();
    assert_eq!(v["greeting"], json!("hello web"));
    assert_eq!(v["shout"], json!("HELLO WEB!"));
    assert_eq!(v["db"], json!("db1"));
    assert_eq!(v["password"], json!("hunter2"));
    assert_eq!(v["count"], json!(3));
    assert_eq!(v["mode"], json!("fast"));
    assert_eq!(v["list_default"], json!(["web", "x"]));
    assert!(!v.contains_key("ratio"));
    // A given value wins over the default and is not rendered.
    let v = resolved(json!({"name": "web", "greeting": "{{ raw }}"})).unwrap();
    assert_eq!(v["greeting"], json!("{{ raw }}"));
    assert_eq!(v["shout"], json!("{{ RAW }}!"));
}

/// Casts of st2common/util/casts.py, then JSON-schema validation.
#[test]
fn casts_by_type() {
    let cases = [
        (json!({"count": "12"}), "count", Ok(json!(12))),
        (json!({"count": " 7 "}), "count", Ok(json!(7))),
        (json!({"count": 2.9}), "count", Ok(json!(2))),
        (json!({"ratio": "1.5"}), "ratio", Ok(json!(1.5))),
        (json!({"enabled": "true"}), "enabled", Ok(json!(true))),
        (json!({"enabled": "False"}), "enabled", Ok(json!(false))),
        (
            json!({"tags": "[\"a\", \"b\"]"}),
            "tags",
            Ok(json!(["a", "b"])),
        ),
        (json!({"tags": "['a', 'b']"}), "tags", Ok(json!(["a", "b"]))),
        (
            json!({"opts": "{'k': True}"}),
            "opts",
            Ok(json!({"k": true})),
        ),
        (json!({"ratio": NONE_MAGIC_VALUE}), "ratio", Ok(json!(null))),
        (
            json!({"count": "abc"}),
            "count",
            Err("parameter `count`: cannot read `abc` as an integer"),
        ),
        (
            json!({"ratio": "x1"}),
            "ratio",
            Err("parameter `ratio`: cannot read `x1` as a number"),
        ),
        (
            json!({"enabled": "yes"}),
            "enabled",
            Err("parameter `enabled`: cannot read `yes` as a boolean; use true or false"),
        ),
        (
            json!({"tags": "a,b"}),
            "tags",
            Err(
                "parameter `tags`: cannot read `a,b` as an array: it is neither JSON nor a Python literal",
            ),
        ),
        (
            json!({"color": 5}),
            "color",
            Err("parameter `color`: expected a string, found the number 5"),
        ),
    ];
    for (extra, key, want) in cases {
        let mut given = json!({"name": "n"});
        given
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        match (resolved(given), want) {
            (Ok(v), Ok(w)) => assert_eq!(v[key], w, "{extra}"),
            (Err(e), Err(w)) => assert_eq!(e, [w.to_string()], "{extra}"),
            (got, want) => panic!("{extra}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn every_problem_is_reported_by_name() {
    let e = resolved(json!({
        "nmae": "x", "count": 0, "color": "green", "mode": "slow", "enabled": "1"
    }))
    .unwrap_err();
    // `greeting`, `shout` and `list_default` depend on the missing `name`: no noise.
    assert_eq!(e.len(), 6, "{e:#?}");
    assert!(e.contains(&"parameter `nmae`: unknown parameter; did you mean `name`?".to_string()));
    assert!(e.contains(&"parameter `name`: is required".to_string()));
    assert!(
        e.iter()
            .any(|m| m.starts_with("parameter `count`: ") && m.contains("minimum")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("parameter `color`: ") && m.contains("green")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("parameter `mode`: is immutable")),
        "{e:?}"
    );
    // "1" is read as the integer 1 (ast.literal_eval), which is no boolean.
    assert!(
        e.iter()
            .any(|m| m.starts_with("parameter `enabled`: ") && m.contains("boolean")),
        "{e:?}"
    );
    // Immutable given its own default is fine.
    assert!(resolved(json!({"name": "n", "mode": "fast"})).is_ok());
}

#[test]
fn cycles_and_render_failures() {
    let schema = schema_from_yaml(
        "p.yaml",
        "a: {type: string, default: '{{ b }}'}\nb: {type: string, default: '{{ a }}'}\nc: {type: string, default: '{{ st2kv.system.nope }}'}\nd: {type: string, default: 'x{{ c }}'}\n",
    )
    .unwrap();
    let e: Vec<String> = resolve(&schema, &Map::new(), kv())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_eq!(
        e[0],
        "parameter `a`: defaults refer to each other in a cycle: a, b"
    );
    assert_eq!(
        e[1],
        "parameter `b`: defaults refer to each other in a cycle: a, b"
    );
    assert!(
        e[2].starts_with("parameter `c`: default did not render"),
        "{}",
        e[2]
    );
    assert!(e[2].contains("`st2kv.system.nope`"), "{}", e[2]);
}

#[test]
fn secrets_are_redacted() {
    let schema = schema_from_yaml("p.yaml", SCHEMA).unwrap();
    let v = resolve(&schema, json!({"name": "n"}).as_object().unwrap(), kv()).unwrap();
    let shown = redact(&schema, &v);
    assert_eq!(shown["password"], json!(MASK));
    assert_eq!(shown["name"], json!("n"));
    assert!(!serde_json::to_string(&shown).unwrap().contains("hunter2"));
    assert_eq!(secret_names(&schema), ["password"]);
}

#[test]
fn decode_errors_are_located() {
    let text = "a: {type: strng}\nb: {type: string, requird: true}\nc: {type: integer, position: 0, minimum: 1}\nd: {type: string, position: 0}\ne: {type: string, maxLength: -1}\n";
    let e: Vec<String> = schema_from_yaml("p.yaml", text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(
        e[0],
        "p.yaml:1:11: parameters.a.type: unknown value `strng`; expected one of string, integer, number, boolean, array, object, null; did you mean `string`?"
    );
    assert_eq!(
        e[1],
        "p.yaml:2:19: parameters.b.requird: unknown field `requird`; did you mean `required`?"
    );
    assert_eq!(
        e[2],
        "p.yaml:4:29: parameters.d.position: position 0 is already taken by `c` (line 3)"
    );
    assert!(
        e[3].starts_with("p.yaml:5:1: parameters.e: invalid JSON-schema"),
        "{}",
        e[3]
    );
}

#[test]
fn overlay_overrides_runner_parameters() {
    let runner = schema_from_yaml(
        "r.yaml",
        "timeout: {type: integer, default: 60}\ncmd: {type: string}\n",
    )
    .unwrap();
    let action = schema_from_yaml(
        "a.yaml",
        "timeout: {default: 5, immutable: true}\nx: {type: string}\n",
    )
    .unwrap();
    let merged = runner.overlay(&action);
    let t = merged.get("timeout").unwrap();
    assert_eq!(
        (t.type_.as_deref(), t.default.clone(), t.immutable),
        (Some("integer"), Some(json!(5)), true)
    );
    assert_eq!(merged.names().collect::<Vec<_>>(), ["cmd", "timeout", "x"]);
}

#[test]
fn default_referring_to_an_unset_optional_parameter() {
    let schema = schema_from_yaml(
        "p.yaml",
        "a: {type: string}\nb: {type: string, default: 'x{{ a }}'}\n",
    )
    .unwrap();
    let e = resolve(&schema, &Map::new(), kv()).unwrap_err();
    assert_eq!(
        e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["parameter `b`: default refers to `a`, which has no value"]
    );
    let v = resolve(&schema, json!({"a": "1"}).as_object().unwrap(), kv()).unwrap();
    assert_eq!(v["b"], json!("x1"));
}
