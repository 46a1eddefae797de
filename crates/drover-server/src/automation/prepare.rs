//! Turning a request to run an action (from the API, a rule or a workflow task) into
//! the parameters that run: defaults rendered, values cast and checked against the
//! action's schema, secrets sealed for the store and masked for display.

use std::collections::HashMap;
use std::sync::Arc;

use drover_core::automation::action::Action;
use drover_core::automation::jinja::{KvEntry, KvSource};
use drover_core::automation::params::{self, MASK};
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// The datastore as of one moment, secrets decrypted, for rendering (`st2kv`).
#[derive(Clone)]
pub(crate) struct KvSnapshot {
    entries: Arc<HashMap<(String, String), KvEntry>>,
    /// Whose `user` scope `st2kv.user` reads.
    user: String,
}

impl std::fmt::Debug for KvSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KvSnapshot({} keys)", self.entries.len())
    }
}

/// The last snapshot this controller read, kept while the datastore's version stays
/// and no key in it has expired.
#[derive(Default)]
pub(crate) struct KvCache(std::sync::Mutex<Option<CachedKv>>);

struct CachedKv {
    /// The datastore version read before the keys.
    version: i64,
    /// When the first key in the snapshot expires (Unix ms).
    valid_until: i64,
    snapshot: KvSnapshot,
}

impl KvSnapshot {
    /// The live keys (secrets decrypted in memory only). Reads the store's datastore
    /// version first, and reuses this controller's last snapshot when the version has
    /// not moved and none of its keys has expired since: a check of one counter per
    /// call instead of reading and decrypting every key.
    pub(crate) async fn load(state: &AppState) -> anyhow::Result<KvSnapshot> {
        let version = state.store.kv_version().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let cache = &state.automation.kv;
        if let Ok(slot) = cache.0.lock()
            && let Some(c) = slot.as_ref()
            && c.version == version
            && now < c.valid_until
        {
            return Ok(c.snapshot.clone());
        }
        let (snapshot, valid_until) = Self::read(state).await?;
        if let Ok(mut slot) = cache.0.lock() {
            *slot = Some(CachedKv {
                version,
                valid_until,
                snapshot: snapshot.clone(),
            });
        }
        Ok(snapshot)
    }

    /// Reads every live key, and when the first of them expires.
    async fn read(state: &AppState) -> anyhow::Result<(KvSnapshot, i64)> {
        let mut entries = HashMap::new();
        let mut valid_until = i64::MAX;
        for row in state.store.kv_all().await? {
            if let Some(at) = row.expires_at {
                valid_until = valid_until.min(at);
            }
            let value = if row.secret {
                match state
                    .secrets
                    .open(&crate::api::kv_aad(&row.scope, &row.name), &row.value)
                {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(scope = %row.scope, key = %row.name, error = %e,
                            "cannot decrypt a datastore secret");
                        continue;
                    }
                }
            } else {
                row.value
            };
            entries.insert(
                (row.scope, row.name),
                KvEntry {
                    value,
                    secret: row.secret,
                },
            );
        }
        let snapshot = KvSnapshot {
            entries: Arc::new(entries),
            user: String::new(),
        };
        Ok((snapshot, valid_until))
    }

    /// The plaintexts of every secret key: masked wherever a value is shown.
    pub(crate) fn secret_values(&self) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| e.secret)
            .map(|e| e.value.clone())
            .collect()
    }

    /// The same keys, with `st2kv.user` reading `actor`'s scope.
    pub(crate) fn for_user(&self, actor: &str) -> Arc<dyn KvSource> {
        Arc::new(KvSnapshot {
            entries: self.entries.clone(),
            user: actor.to_string(),
        })
    }
}

impl KvSnapshot {
    fn scope(&self, scope: &str) -> String {
        match scope {
            "user" => format!("user:{}", self.user),
            other => other.to_string(),
        }
    }
}

impl KvSource for KvSnapshot {
    fn get(&self, scope: &str, key: &str) -> Option<KvEntry> {
        self.entries
            .get(&(self.scope(scope), key.to_string()))
            .cloned()
    }

    fn has_prefix(&self, scope: &str, prefix: &str) -> bool {
        let scope = self.scope(scope);
        let dotted = format!("{prefix}.");
        self.entries
            .keys()
            .any(|(s, k)| *s == scope && k.starts_with(&dotted))
    }
}

