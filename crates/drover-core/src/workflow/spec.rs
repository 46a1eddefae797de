//! An Orquesta workflow file decoded into a [`WorkflowSpec`], every problem located
//! (file, line, column, field path): unknown keys, unknown `do` targets, impossible
//! joins, no start task, Jinja that does not compile, and YAQL (`<% %>`), which is
//! refused for now.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::expr::{describe, is_template};
use crate::automation::jinja;
use crate::model::decode::{Fields, entries, list, string, wrong_type};
use crate::model::error::{ModelError, Sink};
use crate::model::load::{Node, Pos, Value, parse_documents};

/// The engine commands a transition's `do` may name instead of a task.
pub const ENGINE_COMMANDS: [&str; 4] = ["continue", "fail", "noop", "retry"];

/// A decoded, validated Orquesta workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSpec {
    /// The file it came from.
    pub file: String,
    /// `version` (always `1.0`).
    pub version: String,
    /// `description`.
    pub description: Option<String>,
    /// `input`: names with optional defaults (which may be expressions).
    pub input: Vec<Param>,
    /// `vars`: like `input`, evaluated after it.
    pub vars: Vec<Param>,
    /// `output`: names and expressions, in order.
    pub output: Vec<(String, Json)>,
    /// The tasks, in the order written.
    pub tasks: Vec<TaskSpec>,
}

/// One `input` or `vars` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The name.
    pub name: String,
    /// The default value (strings may be expressions); `None` when only named.
    pub default: Option<Json>,
}

/// One task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's name (its key under `tasks`).
    pub name: String,
    /// Action ref, possibly an expression; `None` for a task that only transitions.
    pub action: Option<String>,
    /// Action input (values may be expressions).
    pub input: Json,
    /// Transitions, in order.
    pub next: Vec<Transition>,
    /// `join`, if any.
    pub join: Option<Join>,
    /// `with`, if any.
    pub with: Option<WithItems>,
    /// `retry`, if any.
    pub retry: Option<Retry>,
    /// `delay` in seconds (a number or an expression).
    pub delay: Option<Json>,
}

/// How many inbound transitions a join waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Join {
    /// Every inbound task.
    All,
    /// At least this many.
    Count(u32),
}

/// One entry of `next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// `when`, an expression; `None` means always.
    pub when: Option<String>,
    /// `publish`, in order: names and expressions.
    pub publish: Vec<(String, Json)>,
    /// `do`: task names or engine commands.
    pub targets: Vec<String>,
}

/// `with`: run the action once per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithItems {
    /// Names bound by `x in …` / `x, y in …` (empty for the bare form).
    pub vars: Vec<String>,
    /// The expression yielding the items.
    pub items: String,
    /// How many items may run at once (a number or an expression).
    pub concurrency: Option<Json>,
}

/// `retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// Retry only when this holds (default: the task failed).
    pub when: Option<String>,
    /// How many retries at most (a number or an expression).
    pub count: Json,
    /// Seconds between attempts (a number or an expression).
    pub delay: Option<Json>,
}

