//! Orquesta's expression functions over the StackStorm Jinja environment.
//!
//! Each evaluation gets a [`Scope`]: the route's context and, where they make sense,
//! the task's result and status, every task's latest status, and the current item.
//! They reach the template as callables: `ctx()`, `ctx(name)`, `result()`,
//! `succeeded()`, `failed()`, `completed()`, `task_status(name)`, `item()`,
//! `item(name)`, and `st2kv(key, decrypt=false, default=…)` over the datastore the
//! shell attaches ([`Datastore`]). Undefined names are errors that quote the expression.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Map, Value as Json};

use crate::automation::jinja::{self, KvSource};
use crate::automation::params::MASK;

/// The datastore a workflow's expressions read with `st2kv(key)`. The shell attaches
/// it to the state before each conductor call; it is never persisted, and two states
/// compare equal whatever their datastore.
#[derive(Clone, Default)]
pub struct Datastore(pub Option<Arc<dyn KvSource>>);

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Datastore(attached)"
        } else {
            "Datastore(none)"
        })
    }
}

impl PartialEq for Datastore {
    fn eq(&self, _: &Datastore) -> bool {
        true
    }
}

/// StackStorm's `st2kv(key, decrypt=False, default=…)` for Orquesta: `system.NAME`
/// reads the system scope, any other key the user scope of whoever started the
/// workflow. A value that is JSON comes back decoded, as StackStorm's does. A missing
/// key is an error unless `default` is given. Secrets stay out of workflow state: a
/// secret reads as the mask, and `decrypt=true` on one is an error that says where
/// secrets belong (a secret action parameter).
fn st2kv(kv: &Datastore, key: &str, kwargs: &Kwargs) -> Result<Value, Error> {
    let decrypt: Option<bool> = kwargs.get("decrypt")?;
    let default: Option<Value> = if kwargs.has("default") {
        Some(kwargs.get("default")?)
    } else {
        None
    };
    kwargs.assert_all_used()?;
    let Some(source) = &kv.0 else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "st2kv(): no datastore is available here",
        ));
    };
    let (scope, name) = match key.strip_prefix("system.") {
        Some(name) => ("system", name),
        None => ("user", key),
    };
    let Some(entry) = source.get(scope, name) else {
        return default.ok_or_else(|| {
            undefined(format!(
                "st2kv(): the key `{name}` does not exist in the {scope} scope of the datastore"
            ))
        });
    };
    if entry.secret {
        if decrypt == Some(true) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "st2kv('{key}', decrypt=true): secrets are not read into workflow state; \
                     give the task's action a `secret: true` parameter whose default is \
                     `{{{{ st2kv.{scope}.{name} | decrypt_kv }}}}`"
                ),
            ));
        }
        return Ok(Value::from(MASK));
    }
    Ok(match serde_json::from_str::<Json>(&entry.value) {
        Ok(json) => to_value(&json),
        Err(_) => Value::from(entry.value),
    })
}

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
    /// The datastore `st2kv()` reads.
    pub kv: &'a Datastore,
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
        let kv = self.kv.clone();
        let st2kv_fn = move |key: String, kwargs: Kwargs| -> Result<Value, Error> {
            st2kv(&kv, &key, &kwargs)
        };
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
            st2kv => Value::from_function(st2kv_fn),
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
        let kv = Datastore(Some(Arc::new(
            jinja::KvMap::new()
                .with("system", "plain", "text", false)
                .with("system", "ports", "[80, 443]", false)
                .with("system", "password", "hunter2", true)
                .with("user", "mine", "7", false),
        )));
        let scope = Scope {
            ctx: &ctx,
            result,
            status,
            statuses: &statuses,
            item: Some(&item),
            kv: &kv,
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
            ("{{ st2kv('system.plain') }}", json!("text")),
            ("{{ st2kv('system.ports')[1] }}", json!(443)),
            ("{{ st2kv('mine') + 1 }}", json!(8)),
            ("{{ st2kv('system.password') }}", json!(MASK)),
            ("{{ st2kv('system.nope', default='d') }}", json!("d")),
            ("{{ st2kv('nope', default=none) is none }}", json!(true)),
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
            "{{ st2kv('system.nope') }}",
            "{{ st2kv('plain') }}",
            "{{ st2kv('system.password', decrypt=true) }}",
            "{{ st2kv('system.plain', decrypted=true) }}",
        ] {
            let e = scope_eval(text, json!({}), None, None).unwrap_err();
            assert_eq!(e.expression, text);
        }
    }

    #[test]
    fn a_secret_is_never_decrypted_into_workflow_state() {
        let e = scope_eval(
            "{{ st2kv('system.password', decrypt=true) }}",
            json!({}),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            e.reason.contains("secret: true") && e.reason.contains("decrypt_kv"),
            "{e}"
        );
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let missing = scope_eval("{{ st2kv('system.nope') }}", json!({}), None, None).unwrap_err();
        assert!(missing.reason.contains("`nope`"), "{missing}");
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