/// An action request checked and ready to record.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// What is shown: `{action, runner, parameters}` with secrets masked.
    pub spec: Value,
    /// What runs: the parameters with secrets sealed.
    pub params: Value,
}

/// The associated data an execution's secret parameter is sealed with.
fn param_aad(execution_id: &str, name: &str) -> String {
    format!("param:{execution_id}:{name}")
}

/// Resolves `given` against `action`'s parameters (runner ones included) for the
/// execution `id`. The error lists every problem, one per line.
pub(crate) fn prepare(
    state: &AppState,
    action: &Action,
    given: &Map<String, Value>,
    kv: &KvSnapshot,
    actor: &str,
    id: &str,
) -> Result<Prepared, String> {
    let kv_secrets = kv.secret_values();
    let kv: Arc<dyn KvSource> = kv.for_user(actor);
    let schema = action.effective_parameters();
    let given = text_where_strings(&schema, given);
    let values = params::resolve(&schema, &given, kv).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    // Values rendered from a secret (`cmd: "login {{ password }}"`) are as secret as
    // the secret itself: masked where shown, sealed where stored.
    let mut secrets = secret_values(action, &values);
    secrets.extend(kv_secrets);
    let shown = scrub_map(&params::redact(&schema, &values), &secrets);
    let secret_names = params::secret_names(&schema);
    let mut stored = values.clone();
    for (name, v) in stored.iter_mut() {
        let (text, is_json) = match &*v {
            Value::String(s) => (s.clone(), false),
            other => (other.to_string(), true),
        };
        let secret = secret_names.contains(name)
            || secrets
                .iter()
                .any(|s| s.len() >= 4 && text.contains(s.as_str()));
        if secret {
            *v = json!({ "$sealed": state.secrets.seal(&param_aad(id, name), &text),
                         "json": is_json });
        }
    }
    Ok(Prepared {
        spec: json!({
            "action": action.reference(),
            "runner": action.runner.as_str(),
            "parameters": Value::Object(shown),
        }),
        params: Value::Object(stored),
    })
}

/// Values rendered natively (`{{ trigger.count }}` is a number, the CLI reads `n=3` as
/// one) become text where the parameter is declared a string, as StackStorm's text
/// rendering would have given them.
fn text_where_strings(
    schema: &params::ParamSchema,
    given: &Map<String, Value>,
) -> Map<String, Value> {
    given
        .iter()
        .map(|(k, v)| {
            let wants_string = schema
                .get(k)
                .and_then(|s| s.type_.as_deref())
                .is_some_and(|t| t == "string");
            let v = match v {
                Value::Number(n) if wants_string => Value::String(n.to_string()),
                Value::Bool(b) if wants_string => Value::String(b.to_string()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The parameters to run with: secrets opened again.
pub(crate) fn open_params(
    state: &AppState,
    id: &str,
    params: &Value,
) -> anyhow::Result<Map<String, Value>> {
    let mut out = params.as_object().cloned().unwrap_or_default();
    for (name, v) in out.iter_mut() {
        if let Some(sealed) = v.get("$sealed").and_then(Value::as_str) {
            let text = state.secrets.open(&param_aad(id, name), sealed)?;
            let was_json = v.get("json").and_then(Value::as_bool).unwrap_or(false);
            *v = if was_json {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            } else {
                Value::String(text)
            };
        }
    }
    Ok(out)
}

/// Replaces every occurrence of a secret parameter's value in `text` by the mask
/// (so a script that echoes its password does not leak it through the result).
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// The values of an action's secret parameters, as text, for [`scrub`].
pub(crate) fn secret_values(action: &Action, values: &Map<String, Value>) -> Vec<String> {
    params::secret_names(&action.effective_parameters())
        .iter()
        .filter_map(|n| values.get(n))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn scrub_map(m: &Map<String, Value>, secrets: &[String]) -> Map<String, Value> {
    match scrub_json(&Value::Object(m.clone()), secrets) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Masks secret values anywhere inside a JSON result.
pub(crate) fn scrub_json(value: &Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return value.clone();
    }
    match value {
        Value::String(s) => Value::String(scrub(s, secrets)),
        Value::Array(items) => Value::Array(items.iter().map(|v| scrub_json(v, secrets)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), scrub_json(v, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}
