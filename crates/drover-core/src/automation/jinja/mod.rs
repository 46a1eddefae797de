//! The Jinja environment automation renders with, shaped like StackStorm's: blocks
//! trimmed (`trim_blocks`, `lstrip_blocks`), undefined names are errors, and a fuel
//! bound stops a runaway loop.
//!
//! Two ways to render a string:
//! - [`render_text`] always yields text (rule and action parameters, as StackStorm
//!   renders them; the caller casts by the parameter's schema type);
//! - [`eval_native`] yields the native value when the whole string is one `{{ … }}`
//!   expression (Orquesta's rule: `{{ ctx().n + 1 }}` is a number), text otherwise.
//!
//! Submodules: [`filters`] (StackStorm's filters), [`datastore`] (`st2kv` and
//! `decrypt_kv`), [`python`] (Python's `json.dumps`/`str()`/literal syntax, which
//! StackStorm's output follows).

pub mod datastore;
pub mod filters;
pub mod python;

pub use datastore::{KvEntry, KvMap, KvSource, st2kv};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Value as Json;

/// Instructions one render may spend: far more than any parameter needs, and a bound
/// on a runaway loop.
pub const FUEL: u64 = 200_000;

/// A template that did not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (in `{template}`)")]
pub struct JinjaError {
    /// The template text.
    pub template: String,
    /// Why it failed, for people.
    pub reason: String,
}

impl JinjaError {
    /// An error about `template`.
    pub fn new(template: &str, reason: impl Into<String>) -> JinjaError {
        JinjaError {
            template: template.to_string(),
            reason: reason.into(),
        }
    }
}

/// Describes a minijinja error with its cause chain, on one line.
pub fn describe(e: &minijinja::Error) -> String {
    let mut text = e.kind().to_string();
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One environment built once and shared: building one registers every filter, which
/// is too much work to repeat for each rendering (rule firings, workflow steps).
pub fn shared() -> &'static Environment<'static> {
    static ENV: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(environment);
    &ENV
}

/// The environment: StackStorm's settings and filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    match SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
    {
        Ok(syntax) => env.set_syntax(syntax),
        Err(e) => unreachable!("the default delimiters are valid: {e}"),
    }
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    filters::add_filters(&mut env);
    env
}

/// The error text for a failed render: minijinja's description, plus the datastore
/// keys `ctx`'s `st2kv` was asked for and did not have.
fn failure(template: &str, e: &minijinja::Error, ctx: &Value) -> JinjaError {
    let mut reason = describe(e);
    let missing = datastore::take_misses(ctx);
    if !missing.is_empty() {
        reason.push_str(&format!(
            " (no datastore key {})",
            missing
                .iter()
                .map(|k| format!("`st2kv.{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    JinjaError::new(template, reason)
}

/// Whether `text` holds Jinja syntax at all (plain strings skip the engine).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders `template` to text against `ctx`.
pub fn render_text(
    env: &Environment<'_>,
    template: &str,
    ctx: &Value,
) -> Result<String, JinjaError> {
    if !is_template(template) {
        return Ok(template.to_string());
    }
    // Forget lookups of earlier renders, so an error names only this one's.
    datastore::take_misses(ctx);
    env.render_str(template, ctx)
        .map_err(|e| failure(template, &e, ctx))
}

/// The expression inside `text` when `text` is exactly one `{{ … }}` and nothing else.
pub fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

/// Evaluates `template`: the native value of a sole `{{ expr }}`, text otherwise.
pub fn eval_native(env: &Environment<'_>, template: &str, ctx: &Value) -> Result<Json, JinjaError> {
    if let Some(expr) = sole_expression(template) {
        datastore::take_misses(ctx);
        let compiled = env
            .compile_expression(expr)
            .map_err(|e| JinjaError::new(template, describe(&e)))?;
        let value = compiled.eval(ctx).map_err(|e| failure(template, &e, ctx))?;
        if value.is_undefined() {
            return Err(JinjaError::new(template, "the expression is undefined"));
        }
        return serde_json::to_value(&value).map_err(|e| JinjaError::new(template, e.to_string()));
    }
    render_text(env, template, ctx).map(Json::String)
}

/// Renders every string inside `value` (object keys stay as written), with
/// [`eval_native`] when `native`, [`render_text`] otherwise.
pub fn render_json(
    env: &Environment<'_>,
    value: &Json,
    ctx: &Value,
    native: bool,
) -> Result<Json, JinjaError> {
    Ok(match value {
        Json::String(s) if native => eval_native(env, s, ctx)?,
        Json::String(s) => Json::String(render_text(env, s, ctx)?),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| render_json(env, v, ctx, native))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(env, v, ctx, native)?)))
                .collect::<Result<_, JinjaError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_and_text() {
        let env = environment();
        let ctx = Value::from(minijinja::value::Serde(
            serde_json::json!({"n": 2, "s": "x"}),
        ));
        assert_eq!(
            eval_native(&env, "{{ n + 1 }}", &ctx).unwrap(),
            serde_json::json!(3)
        );
        assert_eq!(
            eval_native(&env, "n={{ n }}", &ctx).unwrap(),
            serde_json::json!("n=2")
        );
        assert_eq!(render_text(&env, "{{ n + 1 }}", &ctx).unwrap(), "3");
        assert!(render_text(&env, "{{ missing }}", &ctx).is_err());
        assert_eq!(
            render_text(&env, "{{ s | to_json_string }}", &ctx).unwrap(),
            "\"x\""
        );
    }
}