impl WorkflowSpec {
    /// The action refs written literally (not expressions), sorted, without repeats.
    pub fn actions(&self) -> Vec<String> {
        let mut refs: Vec<String> = self
            .tasks
            .iter()
            .filter_map(|t| t.action.clone())
            .filter(|a| !is_template(a))
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Tasks no transition leads to: where the workflow starts (sorted by name, as
    /// Orquesta schedules them).
    pub fn start_tasks(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .tasks
            .iter()
            .filter(|t| self.inbound(&t.name).is_empty())
            .map(|t| t.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The distinct tasks with a transition to `name` (itself excluded).
    pub fn inbound(&self, name: &str) -> Vec<&str> {
        self.tasks
            .iter()
            .filter(|t| {
                t.name != name && t.next.iter().any(|n| n.targets.iter().any(|d| d == name))
            })
            .map(|t| t.name.as_str())
            .collect()
    }
}

const TOP_KEYS: &[&str] = &["version", "description", "input", "vars", "output", "tasks"];
const TASK_KEYS: &[&str] = &["action", "input", "next", "join", "with", "retry", "delay"];
const NEXT_KEYS: &[&str] = &["when", "publish", "do"];
const WITH_KEYS: &[&str] = &["items", "concurrency"];
const RETRY_KEYS: &[&str] = &["when", "count", "delay"];

/// Decodes and validates the workflow in `text` (read from `file`).
pub fn decode_workflow(file: &str, text: &str) -> Result<WorkflowSpec, Vec<ModelError>> {
    let docs = parse_documents(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut sink = Sink {
        file,
        text,
        errors: &mut errors,
    };
    let start = Pos { line: 1, column: 1 };
    let Some(doc) = docs.first() else {
        sink.push(start, "", "the file holds no workflow");
        return Err(errors);
    };
    if let Some(extra) = docs.get(1) {
        sink.push(extra.pos, "", "one workflow per file");
    }
    check_expressions(&mut sink, doc, "");
    let spec = decode_top(&mut sink, doc, start);
    if let Some(spec) = &spec {
        check_graph(&mut sink, doc, spec);
    }
    match spec {
        Some(spec) if errors.is_empty() => Ok(spec),
        _ => {
            errors.sort();
            errors.dedup();
            Err(errors)
        }
    }
}

fn decode_top(sink: &mut Sink<'_>, doc: &Node, start: Pos) -> Option<WorkflowSpec> {
    let fields = Fields::read(sink, doc, start, "", TOP_KEYS)?;
    let version = match fields.require(sink, "version") {
        Some(node) => match &node.value {
            Value::Float(f) if (*f - 1.0).abs() < f64::EPSILON => "1.0".to_string(),
            Value::Str(s) if s == "1.0" => "1.0".to_string(),
            _ => {
                sink.push(node.pos, "version", "expected version `1.0`");
                String::new()
            }
        },
        None => String::new(),
    };
    let description = fields
        .get("description")
        .and_then(|n| string(sink, n, "description"))
        .map(str::to_string);
    let input = fields
        .get("input")
        .map(|n| params(sink, n, "input"))
        .unwrap_or_default();
    let vars = fields
        .get("vars")
        .map(|n| params(sink, n, "vars"))
        .unwrap_or_default();
    let output = fields
        .get("output")
        .map(|n| named_values(sink, n, "output"))
        .unwrap_or_default();
    let mut tasks = Vec::new();
    if let Some(node) = fields.require(sink, "tasks") {
        for (name, _, value) in entries(sink, node, "tasks").unwrap_or_default() {
            if ENGINE_COMMANDS.contains(&name) {
                sink.push(
                    value.pos,
                    &format!("tasks.{name}"),
                    format!("`{name}` is an engine command and cannot name a task"),
                );
                continue;
            }
            if let Some(task) = decode_task(sink, name, value) {
                tasks.push(task);
            }
        }
        if tasks.is_empty() && sink.count() == 0 {
            sink.push(node.pos, "tasks", "a workflow needs at least one task");
        }
    }
    Some(WorkflowSpec {
        file: sink.file.to_string(),
        version,
        description,
        input,
        vars,
        output,
        tasks,
    })
}

/// `input`/`vars`: a list of names or of one-entry `{name: default}` mappings.
fn params(sink: &mut Sink<'_>, node: &Node, field: &str) -> Vec<Param> {
    let mut out = Vec::new();
    for (i, item) in list(sink, node, field)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("{field}[{i}]");
        match &item.value {
            Value::Str(name) => out.push(Param {
                name: name.clone(),
                default: None,
            }),
            Value::Map(pairs) if pairs.len() == 1 => {
                if let Some(name) = string(sink, &pairs[0].0, &path) {
                    out.push(Param {
                        name: name.to_string(),
                        default: Some(pairs[0].1.to_json()),
                    });
                }
            }
            _ => wrong_type(sink, item, &path, "a name or a `name: default` mapping"),
        }
    }
    out
}

/// `output`/`publish`: a list of one-entry mappings, or one mapping.
fn named_values(sink: &mut Sink<'_>, node: &Node, field: &str) -> Vec<(String, Json)> {
    match &node.value {
        // `publish: a=1 b="{{ result() }}"`, Orquesta's inline form.
        Value::Str(text) => match inline_params(text) {
            Some(Json::Object(map)) => map.into_iter().collect(),
            _ => {
                sink.push(
                    node.pos,
                    field,
                    "expected `name=value …` or a list of `name: value`",
                );
                Vec::new()
            }
        },
        Value::Map(_) => entries(sink, node, field)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _, v)| (k.to_string(), v.to_json()))
            .collect(),
        Value::Seq(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("{field}[{i}]");
                match &item.value {
                    Value::Map(pairs) if pairs.len() == 1 => {
                        if let Some(name) = string(sink, &pairs[0].0, &path) {
                            out.push((name.to_string(), pairs[0].1.to_json()));
                        }
                    }
                    _ => wrong_type(sink, item, &path, "a one-entry `name: value` mapping"),
                }
            }
            out
        }
        _ => {
            wrong_type(sink, node, field, "a list of `name: value` mappings");
            Vec::new()
        }
    }
}

fn decode_task(sink: &mut Sink<'_>, name: &str, node: &Node) -> Option<TaskSpec> {
    let path = format!("tasks.{name}");
    let fields = Fields::read(sink, node, node.pos, &path, TASK_KEYS)?;
    let action_text = fields
        .get("action")
        .and_then(|n| string(sink, n, &fields.field("action")))
        .map(str::trim);
    // `action: core.local cmd="ls -l"`: inline input replaces `input`, as in Orquesta.
    let (action, inline) = match action_text {
        Some(text) if !is_template(text) && text.contains(char::is_whitespace) => {
            let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            let inline = inline_params(rest);
            if inline.is_none()
                && let Some(n) = fields.get("action")
            {
                sink.push(
                    n.pos,
                    &fields.field("action"),
                    format!("expected `pack.action key=value …`, found `{text}`"),
                );
            }
            (Some(name.to_string()), inline)
        }
        Some(text) => (Some(text.to_string()), None),
        None => (None, None),
    };
    let input = match fields.get("input") {
        _ if inline.is_some() => inline.unwrap_or_default(),
        Some(n) if matches!(n.value, Value::Map(_)) => n.to_json(),
        Some(n) => {
            wrong_type(sink, n, &fields.field("input"), "a mapping");
            Json::Object(Default::default())
        }
        None => Json::Object(Default::default()),
    };
    let mut next = Vec::new();
    if let Some(n) = fields.get("next") {
        for (i, item) in list(sink, n, &fields.field("next"))
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(t) = decode_transition(sink, item, &format!("{path}.next[{i}]")) {
                next.push(t);
            }
        }
    }
    let join = fields.get("join").and_then(|n| {
        let field = fields.field("join");
        match &n.value {
            Value::Str(s) if s == "all" => Some(Join::All),
            Value::Int(i) if *i >= 1 && *i <= i128::from(u32::MAX) => Some(Join::Count(*i as u32)),
            _ => {
                wrong_type(sink, n, &field, "`all` or a positive integer");
                None
            }
        }
    });
    let with = fields
        .get("with")
        .and_then(|n| decode_with(sink, n, &fields.field("with")));
    let retry = fields.sub(sink, "retry", RETRY_KEYS).map(|r| Retry {
        when: r
            .get("when")
            .and_then(|n| string(sink, n, &r.field("when")))
            .map(str::to_string),
        count: r.get("count").map(Node::to_json).unwrap_or(Json::from(0)),
        delay: r.get("delay").map(Node::to_json),
    });
    let delay = fields.get("delay").map(Node::to_json);
    Some(TaskSpec {
        name: name.to_string(),
        action,
        input,
        next,
        join,
        with,
        retry,
        delay,
    })
}

