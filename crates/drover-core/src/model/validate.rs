//! Documents → typed items, and the checks across documents (duplicate names,
//! dangling references, dependency cycles).

use std::collections::{BTreeMap, BTreeSet};

use super::decode::{Fields, entries, push_inside, string, text, wrong_type};
use super::error::{ModelError, Sink, did_you_mean};
use super::inventory_types::{Generator, Provider};
use super::load::{Node, Pos, Value};
use super::service;
use super::types::{HostPin, Hostclass, Service, Source};
use crate::selector;

// Siblings check names through here.
pub(crate) use crate::names::{check_host_name, check_label_key};

/// A name and where it was written, in one document.
#[derive(Debug, Clone)]
pub(crate) struct Ref {
    /// The file.
    pub file: String,
    /// Where the name is.
    pub pos: Pos,
    /// Dotted field path of the name.
    pub field: String,
    /// The name.
    pub name: String,
}

impl Ref {
    pub(crate) fn source(&self) -> Source {
        Source {
            file: self.file.clone(),
            line: self.pos.line,
            column: self.pos.column,
        }
    }
}

/// The kinds of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Service,
    Hostclass,
    Host,
    Provider,
    Generator,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Hostclass => "hostclass",
            Kind::Host => "host",
            Kind::Provider => "provider",
            Kind::Generator => "generator",
        }
    }
}

/// A typed document.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Service(Box<Service>),
    Hostclass(Hostclass),
    Host(HostPin),
    Provider(Box<Provider>),
    Generator(Box<Generator>),
}

/// What one document declares. The names and references are kept even when the
/// document has errors, so that other documents are checked against them.
#[derive(Debug)]
pub(crate) struct Doc {
    pub kind: Kind,
    /// Its name, if it has a valid one.
    pub name: Option<Ref>,
    /// Hostclasses it refers to (`placement.hostclass`, a pin's `hostclass`).
    pub hostclass_refs: Vec<Ref>,
    /// Services it depends on.
    pub deps: Vec<Ref>,
    /// Generators it names (`load_balancer.generator`).
    pub generator_refs: Vec<Ref>,
    /// The typed item, when the document had no error.
    pub item: Option<Item>,
}

const KINDS: [&str; 5] = ["service", "hostclass", "host", "provider", "generator"];
const KIND_LIST: &str = "service, hostclass, host, provider or generator";

/// Reads one document.
pub(crate) fn document(sink: &mut Sink<'_>, node: &Node) -> Option<Doc> {
    let Value::Map(map) = &node.value else {
        sink.push(
            node.pos,
            "",
            format!(
                "expected a mapping with a `kind` ({KIND_LIST}), found {}",
                node.value.describe()
            ),
        );
        return None;
    };
    let kind_node = map
        .iter()
        .find(|(k, _)| k.value == Value::Str("kind".into()))
        .map(|(_, v)| v);
    let Some(kind_node) = kind_node else {
        sink.push(
            node.pos,
            "kind",
            format!("missing field `kind`; expected {KIND_LIST}"),
        );
        return None;
    };
    let kind = match &kind_node.value {
        Value::Str(s) => match s.as_str() {
            "service" => Kind::Service,
            "hostclass" => Kind::Hostclass,
            "host" => Kind::Host,
            "provider" => Kind::Provider,
            "generator" => Kind::Generator,
            _ => {
                let hint = did_you_mean(s, KINDS);
                sink.push(
                    kind_node.pos,
                    "kind",
                    format!("unknown kind `{s}`; expected {KIND_LIST}{hint}"),
                );
                return None;
            }
        },
        _ => {
            wrong_type(sink, kind_node, "kind", KIND_LIST);
            return None;
        }
    };

    // The path prefix names the document, when it has a usable name.
    let plural = match kind {
        Kind::Service => "services",
        Kind::Hostclass => "hostclasses",
        Kind::Host => "hosts",
        Kind::Provider => "providers",
        Kind::Generator => "generators",
    };
    let name_text = map.iter().find_map(|(k, v)| match (&k.value, &v.value) {
        (Value::Str(k), Value::Str(v)) if k == "name" && !v.is_empty() => Some(v.clone()),
        _ => None,
    });
    let prefix = format!("{plural}.{}", name_text.as_deref().unwrap_or("?"));

    let before = sink.count();
    let mut doc = match kind {
        Kind::Service => service::read(sink, node, &prefix),
        Kind::Hostclass => hostclass(sink, node, &prefix),
        Kind::Host => host(sink, node, &prefix),
        Kind::Provider => super::inventory::provider(sink, node, &prefix),
        Kind::Generator => super::inventory::generator(sink, node, &prefix),
    };
    if sink.count() > before {
        doc.item = None;
    }
    Some(doc)
}

