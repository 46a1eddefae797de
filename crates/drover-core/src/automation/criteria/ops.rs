//! The criteria operators and the Python value semantics StackStorm's operators inherit
//! (`==`, `<`, `in`, `str.lower`), over JSON values.
//!
//! StackStorm calls each operator inside `try`; a Python `TypeError` (comparing a number
//! with a string, `.lower()` on a list, `in` on a number…) makes the criterion false. Here
//! that case is [`Mismatch`], so an explanation can say why.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value as Json;

/// A criteria operator, one per StackStorm operator function (aliases share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `equals`, `eq`: Python `==`.
    Equals,
    /// `nequals`, `neq`: Python `!=` (the one comparison that accepts a null pattern).
    NEquals,
    /// `iequals`, `ieq`: equal after `str.lower()`.
    IEquals,
    /// `contains`: `pattern in value` (substring, list item or mapping key).
    Contains,
    /// `icontains`: lower-cased substring.
    IContains,
    /// `ncontains`: `pattern not in value`.
    NContains,
    /// `incontains`: lower-cased substring absent.
    INContains,
    /// `startswith`.
    StartsWith,
    /// `istartswith`.
    IStartsWith,
    /// `endswith`.
    EndsWith,
    /// `iendswith`.
    IEndsWith,
    /// `lessthan`, `lt`: Python `value < pattern`.
    LessThan,
    /// `greaterthan`, `gt`: Python `value > pattern`.
    GreaterThan,
    /// `matchwildcard`: `fnmatch` glob over the whole value.
    MatchWildcard,
    /// `matchregex`: `re.match` (anchored at the start) with `DOTALL`.
    MatchRegex,
    /// `regex`: `re.search`.
    Regex,
    /// `iregex`: `re.search` ignoring case.
    IRegex,
    /// `timediff_lt`, `td_lt`: the value (a timestamp) is less than `pattern` seconds old.
    TimediffLt,
    /// `timediff_gt`, `td_gt`: the value is more than `pattern` seconds old.
    TimediffGt,
    /// `exists`: the value is present and not null.
    Exists,
    /// `nexists`: the value is absent or null.
    NExists,
    /// `inside`, `in`: `value in pattern`.
    Inside,
    /// `ninside`, `nin`: `value not in pattern`.
    NInside,
    /// `search`: child criteria over the items of a list.
    Search,
}

/// Every accepted name (lower case) and its operator.
const NAMES: &[(&str, Op)] = &[
    ("equals", Op::Equals),
    ("eq", Op::Equals),
    ("nequals", Op::NEquals),
    ("neq", Op::NEquals),
    ("iequals", Op::IEquals),
    ("ieq", Op::IEquals),
    ("contains", Op::Contains),
    ("icontains", Op::IContains),
    ("ncontains", Op::NContains),
    ("incontains", Op::INContains),
    ("startswith", Op::StartsWith),
    ("istartswith", Op::IStartsWith),
    ("endswith", Op::EndsWith),
    ("iendswith", Op::IEndsWith),
    ("lessthan", Op::LessThan),
    ("lt", Op::LessThan),
    ("greaterthan", Op::GreaterThan),
    ("gt", Op::GreaterThan),
    ("matchwildcard", Op::MatchWildcard),
    ("matchregex", Op::MatchRegex),
    ("regex", Op::Regex),
    ("iregex", Op::IRegex),
    ("timediff_lt", Op::TimediffLt),
    ("td_lt", Op::TimediffLt),
    ("timediff_gt", Op::TimediffGt),
    ("td_gt", Op::TimediffGt),
    ("exists", Op::Exists),
    ("nexists", Op::NExists),
    ("inside", Op::Inside),
    ("in", Op::Inside),
    ("ninside", Op::NInside),
    ("nin", Op::NInside),
    ("search", Op::Search),
];

impl Op {
    /// The operator named `name`, in any case (StackStorm lower-cases the name).
    pub fn parse(name: &str) -> Option<Op> {
        let lower = name.to_lowercase();
        NAMES.iter().find(|(n, _)| *n == lower).map(|&(_, op)| op)
    }

    /// Every accepted operator name, aliases included.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(n, _)| *n)
    }

    /// The operator's long name (`equals`, `lessthan`, …).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The case where Python raises (usually `TypeError`) and StackStorm answers false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch;

/// A JSON number or boolean as Python sees it in arithmetic comparisons.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn number(v: &Json) -> Option<Num> {
    match v {
        Json::Bool(b) => Some(Num::Int(i128::from(*b))),
        Json::Number(n) => Some(if let Some(i) = n.as_i64() {
            Num::Int(i.into())
        } else if let Some(u) = n.as_u64() {
            Num::Int(u.into())
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        _ => None,
    }
}

fn compare_numbers(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Int(x), Num::Float(y)) => (x as f64).partial_cmp(&y),
        (Num::Float(x), Num::Int(y)) => x.partial_cmp(&(y as f64)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
    }
}

