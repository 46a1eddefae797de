//! A pack (StackStorm's layout) decoded and checked as one unit.
//!
//! The shell reads the pack's directory and hands its files over as [`PackFile`]s
//! (paths relative to the pack); [`decode_pack`] returns the [`Pack`] or every error,
//! each with file, line, column and field.
//!
//! - `pack.yaml`: `ref` (wins) or `name`, matching `^[a-z0-9_-]+$`; `version` semver.
//! - `actions/*.yaml|yml`: action metadata; other files under `actions/` are entry
//!   points, kept in [`Pack::files`]; `actions/workflows/*.yaml` are workflow
//!   definitions, kept raw in [`Pack::workflows`].
//! - `rules/*.yaml|yml`: kept raw in [`Pack::rules`].
//! - `policies/*.yaml|yml`: `action.concurrency` and `action.retry` policies.
//! - `sensors/`, `aliases/`, `triggers/`: recorded in [`Pack::ignored`].

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::action::{Action, decode_action};
use crate::model::decode::{Fields, choice, string, uint};
use crate::model::error::{ModelError, Sink};
use crate::model::load::{Node, Pos, parse_documents};

/// One file of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFile {
    /// Path relative to the pack, e.g. `actions/restart.yaml`.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// What a policy does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// `action.concurrency`: at most `threshold` executions at once; the others are
    /// delayed or cancelled.
    Concurrency {
        /// Executions allowed at once.
        threshold: u32,
        /// `delay` or `cancel`.
        action: String,
    },
    /// `action.retry`: run again after a failure or timeout.
    Retry {
        /// `failure` or `timeout`.
        retry_on: String,
        /// How many times at most.
        max_retry_count: u32,
        /// Seconds between tries.
        delay: u32,
    },
}

/// A policy of the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// The action it applies to (`pack.action`).
    pub resource_ref: String,
    /// Whether it is in force (default true).
    pub enabled: bool,
    /// What it does.
    pub kind: PolicyKind,
}

/// A decoded pack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pack {
    /// Its reference (`ref`, or `name`).
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Its author.
    pub author: Option<String>,
    /// The author's email.
    pub email: Option<String>,
    /// Keywords.
    pub keywords: Vec<String>,
    /// Packs it depends on, as written.
    pub dependencies: Vec<String>,
    /// Its actions.
    pub actions: Vec<Action>,
    /// `actions/workflows/*` files, raw.
    pub workflows: Vec<PackFile>,
    /// `rules/*` files, raw.
    pub rules: Vec<PackFile>,
    /// Its policies.
    pub policies: Vec<Policy>,
    /// Entry points and other files under `actions/`, for the shell to write out.
    pub files: Vec<PackFile>,
    /// Paths present but not used (sensors, aliases, triggers…).
    pub ignored: Vec<String>,
    /// Every file as given, sorted by path (for [`Pack::content_hash`]).
    pub sources: Vec<PackFile>,
}