/// Reads and checks the `name` field of a document of `kind`.
pub(crate) fn name(sink: &mut Sink<'_>, fields: &Fields<'_>, kind: Kind) -> Option<Ref> {
    let node = fields.require(sink, "name")?;
    let field = fields.field("name");
    let name = string(sink, node, &field)?;
    let check = if kind == Kind::Host {
        check_host_name(name)
    } else {
        check_name(name)
    };
    if let Err((column, reason)) = check {
        push_inside(sink, node, column, &field, reason);
        return None;
    }
    Some(Ref {
        file: sink.file.to_string(),
        pos: node.pos,
        field,
        name: name.to_string(),
    })
}

/// Service and hostclass names: letters, digits, `_`, `.`, `-`, starting with a letter
/// or digit, at most 63 characters (they become directory names on hosts).
/// On error: the 1-based column in `name` and the reason.
pub(crate) fn check_name(name: &str) -> Result<(), (usize, String)> {
    const RULE: &str =
        "names use letters, digits, `_`, `.` and `-`, and start with a letter or digit";
    if name.is_empty() {
        return Err((1, "empty name".into()));
    }
    if name.chars().count() > 63 {
        return Err((1, "names are at most 63 characters".into()));
    }
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err((
                i + 1,
                format!("invalid character `{c}` in `{name}`; {RULE}"),
            ));
        }
    }
    Ok(())
}

