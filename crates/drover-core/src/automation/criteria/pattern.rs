//! Patterns made ready once, when a rule is read: regular expressions compiled (with
//! Python's flags), globs translated the way `fnmatch` does, timediff periods parsed.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use regex::Regex;
use serde_json::Value as Json;

use super::ops::{Op, py_float};

/// Why a pattern cannot be used, and where in it (1-based character column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Column inside the pattern text, when the problem has one.
    pub column: Option<usize>,
    /// What is wrong, for people.
    pub reason: String,
}

/// A pattern in its ready form.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Used as written.
    Plain,
    /// The pattern lower-cased (the `i…` string operators).
    Lower(String),
    /// A compiled expression (`regex`, `iregex`, `matchregex`, `matchwildcard`).
    Regex(Regex),
    /// A period in seconds (`timediff_*`).
    Seconds(f64),
    /// A template the shell has not rendered yet: matches nothing until it is.
    Unrendered,
}

/// Whether a pattern is a Jinja template (StackStorm renders string patterns).
pub fn is_template(pattern: &Json) -> bool {
    matches!(pattern, Json::String(s) if s.contains("{{") || s.contains("{%"))
}

/// Makes `pattern` ready for `op` (not `search`, whose pattern is child criteria).
pub fn prepare(op: Op, pattern: &Json) -> Result<Prepared, PatternError> {
    if pattern.is_null() {
        return Ok(Prepared::Plain);
    }
    if is_template(pattern) {
        return Ok(Prepared::Unrendered);
    }
    let text = match pattern {
        Json::String(s) => Some(s.as_str()),
        _ => None,
    };
    let need_text = || PatternError {
        column: None,
        reason: format!(
            "`{}` needs a string pattern, found {}",
            op.name(),
            describe(pattern)
        ),
    };
    match op {
        Op::IEquals | Op::IContains | Op::INContains | Op::IStartsWith | Op::IEndsWith => {
            Ok(match text {
                Some(s) => Prepared::Lower(s.to_lowercase()),
                // Python raises at run time; keep StackStorm's answer (false).
                None => Prepared::Plain,
            })
        }
        Op::Regex => compile(text.ok_or_else(need_text)?, "", "").map(Prepared::Regex),
        Op::IRegex => compile(text.ok_or_else(need_text)?, "(?i)", "").map(Prepared::Regex),
        Op::MatchRegex => {
            compile(text.ok_or_else(need_text)?, "(?s)^(?:", ")").map(Prepared::Regex)
        }
        Op::MatchWildcard => glob(text.ok_or_else(need_text)?).map(Prepared::Regex),
        Op::TimediffLt | Op::TimediffGt => match py_float(pattern) {
            Some(s) => Ok(Prepared::Seconds(s)),
            None => Err(PatternError {
                column: None,
                reason: format!(
                    "`{}` needs a number of seconds, found {}",
                    op.name(),
                    describe(pattern)
                ),
            }),
        },
        _ => Ok(Prepared::Plain),
    }
}

/// A JSON value described for an error message.
pub fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(_) => format!("the boolean {v}"),
        Json::Number(_) => format!("the number {v}"),
        Json::String(_) => format!("the string {v}"),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
    }
}

/// Python's `\Z` (end of text) is Rust's `\z`; the rest of the syntax used in rules
/// is shared.
fn to_rust_syntax(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('Z') => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Compiles `prefix + pattern + suffix`, locating syntax errors inside `pattern`.
fn compile(pattern: &str, prefix: &str, suffix: &str) -> Result<Regex, PatternError> {
    let rust = to_rust_syntax(pattern);
    if let Err(e) = regex_syntax::Parser::new().parse(&rust) {
        let (column, kind) = match &e {
            regex_syntax::Error::Parse(p) => (p.span().start.column, p.kind().to_string()),
            regex_syntax::Error::Translate(t) => (t.span().start.column, t.kind().to_string()),
            other => (1, other.to_string()),
        };
        return Err(PatternError {
            column: Some(column),
            reason: format!("invalid regular expression: {kind}"),
        });
    }
    Regex::new(&format!("{prefix}{rust}{suffix}")).map_err(|e| PatternError {
        column: None,
        reason: format!("invalid regular expression: {e}"),
    })
}

/// Translates a shell glob the way Python's `fnmatch.translate` does: `*`, `?`,
/// `[seq]`, `[!seq]`, an unclosed `[` taken literally, the whole text matched.
fn glob(pattern: &str) -> Result<Regex, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("(?s)^(?:");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    out.push_str(&glob_class(&chars[i..j]));
                    i = j + 1;
                }
            }
            other => out.push_str(&regex_syntax::escape(&other.to_string())),
        }
    }
    out.push_str(")\\z");
    Regex::new(&out).map_err(|e| PatternError {
        column: None,
        reason: format!("invalid glob: {e}"),
    })
}

