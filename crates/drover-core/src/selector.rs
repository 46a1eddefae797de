//! Host selectors: which hosts a command, an API call or a dashboard view is about.
//!
//! A selector is a comma-separated list of terms that must all hold (AND):
//!
//! | term | matches hosts whose… |
//! |---|---|
//! | `all` (alone), or empty input | — every host |
//! | `name=GLOB`, `name!=GLOB` | name matches (does not match) `GLOB` |
//! | `label.KEY=GLOB`, `label.KEY!=GLOB` | label `KEY` matches (does not match) `GLOB` |
//! | `fact.KEY=GLOB`, `fact.KEY!=GLOB` | fact `KEY` matches (does not match) `GLOB` |
//! | `GLOB` (no `=`) | shorthand for `name=GLOB` |
//!
//! A host without the label or fact never matches `=` and always matches `!=`.
//! Whitespace around terms and around `=`/`!=` is ignored.
//!
//! Globs are case-sensitive and match the whole value: `*` matches any run of
//! characters (also none), `?` exactly one character, everything else itself.
//! Keys are made of ASCII letters, digits, `_`, `.`, `-` and `/`. Values are any
//! characters except `,`, and may not be empty (`*` matches anything, `!=*` means
//! "has no such label").
//!
//! ```
//! use drover_core::selector::{parse, Selectable};
//!
//! struct H;
//! impl Selectable for H {
//!     fn name(&self) -> &str { "web-1" }
//!     fn label(&self, key: &str) -> Option<&str> { (key == "role").then_some("web") }
//!     fn fact(&self, key: &str) -> Option<String> { (key == "os").then(|| "linux".into()) }
//! }
//!
//! let s = parse("web-*, label.role = web, fact.os!=windows").unwrap();
//! assert!(s.matches(&H));
//! assert_eq!(s.to_string(), "name=web-*,label.role=web,fact.os!=windows");
//!
//! let err = parse("name=a,nmae=b").unwrap_err();
//! assert_eq!(err.to_string(), "column 8: unknown field `nmae`; expected name, label.KEY or fact.KEY");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use drover_proto::hosts::Host;

mod prefilter;

pub use prefilter::{HostColumn, Prefilter};

/// What a host must look like to be selected: a conjunction of terms.
///
/// Build one with [`parse`] or [`str::parse`]; [`Display`](fmt::Display) prints the
/// canonical form, which parses back to an equal selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// The terms, all of which must hold. Empty means `all`.
    terms: Vec<Term>,
}

/// One `FIELD=GLOB` or `FIELD!=GLOB` condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Term {
    field: Field,
    negated: bool,
    glob: String,
}

/// The host attribute a term looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Field {
    Name,
    Label(String),
    Fact(String),
}

/// A selector that could not be parsed, with the place of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SelectorError {
    /// 1-based column, in characters, of the input where the problem is.
    pub column: usize,
    /// What is wrong, for people.
    pub message: String,
}

/// A host as far as selectors are concerned.
pub trait Selectable {
    /// The host's unique name.
    fn name(&self) -> &str;
    /// The value of label `key`, if the host has it.
    fn label(&self, key: &str) -> Option<&str>;
    /// The value of fact `key` as a string, if the host has it.
    fn fact(&self, key: &str) -> Option<String>;
}