/// `a=1 b="two words" c='x'` → `{"a": 1, "b": "two words", "c": "x"}` (unquoted values
/// read as JSON when they are JSON); `None` when a word is no `key=value`.
fn inline_params(text: &str) -> Option<Json> {
    let mut out = serde_json::Map::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let (value, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = after[1..].find(q)? + 1;
                (Json::String(after[1..end].to_string()), &after[end + 1..])
            }
            _ => {
                let end = unquoted_end(after);
                let raw = &after[..end];
                let value = serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.into()));
                (value, &after[end..])
            }
        };
        out.insert(key.to_string(), value);
        rest = tail.trim_start();
    }
    Some(Json::Object(out))
}

/// Where an unquoted inline value ends: at whitespace outside `{{ … }}`.
fn unquoted_end(text: &str) -> usize {
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with("{{") {
            i += rest.find("}}").map_or(rest.len(), |e| e + 2);
            continue;
        }
        match rest.chars().next() {
            Some(c) if c.is_whitespace() => return i,
            Some(c) => i += c.len_utf8(),
            None => break,
        }
    }
    text.len()
}

fn decode_transition(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<Transition> {
    let fields = Fields::read(sink, node, node.pos, path, NEXT_KEYS)?;
    let when = fields.get("when").and_then(|n| match &n.value {
        Value::Str(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            wrong_type(sink, n, &fields.field("when"), "an expression");
            None
        }
    });
    let publish = fields
        .get("publish")
        .map(|n| named_values(sink, n, &fields.field("publish")))
        .unwrap_or_default();
    let targets = match fields.get("do") {
        None => Vec::new(),
        Some(n) => match &n.value {
            Value::Str(s) => split_targets(s),
            Value::Seq(_) => crate::model::decode::string_list(sink, n, &fields.field("do"))
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(_, s, _)| split_targets(s))
                .collect(),
            _ => {
                wrong_type(
                    sink,
                    n,
                    &fields.field("do"),
                    "a task name or a list of them",
                );
                Vec::new()
            }
        },
    };
    Some(Transition {
        when,
        publish,
        targets,
    })
}

