//! Action parameters: their schema (StackStorm's JSON-schema draft 4 plus `required`,
//! `secret`, `immutable`, `position`), and resolution of the values one execution
//! runs with.
//!
//! [`resolve`] follows st2common/util/param.py and casts.py: unknown names are
//! refused; defaults fill in what was not given (or given as null), rendered with Jinja
//! when they are templates, with the other parameters and `st2kv` in the context, in
//! dependency order; every value is then cast by its schema type (text to integer,
//! number, boolean, array, object) and validated against its JSON-schema.
//!
//! Differences from StackStorm, on purpose: giving an immutable parameter a value
//! other than its default is an error (StackStorm silently keeps the default);
//! a missing required parameter is reported with every other problem at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::jinja::{self, KvSource, filters::NONE_MAGIC_VALUE, python};
use crate::model::decode::{Fields, boolean, choice, string, uint, wrong_type};
use crate::model::error::{Sink, did_you_mean, suggest};
use crate::model::load::{Node, Value};

/// What secret values are replaced with wherever they are shown.
pub const MASK: &str = "********";

/// The JSON-schema types a parameter may have.
pub const TYPES: &[&str] = &[
    "string", "integer", "number", "boolean", "array", "object", "null",
];

/// The keys of a parameter that drover reads itself.
const OWN_KEYS: &[&str] = &[
    "type",
    "description",
    "required",
    "secret",
    "immutable",
    "position",
    "default",
    "enum",
];

/// JSON-schema (draft 4) keywords a parameter may also carry; they go to validation.
const SCHEMA_KEYS: &[&str] = &[
    "title",
    "items",
    "additionalItems",
    "properties",
    "patternProperties",
    "additionalProperties",
    "dependencies",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "definitions",
    "$ref",
    "$schema",
    "id",
];

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Its name.
    pub name: String,
    /// Its JSON-schema type (`string`, `integer`, …), if it has one.
    pub type_: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Whether a value is needed.
    pub required: bool,
    /// Whether its value is hidden (masked) wherever it is shown.
    pub secret: bool,
    /// Whether its value is fixed to its default.
    pub immutable: bool,
    /// Its place among the positional script arguments.
    pub position: Option<u32>,
    /// Its default (a Jinja template when it holds `{{ }}`).
    pub default: Option<Json>,
    /// The values it may take.
    pub enum_: Option<Vec<Json>>,
    /// Its JSON-schema (the parameter as written, less `required`, `secret`,
    /// `immutable`, `position`, `default`), which its value is validated against.
    pub schema: Json,
}

impl ParamSpec {
    /// A parameter of `type_` with nothing else set.
    pub fn new(name: &str, type_: &str) -> ParamSpec {
        ParamSpec {
            name: name.to_string(),
            type_: Some(type_.to_string()),
            description: None,
            required: false,
            secret: false,
            immutable: false,
            position: None,
            default: None,
            enum_: None,
            schema: serde_json::json!({ "type": type_ }),
        }
    }
}

/// The parameters of an action (or runner), by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamSchema {
    /// The parameters, ordered by name.
    pub params: BTreeMap<String, ParamSpec>,
}

impl ParamSchema {
    /// The parameter `name`.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.params.get(name)
    }

    /// Whether there is a parameter `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    /// The parameters, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ParamSpec> {
        self.params.values()
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Adds (or replaces) `spec`.
    pub fn insert(&mut self, spec: ParamSpec) {
        self.params.insert(spec.name.clone(), spec);
    }

    /// `self` with `overrides` laid over it: a parameter of `overrides` replaces the one
    /// of the same name, keys it leaves out taken from the replaced one (StackStorm's
    /// action-over-runner parameter override).
    pub fn overlay(&self, overrides: &ParamSchema) -> ParamSchema {
        let mut merged = self.clone();
        for spec in overrides.iter() {
            let combined = match self.get(&spec.name) {
                Some(base) => override_spec(base, spec),
                None => spec.clone(),
            };
            merged.insert(combined);
        }
        merged
    }
}