/// Parses a selector string, reporting its own column inside the value.
pub(crate) fn selector_value(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<String> {
    let text = string(sink, node, field)?;
    match selector::parse(text) {
        Ok(s) => Some(s.to_string()),
        Err(e) => {
            push_inside(
                sink,
                node,
                e.column,
                field,
                format!("invalid selector: {}", e.message),
            );
            None
        }
    }
}

fn hostclass(sink: &mut Sink<'_>, node: &Node, prefix: &str) -> Doc {
    let mut doc = Doc {
        kind: Kind::Hostclass,
        name: None,
        hostclass_refs: Vec::new(),
        deps: Vec::new(),
        generator_refs: Vec::new(),
        item: None,
    };
    let Some(fields) = Fields::read(
        sink,
        node,
        node.pos,
        prefix,
        &["kind", "name", "selector", "labels"],
    ) else {
        return doc;
    };
    doc.name = name(sink, &fields, Kind::Hostclass);
    let selector = fields
        .get("selector")
        .and_then(|n| selector_value(sink, n, &fields.field("selector")));
    let mut labels = BTreeMap::new();
    if let Some(n) = fields.get("labels") {
        let field = fields.field("labels");
        for (key, key_node, value) in entries(sink, n, &field).unwrap_or_default() {
            let f = format!("{field}.{key}");
            if let Err(reason) = check_label_key(key) {
                sink.push(key_node.pos, &f, reason);
                continue;
            }
            if let Some(v) = text(sink, value, &f) {
                labels.insert(key.to_string(), v);
            }
        }
    }
    if let Some(name) = &doc.name {
        doc.item = Some(Item::Hostclass(Hostclass {
            name: name.name.clone(),
            selector,
            labels,
            source: name.source(),
        }));
    }
    doc
}

fn host(sink: &mut Sink<'_>, node: &Node, prefix: &str) -> Doc {
    let mut doc = Doc {
        kind: Kind::Host,
        name: None,
        hostclass_refs: Vec::new(),
        deps: Vec::new(),
        generator_refs: Vec::new(),
        item: None,
    };
    let Some(fields) = Fields::read(sink, node, node.pos, prefix, &["kind", "name", "hostclass"])
    else {
        return doc;
    };
    doc.name = name(sink, &fields, Kind::Host);
    let class = fields.require(sink, "hostclass").and_then(|n| {
        let field = fields.field("hostclass");
        let s = string(sink, n, &field)?;
        Some(Ref {
            file: sink.file.to_string(),
            pos: n.pos,
            field,
            name: s.to_string(),
        })
    });
    if let (Some(name), Some(class)) = (&doc.name, class) {
        doc.item = Some(Item::Host(HostPin {
            name: name.name.clone(),
            hostclass: class.name.clone(),
            source: name.source(),
        }));
        doc.hostclass_refs.push(class);
    }
    doc
}

/// Checks across documents: duplicate names, unknown hostclasses and services,
/// dependency cycles. With `partial` (some file did not parse), references to
/// unknown names are not reported, as they may be declared in that file.
pub(crate) fn cross_check(docs: &[Doc], partial: bool, errors: &mut Vec<ModelError>) {
    let mut push = |r: &Ref, reason: String| {
        errors.push(ModelError {
            file: r.file.clone(),
            line: r.pos.line,
            column: r.pos.column,
            field: r.field.clone(),
            reason,
        });
    };

    // First declaration of each name, per kind.
    let mut first: [BTreeMap<&str, &Ref>; 5] = Default::default();
    for doc in docs {
        let Some(name) = &doc.name else { continue };
        let slot = &mut first[doc.kind as usize];
        match slot.get(name.name.as_str()) {
            Some(earlier) => push(
                name,
                format!(
                    "duplicate {} `{}`; first defined at {}:{}",
                    doc.kind.word(),
                    name.name,
                    earlier.file,
                    earlier.pos.line
                ),
            ),
            None => {
                slot.insert(&name.name, name);
            }
        }
    }
    let [services, hostclasses, _, _, generators] = &first;

    for doc in docs {
        for r in &doc.hostclass_refs {
            if !partial && !hostclasses.contains_key(r.name.as_str()) {
                let hint = did_you_mean(&r.name, hostclasses.keys().copied());
                push(r, format!("unknown hostclass `{}`{hint}", r.name));
            }
        }
        for r in &doc.generator_refs {
            if !partial && !generators.contains_key(r.name.as_str()) {
                let hint = did_you_mean(&r.name, generators.keys().copied());
                push(r, format!("unknown generator `{}`{hint}", r.name));
            }
        }
        for r in &doc.deps {
            if !partial && !services.contains_key(r.name.as_str()) {
                let hint = did_you_mean(&r.name, services.keys().copied());
                push(r, format!("unknown service `{}`{hint}", r.name));
            }
        }
    }

    // Cycles, over the first declaration of each service.
    let graph: BTreeMap<&str, Vec<&Ref>> = docs
        .iter()
        .filter(|d| d.kind == Kind::Service)
        .filter_map(|d| d.name.as_ref().map(|n| (n, &d.deps)))
        .filter(|(n, _)| std::ptr::eq(services[n.name.as_str()], *n))
        .map(|(n, deps)| {
            let known = deps
                .iter()
                .filter(|r| services.contains_key(r.name.as_str()))
                .collect();
            (n.name.as_str(), known)
        })
        .collect();
    for (closing, cycle) in cycles(&graph) {
        push(closing, format!("dependency cycle: {}", cycle.join(" -> ")));
    }
}

/// Every back edge of a depth-first walk over `graph` (nodes in name order, edges in
/// declaration order): the edge and the cycle it closes, from its target round to
/// its target again.
fn cycles<'a>(graph: &BTreeMap<&'a str, Vec<&'a Ref>>) -> Vec<(&'a Ref, Vec<&'a str>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    let mut color: BTreeMap<&str, Color> = graph.keys().map(|&k| (k, Color::White)).collect();
    let mut found = Vec::new();
    for &start in graph.keys() {
        if color[start] != Color::White {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        color.insert(start, Color::Gray);
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let edges = &graph[node];
            if top.1 == edges.len() {
                color.insert(node, Color::Black);
                stack.pop();
                continue;
            }
            let edge = edges[top.1];
            top.1 += 1;
            let target = edge.name.as_str();
            match color[target] {
                Color::White => {
                    color.insert(target, Color::Gray);
                    stack.push((target, 0));
                }
                Color::Gray => {
                    let from = stack.iter().position(|&(n, _)| n == target).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].iter().map(|&(n, _)| n).collect();
                    cycle.push(target);
                    found.push((edge, cycle));
                }
                Color::Black => {}
            }
        }
    }
    found
}

/// Names declared more than once in `list`, reported at the repeats.
pub(crate) fn repeated(
    sink: &mut Sink<'_>,
    items: &[(usize, &str, &Node)],
    field: &str,
    what: &str,
) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for &(i, name, node) in items {
        if !seen.insert(name) {
            sink.push(
                node.pos,
                &format!("{field}[{i}]"),
                format!("{what} `{name}` is listed twice"),
            );
        }
    }
}