/// Facts: the agent's reported facts, plus `status` (`up`/`down`/`missing`), the
/// inventory fields `provider`, `provider_id`, `region`, `address`, `stale` and
/// `drained` (`true`/`false`), and provider attributes as `provider.KEY`
/// (`fact.provider.instance_type=t3.micro`).
///
/// `addresses` is the comma-joined list of addresses; `os_release` is absent when
/// the agent did not know it.
impl Selectable for Host {
    fn name(&self) -> &str {
        &self.name
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    fn fact(&self, key: &str) -> Option<String> {
        let f = &self.facts;
        match key {
            "hostname" => Some(f.hostname.clone()),
            "os" => Some(f.os.clone()),
            "os_release" => f.os_release.clone(),
            "kernel" => Some(f.kernel.clone()),
            "arch" => Some(f.arch.clone()),
            "cpus" => Some(f.cpus.to_string()),
            "memory_bytes" => Some(f.memory_bytes.to_string()),
            "addresses" => Some(f.addresses.join(",")),
            "agent_version" => Some(f.agent_version.clone()),
            "status" => Some(self.status.as_str().to_string()),
            "provider" => self.provider.clone(),
            "provider_id" => self.provider_id.clone(),
            "region" => self.region.clone(),
            "address" => self.address.clone(),
            "stale" => Some(self.stale.to_string()),
            "drained" => Some(self.drained.to_string()),
            other => other
                .strip_prefix("provider.")
                .and_then(|k| self.attributes.get(k).cloned()),
        }
    }
}

/// Parses a selector; see the [module documentation](self) for the syntax.
pub fn parse(input: &str) -> Result<Selector, SelectorError> {
    if input.trim().is_empty() {
        return Ok(Selector::all());
    }

    // Split on commas, remembering where each piece starts (byte offset).
    let mut pieces: Vec<(usize, &str)> = Vec::new();
    let mut start = 0;
    for (i, c) in input.char_indices() {
        if c == ',' {
            pieces.push((start, &input[start..i]));
            start = i + 1;
        }
    }
    pieces.push((start, &input[start..]));

    // Empty terms first: they are reported at a comma (the one ending the empty
    // term, or for a trailing one the comma before it).
    for (i, &(off, raw)) in pieces.iter().enumerate() {
        if raw.trim().is_empty() {
            let comma = if i + 1 < pieces.len() {
                off + raw.len()
            } else {
                off - 1
            };
            return Err(error_at(input, comma, "empty term".to_string()));
        }
    }

    let mut terms = Vec::with_capacity(pieces.len());
    for &(off, raw) in &pieces {
        let term = raw.trim();
        let term_off = off + (raw.len() - raw.trim_start().len());
        if term == "all" {
            if pieces.len() > 1 {
                return Err(error_at(
                    input,
                    term_off,
                    "`all` cannot be combined with other terms".to_string(),
                ));
            }
            continue;
        }
        terms.push(parse_term(input, term_off, term)?);
    }
    Ok(Selector { terms })
}

/// Parses one trimmed, non-empty term found at byte offset `off` of `input`.
fn parse_term(input: &str, off: usize, term: &str) -> Result<Term, SelectorError> {
    let Some(eq) = term.find('=') else {
        // A bare glob is a name glob.
        return Ok(Term {
            field: Field::Name,
            negated: false,
            glob: term.to_string(),
        });
    };
    let negated = term[..eq].ends_with('!');
    let op_start = if negated { eq - 1 } else { eq };
    let op = if negated { "!=" } else { "=" };

    let key = term[..op_start].trim_end();
    if key.is_empty() {
        return Err(error_at(
            input,
            off + op_start,
            format!("missing field before `{op}`; expected name, label.KEY or fact.KEY"),
        ));
    }

    let field = match key.split_once('.') {
        None if key == "name" => Field::Name,
        None if key == "label" || key == "fact" => {
            return Err(error_at(
                input,
                off,
                format!("`{key}` needs a key, as in `{key}.KEY`"),
            ));
        }
        Some(("name", _)) => {
            return Err(error_at(
                input,
                off,
                "`name` takes no key; write `name=GLOB`".to_string(),
            ));
        }
        Some((word @ ("label" | "fact"), k)) => {
            let key_off = off + word.len() + 1;
            if k.is_empty() {
                return Err(error_at(
                    input,
                    key_off,
                    format!("missing key after `{word}.`"),
                ));
            }
            if let Some((i, c)) = k.char_indices().find(|&(_, c)| !is_key_char(c)) {
                return Err(error_at(
                    input,
                    key_off + i,
                    format!(
                        "invalid character `{c}` in key; keys use letters, digits, `_`, `.`, `-` and `/`"
                    ),
                ));
            }
            if word == "label" {
                Field::Label(k.to_string())
            } else {
                Field::Fact(k.to_string())
            }
        }
        _ => {
            return Err(error_at(
                input,
                off,
                format!("unknown field `{key}`; expected name, label.KEY or fact.KEY"),
            ));
        }
    };

    let value = term[eq + 1..].trim();
    if value.is_empty() {
        return Err(error_at(
            input,
            off + op_start,
            format!("empty value after `{op}`; use `*` to match any value"),
        ));
    }
    Ok(Term {
        field,
        negated,
        glob: value.to_string(),
    })
}

/// True for the characters allowed in label and fact keys.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')
}

