//! Orquesta's expression functions over the StackStorm Jinja environment.
//!
//! Each evaluation gets a [`Scope`]: the route's context and, where they make sense,
//! the task's result and status, every task's latest status, and the current item.
//! They reach the template as callables: `ctx()`, `ctx(name)`, `result()`,
//! `succeeded()`, `failed()`, `completed()`, `task_status(name)`, `item()`,
//! `item(name)`. Undefined names are errors that quote the expression.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Serde, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Map, Value as Json};

use crate::automation::jinja;

/// The shared Jinja environment (built once: building one costs more than most
/// evaluations).
pub fn environment() -> &'static Environment<'static> {
    jinja::shared()
}

pub use jinja::{describe, is_template};

/// Every task's latest status by name, shared by the evaluations of one call.
pub type Statuses = Arc<BTreeMap<String, String>>;

/// What an expression sees.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The route's context: input, vars and everything published so far.
    pub ctx: &'a Map<String, Json>,
    /// The finished task's result (`result()`), in `next`, `retry` and `publish`.
    pub result: Option<&'a Json>,
    /// The finished task's status (`succeeded`, `failed`, …).
    pub status: Option<&'a str>,
    /// Every task's latest status, for `task_status(name)`.
    pub statuses: &'a Statuses,
    /// The current item inside with-items: with `x, y in …` a mapping of those names
    /// (`item()` is the mapping, `item(x)` one value), else the item itself.
    pub item: Option<&'a Json>,
}

/// An expression that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (in `{expression}`)")]
pub struct ExprError {
    /// The expression, as written.
    pub expression: String,
    /// Why, for people.
    pub reason: String,
}

impl From<jinja::JinjaError> for ExprError {
    fn from(e: jinja::JinjaError) -> ExprError {
        ExprError {
            expression: e.template,
            reason: e.reason,
        }
    }
}

fn undefined(what: String) -> Error {
    Error::new(ErrorKind::UndefinedError, what)
}

fn to_value(json: &Json) -> Value {
    Value::from(Serde(json))
}

impl Scope<'_> {
    /// The template context: Orquesta's functions, bound to this scope.
    fn context(&self) -> Value {
        let ctx = Value::from(Serde(self.ctx));
        let result = self.result.map(to_value);
        let status = self.status.map(str::to_string);
        let statuses = Arc::clone(self.statuses);
        let item = self.item.map(to_value);
        let ctx_fn = move |name: Option<String>| -> Result<Value, Error> {
            match name {
                None => Ok(ctx.clone()),
                Some(n) => match ctx.get_attr(&n) {
                    Ok(v) if !v.is_undefined() => Ok(v),
                    _ => Err(undefined(format!("`{n}` is not in the context"))),
                },
            }
        };
        let result_fn = move || -> Result<Value, Error> {
            result
                .clone()
                .ok_or_else(|| undefined("result() is only defined after a task finished".into()))
        };
        let s1 = status.clone();
        let s2 = status.clone();
        let succeeded = move || s1.as_deref() == Some("succeeded");
        let failed = move || matches!(s2.as_deref(), Some("failed" | "timeout"));
        let completed = move || {
            matches!(
                status.as_deref(),
                Some("succeeded" | "failed" | "timeout" | "canceled")
            )
        };
        let task_status = move |name: String| -> Value {
            statuses
                .get(&name)
                .map_or(Value::from(()), |s| Value::from(s.as_str()))
        };
        let item_fn = move |name: Option<String>| -> Result<Value, Error> {
            let Some(value) = &item else {
                return Err(undefined("item() is only defined inside with items".into()));
            };
            let Some(n) = name else {
                return Ok(value.clone());
            };
            match value.get_attr(&n) {
                Ok(v) if !v.is_undefined() => Ok(v),
                _ => Err(undefined(format!("`{n}` is no item variable"))),
            }
        };
        minijinja::context! {
            ctx => Value::from_function(ctx_fn),
            result => Value::from_function(result_fn),
            succeeded => Value::from_function(succeeded),
            failed => Value::from_function(failed),
            completed => Value::from_function(completed),
            task_status => Value::from_function(task_status),
            item => Value::from_function(item_fn),
        }
    }
}

