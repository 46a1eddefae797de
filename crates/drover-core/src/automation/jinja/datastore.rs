//! The datastore in templates: `st2kv.system.KEY`, `st2kv.user.KEY`, and the
//! `decrypt_kv` filter.
//!
//! The shell hands over values already decrypted ([`KvEntry`]). A secret entry reaches
//! templates as a [`Secret`] value that prints, serialises and debug-prints as
//! [`MASK`](crate::automation::params::MASK); only `decrypt_kv` yields its plaintext,
//! as StackStorm requires for encrypted keys.
//!
//! Dotted key names read as attributes (`st2kv.system.app.password` is key
//! `app.password`) when the source says keys under that prefix exist
//! ([`KvSource::has_prefix`]); brackets always work (`st2kv.system['app.password']`).
//!
//! Difference from StackStorm: a missing key is an error naming the key (StackStorm
//! renders an empty string).

use std::fmt;
use std::sync::{Arc, Mutex};

use minijinja::value::{Object, ObjectRepr};
use minijinja::{Error, ErrorKind, Value};

use crate::automation::params::MASK;

/// One datastore entry, decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The value (plaintext, also for secrets).
    pub value: String,
    /// Whether the entry is a secret: masked unless piped through `decrypt_kv`.
    pub secret: bool,
}

impl fmt::Debug for KvEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.secret { MASK } else { &self.value };
        f.debug_struct("KvEntry")
            .field("value", &value)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Where `st2kv` reads keys from.
pub trait KvSource: Send + Sync + fmt::Debug {
    /// The entry `key` of `scope` (`system` or `user`), if it exists.
    fn get(&self, scope: &str, key: &str) -> Option<KvEntry>;

    /// Whether some key of `scope` starts with `prefix` followed by `.` (so that
    /// `st2kv.system.app.password` can be read attribute by attribute). Sources that
    /// cannot tell answer `false`; brackets still reach such keys.
    fn has_prefix(&self, scope: &str, prefix: &str) -> bool {
        let _ = (scope, prefix);
        false
    }
}

/// An in-memory datastore, for tests and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct KvMap {
    entries: std::collections::BTreeMap<(String, String), KvEntry>,
}

impl KvMap {
    /// An empty datastore.
    pub fn new() -> KvMap {
        KvMap::default()
    }

    /// Sets `scope`/`key` to `value` (a secret when `secret`); returns `self` to chain.
    pub fn with(mut self, scope: &str, key: &str, value: &str, secret: bool) -> KvMap {
        self.set(scope, key, value, secret);
        self
    }

    /// Sets `scope`/`key` to `value` (a secret when `secret`).
    pub fn set(&mut self, scope: &str, key: &str, value: &str, secret: bool) {
        self.entries.insert(
            (scope.to_string(), key.to_string()),
            KvEntry {
                value: value.to_string(),
                secret,
            },
        );
    }
}

impl KvSource for KvMap {
    fn get(&self, scope: &str, key: &str) -> Option<KvEntry> {
        self.entries
            .get(&(scope.to_string(), key.to_string()))
            .cloned()
    }

    fn has_prefix(&self, scope: &str, prefix: &str) -> bool {
        let start = (scope.to_string(), format!("{prefix}."));
        self.entries
            .range(start.clone()..)
            .next()
            .is_some_and(|((s, k), _)| *s == start.0 && k.starts_with(&start.1))
    }
}

/// The `st2kv` value to put in a template context.
pub fn st2kv(source: Arc<dyn KvSource>) -> Value {
    Value::from_object(St2Kv {
        source,
        misses: Arc::new(Mutex::new(Vec::new())),
    })
}

/// `st2kv`: its attributes are the scopes.
#[derive(Debug)]
struct St2Kv {
    source: Arc<dyn KvSource>,
    /// Keys asked for and not found, to name them in the render error.
    misses: Arc<Mutex<Vec<String>>>,
}

impl Object for St2Kv {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let scope = key.as_str()?;
        if scope != "system" && scope != "user" {
            return None;
        }
        Some(Value::from_object(Scope {
            name: scope.to_string(),
            prefix: String::new(),
            source: self.source.clone(),
            misses: self.misses.clone(),
        }))
    }
}

/// `st2kv.system` or `st2kv.user`, or a dotted prefix within it
/// (`st2kv.system.app`).
#[derive(Debug)]
struct Scope {
    name: String,
    /// `""`, or `app.` for `st2kv.system.app`.
    prefix: String,
    source: Arc<dyn KvSource>,
    misses: Arc<Mutex<Vec<String>>>,
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = format!("{}{}", self.prefix, key.as_str()?);
        match self.source.get(&self.name, &key) {
            Some(entry) if entry.secret => Some(Value::from_object(Secret(entry.value))),
            Some(entry) => Some(Value::from(entry.value)),
            None if self.source.has_prefix(&self.name, &key) => Some(Value::from_object(Scope {
                name: self.name.clone(),
                prefix: format!("{key}."),
                source: self.source.clone(),
                misses: self.misses.clone(),
            })),
            None => {
                if let Ok(mut misses) = self.misses.lock() {
                    misses.push(format!("{}.{key}", self.name));
                }
                None
            }
        }
    }
}