/// An error at byte offset `byte` of `input`, reported as a 1-based char column.
fn error_at(input: &str, byte: usize, message: String) -> SelectorError {
    SelectorError {
        column: input[..byte].chars().count() + 1,
        message,
    }
}

impl Selector {
    /// The selector that matches every host (`all`).
    pub fn all() -> Selector {
        Selector { terms: Vec::new() }
    }

    /// True when this selector matches every host (`all` or empty input).
    pub fn is_all(&self) -> bool {
        self.terms.is_empty()
    }

    /// True when some term tests a fact: deciding it needs the host's facts, not only
    /// its name and labels.
    pub fn uses_facts(&self) -> bool {
        self.terms.iter().any(|t| matches!(t.field, Field::Fact(_)))
    }

    /// True when `host` satisfies every term.
    pub fn matches<S: Selectable + ?Sized>(&self, host: &S) -> bool {
        self.terms.iter().all(|t| t.matches(host))
    }
}

impl Term {
    fn matches<S: Selectable + ?Sized>(&self, host: &S) -> bool {
        let value: Option<Cow<'_, str>> = match &self.field {
            Field::Name => Some(Cow::Borrowed(host.name())),
            Field::Label(k) => host.label(k).map(Cow::Borrowed),
            Field::Fact(k) => host.fact(k).map(Cow::Owned),
        };
        match value {
            None => self.negated,
            Some(v) => glob_match(&self.glob, &v) != self.negated,
        }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        parse(s)
    }
}

/// The canonical form: `all`, or terms as `FIELD=GLOB` / `FIELD!=GLOB` joined by `,`
/// without spaces (bare globs are written `name=GLOB`).
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("all");
        }
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match &t.field {
                Field::Name => f.write_str("name")?,
                Field::Label(k) => write!(f, "label.{k}")?,
                Field::Fact(k) => write!(f, "fact.{k}")?,
            }
            f.write_str(if t.negated { "!=" } else { "=" })?;
            f.write_str(&t.glob)?;
        }
        Ok(())
    }
}

