//! StackStorm's script arguments (local-shell-script, remote-shell-script).
//!
//! st2common/util/action_db.py `get_args` splits the action parameters into
//! positional ones (those with `position`, in position order, each turned into text by
//! `serialize_positional_argument`) and named ones (the rest); the runner prefixes the
//! named ones with `kwarg_op` (`_transform_named_args`), and
//! st2common/models/system/action.py `_get_script_arguments` writes the named ones
//! first as `NAME=VALUE` (null and empty strings skipped, `true` → bare `NAME`, `false`
//! omitted, other values as Python's `str()`), then the positional ones.
//!
//! Order of the named arguments: StackStorm iterates a dict whose order comes from its
//! parameter dependency graph (effectively unspecified); drover writes them sorted by
//! name, so a command line is reproducible.
//!
//! Runner parameters (`cmd`, `hosts`, `timeout`, `env`, `cwd`, `sudo`, `kwarg_op`, …)
//! never become arguments: StackStorm splits them off before (`_split_params` in
//! st2common/util/param.py); callers pass only the action's own values, or use
//! [`action_values`].
//!
//! local-shell-cmd and remote-shell-cmd run `cmd` through the shell as it is: the
//! action's other parameters are not passed to the process at all (neither as
//! arguments nor as environment variables); they reach the command only through
//! Jinja in `cmd`'s default (`cmd: {default: "echo {{ message }}"}`). The process gets
//! the `env` runner parameter as environment variables, plus StackStorm's
//! `ST2_ACTION_*` variables, which drover's runner sets itself.

use serde_json::{Map, Value as Json};

use super::jinja::python;
use super::params::ParamSchema;

/// The values of `values` that are not runner parameters (the action's own).
pub fn action_values(runner: &ParamSchema, values: &Map<String, Json>) -> Map<String, Json> {
    values
        .iter()
        .filter(|(k, _)| !runner.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `serialize_positional_argument(type, value)` in st2common/util/action_db.py.
///
/// Note the quirk kept from StackStorm: `integer` is not among the text types, so
/// it goes through the catch-all branch, where a falsy value (`0`) becomes `""`.
pub fn positional_text(type_: Option<&str>, value: Option<&Json>) -> String {
    let value = value.unwrap_or(&Json::Null);
    let truthy = match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    };
    match type_ {
        Some("string" | "number" | "float") => match value {
            Json::Null => String::new(),
            other => python::str_of(other),
        },
        Some("boolean") => match value {
            Json::Null => String::new(),
            _ if truthy => "1".into(),
            _ => "0".into(),
        },
        Some("array" | "list") => match value {
            Json::Array(items) => items
                .iter()
                .map(python::str_of)
                .collect::<Vec<_>>()
                .join(","),
            // ",".join over a string's characters.
            Json::String(s) => s.chars().map(String::from).collect::<Vec<_>>().join(","),
            _ if truthy => python::str_of(value),
            _ => String::new(),
        },
        // json_encode (orjson): compact JSON.
        Some("object") if truthy => serde_json::to_string(value).unwrap_or_default(),
        Some("object") | Some("null") => String::new(),
        _ if truthy => python::str_of(value),
        _ => String::new(),
    }
}

/// The script's arguments for the action's own `values` (runner parameters already
/// removed), named first (`{kwarg_op}name=value`, sorted by name), then positional.
/// Each item is one argument, unquoted: see [`script_command_line`].
pub fn script_arguments(
    schema: &ParamSchema,
    values: &Map<String, Json>,
    kwarg_op: &str,
) -> Vec<String> {
    let mut positional: Vec<(u32, &str)> = schema
        .iter()
        .filter_map(|s| s.position.map(|p| (p, s.name.as_str())))
        .collect();
    positional.sort();
    let mut args = Vec::new();
    let mut named: Vec<(&String, &Json)> = values
        .iter()
        .filter(|(k, _)| !positional.iter().any(|(_, n)| n == k))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in named {
        match value {
            Json::Null => {}
            Json::String(s) if s.is_empty() => {}
            Json::Bool(true) => args.push(format!("{kwarg_op}{name}")),
            Json::Bool(false) => {}
            other => args.push(format!("{kwarg_op}{name}={}", python::str_of(other))),
        }
    }
    for (_, name) in positional {
        let type_ = schema.get(name).and_then(|s| s.type_.as_deref());
        args.push(positional_text(type_, values.get(name)));
    }
    args
}

/// `arg` quoted for a POSIX shell (`shlex.quote` / st2's `quote_unix`): left as is when
/// it is made only of safe characters, otherwise in single quotes.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\"'\"'"))
    }
}