fn split_targets(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn decode_with(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<WithItems> {
    // `with: <expr>` is short for `with: {items: <expr>}`.
    let (items_node, concurrency) = match &node.value {
        Value::Str(_) => (node, None),
        _ => {
            let fields = Fields::read(sink, node, node.pos, path, WITH_KEYS)?;
            let items = fields.require(sink, "items")?;
            (items, fields.get("concurrency").map(Node::to_json))
        }
    };
    let field = format!("{path}.items");
    let text = string(sink, items_node, &field)?;
    let (vars, items) = split_items(text);
    if items.is_empty() {
        sink.push(
            items_node.pos,
            &field,
            "expected an expression yielding the items",
        );
        return None;
    }
    Some(WithItems {
        vars,
        items,
        concurrency,
    })
}

/// `x in {{ e }}` / `x, y in {{ e }}` → (`[x, y]`, `{{ e }}`); a bare expression → (`[]`, it).
pub fn split_items(text: &str) -> (Vec<String>, String) {
    let text = text.trim();
    if let Some(at) = text.find(" in ") {
        let head = &text[..at];
        let names: Vec<&str> = head.split(',').map(str::trim).collect();
        let is_name =
            |n: &&str| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !head.contains("{{") && names.iter().all(is_name) {
            let expr = text[at + 4..].trim().to_string();
            return (names.into_iter().map(str::to_string).collect(), expr);
        }
    }
    (Vec::new(), text.to_string())
}

/// Reports YAQL anywhere, and Jinja that does not compile, in every string of `node`.
fn check_expressions(sink: &mut Sink<'_>, node: &Node, path: &str) {
    match &node.value {
        Value::Str(s) => check_string(sink, node.pos, path, s),
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                check_expressions(sink, item, &format!("{path}[{i}]"));
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                let key = match &k.value {
                    Value::Str(s) => s.clone(),
                    _ => continue,
                };
                check_string(sink, k.pos, path, &key);
                let sub = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                check_expressions(sink, v, &sub);
            }
        }
        _ => {}
    }
}