/// True when `value` as a whole matches the glob `pattern`.
///
/// `*` matches any run of characters (also none), `?` exactly one character, and
/// every other character itself (case-sensitive). Runs in O(len(pattern) ×
/// len(value)) at worst.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, value index).
    let mut backtrack: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            pi += 1;
            backtrack = Some((pi, vi));
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if let Some((bp, bv)) = backtrack {
            // Let the last `*` swallow one more character and retry.
            pi = bp;
            vi = bv + 1;
            backtrack = Some((bp, bv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A host for tests.
    #[derive(Debug, Clone)]
    struct TestHost {
        name: String,
        labels: BTreeMap<String, String>,
        facts: BTreeMap<String, String>,
    }

    impl Selectable for TestHost {
        fn name(&self) -> &str {
            &self.name
        }
        fn label(&self, key: &str) -> Option<&str> {
            self.labels.get(key).map(String::as_str)
        }
        fn fact(&self, key: &str) -> Option<String> {
            self.facts.get(key).cloned()
        }
    }

    fn host(name: &str, labels: &[(&str, &str)], facts: &[(&str, &str)]) -> TestHost {
        TestHost {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            facts: facts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn web1() -> TestHost {
        host(
            "web-1",
            &[("role", "web"), ("env", "prod"), ("team/owner", "ops")],
            &[("os", "linux"), ("cpus", "4"), ("arch", "x86_64")],
        )
    }

    fn db1() -> TestHost {
        host(
            "db-1",
            &[("role", "db")],
            &[("os", "freebsd"), ("cpus", "16"), ("arch", "aarch64")],
        )
    }

    fn bare() -> TestHost {
        host("bare", &[], &[])
    }

    #[test]
    fn selector_forms() {
        // (selector, canonical form, matches web-1, db-1, bare)
        let table: &[(&str, &str, [bool; 3])] = &[
            ("", "all", [true, true, true]),
            ("   ", "all", [true, true, true]),
            ("all", "all", [true, true, true]),
            (" all ", "all", [true, true, true]),
            ("name=web-1", "name=web-1", [true, false, false]),
            ("name=web-*", "name=web-*", [true, false, false]),
            ("name!=web-*", "name!=web-*", [false, true, true]),
            ("web-*", "name=web-*", [true, false, false]),
            ("*-1", "name=*-1", [true, true, false]),
            ("?b-1", "name=?b-1", [false, true, false]),
            ("name=all", "name=all", [false, false, false]),
            ("label.role=web", "label.role=web", [true, false, false]),
            ("label.role!=web", "label.role!=web", [false, true, true]),
            ("label.role=*", "label.role=*", [true, true, false]),
            ("label.role!=*", "label.role!=*", [false, false, true]),
            (
                "label.team/owner=ops",
                "label.team/owner=ops",
                [true, false, false],
            ),
            ("label.nope=x", "label.nope=x", [false, false, false]),
            ("label.nope!=x", "label.nope!=x", [true, true, true]),
            ("fact.os=linux", "fact.os=linux", [true, false, false]),
            ("fact.os!=linux", "fact.os!=linux", [false, true, true]),
            ("fact.cpus=4", "fact.cpus=4", [true, false, false]),
            ("fact.cpus=1?", "fact.cpus=1?", [false, true, false]),
            ("fact.arch=x86_64", "fact.arch=x86_64", [true, false, false]),
            ("fact.arch=*64", "fact.arch=*64", [true, true, false]),
            (
                " name = web-* , label.env != dev ,fact.os=linux ",
                "name=web-*,label.env!=dev,fact.os=linux",
                [true, false, false],
            ),
            (
                "name=*,label.role=db",
                "name=*,label.role=db",
                [false, true, false],
            ),
            // Values keep inner spaces and may contain `=` and `!`.
            ("label.x=a b", "label.x=a b", [false, false, false]),
            ("name==x", "name==x", [false, false, false]),
            ("name!==x", "name!==x", [true, true, true]),
            ("name=!x", "name=!x", [false, false, false]),
            ("foo!bar", "name=foo!bar", [false, false, false]),
            // Keys may contain dots and dashes.
            ("label.a.b-c_d=1", "label.a.b-c_d=1", [false, false, false]),
        ];
        let hosts = [web1(), db1(), bare()];
        for (input, canonical, expected) in table {
            let s = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(s.to_string(), *canonical, "canonical form of {input:?}");
            assert_eq!(parse(canonical).unwrap(), s, "round trip of {input:?}");
            assert_eq!(input.parse::<Selector>().unwrap(), s);
            for (h, want) in hosts.iter().zip(expected) {
                assert_eq!(s.matches(h), *want, "{input:?} on {}", h.name);
            }
            assert_eq!(s.is_all(), *canonical == "all", "is_all of {input:?}");
        }
    }

    #[test]
    fn selector_errors() {
        // (input, column, message)
        let fields = "expected name, label.KEY or fact.KEY";
        let key_chars = "keys use letters, digits, `_`, `.`, `-` and `/`";
        let table: Vec<(&str, usize, String)> = vec![
            ("name=a,,b", 8, "empty term".into()),
            (",name=a", 1, "empty term".into()),
            ("name=a,", 7, "empty term".into()),
            ("name=a, ,b", 9, "empty term".into()),
            (",", 1, "empty term".into()),
            ("=x", 1, format!("missing field before `=`; {fields}")),
            ("a,  =x", 5, format!("missing field before `=`; {fields}")),
            ("!=x", 1, format!("missing field before `!=`; {fields}")),
            (
                "name=a,nmae=b",
                8,
                format!("unknown field `nmae`; {fields}"),
            ),
            ("all=x", 1, format!("unknown field `all`; {fields}")),
            (
                "labels.role=x",
                1,
                format!("unknown field `labels.role`; {fields}"),
            ),
            (" n a=x", 2, format!("unknown field `n a`; {fields}")),
            (
                "label=x",
                1,
                "`label` needs a key, as in `label.KEY`".into(),
            ),
            ("fact!=x", 1, "`fact` needs a key, as in `fact.KEY`".into()),
            (
                "name.x=y",
                1,
                "`name` takes no key; write `name=GLOB`".into(),
            ),
            ("label.=x", 7, "missing key after `label.`".into()),
            ("a, fact. = x", 9, "missing key after `fact.`".into()),
            (
                "label.x=",
                8,
                "empty value after `=`; use `*` to match any value".into(),
            ),
            (
                "label.x!=",
                8,
                "empty value after `!=`; use `*` to match any value".into(),
            ),
            (
                "name =  ,a",
                6,
                "empty value after `=`; use `*` to match any value".into(),
            ),
            (
                "label.ro le=x",
                9,
                format!("invalid character ` ` in key; {key_chars}"),
            ),
            (
                "fact.a!b=x",
                7,
                format!("invalid character `!` in key; {key_chars}"),
            ),
            (
                "éé,label.ké=x",
                11,
                format!("invalid character `é` in key; {key_chars}"),
            ),
            (
                "all,name=x",
                1,
                "`all` cannot be combined with other terms".into(),
            ),
            (
                "name=x, all",
                9,
                "`all` cannot be combined with other terms".into(),
            ),
            (
                "all,all",
                1,
                "`all` cannot be combined with other terms".into(),
            ),
            // Empty terms are reported before anything else.
            ("all,", 4, "empty term".into()),
        ];
        for (input, column, message) in table {
            let err = parse(input).expect_err(input);
            assert_eq!(
                err,
                SelectorError {
                    column,
                    message: message.clone()
                },
                "{input:?}"
            );
            assert_eq!(err.to_string(), format!("column {column}: {message}"));
        }
    }

    #[test]
    fn glob_edge_cases() {
        let table: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("**", "", true),
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("?", "é", true),
            ("??", "é", false),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("a*b*c", "acb", false),
            ("*ab", "aab", true),
            ("*aab", "aaab", true),
            ("a*a*a", "aaaa", true),
            ("a*a*a", "aa", false),
            ("*?", "", false),
            ("*?", "x", true),
            ("?*?", "x", false),
            ("web-?", "web-1", true),
            ("web-?", "web-10", false),
            ("Web-*", "web-1", false),
            ("[ab]", "a", false),
            ("[ab]", "[ab]", true),
            (".*", "x", false),
            (".*", ".x", true),
            ("a\\*", "a\\xyz", true),
        ];
        for (p, v, want) in table {
            assert_eq!(glob_match(p, v), *want, "glob {p:?} on {v:?}");
        }
    }

    #[test]
    fn proto_host_is_selectable() {
        let h: Host = serde_json::from_value(serde_json::json!({
            "id": "h-1",
            "name": "web-1",
            "status": "up",
            "labels": {"role": "web"},
            "facts": {
                "hostname": "web-1.example",
                "os": "linux",
                "os_release": "Debian GNU/Linux 12",
                "kernel": "6.1.0-18-amd64",
                "arch": "x86_64",
                "cpus": 4,
                "memory_bytes": 8589934592u64,
                "addresses": ["10.0.0.5", "fe80::1"],
                "agent_version": "0.1.0"
            },
            "enrolled_at": "2026-01-01T00:00:00Z",
            "last_seen_at": "2026-01-01T00:00:05Z"
        }))
        .unwrap();
        assert_eq!(Selectable::name(&h), "web-1");
        assert_eq!(h.label("role"), Some("web"));
        assert_eq!(h.label("env"), None);
        let facts = [
            ("hostname", Some("web-1.example")),
            ("os", Some("linux")),
            ("os_release", Some("Debian GNU/Linux 12")),
            ("kernel", Some("6.1.0-18-amd64")),
            ("arch", Some("x86_64")),
            ("cpus", Some("4")),
            ("memory_bytes", Some("8589934592")),
            ("addresses", Some("10.0.0.5,fe80::1")),
            ("agent_version", Some("0.1.0")),
            ("status", Some("up")),
            ("nope", None),
        ];
        for (k, v) in facts {
            assert_eq!(h.fact(k).as_deref(), v, "fact {k}");
        }
        for (sel, want) in [
            ("fact.os=linux,fact.cpus=4,fact.arch=x86_64", true),
            ("fact.status=up", true),
            ("fact.status=down", false),
            ("fact.addresses=*10.0.0.5*", true),
            ("label.role=web,web-?", true),
            ("fact.os_release!=*Debian*", false),
        ] {
            assert_eq!(parse(sel).unwrap().matches(&h), want, "{sel}");
        }

        let mut h2 = h.clone();
        h2.facts.os_release = None;
        h2.status = drover_proto::hosts::HostStatus::Down;
        assert_eq!(h2.fact("os_release"), None);
        assert!(parse("fact.os_release!=x").unwrap().matches(&h2));
        assert!(parse("fact.status=down").unwrap().matches(&h2));
        // Works through a trait object too.
        let dynh: &dyn Selectable = &h2;
        assert!(parse("web-1").unwrap().matches(dynh));
    }

    // ---- property tests -------------------------------------------------------

    /// Naive recursive glob, the reference for [`glob_match`].
    fn naive_glob(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| naive_glob(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && naive_glob(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && naive_glob(rest, &v[1..]),
        }
    }

    /// A generated term: (field kind 0=name 1=label 2=fact, key, negated, glob).
    type GenTerm = (u8, String, bool, String);

    fn gen_key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            "[A-Za-z0-9_./-]{1,6}",
        ]
    }

    /// Globs over a small alphabet (so they often match) plus awkward characters.
    fn gen_glob() -> impl Strategy<Value = String> {
        "[ab*?=!é. ]{0,6}".prop_filter_map("no surrounding whitespace, not empty", |g| {
            let t = g.trim().to_string();
            (!t.is_empty()).then_some(t)
        })
    }

    fn gen_term() -> impl Strategy<Value = GenTerm> {
        (0u8..3, gen_key(), any::<bool>(), gen_glob())
    }

    fn gen_value() -> impl Strategy<Value = String> {
        "[ab.é]{0,5}"
    }

    fn gen_host() -> impl Strategy<Value = TestHost> {
        let map = || {
            prop::collection::btree_map(
                prop_oneof![Just("a".to_string()), Just("b".to_string()), "[a-z]{1,3}"],
                gen_value(),
                0..3,
            )
        };
        (gen_value(), map(), map()).prop_map(|(name, labels, facts)| TestHost {
            name,
            labels,
            facts,
        })
    }

    /// Writes generated terms as selector text, with optional extra whitespace.
    fn render(terms: &[GenTerm], spaced: bool) -> String {
        let sp = if spaced { " " } else { "" };
        terms
            .iter()
            .map(|(kind, key, neg, glob)| {
                let field = match kind {
                    0 => "name".to_string(),
                    1 => format!("label.{key}"),
                    _ => format!("fact.{key}"),
                };
                let op = if *neg { "!=" } else { "=" };
                format!("{sp}{field}{sp}{op}{sp}{glob}{sp}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reference semantics of a generated selector on a host.
    fn reference_matches(terms: &[GenTerm], h: &TestHost) -> bool {
        terms.iter().all(|(kind, key, neg, glob)| {
            let value = match kind {
                0 => Some(h.name.clone()),
                1 => h.labels.get(key).cloned(),
                _ => h.facts.get(key).cloned(),
            };
            match value {
                None => *neg,
                Some(v) => {
                    let p: Vec<char> = glob.chars().collect();
                    let v: Vec<char> = v.chars().collect();
                    naive_glob(&p, &v) != *neg
                }
            }
        })
    }

    proptest! {
        #[test]
        fn glob_agrees_with_naive(p in "[ab*?]{0,8}", v in "[ab]{0,8}") {
            let pc: Vec<char> = p.chars().collect();
            let vc: Vec<char> = v.chars().collect();
            prop_assert_eq!(glob_match(&p, &v), naive_glob(&pc, &vc));
        }

        #[test]
        fn display_round_trips(terms in prop::collection::vec(gen_term(), 0..5), spaced in any::<bool>()) {
            let text = render(&terms, spaced);
            let s = parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            let shown = s.to_string();
            let again = parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
            prop_assert_eq!(&again, &s);
            prop_assert_eq!(again.to_string(), shown);
            prop_assert_eq!(s.is_all(), terms.is_empty());
        }

        #[test]
        fn matches_agrees_with_reference(
            terms in prop::collection::vec(gen_term(), 0..4),
            hosts in prop::collection::vec(gen_host(), 1..6),
        ) {
            let s = parse(&render(&terms, false)).unwrap();
            for h in &hosts {
                prop_assert_eq!(s.matches(h), reference_matches(&terms, h), "{} on {:?}", s, h);
            }
        }

        #[test]
        fn parse_never_panics_and_columns_are_in_range(input in "[a-z.=!, *é]{0,16}") {
            if let Err(e) = parse(&input) {
                prop_assert!(e.column >= 1 && e.column <= input.chars().count() + 1, "{:?}: {}", input, e);
            }
        }
    }
}