impl Pack {
    /// The action `name` of this pack.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// SHA-256 (hex) over the files, sorted by path: the same files give the same
    /// hash, so re-installing an unchanged pack can be skipped.
    pub fn content_hash(&self) -> String {
        let mut files: Vec<&PackFile> = self.sources.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = Sha256::new();
        for f in files {
            h.update((f.path.len() as u64).to_le_bytes());
            h.update(f.path.as_bytes());
            h.update((f.text.len() as u64).to_le_bytes());
            h.update(f.text.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

const PACK_FIELDS: &[&str] = &[
    "ref",
    "name",
    "description",
    "version",
    "author",
    "email",
    "keywords",
    "dependencies",
    "python_versions",
    "stackstorm_version",
    "system",
    "contributors",
    "url",
    "attribution",
];

fn error_at(
    file: &str,
    line: usize,
    column: usize,
    field: &str,
    reason: impl Into<String>,
) -> ModelError {
    ModelError {
        file: file.to_string(),
        line,
        column,
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// Decodes the pack made of `files` (its directory shown as `dir_label` in errors).
pub fn decode_pack(dir_label: &str, files: &[PackFile]) -> Result<Pack, Vec<ModelError>> {
    let label = |path: &str| {
        if dir_label.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", dir_label.trim_end_matches('/'))
        }
    };
    let mut errors = Vec::new();
    let mut pack = Pack::default();
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for f in files {
        if seen.insert(f.path.as_str(), ()).is_some() {
            errors.push(error_at(
                &label(&f.path),
                1,
                1,
                "",
                "the file is given twice",
            ));
        }
    }
    match files.iter().find(|f| f.path == "pack.yaml") {
        Some(f) => read_meta(&label(&f.path), &f.text, &mut pack, &mut errors),
        None => errors.push(error_at(
            &label("pack.yaml"),
            1,
            1,
            "",
            "a pack needs a pack.yaml",
        )),
    }
    let name = if pack.name.is_empty() {
        "?".to_string()
    } else {
        pack.name.clone()
    };
    let mut action_at: BTreeMap<String, String> = BTreeMap::new();
    let mut policy_files = Vec::new();
    let mut sorted: Vec<&PackFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in sorted {
        let path = f.path.as_str();
        pack.sources.push(f.clone());
        if path == "pack.yaml" {
            continue;
        }
        if let Some(rest) = path.strip_prefix("actions/") {
            if rest.starts_with("workflows/") {
                pack.workflows.push(f.clone());
                // Workflows are also entry points of orquesta actions.
                pack.files.push(f.clone());
            } else if !rest.contains('/') && is_yaml(rest) {
                match decode_action(&label(path), &f.text, &name) {
                    Ok(a) => {
                        if let Some(first) = action_at.get(&a.name) {
                            errors.push(error_at(
                                &label(path),
                                1,
                                1,
                                "name",
                                format!("action `{}` is already defined in {first}", a.name),
                            ));
                        } else {
                            action_at.insert(a.name.clone(), label(path));
                            pack.actions.push(a);
                        }
                    }
                    Err(e) => errors.extend(e),
                }
            } else {
                pack.files.push(f.clone());
            }
        } else if path.starts_with("rules/") && is_yaml(path) {
            pack.rules.push(f.clone());
        } else if path.starts_with("policies/") && is_yaml(path) {
            policy_files.push(f);
        } else {
            // sensors/, aliases/, triggers/, config.schema.yaml, README.md, …
            pack.ignored.push(path.to_string());
        }
    }
    // Entry points must exist.
    for a in &pack.actions {
        if let Some(ep) = &a.entry_point {
            let wanted = format!("actions/{}", ep.trim_start_matches("./"));
            if !files.iter().any(|f| f.path == wanted) {
                let file = action_at.get(&a.name).cloned().unwrap_or_default();
                let text = files
                    .iter()
                    .find(|f| label(&f.path) == file)
                    .map(|f| f.text.as_str())
                    .unwrap_or("");
                let (line, column) = locate_value(text, "entry_point");
                errors.push(error_at(
                    &file,
                    line,
                    column,
                    "entry_point",
                    format!("action `{}`: no file `{wanted}` in the pack", a.name),
                ));
            }
        }
    }
    for f in policy_files {
        if let Some(p) = read_policy(&label(&f.path), &f.text, &pack, &mut errors) {
            pack.policies.push(p);
        }
    }
    if errors.is_empty() {
        Ok(pack)
    } else {
        errors.sort();
        errors.dedup();
        Err(errors)
    }
}

/// Line and column of the value of top-level `key:` in `text` (1:1 if not found).
fn locate_value(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix(key)
            && let Some(after) = rest.strip_prefix(':')
        {
            let skip = after.len() - after.trim_start().len();
            return (i + 1, key.len() + 2 + skip);
        }
    }
    (1, 1)
}

fn read_meta(file: &str, text: &str, pack: &mut Pack, errors: &mut Vec<ModelError>) {
    let docs = match parse_documents(file, text) {
        Ok(d) => d,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let mut sink = Sink { file, text, errors };
    let Some(node) = docs.first() else {
        sink.push(Pos { line: 1, column: 1 }, "", "pack.yaml is empty");
        return;
    };
    let Some(f) = Fields::read(&mut sink, node, node.pos, "", PACK_FIELDS) else {
        return;
    };
    let text_of = |sink: &mut Sink<'_>, key: &str| {
        f.get(key)
            .and_then(|n| string(sink, n, key))
            .map(str::to_string)
    };
    let name = text_of(&mut sink, "name");
    let reference = text_of(&mut sink, "ref");
    let (chosen, key) = match (&reference, &name) {
        (Some(r), _) => (Some(r.clone()), "ref"),
        (None, Some(n)) => (Some(n.clone()), "name"),
        (None, None) => {
            sink.push(f.at, "", "missing field `ref` or `name`");
            (None, "name")
        }
    };
    if let Some(c) = &chosen
        && let Some(n) = f.get(key)
    {
        let valid = !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-');
        if valid {
            pack.name = c.clone();
        } else {
            sink.push(
                n.pos,
                key,
                format!("`{c}` is not a valid pack reference: use only a-z, 0-9, _ and - (set `ref` when the name has other characters)"),
            );
        }
    }
    pack.description = text_of(&mut sink, "description");
    pack.author = text_of(&mut sink, "author");
    pack.email = text_of(&mut sink, "email");
    if let Some(n) = f.get("version") {
        let v = match &n.value {
            crate::model::load::Value::Str(s) => Some(s.clone()),
            crate::model::load::Value::Float(_) | crate::model::load::Value::Int(_) => {
                Some(crate::model::load::raw_scalar(text, n.pos))
            }
            _ => None,
        };
        match v {
            Some(v) if is_semver(&v) => pack.version = Some(v),
            Some(v) => sink.push(
                n.pos,
                "version",
                format!("`{v}` is not a semantic version such as 1.0.0"),
            ),
            None => sink.push(n.pos, "version", "expected a version such as 1.0.0"),
        }
    }
    for (key, out) in [
        ("keywords", &mut pack.keywords),
        ("dependencies", &mut pack.dependencies),
    ] {
        if let Some(n) = f.get(key)
            && let Some(items) = crate::model::decode::string_list(&mut sink, n, key)
        {
            *out = items.into_iter().map(|(_, s, _)| s.to_string()).collect();
        }
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

const POLICY_FIELDS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "resource_ref",
    "policy_type",
    "parameters",
    "pack",
];

fn read_policy(
    file: &str,
    text: &str,
    pack: &Pack,
    errors: &mut Vec<ModelError>,
) -> Option<Policy> {
    let docs = match parse_documents(file, text) {
        Ok(d) => d,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut sink = Sink { file, text, errors };
    let node: &Node = docs.first()?;
    let f = Fields::read(&mut sink, node, node.pos, "", POLICY_FIELDS)?;
    let name = f
        .require(&mut sink, "name")
        .and_then(|n| string(&mut sink, n, "name"))
        .map(str::to_string);
    let enabled = f
        .get("enabled")
        .and_then(|n| crate::model::decode::boolean(&mut sink, n, "enabled"))
        .unwrap_or(true);
    let resource_ref = f.require(&mut sink, "resource_ref").and_then(|n| {
        let r = string(&mut sink, n, "resource_ref")?;
        let action = r.strip_prefix(&format!("{}.", pack.name));
        match action {
            Some(a) if pack.action(a).is_some() => Some(r.to_string()),
            _ => {
                let names: Vec<String> = pack.actions.iter().map(|a| a.reference()).collect();
                sink.push(
                    n.pos,
                    "resource_ref",
                    format!(
                        "`{r}` is not an action of pack `{}`{}",
                        pack.name,
                        crate::model::error::did_you_mean(r, names.iter().map(String::as_str))
                    ),
                );
                None
            }
        }
    });
    let kind = f
        .require(&mut sink, "policy_type")
        .and_then(|n| {
            choice(
                &mut sink,
                n,
                "policy_type",
                &["action.concurrency", "action.retry"],
            )
        })
        .and_then(|t| {
            let allowed: &[&str] = if t == "action.concurrency" {
                &["action", "threshold"]
            } else {
                &["retry_on", "max_retry_count", "delay"]
            };
            let p = f.require_sub(&mut sink, "parameters", allowed)?;
            if t == "action.concurrency" {
                let threshold = p
                    .require(&mut sink, "threshold")
                    .and_then(|n| uint(&mut sink, n, &p.field("threshold"), 1, 10_000));
                let action = match p.get("action") {
                    Some(n) => choice(&mut sink, n, &p.field("action"), &["delay", "cancel"]),
                    None => Some("delay"),
                };
                Some(PolicyKind::Concurrency {
                    threshold: threshold?,
                    action: action?.to_string(),
                })
            } else {
                let retry_on = p.require(&mut sink, "retry_on").and_then(|n| {
                    choice(&mut sink, n, &p.field("retry_on"), &["failure", "timeout"])
                });
                let max = match p.get("max_retry_count") {
                    Some(n) => uint(&mut sink, n, &p.field("max_retry_count"), 0, 100),
                    None => Some(2),
                };
                let delay = match p.get("delay") {
                    Some(n) => uint(&mut sink, n, &p.field("delay"), 0, 86_400),
                    None => Some(0),
                };
                Some(PolicyKind::Retry {
                    retry_on: retry_on?.to_string(),
                    max_retry_count: max?,
                    delay: delay?,
                })
            }
        });
    Some(Policy {
        name: name?,
        resource_ref: resource_ref?,
        enabled,
        kind: kind?,
    })
}

#[cfg(test)]
mod tests;