fn check_string(sink: &mut Sink<'_>, pos: Pos, path: &str, text: &str) {
    if let Some(start) = text.find("<%") {
        let end = text[start..]
            .find("%>")
            .map_or(text.len(), |e| start + e + 2);
        sink.push(
            pos,
            path,
            format!(
                "YAQL expressions are not supported yet; use Jinja {{{{ }}}}: `{}`",
                &text[start..end]
            ),
        );
        return;
    }
    if !is_template(text) {
        return;
    }
    // `x in {{ e }}` (with items) is checked on its expression part.
    let (_, text) = split_items(text);
    let env = super::expr::environment();
    let compiled = match jinja::sole_expression(&text) {
        Some(expr) => env.compile_expression(expr).map(|_| ()),
        None => env.template_from_str(&text).map(|_| ()),
    };
    if let Err(e) = compiled {
        sink.push(
            pos,
            path,
            format!("bad Jinja in `{text}`: {}", describe(&e)),
        );
    }
}

/// `do` targets that name no task, joins with too few inbound tasks, no start task.
fn check_graph(sink: &mut Sink<'_>, doc: &Node, spec: &WorkflowSpec) {
    let tasks_node = match &doc.value {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.value == Value::Str("tasks".into()))
            .map(|(_, v)| v),
        _ => None,
    };
    let task_node = |name: &str| -> Option<&Node> {
        match &tasks_node?.value {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.value == Value::Str(name.into()))
                .map(|(_, v)| v),
            _ => None,
        }
    };
    let field_node = |node: &'_ Node, key: &str| -> Option<Node> {
        match &node.value {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.value == Value::Str(key.into()))
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    };
    for task in &spec.tasks {
        let node = task_node(&task.name);
        let here = node.map_or(Pos { line: 1, column: 1 }, |n| n.pos);
        for (i, t) in task.next.iter().enumerate() {
            let do_pos = node
                .and_then(|n| field_node(n, "next"))
                .and_then(|n| match n.value {
                    Value::Seq(items) => items.get(i).cloned(),
                    _ => None,
                })
                .and_then(|n| field_node(&n, "do"))
                .map_or(here, |n| n.pos);
            for target in &t.targets {
                if !ENGINE_COMMANDS.contains(&target.as_str()) && spec.task(target).is_none() {
                    let names = spec.tasks.iter().map(|t| t.name.as_str());
                    let hint = crate::model::error::did_you_mean(target, names);
                    sink.push(
                        do_pos,
                        &format!("tasks.{}.next[{i}].do", task.name),
                        format!("`{target}` is no task of this workflow{hint}"),
                    );
                }
            }
        }
        if let Some(Join::Count(n)) = task.join {
            let inbound = spec.inbound(&task.name).len();
            if (n as usize) > inbound {
                let pos = node
                    .and_then(|nd| field_node(nd, "join"))
                    .map_or(here, |n| n.pos);
                sink.push(
                    pos,
                    &format!("tasks.{}.join", task.name),
                    format!("joins {n} inbound tasks but only {inbound} lead here"),
                );
            }
        }
    }
    if !spec.tasks.is_empty() && spec.start_tasks().is_empty() {
        let pos = tasks_node.map_or(Pos { line: 1, column: 1 }, |n| n.pos);
        sink.push(
            pos,
            "tasks",
            "no start task: every task is the target of a transition",
        );
    }
}