/// `over` on top of `base`: every key `over` wrote wins, the rest come from `base`.
fn override_spec(base: &ParamSpec, over: &ParamSpec) -> ParamSpec {
    let mut schema = base.schema.as_object().cloned().unwrap_or_default();
    if let Some(o) = over.schema.as_object() {
        for (k, v) in o {
            schema.insert(k.clone(), v.clone());
        }
    }
    ParamSpec {
        name: over.name.clone(),
        type_: over.type_.clone().or_else(|| base.type_.clone()),
        description: over
            .description
            .clone()
            .or_else(|| base.description.clone()),
        required: over.required || base.required,
        secret: over.secret || base.secret,
        // An action may fix a runner parameter, not free a fixed one.
        immutable: over.immutable || base.immutable,
        position: over.position.or(base.position),
        default: over.default.clone().or_else(|| base.default.clone()),
        enum_: over.enum_.clone().or_else(|| base.enum_.clone()),
        schema: Json::Object(schema),
    }
}

/// Reads a `parameters` mapping at `node` (field path `path`).
pub(crate) fn decode_params(sink: &mut Sink<'_>, node: &Node, path: &str) -> ParamSchema {
    let mut schema = ParamSchema::default();
    let Value::Map(entries) = &node.value else {
        if node.value != Value::Null {
            wrong_type(sink, node, path, "a mapping of parameters");
        }
        return schema;
    };
    let known: Vec<&str> = OWN_KEYS.iter().chain(SCHEMA_KEYS).copied().collect();
    let mut positions: BTreeMap<u32, (String, usize)> = BTreeMap::new();
    for (key, value) in entries {
        let Value::Str(name) = &key.value else {
            wrong_type(sink, key, path, "a parameter name");
            continue;
        };
        let field = format!("{path}.{name}");
        if schema.contains(name) {
            sink.push(key.pos, &field, format!("duplicate parameter `{name}`"));
            continue;
        }
        if value.value == Value::Null {
            sink.push(
                value.pos,
                &field,
                "expected a mapping describing the parameter, found nothing (null)",
            );
            continue;
        }
        // Other keys are kept as schema annotations (`x-…`, `label`), unless they look
        // like a misspelt key.
        let mut allowed = known.clone();
        if let Value::Map(fields) = &value.value {
            for (k, _) in fields {
                if let Value::Str(k) = &k.value
                    && !known.contains(&k.as_str())
                    && suggest(k, known.iter().copied()).is_none()
                {
                    allowed.push(k);
                }
            }
        }
        let Some(f) = Fields::read(sink, value, key.pos, &field, &allowed) else {
            continue;
        };
        if let Some(spec) = decode_param(sink, &f, name, &allowed) {
            if let Some(p) = spec.position
                && let Some(n) = f.get("position")
            {
                if let Some((other, line)) = positions.get(&p) {
                    sink.push(
                        n.pos,
                        &f.field("position"),
                        format!("position {p} is already taken by `{other}` (line {line})"),
                    );
                } else {
                    positions.insert(p, (name.clone(), n.pos.line));
                }
            }
            schema.insert(spec);
        }
    }
    schema
}