/// Python's `a == b`: `1 == 1.0 == True`, lists and dicts compared deeply, no
/// conversion between strings and numbers.
pub fn py_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

/// Python's `a < b`: numbers (and booleans) by value, strings by code point, lists
/// lexicographically; anything else raises.
pub fn py_lt(a: &Json, b: &Json) -> Result<bool, Mismatch> {
    match (a, b) {
        (Json::String(x), Json::String(y)) => Ok(x < y),
        (Json::Array(x), Json::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_lt(p, q);
                }
            }
            Ok(x.len() < y.len())
        }
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => Ok(compare_numbers(x, y) == Some(Ordering::Less)),
            _ => Err(Mismatch),
        },
    }
}

/// Python's `needle in haystack`: substring of a string, item of a list (by `==`),
/// key of a dict; anything else raises.
pub fn py_in(needle: &Json, haystack: &Json) -> Result<bool, Mismatch> {
    match haystack {
        Json::String(h) => match needle {
            Json::String(n) => Ok(h.contains(n.as_str())),
            _ => Err(Mismatch),
        },
        Json::Array(items) => Ok(items.iter().any(|item| py_eq(item, needle))),
        Json::Object(map) => match needle {
            Json::String(n) => Ok(map.contains_key(n)),
            // Lists and dicts are unhashable; other keys never equal a string key.
            Json::Array(_) | Json::Object(_) => Err(Mismatch),
            _ => Ok(false),
        },
        _ => Err(Mismatch),
    }
}

/// Python's truth value: null, false, zero and empty containers are false.
pub fn py_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// `str.lower()`, borrowing when the text has nothing to lower.
pub fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// Both sides as strings (anything else makes the string methods raise).
pub fn strings<'a>(value: &'a Json, pattern: &'a Json) -> Result<(&'a str, &'a str), Mismatch> {
    match (value, pattern) {
        (Json::String(v), Json::String(p)) => Ok((v, p)),
        _ => Err(Mismatch),
    }
}

/// Python's `float(x)` for a timediff pattern: numbers, booleans, numeric strings.
pub fn py_float(v: &Json) -> Option<f64> {
    match v {
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_equality() {
        let cases = [
            (json!(1), json!(1.0), true),
            (json!(true), json!(1), true),
            (json!(false), json!(0.0), true),
            (json!("1"), json!(1), false),
            (json!([1, "a"]), json!([1.0, "a"]), true),
            (json!({"a": 1}), json!({"a": true}), true),
            (json!({"a": 1}), json!({"a": 1, "b": 2}), false),
            (json!(null), json!(null), true),
            (json!(null), json!(0), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(py_eq(&a, &b), want, "{a} == {b}");
        }
    }

    #[test]
    fn python_ordering() {
        let cases = [
            (json!(1), json!(2), Ok(true)),
            (json!(2.5), json!(2), Ok(false)),
            (json!(false), json!(1), Ok(true)),
            (json!("abc"), json!("abd"), Ok(true)),
            (json!("Z"), json!("a"), Ok(true)),
            (json!([1, 2]), json!([1, 3]), Ok(true)),
            (json!([1, 2]), json!([1, 2, 0]), Ok(true)),
            (json!([1, "a"]), json!([1, 2]), Err(Mismatch)),
            (json!("1"), json!(2), Err(Mismatch)),
            (json!(null), json!(2), Err(Mismatch)),
            (json!({}), json!({}), Err(Mismatch)),
        ];
        for (a, b, want) in cases {
            assert_eq!(py_lt(&a, &b), want, "{a} < {b}");
        }
    }

    #[test]
    fn python_membership() {
        let cases = [
            (json!("ell"), json!("hello"), Ok(true)),
            (json!(1), json!("hello1"), Err(Mismatch)),
            (json!(1), json!([true, 2]), Ok(true)),
            (json!("a"), json!({"a": 1}), Ok(true)),
            (json!(1), json!({"1": 1}), Ok(false)),
            (json!(["a"]), json!({"a": 1}), Err(Mismatch)),
            (json!("a"), json!(5), Err(Mismatch)),
            (json!("a"), json!(null), Err(Mismatch)),
        ];
        for (n, h, want) in cases {
            assert_eq!(py_in(&n, &h), want, "{n} in {h}");
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(Op::parse("EQ"), Some(Op::Equals));
        assert_eq!(Op::parse("TimeDiff_Lt"), Some(Op::TimediffLt));
        assert_eq!(Op::parse("equal"), None);
        assert_eq!(Op::Inside.name(), "inside");
        assert_eq!(lower("ÉCOLE"), "école");
        assert_eq!(lower("straße"), "straße");
    }
}