/// A secret datastore value: prints, serialises and debug-prints as the mask.
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Object for Secret {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// The keys `ctx`'s `st2kv` was asked for and lacked since the last call (and forgets
/// them).
pub(crate) fn take_misses(ctx: &Value) -> Vec<String> {
    let Ok(kv) = ctx.get_attr("st2kv") else {
        return Vec::new();
    };
    let Some(kv) = kv.downcast_object_ref::<St2Kv>() else {
        return Vec::new();
    };
    match kv.misses.lock() {
        Ok(mut misses) => {
            let mut taken = std::mem::take(&mut *misses);
            taken.dedup();
            taken
        }
        Err(_) => Vec::new(),
    }
}

/// The `decrypt_kv` filter: a secret's plaintext; other values pass unchanged (they
/// were never encrypted).
pub(crate) fn decrypt_kv(value: Value) -> Result<Value, Error> {
    if let Some(secret) = value.downcast_object_ref::<Secret>() {
        return Ok(Value::from(secret.0.clone()));
    }
    if value.is_undefined() || value.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "decrypt_kv: the datastore item does not exist",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::jinja::{environment, eval_native, render_text};

    fn ctx() -> Value {
        let kv = KvMap::new()
            .with("system", "host", "db1", false)
            .with("system", "pw", "hunter2", true)
            .with("user", "token", "t0k", true)
            .with("system", "app.name", "shop", false)
            .with("system", "deep.a.b", "s3", true);
        minijinja::context! { st2kv => st2kv(Arc::new(kv)) }
    }

    #[test]
    fn lookups_and_masking() {
        let env = environment();
        let ctx = ctx();
        let cases = [
            ("{{ st2kv.system.host }}", "db1"),
            ("{{ st2kv.system['app.name'] }}", "shop"),
            ("{{ st2kv.system.app.name }}", "shop"),
            ("{{ st2kv.system.deep.a.b | decrypt_kv }}", "s3"),
            ("{{ st2kv.system.pw }}", MASK),
            ("{{ st2kv.system.pw | decrypt_kv }}", "hunter2"),
            ("{{ st2kv.user.token | decrypt_kv }}", "t0k"),
            ("{{ st2kv.system.host | decrypt_kv }}", "db1"),
            ("{{ st2kv.system.pw | upper }}", MASK),
            ("{{ st2kv.system.pw | to_json_string }}", "\"********\""),
            ("{{ st2kv.system.pw ~ '!' }}", "********!"),
            ("{{ [st2kv.system.pw] }}", "[********]"),
        ];
        for (template, want) in cases {
            assert_eq!(
                render_text(&env, template, &ctx).unwrap(),
                want,
                "{template}"
            );
        }
        assert_eq!(
            eval_native(&env, "{{ st2kv.system.pw }}", &ctx).unwrap(),
            serde_json::json!(MASK)
        );
    }

    #[test]
    fn secret_never_leaks_in_debug() {
        let entry = KvEntry {
            value: "hunter2".into(),
            secret: true,
        };
        assert!(!format!("{entry:?}").contains("hunter2"));
        let value = Value::from_object(Secret("hunter2".into()));
        assert!(!format!("{value:?}").contains("hunter2"));
        assert!(!value.to_string().contains("hunter2"));
    }

    #[test]
    fn missing_key_names_the_key() {
        let env = environment();
        let ctx = ctx();
        let e = render_text(&env, "{{ st2kv.system.nope }}", &ctx).unwrap_err();
        assert!(e.reason.contains("`st2kv.system.nope`"), "{}", e.reason);
        let e = render_text(&env, "{{ st2kv.system.app.nope }}", &ctx).unwrap_err();
        assert!(e.reason.contains("`st2kv.system.app.nope`"), "{}", e.reason);
        let e = render_text(&env, "{{ st2kv.user.gone | decrypt_kv }}", &ctx).unwrap_err();
        assert!(e.reason.contains("`st2kv.user.gone`"), "{}", e.reason);
        // A miss of an earlier, successful render is not blamed on a later one.
        assert_eq!(
            render_text(&env, "{{ st2kv.system.old is defined }}", &ctx).unwrap(),
            "False"
        );
        let e = render_text(&env, "{{ undefined_name }}", &ctx).unwrap_err();
        assert!(!e.reason.contains("st2kv"), "{}", e.reason);
        let e = render_text(&env, "{{ st2kv.system.x ~ undefined_name }}", &ctx).unwrap_err();
        assert!(
            e.reason.contains("`st2kv.system.x`") && !e.reason.contains("old"),
            "{}",
            e.reason
        );
    }
}