fn decode_param(
    sink: &mut Sink<'_>,
    f: &Fields<'_>,
    name: &str,
    allowed: &[&str],
) -> Option<ParamSpec> {
    let before = sink.count();
    let type_ = match f.get("type") {
        Some(n) if matches!(n.value, Value::Seq(_)) => None,
        Some(n) => choice(sink, n, &f.field("type"), TYPES).map(str::to_string),
        None => None,
    };
    let description = f
        .get("description")
        .and_then(|n| string(sink, n, &f.field("description")))
        .map(str::to_string);
    let flag = |sink: &mut Sink<'_>, key: &str| {
        f.get(key)
            .and_then(|n| boolean(sink, n, &f.field(key)))
            .unwrap_or(false)
    };
    let required = flag(sink, "required");
    let secret = flag(sink, "secret");
    let immutable = flag(sink, "immutable");
    let position = f
        .get("position")
        .and_then(|n| uint(sink, n, &f.field("position"), 0, 1000));
    let default = f.entry("default").map(|(_, n)| n.to_json());
    let enum_ = match f.get("enum") {
        Some(n) => match &n.value {
            Value::Seq(items) => Some(items.iter().map(Node::to_json).collect()),
            _ => {
                wrong_type(sink, n, &f.field("enum"), "a list of values");
                None
            }
        },
        None => None,
    };
    let mut schema = Map::new();
    for (key, _, value) in f.present(allowed) {
        match key {
            "required" | "secret" | "immutable" | "position" | "default" => {}
            _ => {
                schema.insert(key.to_string(), value.to_json());
            }
        }
    }
    let schema = Json::Object(schema);
    // The schema itself must be valid draft-4 (checked once the keys read cleanly).
    if sink.count() == before
        && let Err(e) = jsonschema::draft4::new(&schema)
    {
        sink.push(f.at, &f.path, format!("invalid JSON-schema: {e}"));
    }
    (sink.count() == before).then(|| ParamSpec {
        name: name.to_string(),
        type_,
        description,
        required,
        secret,
        immutable,
        position,
        default,
        enum_,
        schema,
    })
}

/// A parameter value that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParamError {
    /// The parameter.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter `{}`: {}", self.name, self.reason)
    }
}

impl std::error::Error for ParamError {}

