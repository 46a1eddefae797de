//! Python's spellings of values, which StackStorm's output follows: `json.dumps`
//! (separators, `ensure_ascii`, `sort_keys`, `indent`), `str()` of lists, dicts and
//! floats, and `ast.literal_eval` of such text (StackStorm's cast of arrays and
//! objects falls back to it).

use serde_json::Value as Json;

/// Options of Python's `json.dumps`.
#[derive(Debug, Clone, Copy)]
pub struct Dumps<'a> {
    /// Spaces per level; `None` writes everything on one line.
    pub indent: Option<usize>,
    /// Sort object keys.
    pub sort_keys: bool,
    /// Between items (`", "` by default, `","` with an indent).
    pub item_sep: &'a str,
    /// Between a key and its value.
    pub key_sep: &'a str,
    /// Escape every non-ASCII character as `\uXXXX` (Python's default).
    pub ensure_ascii: bool,
}

impl Default for Dumps<'_> {
    fn default() -> Self {
        Dumps {
            indent: None,
            sort_keys: false,
            item_sep: ", ",
            key_sep: ": ",
            ensure_ascii: true,
        }
    }
}

/// `json.dumps(value, …)` with `opts`.
pub fn dumps(value: &Json, opts: &Dumps<'_>) -> String {
    let mut out = String::new();
    dump_into(&mut out, value, opts, 0);
    out
}