/// One `[…]` of a glob (without the brackets) as a regex class.
fn glob_class(body: &[char]) -> String {
    let (negate, body) = match body.first() {
        Some('!') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut items = String::new();
    let mut k = 0;
    while k < body.len() {
        let lo = body[k];
        if k + 2 < body.len() && body[k + 1] == '-' {
            let hi = body[k + 2];
            // Python drops reversed ranges such as `z-a`.
            if lo <= hi {
                items.push_str(&regex_syntax::escape(&lo.to_string()));
                items.push('-');
                items.push_str(&regex_syntax::escape(&hi.to_string()));
            }
            k += 3;
        } else {
            items.push_str(&regex_syntax::escape(&lo.to_string()));
            k += 1;
        }
    }
    match (items.is_empty(), negate) {
        (true, true) => ".".into(),
        (true, false) => "[a&&b]".into(),
        (false, true) => format!("[^{items}]"),
        (false, false) => format!("[{items}]"),
    }
}

/// A timestamp as StackStorm's date parser reads it: RFC 3339 / ISO 8601 with or
/// without offset (none means UTC), `T` or space between date and time, or a bare date.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_millis());
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wildcard(p: &str, text: &str) -> bool {
        match prepare(Op::MatchWildcard, &json!(p)) {
            Ok(Prepared::Regex(r)) => r.is_match(text),
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn globs_follow_fnmatch() {
        let cases = [
            ("web-*", "web-01", true),
            ("web-*", "db-01", false),
            ("web-??", "web-01", true),
            ("web-??", "web-1", false),
            ("*.log", "a\nb.log", true),
            ("[abc]x", "bx", true),
            ("[!abc]x", "bx", false),
            ("[!abc]x", "dx", true),
            ("[a-c]", "b", true),
            ("[z-a]x", "zx", false),
            ("[]]", "]", true),
            ("a[", "a[", true),
            ("a.b", "axb", false),
            ("[&&]", "&", true),
            ("Web", "web", false),
        ];
        for (p, text, want) in cases {
            assert_eq!(wildcard(p, text), want, "{p} ~ {text:?}");
        }
    }

    #[test]
    fn regex_errors_are_located() {
        let e = prepare(Op::Regex, &json!("ab(c")).unwrap_err();
        assert_eq!(e.column, Some(3));
        assert!(e.reason.contains("unclosed group"), "{}", e.reason);
        let e = prepare(Op::Regex, &json!("(?=x)y")).unwrap_err();
        assert!(e.reason.contains("look-around"), "{}", e.reason);
        assert!(prepare(Op::Regex, &json!(5)).is_err());
        assert!(matches!(
            prepare(Op::Regex, &json!("{{ x }}")),
            Ok(Prepared::Unrendered)
        ));
    }

    #[test]
    fn timestamps() {
        let base = 1_700_000_000_000_i64; // 2023-11-14T22:13:20Z
        let cases = [
            ("2023-11-14T22:13:20Z", Some(base)),
            ("2023-11-14T22:13:20.5+00:00", Some(base + 500)),
            ("2023-11-14 22:13:20", Some(base)),
            ("2023-11-14T23:13:20+0100", Some(base)),
            ("2023-11-14", Some(base - 80_000_000)),
            ("yesterday", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_timestamp_ms(text), want, "{text}");
        }
    }
}
