//! StackStorm's Jinja filters (st2common/expressions/functions/*), same names, same
//! results.
//!
//! Known differences: regular expressions use Rust's `regex` syntax (no look-around
//! or back-references; Python's `\1` and `\g<name>` in replacements are translated);
//! `jsonpath_query` understands the common subset `$`, `.key`, `['key']`, `[n]`,
//! `[*]`, `.*` (no filters, slices or recursive descent); `to_yaml_string` writes
//! block style with sorted keys like PyYAML's `safe_dump`, quoting strings that
//! would not read back as themselves.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;

use super::datastore::decrypt_kv;
use super::python::{self, Dumps};

/// The magic string `use_none` turns `None` into; the parameter cast turns it back.
pub const NONE_MAGIC_VALUE: &str = "%*****__%NONE%__*****%";

/// Adds every StackStorm filter to `env`.
pub fn add_filters(env: &mut Environment<'static>) {
    env.add_filter("to_json_string", to_json_string);
    env.add_filter("to_yaml_string", to_yaml_string);
    env.add_filter("to_complex", to_complex);
    env.add_filter("from_json_string", from_json_string);
    env.add_filter("from_yaml_string", from_yaml_string);
    env.add_filter("json_escape", json_escape);
    env.add_filter("jsonpath_query", jsonpath_query);
    env.add_filter("regex_match", regex_match);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_substring", regex_substring);
    env.add_filter("to_human_time_from_seconds", to_human_time_from_seconds);
    env.add_filter("version_compare", version_compare);
    env.add_filter("version_more_than", version_more_than);
    env.add_filter("version_less_than", version_less_than);
    env.add_filter("version_equal", version_equal);
    env.add_filter("version_match", version_match);
    env.add_filter("version_bump_major", version_bump_major);
    env.add_filter("version_bump_minor", version_bump_minor);
    env.add_filter("version_bump_patch", version_bump_patch);
    env.add_filter("version_strip_patch", version_strip_patch);
    env.add_filter("use_none", use_none);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("decrypt_kv", decrypt_kv);
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, what.into())
}

fn to_json(value: &Value) -> Result<Json, Error> {
    serde_json::to_value(value).map_err(|e| bad(e.to_string()))
}

fn from_json(value: Json) -> Value {
    Value::from(minijinja::value::Serde(&value))
}

/// `str(value)` as StackStorm's filters take their text input.
fn text_of(value: &Value) -> Result<String, Error> {
    match value.as_str() {
        Some(s) => Ok(s.to_string()),
        None => Ok(python::str_of(&to_json(value)?)),
    }
}

/// `json.dumps(value, indent, sort_keys, separators=(",", ": "))`.
fn to_json_string(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let opts = Dumps {
        indent,
        sort_keys: sort_keys.unwrap_or(false),
        item_sep: ",",
        key_sep: ": ",
        ensure_ascii: true,
    };
    Ok(python::dumps(&to_json(&value)?, &opts))
}

/// `json.dumps(value)` (default separators).
fn to_complex(value: Value) -> Result<String, Error> {
    Ok(python::dumps(&to_json(&value)?, &Dumps::default()))
}

/// `json.dumps(value).strip('"')`.
fn json_escape(value: Value) -> Result<String, Error> {
    let text = python::dumps(&to_json(&value)?, &Dumps::default());
    Ok(text.trim_matches('"').to_string())
}

fn from_json_string(value: Value) -> Result<Value, Error> {
    let text = text_of(&value)?;
    serde_json::from_str::<Json>(&text)
        .map(from_json)
        .map_err(|e| bad(format!("from_json_string: {e}")))
}

fn from_yaml_string(value: Value) -> Result<Value, Error> {
    let text = text_of(&value)?;
    serde_saphyr::from_str::<Json>(&text)
        .map(from_json)
        .map_err(|e| bad(format!("from_yaml_string: {e}")))
}