fn err(name: &str, reason: impl Into<String>) -> ParamError {
    ParamError {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Whether `value` holds a template anywhere (strings, or strings inside lists/maps).
fn has_template(value: &Json) -> bool {
    match value {
        Json::String(s) => jinja::is_template(s),
        Json::Array(items) => items.iter().any(has_template),
        Json::Object(m) => m.values().any(has_template),
        _ => false,
    }
}

/// The parameter names the templates in `value` refer to.
fn references(
    env: &minijinja::Environment<'_>,
    value: &Json,
    names: &ParamSchema,
    out: &mut BTreeSet<String>,
) {
    match value {
        Json::String(s) if jinja::is_template(s) => {
            if let Ok(t) = env.template_from_str(s) {
                out.extend(
                    t.undeclared_variables(false)
                        .into_iter()
                        .filter(|v| names.contains(v)),
                );
            }
        }
        Json::Array(items) => items.iter().for_each(|v| references(env, v, names, out)),
        Json::Object(m) => m.values().for_each(|v| references(env, v, names, out)),
        _ => {}
    }
}

/// The values one execution runs with: `given` checked, defaults filled in and
/// rendered, everything cast and validated. Every problem is returned at once.
pub fn resolve(
    schema: &ParamSchema,
    given: &Map<String, Json>,
    kv: Arc<dyn KvSource>,
) -> Result<Map<String, Json>, Vec<ParamError>> {
    let mut errors = Vec::new();
    for name in given.keys() {
        if !schema.contains(name) {
            let hint = did_you_mean(name, schema.names());
            errors.push(err(name, format!("unknown parameter{hint}")));
        }
    }
    // Values given, and defaults still to render.
    let mut values: BTreeMap<String, Json> = BTreeMap::new();
    let mut pending: BTreeMap<String, Json> = BTreeMap::new();
    for spec in schema.iter() {
        let given_value = given.get(&spec.name).filter(|v| !v.is_null());
        if spec.immutable
            && let Some(v) = given_value
            && Some(v) != spec.default.as_ref()
        {
            let default = spec
                .default
                .as_ref()
                .map_or("no value".to_string(), |d| format!("`{d}`"));
            errors.push(err(
                &spec.name,
                format!("is immutable: it cannot be set (its value is always {default})"),
            ));
            continue;
        }
        // An immutable parameter always takes its default, rendered like any other
        // (StackStorm's `_process_defaults`), even when given that same text.
        let given_value = given_value.filter(|_| !spec.immutable);
        match (given_value, &spec.default) {
            (Some(v), _) => {
                values.insert(spec.name.clone(), v.clone());
            }
            (None, Some(d)) if has_template(d) => {
                pending.insert(spec.name.clone(), d.clone());
            }
            (None, Some(d)) if !d.is_null() => {
                values.insert(spec.name.clone(), d.clone());
            }
            (None, _) => {
                if given.contains_key(&spec.name) {
                    values.insert(spec.name.clone(), Json::Null);
                }
            }
        }
    }
    render_defaults(schema, &mut values, pending, kv, &mut errors);
    let mut out = Map::new();
    for (name, value) in values {
        let Some(spec) = schema.get(&name) else {
            continue;
        };
        match cast(&value, spec.type_.as_deref()) {
            Ok(v) => {
                if let Err(reason) = validate(spec, &v) {
                    errors.push(err(&name, reason));
                }
                out.insert(name, v);
            }
            Err(reason) => errors.push(err(&name, reason)),
        }
    }
    for spec in schema.iter() {
        if spec.required
            && out.get(&spec.name).is_none_or(Json::is_null)
            && !errors.iter().any(|e| e.name == spec.name)
        {
            errors.push(err(&spec.name, "is required"));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort();
        errors.dedup();
        Err(errors)
    }
}

/// Renders the `pending` defaults in dependency order into `values`.
fn render_defaults(
    schema: &ParamSchema,
    values: &mut BTreeMap<String, Json>,
    mut pending: BTreeMap<String, Json>,
    kv: Arc<dyn KvSource>,
    errors: &mut Vec<ParamError>,
) {
    let env = jinja::environment();
    let deps: BTreeMap<String, BTreeSet<String>> = pending
        .iter()
        .map(|(name, d)| {
            let mut refs = BTreeSet::new();
            references(&env, d, schema, &mut refs);
            (name.clone(), refs)
        })
        .collect();
    let kv_value = jinja::st2kv(kv);
    let mut failed: BTreeSet<String> = BTreeSet::new();
    loop {
        let ready: Vec<String> = pending
            .keys()
            .filter(|n| {
                deps.get(*n)
                    .is_none_or(|d| d.iter().all(|x| !pending.contains_key(x)))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            break;
        }
        for name in ready {
            let Some(template) = pending.remove(&name) else {
                continue;
            };
            let my_deps = deps.get(&name).cloned().unwrap_or_default();
            if my_deps.iter().any(|x| failed.contains(x)) {
                failed.insert(name);
                continue;
            }
            // A parameter with no value: a required one has its own error already.
            let unset: Vec<&String> = my_deps
                .iter()
                .filter(|x| values.get(*x).is_none_or(Json::is_null))
                .collect();
            if !unset.is_empty() {
                let silent = unset
                    .iter()
                    .all(|x| schema.get(x).is_some_and(|s| s.required));
                if !silent {
                    let names: Vec<String> = unset.iter().map(|x| format!("`{x}`")).collect();
                    errors.push(err(
                        &name,
                        format!("default refers to {}, which has no value", names.join(", ")),
                    ));
                }
                failed.insert(name);
                continue;
            }
            let mut ctx: BTreeMap<String, minijinja::Value> = values
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        minijinja::Value::from(minijinja::value::Serde(v)),
                    )
                })
                .collect();
            ctx.insert("st2kv".into(), kv_value.clone());
            let ctx = minijinja::Value::from(ctx);
            let rendered = match &template {
                Json::String(s) => jinja::render_text(&env, s, &ctx).map(Json::String),
                complex => jinja::render_json(&env, complex, &ctx, true),
            };
            match rendered {
                Ok(v) => {
                    values.insert(name, v);
                }
                Err(e) => {
                    errors.push(err(&name, format!("default did not render: {}", e.reason)));
                    failed.insert(name);
                }
            }
        }
    }
    if !pending.is_empty() {
        let names: Vec<&str> = pending.keys().map(String::as_str).collect();
        for name in &names {
            errors.push(err(
                name,
                format!(
                    "defaults refer to each other in a cycle: {}",
                    names.join(", ")
                ),
            ));
        }
    }
}

/// StackStorm's cast of a value by its schema type (st2common/util/casts.py).
pub fn cast(value: &Json, type_: Option<&str>) -> Result<Json, String> {
    if let Json::String(s) = value
        && s == NONE_MAGIC_VALUE
    {
        return Ok(Json::Null);
    }
    let Json::String(text) = value else {
        return match (type_, value) {
            (Some("string"), v) if !v.is_null() => {
                Err(format!("expected a string, found {}", describe(v)))
            }
            // int(3.7) is 3 in Python.
            (Some("integer"), Json::Number(n)) if n.is_f64() => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Json::from(f.trunc() as i64))
                .ok_or_else(|| format!("cannot read `{n}` as an integer")),
            (Some("integer"), Json::Bool(b)) => Ok(Json::from(i64::from(*b))),
            (Some("number"), Json::Bool(b)) => Ok(Json::from(if *b { 1.0 } else { 0.0 })),
            _ => Ok(value.clone()),
        };
    };
    match type_ {
        Some("integer") => text
            .trim()
            .replace('_', "")
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("cannot read `{text}` as an integer")),
        Some("number") => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("cannot read `{text}` as a number")),
        Some("boolean") => {
            // ast.literal_eval(x.capitalize())
            let mut chars = text.chars();
            let capitalized: String = match chars.next() {
                Some(c) => c
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            };
            match python::literal_eval(&capitalized) {
                Some(v @ (Json::Bool(_) | Json::Null | Json::Number(_))) => Ok(v),
                _ => Err(format!(
                    "cannot read `{text}` as a boolean; use true or false"
                )),
            }
        }
        Some("array") | Some("object") => serde_json::from_str::<Json>(text)
            .ok()
            .or_else(|| python::literal_eval(text))
            .ok_or_else(|| {
                format!(
                    "cannot read `{text}` as {}: it is neither JSON nor a Python literal",
                    if type_ == Some("array") {
                        "an array"
                    } else {
                        "an object"
                    }
                )
            }),
        _ => Ok(value.clone()),
    }
}

fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(_) => "a string".into(),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// Checks `value` against the parameter's JSON-schema; null passes for parameters
/// that are not required (StackStorm's `allow_default_none`).
fn validate(spec: &ParamSpec, value: &Json) -> Result<(), String> {
    if value.is_null() && !spec.required {
        return Ok(());
    }
    let validator =
        jsonschema::draft4::new(&spec.schema).map_err(|e| format!("invalid JSON-schema: {e}"))?;
    let reasons: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons.join("; "))
    }
}

/// `values` with every secret parameter's value replaced by [`MASK`].
pub fn redact(schema: &ParamSchema, values: &Map<String, Json>) -> Map<String, Json> {
    values
        .iter()
        .map(|(k, v)| {
            let secret = schema.get(k).is_some_and(|s| s.secret);
            let shown = if secret && !v.is_null() {
                Json::String(MASK.to_string())
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// The names of the secret parameters, sorted.
pub fn secret_names(schema: &ParamSchema) -> Vec<String> {
    schema
        .iter()
        .filter(|s| s.secret)
        .map(|s| s.name.clone())
        .collect()
}

/// Decodes a `parameters:` YAML text (for built-in schemas and tests).
pub(crate) fn schema_from_yaml(
    file: &str,
    text: &str,
) -> Result<ParamSchema, Vec<crate::model::error::ModelError>> {
    let docs = crate::model::load::parse_documents(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut sink = Sink {
        file,
        text,
        errors: &mut errors,
    };
    let schema = match docs.first() {
        Some(node) => decode_params(&mut sink, node, "parameters"),
        None => ParamSchema::default(),
    };
    if errors.is_empty() {
        Ok(schema)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
