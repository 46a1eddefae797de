//! `kind: provider` and `kind: generator` documents → [`Provider`] and [`Generator`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::decode::{Fields, choice, duration, entries, list, push_inside, string, text};
use super::error::Sink;
use super::inventory_types::{FieldMap, Generator, Provider, ProviderKind, StaticHost};
use super::load::Node;
use super::validate::{Doc, Item, Kind, check_host_name, check_label_key, name, selector_value};

/// Default time between provider syncs.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default time an `exec` provider's command may take.
pub(crate) const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// Default quiet time before a generator renders.
pub(crate) const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);
/// Shortest sync interval: providers are remote APIs.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

const PROVIDER_FIELDS: &[&str] = &[
    "kind",
    "name",
    "type",
    "interval",
    // static
    "hosts",
    // exec
    "command",
    "timeout",
    "map",
    // ec2
    "region",
    "endpoint",
    "filters",
    "access_key_env",
    "secret_key_env",
    // openstack
    "auth_url",
    "username",
    "password_env",
    "user_domain",
    "project",
    "project_domain",
    "interface",
];

/// Which fields each provider type takes, besides `kind`, `name`, `type`, `interval`.
fn type_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "static" => &["hosts"],
        "exec" => &["command", "timeout", "map"],
        "ec2" => &[
            "region",
            "endpoint",
            "filters",
            "access_key_env",
            "secret_key_env",
        ],
        _ => &[
            "auth_url",
            "username",
            "password_env",
            "user_domain",
            "project",
            "project_domain",
            "region",
            "interface",
        ],
    }
}

fn empty_doc(kind: Kind) -> Doc {
    Doc {
        kind,
        name: None,
        hostclass_refs: Vec::new(),
        deps: Vec::new(),
        generator_refs: Vec::new(),
        item: None,
    }
}

/// Reads a provider document; `prefix` is its field path (`providers.NAME`).
pub(crate) fn provider(sink: &mut Sink<'_>, node: &Node, prefix: &str) -> Doc {
    let mut doc = empty_doc(Kind::Provider);
    let Some(f) = Fields::read(sink, node, node.pos, prefix, PROVIDER_FIELDS) else {
        return doc;
    };
    doc.name = name(sink, &f, Kind::Provider);
    let Some(kind) = f.require(sink, "type").and_then(|n| {
        choice(
            sink,
            n,
            &f.field("type"),
            &["static", "exec", "ec2", "openstack"],
        )
    }) else {
        return doc;
    };
    // Fields of another provider type are errors: they would be silently ignored.
    let own = type_fields(kind);
    for (key, key_node, _) in f.present(PROVIDER_FIELDS) {
        let common = matches!(key, "kind" | "name" | "type" | "interval");
        if !common && !own.contains(&key) {
            sink.push(
                key_node.pos,
                &f.field(key),
                format!(
                    "`{key}` is not a field of `type: {kind}`; it takes {}",
                    own.join(", ")
                ),
            );
        }
    }
    let interval = match f.get("interval") {
        Some(n) => duration(sink, n, &f.field("interval")).and_then(|d| {
            if d < MIN_INTERVAL {
                sink.push(n.pos, &f.field("interval"), "must be at least 1s");
                None
            } else {
                Some(d)
            }
        }),
        None => Some(DEFAULT_INTERVAL),
    };
    let provider_kind = match kind {
        "static" => static_hosts(sink, &f).map(|hosts| ProviderKind::Static { hosts }),
        "exec" => exec(sink, &f),
        "ec2" => ec2(sink, &f),
        _ => openstack(sink, &f),
    };
    if let (Some(name), Some(interval), Some(kind)) = (&doc.name, interval, provider_kind) {
        doc.item = Some(Item::Provider(Box::new(Provider {
            name: name.name.clone(),
            interval,
            kind,
            source: name.source(),
        })));
    }
    doc
}

fn static_hosts(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<Vec<StaticHost>> {
    let node = f.require(sink, "hosts")?;
    let field = f.field("hosts");
    let items = list(sink, node, &field)?;
    let mut hosts = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let Some(h) = Fields::read(
            sink,
            item,
            item.pos,
            &path,
            &["name", "id", "address", "region", "labels"],
        ) else {
            ok = false;
            continue;
        };
        let host_name = h.require(sink, "name").and_then(|n| {
            let s = string(sink, n, &h.field("name"))?;
            if let Err((column, reason)) = check_host_name(s) {
                push_inside(sink, n, column, &h.field("name"), reason);
                return None;
            }
            if let Some(first) = seen.insert(s.to_string(), i) {
                sink.push(
                    n.pos,
                    &h.field("name"),
                    format!("host `{s}` is listed twice (first at {field}[{first}])"),
                );
                return None;
            }
            Some(s.to_string())
        });
        let id = optional_text(sink, &h, "id");
        let address = optional_text(sink, &h, "address");
        let region = optional_text(sink, &h, "region");
        let labels = labels(sink, &h, "labels");
        match (host_name, id, address, region, labels) {
            (Some(name), Some(id), Some(address), Some(region), Some(labels)) => {
                hosts.push(StaticHost {
                    name,
                    id,
                    address,
                    region,
                    labels,
                })
            }
            _ => ok = false,
        }
    }
    ok.then_some(hosts)
}