/// PyYAML's `safe_dump(value, default_flow_style=False)`.
fn to_yaml_string(value: Value) -> Result<String, Error> {
    let json = to_json(&value)?;
    let mut out = String::new();
    match &json {
        Json::Array(items) if !items.is_empty() => yaml_seq(&mut out, items, 0),
        Json::Object(map) if !map.is_empty() => yaml_map(&mut out, map, 0),
        scalar => {
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
            if !matches!(scalar, Json::Array(_) | Json::Object(_)) {
                out.push_str("...\n");
            }
        }
    }
    Ok(out)
}

fn yaml_scalar(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => yaml_string(s),
        Json::Array(_) => "[]".into(),
        Json::Object(_) => "{}".into(),
    }
}

fn yaml_string(s: &str) -> String {
    let reads_back = serde_saphyr::from_str::<Json>(s).ok() == Some(Json::String(s.to_string()));
    let plain = !s.is_empty()
        && reads_back
        && !s.starts_with([
            ' ', '-', '?', ':', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`',
        ])
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('\n')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else if s.chars().any(|c| c.is_control()) {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn yaml_map(out: &mut String, map: &serde_json::Map<String, Json>, depth: usize) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        out.push_str(&"  ".repeat(depth));
        out.push_str(&yaml_string(key));
        out.push(':');
        yaml_child(out, value, depth, true);
    }
}

fn yaml_seq(out: &mut String, items: &[Json], depth: usize) {
    for item in items {
        out.push_str(&"  ".repeat(depth));
        out.push('-');
        yaml_child(out, item, depth, false);
    }
}

fn yaml_child(out: &mut String, value: &Json, depth: usize, in_map: bool) {
    match value {
        Json::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(out, m, depth + 1);
        }
        // PyYAML does not indent a list under a mapping key.
        Json::Array(items) if !items.is_empty() => {
            out.push('\n');
            yaml_seq(out, items, if in_map { depth } else { depth + 1 });
        }
        scalar => {
            out.push(' ');
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

/// The matches of `query` in `value` (a list), or none when nothing matched.
fn jsonpath_query(value: Value, query: &str) -> Result<Value, Error> {
    let steps = jsonpath_steps(query).ok_or_else(|| {
        bad(format!(
            "jsonpath_query: unsupported query `{query}` (supported: $, .key, ['key'], [n], [*], .*)"
        ))
    })?;
    let mut current = vec![to_json(&value)?];
    for step in &steps {
        let mut next = Vec::new();
        for v in &current {
            match (step, v) {
                (Step::Key(k), Json::Object(m)) => next.extend(m.get(k).cloned()),
                (Step::Index(i), Json::Array(a)) => {
                    let at = if *i < 0 { a.len() as i64 + i } else { *i };
                    if let Ok(at) = usize::try_from(at) {
                        next.extend(a.get(at).cloned());
                    }
                }
                (Step::All, Json::Array(a)) => next.extend(a.iter().cloned()),
                (Step::All, Json::Object(m)) => next.extend(m.values().cloned()),
                _ => {}
            }
        }
        current = next;
    }
    if current.is_empty() {
        Ok(Value::from(()))
    } else {
        Ok(from_json(Json::Array(current)))
    }
}

enum Step {
    Key(String),
    Index(i64),
    All,
}

fn jsonpath_steps(query: &str) -> Option<Vec<Step>> {
    let q = query.trim();
    let mut rest = q.strip_prefix('$').unwrap_or(q);
    let mut steps = Vec::new();
    let mut first = !q.starts_with('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(k) = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            {
                steps.push(Step::Key(k.to_string()));
            } else {
                steps.push(Step::Index(inner.parse().ok()?));
            }
        } else {
            let r = match rest.strip_prefix('.') {
                Some(r) => r,
                None if first => rest,
                None => return None,
            };
            if r.starts_with('.') {
                return None;
            }
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            match key {
                "" => return None,
                "*" => steps.push(Step::All),
                k => steps.push(Step::Key(k.to_string())),
            }
        }
        first = false;
    }
    Some(steps)
}

fn compile(pattern: &str, ignorecase: bool, anchored: bool) -> Result<regex::Regex, Error> {
    let mut full = String::new();
    if ignorecase {
        full.push_str("(?i)");
    }
    if anchored {
        full.push_str(&format!("^(?:{pattern})"));
    } else {
        full.push_str(pattern);
    }
    regex::Regex::new(&full).map_err(|e| bad(format!("invalid regular expression: {e}")))
}

/// `re.match`: anchored at the start.
fn regex_match(value: Value, pattern: &str, ignorecase: Option<bool>) -> Result<bool, Error> {
    Ok(compile(pattern, ignorecase.unwrap_or(false), true)?.is_match(&text_of(&value)?))
}

/// `re.search`: anywhere.
fn regex_search(value: Value, pattern: &str, ignorecase: Option<bool>) -> Result<bool, Error> {
    Ok(compile(pattern, ignorecase.unwrap_or(false), false)?.is_match(&text_of(&value)?))
}

/// `re.sub` with Python's replacement syntax (`\1`, `\g<1>`, `\g<name>`).
fn regex_replace(
    value: Value,
    pattern: &str,
    replacement: &str,
    ignorecase: Option<bool>,
) -> Result<String, Error> {
    let re = compile(pattern, ignorecase.unwrap_or(false), false)?;
    let replacement = python_replacement(replacement);
    Ok(re
        .replace_all(&text_of(&value)?, replacement.as_str())
        .into_owned())
}

fn python_replacement(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '$' => out.push_str("$$"),
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                if next.is_ascii_digit() {
                    let mut j = i + 1;
                    while j < chars.len() && j < i + 3 && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    let group: String = chars[i + 1..j].iter().collect();
                    out.push_str(&format!("${{{group}}}"));
                    i = j;
                    continue;
                }
                if next == 'g'
                    && chars.get(i + 2) == Some(&'<')
                    && let Some(end) = chars[i + 3..].iter().position(|c| *c == '>')
                {
                    let name: String = chars[i + 3..i + 3 + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i = i + 3 + end + 1;
                    continue;
                }
                match next {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                i += 2;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// `re.findall(pattern, value)[result_index]`: the whole match without groups, the
/// group with one, a list of the groups with several.
fn regex_substring(
    value: Value,
    pattern: &str,
    result_index: Option<i64>,
    ignorecase: Option<bool>,
) -> Result<Value, Error> {
    let re = compile(pattern, ignorecase.unwrap_or(false), false)?;
    let text = text_of(&value)?;
    let groups = re.captures_len() - 1;
    let found: Vec<Value> = re
        .captures_iter(&text)
        .map(|c| {
            let g = |i: usize| c.get(i).map_or("", |m| m.as_str()).to_string();
            match groups {
                0 => Value::from(g(0)),
                1 => Value::from(g(1)),
                n => Value::from((1..=n).map(g).collect::<Vec<_>>()),
            }
        })
        .collect();
    let index = result_index.unwrap_or(0);
    let at = if index < 0 {
        found.len() as i64 + index
    } else {
        index
    };
    usize::try_from(at)
        .ok()
        .and_then(|i| found.get(i).cloned())
        .ok_or_else(|| {
            bad(format!(
                "regex_substring: no match {index} of `{pattern}` ({} found)",
                found.len()
            ))
        })
}

/// `1h3m5s`-style text, exactly as StackStorm's `_get_human_time` builds it (which
/// counts days within the month of `0001-01-01 + seconds`, and drops months).
fn to_human_time_from_seconds(seconds: Value) -> Result<String, Error> {
    let json = to_json(&seconds)?;
    let Json::Number(n) = &json else {
        return Err(bad(
            "to_human_time_from_seconds: expected a number of seconds",
        ));
    };
    let whole: i64 = if let Some(i) = n.as_i64() {
        if i == 0 {
            return Ok("0s".into());
        }
        if i < 1 {
            return Ok(format!("{i}\u{3bc}s"));
        }
        i
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f == 0.0 {
            return Ok("0s".into());
        }
        if f < 1.0 {
            return Ok(format!("{}\u{3bc}s", python::float(f)));
        }
        f.round_ties_even() as i64
    };
    Ok(human_time(whole))
}

fn human_time(seconds: i64) -> String {
    let days_total = seconds / 86_400;
    let rem = seconds % 86_400;
    let (year, _month, day) = civil_from_days(days_total);
    let parts = [year - 1, day - 1, rem / 3600, rem % 3600 / 60, rem % 60];
    let Some(first) = parts.iter().position(|p| *p != 0) else {
        return "0s".into();
    };
    let units = ["y", "d", "h", "m", "s"];
    // StackStorm always spells the smallest units: 2 parts → "XmYs", 3 → "XhYmZs", …
    let kept = &parts[first..];
    let names = &units[units.len() - kept.len()..];
    kept.iter()
        .zip(names)
        .map(|(p, u)| format!("{p}{u}"))
        .collect()
}

/// Year, month, day of `0001-01-01` plus `days` (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Days from 0000-03-01 (Howard Hinnant's algorithm), shifted to 0001-01-01.
    let z = days + 306; // 0001-01-01 is day 306 after 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A semantic version (semver 2.0).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
}

impl Version {
    fn parse(text: &str) -> Result<Version, Error> {
        let invalid = || bad(format!("`{text}` is not a valid semantic version"));
        let core_pre = text.split_once('+').map_or(text, |(c, _)| c);
        let (core, pre) = match core_pre.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (core_pre, None),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.len() != 3 {
            return Err(invalid());
        }
        let num = |s: &str| {
            if s.is_empty()
                || !s.bytes().all(|b| b.is_ascii_digit())
                || (s.len() > 1 && s.starts_with('0'))
            {
                Err(invalid())
            } else {
                s.parse::<u64>().map_err(|_| invalid())
            }
        };
        let pre = match pre {
            None => Vec::new(),
            Some(p) => {
                let ids: Vec<String> = p.split('.').map(str::to_string).collect();
                if ids.iter().any(|i| i.is_empty()) {
                    return Err(invalid());
                }
                ids
            }
        };
        Ok(Version {
            major: num(nums[0])?,
            minor: num(nums[1])?,
            patch: num(nums[2])?,
            pre,
        })
    }

    fn cmp(&self, other: &Version) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let core =
            (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        if core != Ordering::Equal {
            return core;
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (a, b) in self.pre.iter().zip(&other.pre) {
                    let o = match (a.parse::<u64>(), b.parse::<u64>()) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        (Err(_), Err(_)) => a.cmp(b),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        }
    }
}

fn compare(value: &str, pattern: &str) -> Result<i64, Error> {
    Ok(
        match Version::parse(value)?.cmp(&Version::parse(pattern)?) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        },
    )
}

fn version_compare(value: &str, pattern: &str) -> Result<i64, Error> {
    compare(value, pattern)
}

fn version_more_than(value: &str, pattern: &str) -> Result<bool, Error> {
    Ok(compare(value, pattern)? == 1)
}

fn version_less_than(value: &str, pattern: &str) -> Result<bool, Error> {
    Ok(compare(value, pattern)? == -1)
}

fn version_equal(value: &str, pattern: &str) -> Result<bool, Error> {
    Ok(compare(value, pattern)? == 0)
}

/// semver's `match`: `<`, `<=`, `>`, `>=`, `==`, `!=` followed by a version (no
/// operator means `==`).
fn version_match(value: &str, pattern: &str) -> Result<bool, Error> {
    let p = pattern.trim();
    let (op, rest) = ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find_map(|op| p.strip_prefix(op).map(|r| (*op, r)))
        .unwrap_or(("==", p));
    let c = compare(value, rest.trim())?;
    Ok(match op {
        "<" => c < 0,
        "<=" => c <= 0,
        ">" => c > 0,
        ">=" => c >= 0,
        "!=" => c != 0,
        _ => c == 0,
    })
}

fn version_bump_major(value: &str) -> Result<String, Error> {
    let v = Version::parse(value)?;
    Ok(format!("{}.0.0", v.major + 1))
}

fn version_bump_minor(value: &str) -> Result<String, Error> {
    let v = Version::parse(value)?;
    Ok(format!("{}.{}.0", v.major, v.minor + 1))
}

fn version_bump_patch(value: &str) -> Result<String, Error> {
    let v = Version::parse(value)?;
    // python-semver's bump_patch increments the patch and drops any pre-release.
    Ok(format!("{}.{}.{}", v.major, v.minor, v.patch + 1))
}

fn version_strip_patch(value: &str) -> Result<String, Error> {
    let v = Version::parse(value)?;
    Ok(format!("{}.{}", v.major, v.minor))
}

/// `None` → StackStorm's magic none string (which the parameter cast reads as null).
fn use_none(value: Value) -> Value {
    if value.is_none() {
        Value::from(NONE_MAGIC_VALUE)
    } else {
        value
    }
}

/// `os.path.basename`.
fn basename(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(path, |(_, tail)| tail)
        .to_string()
}

/// `os.path.dirname`.
fn dirname(path: &str) -> String {
    let Some(i) = path.rfind('/') else {
        return String::new();
    };
    let head = &path[..=i];
    if head.chars().all(|c| c == '/') {
        head.to_string()
    } else {
        head.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::jinja::{environment, render_text};

    fn render(template: &str) -> Result<String, String> {
        let ctx = Value::from(minijinja::value::Serde(serde_json::json!({
            "obj": {"b": [1, 2], "a": "x"},
            "list": ["a", "b"],
            "text": "Hello World 42",
            "none": null,
            "uni": "é",
        })));
        render_text(&environment(), template, &ctx).map_err(|e| e.reason)
    }

    #[test]
    fn filter_table() {
        let cases: &[(&str, &str)] = &[
            // data.py
            ("{{ obj | to_json_string }}", r#"{"a": "x","b": [1,2]}"#),
            (
                "{{ obj | to_json_string(indent=2) }}",
                "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ]\n}",
            ),
            ("{{ uni | to_json_string }}", r#""\u00e9""#),
            ("{{ obj | to_complex }}", r#"{"a": "x", "b": [1, 2]}"#),
            ("{{ obj | to_yaml_string }}", "a: x\nb:\n- 1\n- 2\n"),
            (
                "{{ [[1], {'k': 'v'}] | to_yaml_string }}",
                "-\n  - 1\n-\n  k: v\n",
            ),
            ("{{ 'yes' | to_yaml_string }}", "'yes'\n...\n"),
            ("{{ ('{\"k\": [1]}' | from_json_string).k[0] }}", "1"),
            ("{{ ('k: [1, 2]' | from_yaml_string).k[1] }}", "2"),
            ("{{ 'a \"b\"\n' | json_escape }}", r#"a \"b\"\n"#),
            ("{{ obj | jsonpath_query('$.b[1]') }}", "[2]"),
            ("{{ obj | jsonpath_query('b[*]') }}", "[1, 2]"),
            ("{{ obj | jsonpath_query(\"$['a']\") }}", "['x']"),
            ("{{ obj | jsonpath_query('$.zzz') }}", "None"),
            // regex.py
            ("{{ text | regex_match('Hello') }}", "True"),
            ("{{ text | regex_match('World') }}", "False"),
            ("{{ text | regex_match('hello', true) }}", "True"),
            ("{{ text | regex_search('World') }}", "True"),
            (
                "{{ text | regex_replace('(\\\\w+) (\\\\w+)', '\\\\2 \\\\1') }}",
                "World Hello 42",
            ),
            ("{{ text | regex_replace('o', '$') }}", "Hell$ W$rld 42"),
            ("{{ text | regex_substring('[0-9]+') }}", "42"),
            ("{{ text | regex_substring('(\\\\w)o', 1) }}", "W"),
            // time.py
            ("{{ 0 | to_human_time_from_seconds }}", "0s"),
            ("{{ 0.5 | to_human_time_from_seconds }}", "0.5\u{3bc}s"),
            ("{{ 59 | to_human_time_from_seconds }}", "59s"),
            ("{{ 60 | to_human_time_from_seconds }}", "1m0s"),
            ("{{ 3725 | to_human_time_from_seconds }}", "1h2m5s"),
            ("{{ 90061 | to_human_time_from_seconds }}", "1d1h1m1s"),
            ("{{ 86400 | to_human_time_from_seconds }}", "1d0h0m0s"),
            ("{{ 31536001 | to_human_time_from_seconds }}", "1y0d0h0m1s"),
            // StackStorm counts days within the month of 0001-01-01 + t: 40 days is
            // February 10th, so "9d" (months are dropped). Mirrored on purpose.
            ("{{ 3456000 | to_human_time_from_seconds }}", "9d0h0m0s"),
            ("{{ 1.5 | to_human_time_from_seconds }}", "2s"),
            ("{{ 2.5 | to_human_time_from_seconds }}", "2s"),
            // version.py
            ("{{ '1.2.3' | version_compare('1.2.4') }}", "-1"),
            ("{{ '1.2.3' | version_compare('1.2.3') }}", "0"),
            ("{{ '1.10.0' | version_more_than('1.9.0') }}", "True"),
            ("{{ '1.0.0-rc.1' | version_less_than('1.0.0') }}", "True"),
            ("{{ '1.2.3' | version_equal('1.2.3') }}", "True"),
            ("{{ '1.2.3' | version_match('>=1.2.0') }}", "True"),
            ("{{ '1.2.3' | version_match('<1.0.0') }}", "False"),
            ("{{ '1.2.3' | version_bump_major }}", "2.0.0"),
            ("{{ '1.2.3' | version_bump_minor }}", "1.3.0"),
            ("{{ '1.2.3' | version_bump_patch }}", "1.2.4"),
            ("{{ '1.2.3' | version_strip_patch }}", "1.2"),
            // data.use_none, path.py
            ("{{ none | use_none }}", NONE_MAGIC_VALUE),
            ("{{ 'x' | use_none }}", "x"),
            ("{{ '/a/b/c.txt' | basename }}", "c.txt"),
            ("{{ '/a/b/c.txt' | dirname }}", "/a/b"),
            ("{{ '/a/b/' | basename }}", ""),
            ("{{ '/a/b/' | dirname }}", "/a/b"),
            ("{{ '/' | dirname }}", "/"),
            ("{{ 'file' | dirname }}", ""),
            // pycompat: Python methods
            ("{{ 'a,b'.split(',') | length }}", "2"),
            ("{{ obj.items() | list | length }}", "2"),
            ("{{ 'Ab'.lower() }}", "ab"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template).as_deref(), Ok(*want), "{template}");
        }
    }

    #[test]
    fn filter_errors() {
        for template in [
            "{{ 'x' | version_compare('1.0.0') }}",
            "{{ '1.2' | version_bump_major }}",
            "{{ text | regex_match('(') }}",
            "{{ text | regex_substring('zzz') }}",
            "{{ 'nope' | from_json_string }}",
            "{{ obj | jsonpath_query('$..a') }}",
            "{{ none | decrypt_kv }}",
        ] {
            assert!(render(template).is_err(), "{template}");
        }
    }
}