/// Evaluates `template`: a sole `{{ expr }}` yields its native value, anything else
/// renders to text.
pub fn evaluate(
    env: &Environment<'_>,
    template: &str,
    scope: &Scope<'_>,
) -> Result<Json, ExprError> {
    if !is_template(template) {
        return Ok(Json::String(template.to_string()));
    }
    Ok(jinja::eval_native(env, template, &scope.context())?)
}

/// Evaluates every string inside `value` (objects and lists walked).
pub fn render(env: &Environment<'_>, value: &Json, scope: &Scope<'_>) -> Result<Json, ExprError> {
    if !contains_template(value) {
        return Ok(value.clone());
    }
    Ok(jinja::render_json(env, value, &scope.context(), true)?)
}

fn contains_template(value: &Json) -> bool {
    match value {
        Json::String(s) => is_template(s),
        Json::Array(items) => items.iter().any(contains_template),
        Json::Object(map) => map.values().any(contains_template),
        _ => false,
    }
}

/// Evaluates a condition (`when`) to a boolean, with Python's truthiness.
pub fn holds(env: &Environment<'_>, template: &str, scope: &Scope<'_>) -> Result<bool, ExprError> {
    let value = evaluate(env, template, scope)?;
    Ok(truthy(&value))
}

/// Python's truthiness of a JSON value; the strings `false`/`False` are false too
/// (a condition written as text).
fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !(s.is_empty() || s.eq_ignore_ascii_case("false")),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_eval(
        text: &str,
        ctx: Json,
        result: Option<&Json>,
        status: Option<&str>,
    ) -> Result<Json, ExprError> {
        let env = jinja::environment();
        let ctx = ctx.as_object().cloned().unwrap_or_default();
        let statuses = Arc::new(BTreeMap::from([("a".to_string(), "succeeded".to_string())]));
        let item = json!({"x": 7});
        let scope = Scope {
            ctx: &ctx,
            result,
            status,
            statuses: &statuses,
            item: Some(&item),
        };
        evaluate(&env, text, &scope)
    }

    #[test]
    fn functions() {
        let r = json!({"stdout": "ok", "n": 3});
        let cases: &[(&str, Json)] = &[
            ("{{ ctx().n + 1 }}", json!(2)),
            ("{{ ctx('n') }}", json!(1)),
            ("{{ ctx().s }}-x", json!("hi-x")),
            ("{{ result().n * 2 }}", json!(6)),
            ("{{ succeeded() }}", json!(true)),
            ("{{ failed() }}", json!(false)),
            ("{{ completed() }}", json!(true)),
            ("{{ task_status('a') }}", json!("succeeded")),
            ("{{ task_status('zz') is none }}", json!(true)),
            ("{{ item().x + item('x') }}", json!(14)),
            ("plain", json!("plain")),
        ];
        for (text, want) in cases {
            let got = scope_eval(
                text,
                json!({"n": 1, "s": "hi"}),
                Some(&r),
                Some("succeeded"),
            );
            assert_eq!(got.as_ref().ok(), Some(want), "{text}: {got:?}");
        }
    }

    #[test]
    fn undefined_is_an_error_quoting_the_expression() {
        for text in [
            "{{ ctx('missing') }}",
            "{{ ctx().missing }}",
            "{{ nope }}",
            "{{ result() }}",
            "{{ item('y') }}",
        ] {
            let e = scope_eval(text, json!({}), None, None).unwrap_err();
            assert_eq!(e.expression, text);
        }
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
        assert!(!truthy(&json!([])));
        assert!(!truthy(&json!("False")));
        assert!(truthy(&json!("x")));
    }
}