fn dump_into(out: &mut String, value: &Json, opts: &Dumps<'_>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = opts.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    // Python drops the trailing space of the item separator when indenting.
    let item_sep = if opts.indent.is_some() {
        opts.item_sep.trim_end()
    } else {
        opts.item_sep
    };
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&number(n)),
        Json::String(s) => quote_json(out, s, opts.ensure_ascii),
        Json::Array(items) if items.is_empty() => out.push_str("[]"),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                dump_into(out, item, opts, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Json::Object(map) if map.is_empty() => out.push_str("{}"),
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                quote_json(out, k, opts.ensure_ascii);
                out.push_str(opts.key_sep);
                dump_into(out, v, opts, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn quote_json(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as Python prints it (`1`, `1.0`, `1e+20`).
fn number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => float(f),
        _ => n.to_string(),
    }
}

/// `repr(float)` in Python: shortest round-trip digits, `.0` on whole numbers,
/// exponent form from 1e16 up and below 1e-4.
pub fn float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let text = format!("{f}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

/// `str(value)` in Python for a JSON-shaped value: strings as they are, `True`,
/// `False`, `None`, and lists and dicts with `repr` of their items.
pub fn str_of(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => repr(other),
    }
}

/// `repr(value)` in Python for a JSON-shaped value.
pub fn repr(value: &Json) -> String {
    match value {
        Json::Null => "None".into(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Number(n) => number(n),
        Json::String(s) => repr_str(s),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", repr_str(k), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `repr(str)`: single quotes unless the text has `'` and no `"`.
fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Reads a Python literal (`['a', 1]`, `{'k': True}`, `None`, tuples as lists) the
/// way `ast.literal_eval` does for these shapes; JSON spellings (`true`, `null`) are
/// accepted too, as minijinja prints them.
pub fn literal_eval(text: &str) -> Option<Json> {
    let mut p = Literal {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = p.value()?;
    p.space();
    (p.at == p.chars.len()).then_some(value)
}

struct Literal {
    chars: Vec<char>,
    at: usize,
}

impl Literal {
    fn space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.chars.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.space();
        match *self.chars.get(self.at)? {
            '[' => {
                self.at += 1;
                self.items(']').map(Json::Array)
            }
            '(' => {
                self.at += 1;
                self.items(')').map(Json::Array)
            }
            '{' => {
                self.at += 1;
                let mut map = serde_json::Map::new();
                if self.eat('}') {
                    return Some(Json::Object(map));
                }
                loop {
                    let Json::String(key) = self.value()? else {
                        return None;
                    };
                    if !self.eat(':') {
                        return None;
                    }
                    map.insert(key, self.value()?);
                    if self.eat('}') {
                        return Some(Json::Object(map));
                    }
                    if !self.eat(',') {
                        return None;
                    }
                    if self.eat('}') {
                        return Some(Json::Object(map));
                    }
                }
            }
            '\'' | '"' => self.string(),
            _ => self.word(),
        }
    }

    fn items(&mut self, close: char) -> Option<Vec<Json>> {
        let mut items = Vec::new();
        if self.eat(close) {
            return Some(items);
        }
        loop {
            items.push(self.value()?);
            if self.eat(close) {
                return Some(items);
            }
            if !self.eat(',') {
                return None;
            }
            if self.eat(close) {
                return Some(items);
            }
        }
    }

    fn string(&mut self) -> Option<Json> {
        let quote = self.chars[self.at];
        self.at += 1;
        let mut out = String::new();
        loop {
            let c = *self.chars.get(self.at)?;
            self.at += 1;
            match c {
                c if c == quote => return Some(Json::String(out)),
                '\\' => {
                    let e = *self.chars.get(self.at)?;
                    self.at += 1;
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
    }

    fn word(&mut self) -> Option<Json> {
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        match word.as_str() {
            "True" | "true" => Some(Json::Bool(true)),
            "False" | "false" => Some(Json::Bool(false)),
            "None" | "null" | "none" => Some(Json::Null),
            w => serde_json::from_str::<serde_json::Number>(w)
                .ok()
                .map(Json::Number),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_dumps() {
        // Keys inserted in sorted order: the map's order depends on serde_json's
        // `preserve_order` feature (on in the workspace), as Python keeps insertion order.
        let v = json!({"a": "é\n", "b": [1, 2.5]});
        assert_eq!(
            dumps(&v, &Dumps::default()),
            r#"{"a": "\u00e9\n", "b": [1, 2.5]}"#
        );
        let st2 = Dumps {
            item_sep: ",",
            ..Dumps::default()
        };
        assert_eq!(dumps(&v, &st2), r#"{"a": "\u00e9\n","b": [1,2.5]}"#);
        let indented = Dumps {
            indent: Some(2),
            ..Dumps::default()
        };
        assert_eq!(
            dumps(&json!({"a": [1]}), &indented),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(dumps(&json!("😀"), &Dumps::default()), r#""\ud83d\ude00""#);
    }

    #[test]
    fn python_str() {
        let cases = [
            (json!("plain"), "plain"),
            (json!(["a", "b"]), "['a', 'b']"),
            (json!({"a": 1}), "{'a': 1}"),
            (json!([true, null, 1.0]), "[True, None, 1.0]"),
            (json!(1.5), "1.5"),
            (json!(3), "3"),
            (json!(1e20), "1e+20"),
            (json!(0.00001), "1e-05"),
            (json!(["it's"]), "[\"it's\"]"),
            (json!(["a\nb"]), "['a\\nb']"),
            (json!({"k": {"n": [1]}}), "{'k': {'n': [1]}}"),
        ];
        for (value, want) in cases {
            assert_eq!(str_of(&value), want, "{value}");
        }
    }

    #[test]
    fn literals() {
        let cases = [
            ("['a', 'b']", Some(json!(["a", "b"]))),
            (
                "{'a': 1, 'b': [True, None]}",
                Some(json!({"a": 1, "b": [true, null]})),
            ),
            ("(1, 2,)", Some(json!([1, 2]))),
            ("[\"x\", 'y\\'s']", Some(json!(["x", "y's"]))),
            ("[1.5, -2]", Some(json!([1.5, -2]))),
            ("[1, 2", None),
            ("{1: 2}", None),
            ("nonsense", None),
            ("[] x", None),
        ];
        for (text, want) in cases {
            assert_eq!(literal_eval(text), want, "{text}");
        }
    }
}
