//! YAML text → documents of [`Node`]s that remember where they were written.
//!
//! serde-saphyr does the parsing (with YAML 1.2 booleans only: `yes`/`on` stay
//! strings) and hands every node to us wrapped in [`Spanned`], so each key and
//! value knows its line and column. Typing and validation happen afterwards, on
//! this untyped tree, so that one document can report many errors.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::ModelError;

/// A place in a file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// An untyped YAML value, as the YAML 1.2 core schema resolves it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// This node as JSON (positions dropped). Integers beyond `i64`/`u64` become floats;
    /// mapping keys that are not strings are written as their YAML text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    serde_json::Number::from_f64(*i as f64).map_or(J::Null, J::Number)
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match &k.value {
                            Value::Str(s) => s.clone(),
                            other => match (Node {
                                value: other.clone(),
                                pos: k.pos,
                            })
                            .to_json()
                            {
                                J::String(s) => s,
                                j => j.to_string(),
                            },
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }
}

impl Value {
    /// What kind of value this is, with an article, for "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// The raw deserialized form: a value whose children are [`Spanned`].
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

fn convert(raw: Spanned<Raw>) -> Node {
    let pos = Pos {
        line: (raw.referenced.line() as usize).max(1),
        column: (raw.referenced.column() as usize).max(1),
    };
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(convert).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(k), convert(v)))
                .collect(),
        ),
    };
    Node { value, pos }
}

/// Parses every YAML document of `text` (empty documents are skipped).
///
/// A syntax error anywhere in the file fails the whole file with one error.
pub(crate) fn parse_documents(file: &str, text: &str) -> Result<Vec<Node>, ModelError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        // Repeated keys reach us, to be reported with the file's other errors.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    match serde_saphyr::from_str_multiple_with_options::<Spanned<Raw>, Vec<_>>(text, options) {
        Ok(docs) => Ok(docs.into_iter().map(convert).collect()),
        Err(e) => {
            let e = e.without_snippet();
            let (line, column) = e
                .location()
                .map(|l| (l.line() as usize, l.column() as usize))
                .unwrap_or((0, 0));
            let (line, column) = (line.max(1), column.max(1));
            let mut reason = e.to_string();
            // The message ends with the location, which we report separately.
            for suffix in [
                format!(" at line {line}, column {column}"),
                format!(" at {line}:{column}"),
            ] {
                if let Some(stripped) = reason.strip_suffix(&suffix) {
                    reason = stripped.to_string();
                }
            }
            Err(ModelError {
                file: file.to_string(),
                line,
                column,
                field: String::new(),
                reason: format!("invalid YAML: {}", reason.trim_end()),
            })
        }
    }
}

/// The source text of a scalar that starts at `pos`: the rest of its line, cut at a
/// comment and, in flow collections, at the next `,`, `]` or `}`.
pub(crate) fn raw_scalar(text: &str, pos: Pos) -> String {
    let Some(line) = text.split('\n').nth(pos.line.saturating_sub(1)) else {
        return String::new();
    };
    let rest: String = line.chars().skip(pos.column.saturating_sub(1)).collect();
    let rest = match rest.find(" #") {
        Some(i) => &rest[..i],
        None => &rest,
    };
    let rest = match rest.find([',', ']', '}']) {
        Some(i) => &rest[..i],
        None => rest,
    };
    rest.trim_end_matches(['\r', ' ', '\t']).to_string()
}

/// How many columns the content of the scalar at `pos` starts after `pos`: 1 for a
/// quoted scalar (the quote), 0 otherwise.
pub(crate) fn content_offset(text: &str, pos: Pos) -> usize {
    let first = text
        .split('\n')
        .nth(pos.line.saturating_sub(1))
        .and_then(|line| line.chars().nth(pos.column.saturating_sub(1)));
    usize::from(matches!(first, Some('"' | '\'')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_types() {
        let text = "a: 1\nb: [x, \"y\"]\nc: yes\nd: 2.0\n---\n---\ne: ~\n";
        let docs = parse_documents("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
        let Value::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].1.value, Value::Int(1));
        assert_eq!(entries[0].1.pos, Pos { line: 1, column: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[1].pos, Pos { line: 2, column: 8 });
        assert_eq!(content_offset(text, items[1].pos), 1);
        assert_eq!(entries[2].1.value, Value::Str("yes".into()));
        assert_eq!(entries[3].1.value, Value::Float(2.0));
        assert_eq!(raw_scalar(text, entries[3].1.pos), "2.0");
        assert_eq!(raw_scalar(text, items[0].pos), "x");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = parse_documents("f.yaml", "a: 1\nb: [1, 2\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        assert_eq!(e.reason, "invalid YAML: unclosed bracket '['");
    }
}