/// The command line that runs the script at `entry_point_path` with `args`.
pub fn script_command_line(entry_point_path: &str, args: &[String]) -> String {
    let mut line = shell_quote(entry_point_path);
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::params::ParamSpec;
    use serde_json::json;

    fn schema() -> ParamSchema {
        let mut s = ParamSchema::default();
        for (name, type_, pos) in [
            ("p_str", "string", Some(0)),
            ("p_int", "integer", Some(1)),
            ("p_bool", "boolean", Some(2)),
            ("p_list", "array", Some(3)),
            ("p_obj", "object", Some(4)),
            ("p_num", "number", Some(5)),
            ("name", "string", None),
            ("flag", "boolean", None),
            ("off", "boolean", None),
            ("items", "array", None),
            ("map", "object", None),
            ("ratio", "number", None),
            ("count", "integer", None),
            ("empty", "string", None),
            ("nothing", "string", None),
        ] {
            let mut spec = ParamSpec::new(name, type_);
            spec.position = pos;
            s.insert(spec);
        }
        s
    }

    /// Named arguments, per `_get_script_arguments` (models/system/action.py).
    #[test]
    fn named_arguments() {
        let cases: &[(Json, &[&str])] = &[
            (json!({"name": "web"}), &["--name=web"]),
            (json!({"name": "a b"}), &["--name=a b"]),
            (json!({"flag": true}), &["--flag"]),
            (json!({"off": false}), &[]),
            (json!({"nothing": null}), &[]),
            (json!({"empty": ""}), &[]),
            (json!({"items": ["a", "b"]}), &["--items=['a', 'b']"]),
            (json!({"map": {"a": 1}}), &["--map={'a': 1}"]),
            (json!({"ratio": 1.0}), &["--ratio=1.0"]),
            (json!({"count": 0}), &["--count=0"]),
            (json!({"items": [true, null]}), &["--items=[True, None]"]),
            (
                json!({"name": "x", "count": 3, "flag": true}),
                &["--count=3", "--flag", "--name=x"],
            ),
        ];
        let schema = schema();
        for (values, want) in cases {
            let values = values.as_object().unwrap();
            // Positional parameters absent from `values` still produce their "" slot.
            let got = script_arguments(&schema, values, "--");
            assert_eq!(&got[..got.len() - 6], *want, "{values:?}");
        }
    }

    /// Positional arguments, per `serialize_positional_argument` (util/action_db.py).
    #[test]
    fn positional_arguments() {
        let cases: &[(Option<&str>, Json, &str)] = &[
            (Some("string"), json!("a b"), "a b"),
            (Some("string"), json!(null), ""),
            (Some("number"), json!(1.5), "1.5"),
            (Some("number"), json!(2.0), "2.0"),
            (Some("integer"), json!(7), "7"),
            (Some("integer"), json!(0), ""), // falsy: st2's catch-all branch
            (Some("boolean"), json!(true), "1"),
            (Some("boolean"), json!(false), "0"),
            (Some("boolean"), json!(null), ""),
            (Some("array"), json!(["a", "b", 3]), "a,b,3"),
            (Some("array"), json!([]), ""),
            (Some("array"), json!(null), ""),
            (Some("object"), json!({"a": 1}), r#"{"a":1}"#),
            (Some("object"), json!({}), ""),
            (Some("null"), json!("x"), ""),
            (None, json!("x"), "x"),
            (None, json!(null), ""),
        ];
        for (type_, value, want) in cases {
            assert_eq!(
                positional_text(*type_, Some(value)),
                *want,
                "{type_:?} {value}"
            );
        }
    }

    #[test]
    fn named_then_positional_in_position_order() {
        let values = json!({
            "p_num": 3, "p_obj": {"k": "v"}, "p_list": ["x", "y"], "p_bool": false,
            "p_int": 10, "p_str": "s", "name": "n", "flag": true,
        });
        let got = script_arguments(&schema(), values.as_object().unwrap(), "-");
        assert_eq!(
            got,
            [
                "-flag",
                "-name=n",
                "s",
                "10",
                "0",
                "x,y",
                r#"{"k":"v"}"#,
                "3"
            ]
        );
        assert_eq!(
            script_command_line("/opt/packs/x/actions/run.sh", &got),
            r#"/opt/packs/x/actions/run.sh -flag -name=n s 10 0 x,y '{"k":"v"}' 3"#
        );
    }

    /// `_transform_named_args` prefixes each name with the `kwarg_op` runner parameter.
    #[test]
    fn kwarg_op_prefix() {
        let mut schema = ParamSchema::default();
        schema.insert(ParamSpec::new("name", "string"));
        schema.insert(ParamSpec::new("v", "boolean"));
        let values = json!({"name": "x", "v": true});
        for (op, want) in [
            ("--", ["--name=x", "--v"]),
            ("-", ["-name=x", "-v"]),
            ("", ["name=x", "v"]),
            ("/", ["/name=x", "/v"]),
        ] {
            assert_eq!(
                script_arguments(&schema, values.as_object().unwrap(), op),
                want,
                "{op}"
            );
        }
        // An empty positional value is still an argument: `''` on the command line.
        let mut spec = ParamSpec::new("p", "string");
        spec.position = Some(0);
        schema.insert(spec);
        let args = script_arguments(&schema, &Map::new(), "--");
        assert_eq!(script_command_line("run.sh", &args), "run.sh ''");
    }

    #[test]
    fn quoting_like_quote_unix() {
        let cases = [
            ("plain", "plain"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", r#"'it'"'"'s'"#),
            ("--x=1,2", "--x=1,2"),
            ("$HOME", "'$HOME'"),
            ("é", "'é'"),
        ];
        for (arg, want) in cases {
            assert_eq!(shell_quote(arg), want, "{arg}");
        }
    }

    #[test]
    fn runner_values_are_split_off() {
        let mut runner = ParamSchema::default();
        runner.insert(ParamSpec::new("cmd", "string"));
        runner.insert(ParamSpec::new("timeout", "integer"));
        let values = json!({"cmd": "ls", "timeout": 5, "name": "x"});
        let own = action_values(&runner, values.as_object().unwrap());
        assert_eq!(Json::Object(own), json!({"name": "x"}));
    }
}
