//! Dotted paths into JSON values (`addresses.private.0.addr`).
//!
//! A path is keys separated by `.`; on an array a component must be a number and
//! indexes it. The empty path is the value itself. Keys that contain a dot cannot be
//! addressed.

use serde_json::Value;

/// The value at `path` in `value`, or `None` when a component is missing, an index is
/// out of range or not a number, or a scalar is in the way.
pub(crate) fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.')
        .try_fold(value, |current, key| match current {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// A scalar as text: strings as they are, numbers and booleans printed; `None` for
/// null, arrays and objects.
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The scalar at `path`, if there is one.
pub(crate) fn scalar_at(value: &Value, path: &str) -> Option<String> {
    lookup(value, path).and_then(scalar)
}

/// What a value is, for messages: `an object`, `an array`, `a string`…
pub(crate) fn describe(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "id": 7,
            "name": "web-1",
            "up": true,
            "gone": null,
            "addresses": {"private": [{"addr": "10.0.0.5"}, {"addr": "10.0.0.6"}]},
            "tags": {"role": "web"},
            "0": "zero-key"
        })
    }

    #[test]
    fn empty_path_is_the_value_itself() {
        let d = doc();
        assert_eq!(lookup(&d, ""), Some(&d));
    }

    #[test]
    fn nested_keys_and_indexes() {
        let d = doc();
        assert_eq!(
            scalar_at(&d, "addresses.private.0.addr").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            scalar_at(&d, "addresses.private.1.addr").as_deref(),
            Some("10.0.0.6")
        );
        assert_eq!(scalar_at(&d, "tags.role").as_deref(), Some("web"));
        // A numeric component on an object is a key.
        assert_eq!(scalar_at(&d, "0").as_deref(), Some("zero-key"));
    }

    #[test]
    fn scalars_become_strings() {
        let d = doc();
        assert_eq!(scalar_at(&d, "id").as_deref(), Some("7"));
        assert_eq!(scalar_at(&d, "up").as_deref(), Some("true"));
        assert_eq!(scalar_at(&d, "gone"), None);
        assert_eq!(scalar_at(&d, "tags"), None);
    }

    #[test]
    fn missing_paths() {
        let d = doc();
        for path in [
            "nope",
            "addresses.private.2.addr",
            "addresses.private.x",
            "addresses.private.-1",
            "name.first",
            "addresses..private",
        ] {
            assert_eq!(lookup(&d, path), None, "{path}");
        }
    }

    #[test]
    fn describe_names_kinds() {
        let d = doc();
        assert_eq!(describe(lookup(&d, "tags")), "an object");
        assert_eq!(describe(lookup(&d, "addresses.private")), "an array");
        assert_eq!(describe(lookup(&d, "nope")), "nothing");
        assert_eq!(describe(lookup(&d, "gone")), "null");
    }
}