/// An optional string field: `Some(None)` when absent, `None` when it was bad.
fn optional_text(sink: &mut Sink<'_>, f: &Fields<'_>, key: &str) -> Option<Option<String>> {
    match f.get(key) {
        Some(n) => text(sink, n, &f.field(key)).map(Some),
        None => Some(None),
    }
}

/// A required non-empty string field.
fn required_text(sink: &mut Sink<'_>, f: &Fields<'_>, key: &str) -> Option<String> {
    let n = f.require(sink, key)?;
    let s = text(sink, n, &f.field(key))?;
    if s.trim().is_empty() {
        sink.push(n.pos, &f.field(key), "must not be empty");
        return None;
    }
    Some(s)
}

/// A string field with a default.
fn text_or(sink: &mut Sink<'_>, f: &Fields<'_>, key: &str, default: &str) -> Option<String> {
    optional_text(sink, f, key).map(|v| v.unwrap_or_else(|| default.to_string()))
}

fn labels(sink: &mut Sink<'_>, f: &Fields<'_>, key: &str) -> Option<BTreeMap<String, String>> {
    let Some(n) = f.get(key) else {
        return Some(BTreeMap::new());
    };
    let field = f.field(key);
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, key_node, value) in entries(sink, n, &field)? {
        let path = format!("{field}.{k}");
        if let Err(reason) = check_label_key(k) {
            sink.push(key_node.pos, &path, reason);
            ok = false;
            continue;
        }
        match text(sink, value, &path) {
            Some(v) => {
                out.insert(k.to_string(), v);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn exec(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<ProviderKind> {
    let command = f.require(sink, "command").and_then(|n| {
        let field = f.field("command");
        let items = list(sink, n, &field)?;
        if items.is_empty() {
            sink.push(
                n.pos,
                &field,
                "must name a program: a non-empty list such as [openstack, server, list, -f, json]",
            );
            return None;
        }
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            argv.push(text(sink, item, &format!("{field}[{i}]"))?);
        }
        Some(argv)
    });
    let timeout = match f.get("timeout") {
        Some(n) => duration(sink, n, &f.field("timeout")),
        None => Some(DEFAULT_EXEC_TIMEOUT),
    };
    let map = match f.sub(
        sink,
        "map",
        &[
            "list",
            "id",
            "name",
            "address",
            "region",
            "labels",
            "labels_from",
        ],
    ) {
        Some(m) => field_map(sink, &m),
        None => Some(FieldMap {
            list: String::new(),
            id: "id".into(),
            name: "name".into(),
            address: None,
            region: None,
            labels: BTreeMap::new(),
            labels_from: None,
        }),
    };
    Some(ProviderKind::Exec {
        command: command?,
        timeout: timeout?,
        map: map?,
    })
}

fn field_map(sink: &mut Sink<'_>, m: &Fields<'_>) -> Option<FieldMap> {
    let list = text_or(sink, m, "list", "");
    let id = text_or(sink, m, "id", "id");
    let name = text_or(sink, m, "name", "name");
    let address = optional_text(sink, m, "address");
    let region = optional_text(sink, m, "region");
    let labels = labels(sink, m, "labels");
    let labels_from = optional_text(sink, m, "labels_from");
    Some(FieldMap {
        list: list?,
        id: id?,
        name: name?,
        address: address?,
        region: region?,
        labels: labels?,
        labels_from: labels_from?,
    })
}

fn ec2(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<ProviderKind> {
    let region = required_text(sink, f, "region");
    let endpoint = optional_text(sink, f, "endpoint").and_then(|e| match e {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            if let Some(n) = f.get("endpoint") {
                sink.push(
                    n.pos,
                    &f.field("endpoint"),
                    format!("expected an http:// or https:// URL, found `{url}`"),
                );
            }
            None
        }
        other => Some(other),
    });
    let filters = match f.get("filters") {
        Some(n) => {
            let field = f.field("filters");
            let mut out = BTreeMap::new();
            let mut ok = true;
            for (k, _, v) in entries(sink, n, &field).unwrap_or_default() {
                let path = format!("{field}.{k}");
                // One value or a list of values.
                let values = match list_or_one(sink, v, &path) {
                    Some(values) => values,
                    None => {
                        ok = false;
                        continue;
                    }
                };
                out.insert(k.to_string(), values);
            }
            ok.then_some(out)
        }
        None => Some(BTreeMap::new()),
    };
    let access = text_or(sink, f, "access_key_env", "AWS_ACCESS_KEY_ID");
    let secret = text_or(sink, f, "secret_key_env", "AWS_SECRET_ACCESS_KEY");
    Some(ProviderKind::Ec2 {
        region: region?,
        endpoint: endpoint?,
        filters: filters?,
        access_key_env: access?,
        secret_key_env: secret?,
    })
}

fn list_or_one(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<Vec<String>> {
    if let super::load::Value::Seq(items) = &node.value {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(text(sink, item, &format!("{field}[{i}]"))?);
        }
        Some(out)
    } else {
        text(sink, node, field).map(|v| vec![v])
    }
}

fn openstack(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<ProviderKind> {
    let auth_url = required_text(sink, f, "auth_url").and_then(|url| {
        if url.starts_with("http://") || url.starts_with("https://") {
            Some(url.trim_end_matches('/').to_string())
        } else {
            if let Some(n) = f.get("auth_url") {
                sink.push(
                    n.pos,
                    &f.field("auth_url"),
                    format!("expected an http:// or https:// URL, found `{url}`"),
                );
            }
            None
        }
    });
    let username = required_text(sink, f, "username");
    let project = required_text(sink, f, "project");
    let password_env = text_or(sink, f, "password_env", "OS_PASSWORD");
    let user_domain = text_or(sink, f, "user_domain", "Default");
    let project_domain = text_or(sink, f, "project_domain", "Default");
    let region = optional_text(sink, f, "region");
    let interface = match f.get("interface") {
        Some(n) => choice(
            sink,
            n,
            &f.field("interface"),
            &["public", "internal", "admin"],
        )
        .map(str::to_string),
        None => Some("public".into()),
    };
    Some(ProviderKind::Openstack {
        auth_url: auth_url?,
        username: username?,
        password_env: password_env?,
        user_domain: user_domain?,
        project: project?,
        project_domain: project_domain?,
        region: region?,
        interface: interface?,
    })
}

const GENERATOR_FIELDS: &[&str] = &[
    "kind", "name", "template", "targets", "path", "check", "reload", "debounce",
];

/// Reads a generator document; `prefix` is its field path (`generators.NAME`).
pub(crate) fn generator(sink: &mut Sink<'_>, node: &Node, prefix: &str) -> Doc {
    let mut doc = empty_doc(Kind::Generator);
    let Some(f) = Fields::read(sink, node, node.pos, prefix, GENERATOR_FIELDS) else {
        return doc;
    };
    doc.name = name(sink, &f, Kind::Generator);
    let template = f.require(sink, "template").and_then(|n| {
        let field = f.field("template");
        let s = string(sink, n, &field)?;
        match crate::generate::check_template(s) {
            Ok(()) => Some(s.to_string()),
            Err((_line, reason)) => {
                sink.push(n.pos, &field, reason);
                None
            }
        }
    });
    let targets = f
        .require(sink, "targets")
        .and_then(|n| selector_value(sink, n, &f.field("targets")));
    let path = f.require(sink, "path").and_then(|n| {
        let field = f.field("path");
        let s = string(sink, n, &field)?;
        let bad =
            !s.starts_with('/') || s.ends_with('/') || s.split('/').any(|c| c == ".." || c == ".");
        if bad {
            sink.push(
                n.pos,
                &field,
                format!(
                    "expected an absolute file path without `.` or `..` components, found `{s}`"
                ),
            );
            return None;
        }
        Some(s.to_string())
    });
    let check = optional_text(sink, &f, "check");
    let reload = optional_text(sink, &f, "reload");
    let debounce = match f.get("debounce") {
        Some(n) => duration(sink, n, &f.field("debounce")),
        None => Some(DEFAULT_DEBOUNCE),
    };
    if let (
        Some(name),
        Some(template),
        Some(targets),
        Some(path),
        Some(check),
        Some(reload),
        Some(debounce),
    ) = (&doc.name, template, targets, path, check, reload, debounce)
    {
        doc.item = Some(Item::Generator(Box::new(Generator {
            name: name.name.clone(),
            template,
            targets,
            path,
            check,
            reload,
            debounce,
            source: name.source(),
        })));
    }
    doc
}

#[cfg(test)]
mod tests {
    use crate::model::{ModelFile, ProviderKind, load};

    fn errors(text: &str) -> Vec<String> {
        match load(&[ModelFile {
            path: "inv.yaml".into(),
            text: text.into(),
        }]) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn providers_of_every_type_load() {
        let text = r#"
kind: provider
name: dc1
type: static
hosts:
  - {name: web-1, address: 10.0.0.1, labels: {role: web}}
  - {name: web-2, id: i-2, region: dc1}
---
kind: provider
name: os-cli
type: exec
interval: 30s
command: [openstack, server, list, -f, json]
map: {id: ID, name: Name, labels_from: Properties}
---
kind: provider
name: aws
type: ec2
region: us-east-1
filters: {"tag:role": web, instance-state-name: [running, pending]}
---
kind: provider
name: os
type: openstack
auth_url: https://keystone.example.com/v3/
username: drover
project: ops
"#;
        let model = load(&[ModelFile {
            path: "inv.yaml".into(),
            text: text.into(),
        }])
        .unwrap();
        assert_eq!(model.providers.len(), 4);
        let ProviderKind::Static { hosts } = &model.providers["dc1"].kind else {
            panic!("static")
        };
        assert_eq!(hosts[0].labels["role"], "web");
        assert_eq!(hosts[1].id.as_deref(), Some("i-2"));
        let ProviderKind::Ec2 {
            filters,
            access_key_env,
            ..
        } = &model.providers["aws"].kind
        else {
            panic!("ec2")
        };
        assert_eq!(filters["tag:role"], ["web"]);
        assert_eq!(filters["instance-state-name"], ["running", "pending"]);
        assert_eq!(access_key_env, "AWS_ACCESS_KEY_ID");
        let ProviderKind::Openstack { auth_url, .. } = &model.providers["os"].kind else {
            panic!("openstack")
        };
        assert_eq!(auth_url, "https://keystone.example.com/v3");
        assert_eq!(
            model.providers["os-cli"].interval,
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn bad_providers_name_the_field() {
        let text = r#"
kind: provider
name: aws
type: ec2
command: [ls]
interval: 10ms
---
kind: provider
name: dc
type: static
hosts:
  - {name: "bad host"}
  - {name: a, labels: {"x y": 1}}
  - {name: a}
---
kind: provider
name: x
type: gce
"#;
        assert_eq!(
            errors(text),
            [
                "inv.yaml:2:1: providers.aws: missing field `region`",
                "inv.yaml:5:1: providers.aws.command: `command` is not a field of `type: ec2`; it takes region, endpoint, filters, access_key_env, secret_key_env",
                "inv.yaml:6:11: providers.aws.interval: must be at least 1s",
                "inv.yaml:12:16: providers.dc.hosts[0].name: invalid character ` ` in host name `bad host`; use letters, digits, `-`, `_` and `.`",
                "inv.yaml:13:24: providers.dc.hosts[1].labels.x y: invalid character ` ` in label key `x y`; use letters, digits, `_`, `.`, `-` and `/`",
                "inv.yaml:14:12: providers.dc.hosts[2].name: host `a` is listed twice (first at providers.dc.hosts[1])",
                "inv.yaml:18:7: providers.x.type: unknown value `gce`; expected one of static, exec, ec2, openstack",
            ]
        );
    }

    #[test]
    fn generators_load_and_bad_ones_are_refused() {
        let good = r#"
kind: generator
name: haproxy
template: "{% for i in instances %}server {{ i.id }} {{ i.address }}:{{ i.ports.http }}\n{% endfor %}"
targets: label.role=lb
path: /etc/haproxy/haproxy.cfg
check: haproxy -c -f {{ staged }}
reload: systemctl reload haproxy
"#;
        let model = load(&[ModelFile {
            path: "g.yaml".into(),
            text: good.into(),
        }])
        .unwrap();
        let g = &model.generators["haproxy"];
        assert_eq!(g.targets, "label.role=lb");
        assert_eq!(g.debounce, super::DEFAULT_DEBOUNCE);

        let bad = r#"
kind: generator
name: lb
template: "{% for x in %}"
targets: "label.role="
path: etc/haproxy.cfg
"#;
        let errs = errors(bad);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("inv.yaml:4:11: generators.lb.template: "),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with("inv.yaml:5:21: generators.lb.targets: invalid selector"),
            "{errs:#?}"
        );
        assert_eq!(
            errs[2],
            "inv.yaml:6:7: generators.lb.path: expected an absolute file path without `.` or `..` components, found `etc/haproxy.cfg`"
        );
    }

    #[test]
    fn a_service_load_balancer_must_name_a_generator() {
        let text = r#"
kind: service
name: web
version: "1"
artifact: {url: "file:///tmp/x.tar.gz", sha256: "0000000000000000000000000000000000000000000000000000000000000000"}
placement: {hosts: [h1]}
ports: {http: 8080}
run: [./server]
load_balancer: {generator: haproxx}
---
kind: generator
name: haproxy
template: x
targets: name=lb
path: /tmp/haproxy.cfg
"#;
        assert_eq!(
            errors(text),
            [
                "inv.yaml:9:28: services.web.load_balancer.generator: unknown generator `haproxx`; did you mean `haproxy`?"
            ]
        );
    }
}
