//! One `kind: service` document → [`Service`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::decode::{
    Fields, boolean, choice, duration, entries, list, push_inside, string, string_list, text, uint,
    wrong_type,
};
use super::error::{Sink, did_you_mean};
use super::load::{Node, Value, raw_scalar};
use super::types::{
    Artifact, ConfigFile, Exec, HealthCheck, LoadBalancer, Placement, Probe, Reconcile, Scripts,
    Service, Target,
};
use super::validate::{Doc, Item, Kind, Ref, check_host_name, name, repeated, selector_value};
use crate::duration::format_duration;
use crate::instance::{LifecycleState, MaxParallel, RolloutPolicy, Strategy};

const FIELDS: &[&str] = &[
    "kind",
    "name",
    "version",
    "artifact",
    "placement",
    "ports",
    "env",
    "config",
    "health",
    "depends_on",
    "rollout",
    "run",
    "scripts",
    "state",
    "reconcile",
    "load_balancer",
];

/// Most instances of one service on one host.
pub(crate) const MAX_PER_HOST: u32 = 64;

/// Default time between health checks.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Default time one health check may take.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads a service document; `prefix` is its field path (`services.NAME`).
pub(crate) fn read(sink: &mut Sink<'_>, node: &Node, prefix: &str) -> Doc {
    let mut doc = Doc {
        kind: Kind::Service,
        name: None,
        hostclass_refs: Vec::new(),
        deps: Vec::new(),
        generator_refs: Vec::new(),
        item: None,
    };
    let Some(f) = Fields::read(sink, node, node.pos, prefix, FIELDS) else {
        return doc;
    };
    doc.name = name(sink, &f, Kind::Service);
    let version = f
        .require(sink, "version")
        .and_then(|n| version(sink, n, &f.field("version")));
    let artifact = f
        .require_sub(sink, "artifact", &["url", "sha256"])
        .and_then(|a| artifact(sink, &a));
    let placement = f
        .require_sub(
            sink,
            "placement",
            &["hostclass", "hosts", "selector", "per_host"],
        )
        .and_then(|p| placement(sink, &p, &mut doc.hostclass_refs));
    let per_host = placement.as_ref().map_or(1, |p| p.per_host);
    let ports = ports(sink, &f, per_host);
    let env = env(sink, &f);
    let config = config(sink, &f);
    let health = match f.sub(
        sink,
        "health",
        &[
            "http",
            "tcp",
            "exec",
            "interval",
            "timeout",
            "healthy_threshold",
            "unhealthy_threshold",
        ],
    ) {
        Some(h) => health(sink, &h, ports.as_ref()).map(Some),
        None => Some(None),
    };
    let depends_on = depends_on(sink, &f, &mut doc.deps);
    let rollout = match f.sub(sink, "rollout", ROLLOUT_FIELDS) {
        Some(r) => rollout(sink, &r),
        None => Some(RolloutPolicy::default()),
    };
    let exec = exec(sink, &f);
    let state = match f.get("state") {
        Some(n) => choice(
            sink,
            n,
            &f.field("state"),
            &["running", "stopped", "installed"],
        )
        .map(|s| match s {
            "stopped" => LifecycleState::Stopped,
            "installed" => LifecycleState::Installed,
            _ => LifecycleState::Running,
        }),
        None => Some(LifecycleState::Running),
    };
    let reconcile = match f.get("reconcile") {
        Some(n) => choice(sink, n, &f.field("reconcile"), &["manual", "auto"]).map(|s| {
            if s == "auto" {
                Reconcile::Auto
            } else {
                Reconcile::Manual
            }
        }),
        None => Some(Reconcile::Manual),
    };

    let load_balancer = match f.sub(
        sink,
        "load_balancer",
        &["generator", "drain", "drain_grace"],
    ) {
        Some(lb) => load_balancer(sink, &lb, &mut doc.generator_refs).map(Some),
        None => Some(None),
    };

    if let (
        Some(name),
        Some(version),
        Some(artifact),
        Some(placement),
        Some(ports),
        Some(env),
        Some(config),
        Some(health),
        Some(rollout),
        Some(exec),
        Some(state),
        Some(reconcile),
        Some(load_balancer),
    ) = (
        &doc.name,
        version,
        artifact,
        placement,
        ports,
        env,
        config,
        health,
        rollout,
        exec,
        state,
        reconcile,
        load_balancer,
    ) {
        doc.item = Some(Item::Service(Box::new(Service {
            name: name.name.clone(),
            version,
            artifact,
            placement,
            ports,
            env,
            config,
            health,
            depends_on,
            rollout,
            exec,
            state,
            reconcile,
            load_balancer,
            source: super::types::Source {
                file: name.file.clone(),
                line: name.pos.line,
                column: name.pos.column,
            },
        })));
    }
    doc
}

/// Default wait for open connections after an instance left its pool.
pub(crate) const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(2);

fn load_balancer(sink: &mut Sink<'_>, f: &Fields<'_>, refs: &mut Vec<Ref>) -> Option<LoadBalancer> {
    let generator = f.require(sink, "generator").and_then(|n| {
        let field = f.field("generator");
        let s = string(sink, n, &field)?;
        refs.push(Ref {
            file: sink.file.to_string(),
            pos: n.pos,
            field,
            name: s.to_string(),
        });
        Some(s.to_string())
    });
    let drain = match f.get("drain") {
        Some(n) => boolean(sink, n, &f.field("drain")),
        None => Some(true),
    };
    let drain_grace = match f.get("drain_grace") {
        Some(n) => duration(sink, n, &f.field("drain_grace")),
        None => Some(DEFAULT_DRAIN_GRACE),
    };
    Some(LoadBalancer {
        generator: generator?,
        drain: drain?,
        drain_grace: drain_grace?,
    })
}

/// Versions are strings made of letters, digits, `.`, `_`, `+` and `-` (they name a
/// release directory). A number is refused: `1.10` would silently become `1.1`.
fn version(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<String> {
    match &node.value {
        Value::Str(s) => {
            let problem = if s.is_empty() {
                Some((1, "empty version".to_string()))
            } else if s.chars().count() > 128 {
                Some((1, "versions are at most 128 characters".to_string()))
            } else {
                s.chars().enumerate().find_map(|(i, c)| {
                    let ok = c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '.' | '_' | '+' | '-'));
                    (!ok).then(|| {
                        (
                            i + 1,
                            format!(
                                "invalid character `{c}` in version `{s}`; versions use letters, digits, `.`, `_`, `+` and `-`, and start with a letter or digit"
                            ),
                        )
                    })
                })
            };
            match problem {
                Some((column, reason)) => {
                    push_inside(sink, node, column, field, reason);
                    None
                }
                None => Some(s.clone()),
            }
        }
        Value::Int(_) | Value::Float(_) => {
            let raw = raw_scalar(sink.text, node.pos);
            sink.push(
                node.pos,
                field,
                format!("expected a string, found the number `{raw}`; quote it: `\"{raw}\"`"),
            );
            None
        }
        _ => {
            wrong_type(sink, node, field, "a string");
            None
        }
    }
}

/// 64 hex digits, lowercased; on error the 1-based column of the problem.
fn sha256_hex(s: &str) -> Result<String, (usize, String)> {
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err((
            i + 1,
            format!("invalid character `{c}` in SHA-256; expected 64 hex digits"),
        ));
    }
    if s.len() != 64 {
        return Err((1, format!("a SHA-256 is 64 hex digits, found {}", s.len())));
    }
    Ok(s.to_ascii_lowercase())
}

fn artifact(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<Artifact> {
    let sha = f.require(sink, "sha256").and_then(|n| {
        let field = f.field("sha256");
        // A digest made of digits (and maybe one `e`) reads as a number in YAML:
        // take its text as written.
        let s = match &n.value {
            Value::Int(_) | Value::Float(_) => raw_scalar(sink.text, n.pos),
            _ => string(sink, n, &field)?.to_string(),
        };
        match sha256_hex(&s) {
            Ok(hex) => Some(hex),
            Err((column, reason)) => {
                push_inside(sink, n, column, &field, reason);
                None
            }
        }
    });
    let url_node = f.require(sink, "url")?;
    let field = f.field("url");
    let url = string(sink, url_node, &field)?;
    let fail = |sink: &mut Sink<'_>, column: usize, reason: String| {
        push_inside(sink, url_node, column, &field, reason);
        None
    };
    if let Some((i, _)) = url.chars().enumerate().find(|(_, c)| c.is_whitespace()) {
        return fail(sink, i + 1, "URLs may not contain whitespace".into());
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') || path.len() < 2 {
            return fail(
                sink,
                8,
                "a file URL needs an absolute path, as in `file:///srv/artifacts/app.tar.gz`"
                    .into(),
            );
        }
    } else if let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() {
            let column = url.len() - rest.len() + 1;
            return fail(sink, column, "missing host in URL".into());
        }
    } else if let Some(digest) = url.strip_prefix("store:") {
        match sha256_hex(digest) {
            Err((column, reason)) => return fail(sink, column + 6, reason),
            Ok(digest) => {
                if let Some(sha) = &sha
                    && *sha != digest
                {
                    return fail(
                        sink,
                        7,
                        "the store digest differs from `sha256`; they must be equal".into(),
                    );
                }
            }
        }
    } else {
        let scheme = url.split(':').next().unwrap_or(url);
        return fail(
            sink,
            1,
            format!(
                "unsupported URL scheme `{scheme}`; use file://, http://, https:// or store:<sha256>"
            ),
        );
    }
    Some(Artifact {
        url: url.to_string(),
        sha256: sha?,
    })
}

fn placement(sink: &mut Sink<'_>, f: &Fields<'_>, refs: &mut Vec<Ref>) -> Option<Placement> {
    let per_host = match f.get("per_host") {
        Some(n) => uint(sink, n, &f.field("per_host"), 1, MAX_PER_HOST),
        None => Some(1),
    };
    let present = f.present(&["hostclass", "hosts", "selector"]);
    if present.is_empty() {
        sink.push(
            f.at,
            &f.path,
            "needs one of `hostclass`, `hosts` or `selector`",
        );
        return None;
    }
    for (key, k, _) in &present[1..] {
        sink.push(
            k.pos,
            &f.field(key),
            format!(
                "`{}` and `{key}` are mutually exclusive; keep one",
                present[0].0
            ),
        );
    }
    let mut targets = Vec::new();
    for &(key, _, v) in &present {
        let field = f.field(key);
        let target = match key {
            "hostclass" => string(sink, v, &field).map(|s| {
                refs.push(Ref {
                    file: sink.file.to_string(),
                    pos: v.pos,
                    field: field.clone(),
                    name: s.to_string(),
                });
                Target::Hostclass(s.to_string())
            }),
            "hosts" => hosts(sink, v, &field).map(Target::Hosts),
            _ => selector_value(sink, v, &field).map(Target::Selector),
        };
        targets.push(target);
    }
    if present.len() > 1 {
        return None;
    }
    Some(Placement {
        target: targets.pop()??,
        per_host: per_host?,
    })
}

fn hosts(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<Vec<String>> {
    let before = sink.count();
    let items = string_list(sink, node, field)?;
    if items.is_empty() && before == sink.count() {
        sink.push(node.pos, field, "needs at least one host name");
        return None;
    }
    for &(i, name, n) in &items {
        if let Err((column, reason)) = check_host_name(name) {
            push_inside(sink, n, column, &format!("{field}[{i}]"), reason);
        }
    }
    repeated(sink, &items, field, "host");
    (before == sink.count()).then(|| items.iter().map(|(_, s, _)| s.to_string()).collect())
}

/// `[A-Za-z_][A-Za-z0-9_]*`: port names and environment variable names, usable as
/// they are in templates and shells.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn ports(sink: &mut Sink<'_>, f: &Fields<'_>, per_host: u32) -> Option<BTreeMap<String, u16>> {
    let Some(node) = f.get("ports") else {
        return Some(BTreeMap::new());
    };
    let field = f.field("ports");
    let before = sink.count();
    let mut ports: Vec<(&str, &Node, u16)> = Vec::new();
    for (name, key, value) in entries(sink, node, &field)? {
        let pf = format!("{field}.{name}");
        if !is_identifier(name) {
            sink.push(
                key.pos,
                &pf,
                format!("invalid port name `{name}`; use letters, digits and `_`, starting with a letter or `_`"),
            );
            continue;
        }
        let Some(port) = uint(sink, value, &pf, 1, 65535) else {
            continue;
        };
        let last = port + per_host - 1;
        if last > 65535 {
            sink.push(
                value.pos,
                &pf,
                format!(
                    "with per_host: {per_host}, instances need ports {port}-{last}, past 65535"
                ),
            );
            continue;
        }
        ports.push((name, value, port as u16));
    }
    // Each name takes per_host consecutive ports; no two names may share one.
    for (i, &(name, node, base)) in ports.iter().enumerate() {
        let range = |b: u16| (u32::from(b), u32::from(b) + per_host - 1);
        let (lo, hi) = range(base);
        if let Some(&(other, _, obase)) = ports[..i].iter().find(|&&(_, _, ob)| {
            let (olo, ohi) = range(ob);
            lo <= ohi && olo <= hi
        }) {
            let reason = if per_host == 1 {
                format!("port {base} is also the port of `{other}`")
            } else {
                let (olo, ohi) = range(obase);
                format!(
                    "ports {lo}-{hi} overlap the ports of `{other}` ({olo}-{ohi}); each port name takes per_host ({per_host}) consecutive ports"
                )
            };
            sink.push(node.pos, &format!("{field}.{name}"), reason);
        }
    }
    (before == sink.count()).then(|| ports.iter().map(|&(n, _, p)| (n.to_string(), p)).collect())
}

fn env(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<BTreeMap<String, String>> {
    let Some(node) = f.get("env") else {
        return Some(BTreeMap::new());
    };
    let field = f.field("env");
    let before = sink.count();
    let mut env = BTreeMap::new();
    for (name, key, value) in entries(sink, node, &field)? {
        let ef = format!("{field}.{name}");
        if !is_identifier(name) {
            sink.push(
                key.pos,
                &ef,
                format!("invalid variable name `{name}`; use letters, digits and `_`, starting with a letter or `_`"),
            );
            continue;
        }
        if let Some(v) = text(sink, value, &ef) {
            env.insert(name.to_string(), v);
        }
    }
    (before == sink.count()).then_some(env)
}

/// A clean relative path; on error the 1-based column and the reason.
fn check_path(path: &str) -> Result<(), (usize, String)> {
    if path.is_empty() {
        return Err((1, "empty path".into()));
    }
    if path.starts_with('/') {
        return Err((
            1,
            "config paths are relative to the instance directory; remove the leading `/`".into(),
        ));
    }
    let mut column = 1;
    for part in path.split('/') {
        match part {
            ".." => return Err((column, "`..` is not allowed in config paths".into())),
            "." => {
                return Err((
                    column,
                    "`.` path component; write the path without it".into(),
                ));
            }
            "" => {
                return Err((
                    column,
                    "empty path component (`//` or a trailing `/`)".into(),
                ));
            }
            _ => {}
        }
        if let Some((i, _)) = part
            .chars()
            .enumerate()
            .find(|(_, c)| *c == '\0' || *c == '\\')
        {
            return Err((
                column + i,
                "`\\` and NUL are not allowed in config paths".into(),
            ));
        }
        column += part.chars().count() + 1;
    }
    Ok(())
}

fn config(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<Vec<ConfigFile>> {
    let Some(node) = f.get("config") else {
        return Some(Vec::new());
    };
    let field = f.field("config");
    let before = sink.count();
    let mut files: Vec<(ConfigFile, &Node)> = Vec::new();
    for (i, item) in list(sink, node, &field)?.iter().enumerate() {
        let itf = format!("{field}[{i}]");
        let Some(c) = Fields::read(sink, item, item.pos, &itf, &["path", "template"]) else {
            continue;
        };
        let path = c.require(sink, "path").and_then(|n| {
            let pf = c.field("path");
            let p = string(sink, n, &pf)?;
            if let Err((column, reason)) = check_path(p) {
                push_inside(sink, n, column, &pf, reason);
                return None;
            }
            if let Some((_, first)) = files.iter().find(|(cf, _)| cf.path == p) {
                sink.push(
                    n.pos,
                    &pf,
                    format!(
                        "duplicate config path `{p}`; first at line {}",
                        first.pos.line
                    ),
                );
                return None;
            }
            Some((p.to_string(), n))
        });
        let template = c
            .require(sink, "template")
            .and_then(|n| string(sink, n, &c.field("template")));
        if let (Some((path, n)), Some(template)) = (path, template) {
            files.push((
                ConfigFile {
                    path,
                    template: template.to_string(),
                },
                n,
            ));
        }
    }
    (before == sink.count()).then(|| files.into_iter().map(|(c, _)| c).collect())
}

/// A command: program and arguments, as a non-empty list of strings.
fn argv(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<Vec<String>> {
    let before = sink.count();
    let items = string_list(sink, node, field)?;
    if before != sink.count() {
        return None;
    }
    match items.first() {
        None => {
            sink.push(
                node.pos,
                field,
                "needs at least the program, as in [\"./bin/server\"]",
            );
            None
        }
        Some(&(i, "", n)) => {
            sink.push(n.pos, &format!("{field}[{i}]"), "empty program name");
            None
        }
        Some(_) => Some(items.iter().map(|(_, s, _)| s.to_string()).collect()),
    }
}

/// A health check's `port`: a name declared in `ports`.
fn port_ref(
    sink: &mut Sink<'_>,
    f: &Fields<'_>,
    ports: Option<&BTreeMap<String, u16>>,
) -> Option<String> {
    let node = f.require(sink, "port")?;
    let field = f.field("port");
    let Value::Str(name) = &node.value else {
        wrong_type(sink, node, &field, "the name of a port declared in `ports`");
        return None;
    };
    // When `ports` itself had errors, the name may be one of the broken ones.
    let ports = ports?;
    if ports.contains_key(name) {
        return Some(name.clone());
    }
    let reason = if ports.is_empty() {
        format!("unknown port `{name}`; the service declares no `ports`")
    } else {
        let hint = did_you_mean(name, ports.keys().map(String::as_str));
        let known: Vec<&str> = ports.keys().map(String::as_str).collect();
        format!("unknown port `{name}`{hint} (ports: {})", known.join(", "))
    };
    sink.push(node.pos, &field, reason);
    None
}

fn health(
    sink: &mut Sink<'_>,
    f: &Fields<'_>,
    ports: Option<&BTreeMap<String, u16>>,
) -> Option<HealthCheck> {
    let before = sink.count();
    let present = f.present(&["http", "tcp", "exec"]);
    if present.is_empty() {
        sink.push(f.at, &f.path, "needs one of `http`, `tcp` or `exec`");
    }
    for (key, k, _) in present.iter().skip(1) {
        sink.push(
            k.pos,
            &f.field(key),
            format!(
                "`{}` and `{key}` are mutually exclusive; keep one",
                present[0].0
            ),
        );
    }
    let mut probe = None;
    for &(key, _, v) in &present {
        if v.value == Value::Null {
            sink.push(v.pos, &f.field(key), format!("`{key}` needs a value"));
            continue;
        }
        probe = match key {
            "http" => f
                .sub(sink, "http", &["port", "path", "status", "body"])
                .and_then(|h| {
                    let port = port_ref(sink, &h, ports);
                    let path = match h.get("path") {
                        Some(n) => {
                            let pf = h.field("path");
                            string(sink, n, &pf).and_then(|p| {
                                if p.starts_with('/') {
                                    Some(p.to_string())
                                } else {
                                    sink.push(
                                        n.pos,
                                        &pf,
                                        format!("the path must start with `/`, as in `/{p}`"),
                                    );
                                    None
                                }
                            })
                        }
                        None => Some("/".to_string()),
                    };
                    let status = match h.get("status") {
                        Some(n) => uint(sink, n, &h.field("status"), 100, 599).map(|s| s as u16),
                        None => Some(200),
                    };
                    let body = match h.get("body") {
                        Some(n) => string(sink, n, &h.field("body")).map(|b| Some(b.to_string())),
                        None => Some(None),
                    };
                    Some(Probe::Http {
                        port: port?,
                        path: path?,
                        status: status?,
                        body: body?,
                    })
                }),
            "tcp" => f
                .sub(sink, "tcp", &["port"])
                .and_then(|t| port_ref(sink, &t, ports).map(|port| Probe::Tcp { port })),
            _ => argv(sink, v, &f.field("exec")).map(|command| Probe::Exec { command }),
        };
    }

    let mut timing = |key: &str, default: Duration| match f.get(key) {
        Some(n) => {
            let field = f.field(key);
            let d = duration(sink, n, &field)?;
            if d.is_zero() {
                sink.push(n.pos, &field, "must be longer than 0s");
                return None;
            }
            Some((d, Some(n)))
        }
        None => Some((default, None)),
    };
    let interval = timing("interval", DEFAULT_INTERVAL);
    let timeout = timing("timeout", DEFAULT_TIMEOUT);
    if let (Some((i, inode)), Some((t, tnode))) = (interval, timeout)
        && t > i
    {
        let (node, field) = match (tnode, inode) {
            (Some(n), _) => (n, f.field("timeout")),
            (None, Some(n)) => (n, f.field("interval")),
            (None, None) => unreachable!("the defaults are consistent"),
        };
        sink.push(
            node.pos,
            &field,
            format!(
                "timeout ({}) must not be longer than interval ({})",
                format_duration(t),
                format_duration(i)
            ),
        );
    }
    let threshold = |sink: &mut Sink<'_>, key: &str, default: u32| match f.get(key) {
        Some(n) => uint(sink, n, &f.field(key), 1, 100),
        None => Some(default),
    };
    let healthy_threshold = threshold(sink, "healthy_threshold", 1);
    let unhealthy_threshold = threshold(sink, "unhealthy_threshold", 3);
    if before != sink.count() {
        return None;
    }
    Some(HealthCheck {
        probe: probe?,
        interval: interval?.0,
        timeout: timeout?.0,
        healthy_threshold: healthy_threshold?,
        unhealthy_threshold: unhealthy_threshold?,
    })
}

fn depends_on(sink: &mut Sink<'_>, f: &Fields<'_>, deps: &mut Vec<Ref>) -> Vec<String> {
    let Some(node) = f.get("depends_on") else {
        return Vec::new();
    };
    let field = f.field("depends_on");
    let Some(items) = string_list(sink, node, &field) else {
        return Vec::new();
    };
    repeated(sink, &items, &field, "service");
    let mut names: Vec<String> = Vec::new();
    for &(i, name, n) in &items {
        if names.iter().any(|x| x == name) {
            continue;
        }
        names.push(name.to_string());
        deps.push(Ref {
            file: sink.file.to_string(),
            pos: n.pos,
            field: format!("{field}[{i}]"),
            name: name.to_string(),
        });
    }
    names
}

const ROLLOUT_FIELDS: &[&str] = &[
    "strategy",
    "max_parallel",
    "canary",
    "auto_promote",
    "min_healthy_time",
    "healthy_deadline",
    "progress_deadline",
    "auto_revert",
];

/// `max_parallel`: a count (≥ 1) or a percentage (`25%`, 1–100).
fn max_parallel(sink: &mut Sink<'_>, node: &Node, field: &str) -> Option<MaxParallel> {
    match &node.value {
        Value::Int(_) => uint(sink, node, field, 1, u32::MAX).map(MaxParallel::Count),
        Value::Str(s) if s.ends_with('%') => {
            let digits = &s[..s.len() - 1];
            match digits.parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Some(MaxParallel::Percent(p as u8)),
                Ok(_) => {
                    sink.push(
                        node.pos,
                        field,
                        format!("a percentage must be between 1% and 100%, found `{s}`"),
                    );
                    None
                }
                Err(_) => {
                    sink.push(
                        node.pos,
                        field,
                        format!("invalid percentage `{s}`; expected a whole number from 1 to 100 followed by `%`, as in `25%`"),
                    );
                    None
                }
            }
        }
        _ => {
            wrong_type(
                sink,
                node,
                field,
                "a count (1 or more) or a percentage such as `25%`",
            );
            None
        }
    }
}

fn rollout(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<RolloutPolicy> {
    let d = RolloutPolicy::default();
    let before = sink.count();
    let strategy = match f.get("strategy") {
        Some(n) => choice(
            sink,
            n,
            &f.field("strategy"),
            &["rolling", "serial", "all-at-once"],
        )
        .map(|s| match s {
            "serial" => Strategy::Serial,
            "all-at-once" => Strategy::AllAtOnce,
            _ => Strategy::Rolling,
        }),
        None => Some(d.strategy),
    };
    let max_parallel = match f.get("max_parallel") {
        Some(n) => max_parallel(sink, n, &f.field("max_parallel")),
        None => Some(d.max_parallel),
    };
    let canary = match f.get("canary") {
        Some(n) => uint(sink, n, &f.field("canary"), 0, u32::MAX),
        None => Some(d.canary),
    };
    let flag = |sink: &mut Sink<'_>, key: &str, default: bool| match f.get(key) {
        Some(n) => boolean(sink, n, &f.field(key)),
        None => Some(default),
    };
    let auto_promote = flag(sink, "auto_promote", d.auto_promote);
    let auto_revert = flag(sink, "auto_revert", d.auto_revert);
    let mut time = |key: &str, default: Duration| match f.get(key) {
        Some(n) => duration(sink, n, &f.field(key)).map(|d| (d, Some(n))),
        None => Some((default, None)),
    };
    let min_healthy = time("min_healthy_time", d.min_healthy_time);
    let healthy_deadline = time("healthy_deadline", d.healthy_deadline);
    let progress_deadline = time("progress_deadline", d.progress_deadline);
    // Each deadline must leave room for the one before it (as in Nomad).
    let ordered = [
        ("min_healthy_time", min_healthy),
        ("healthy_deadline", healthy_deadline),
        ("progress_deadline", progress_deadline),
    ];
    for pair in ordered.windows(2) {
        let [(lo_key, Some((lo, lo_node))), (hi_key, Some((hi, hi_node)))] = pair else {
            continue;
        };
        if hi <= lo {
            let (hi_text, lo_text) = (format_duration(*hi), format_duration(*lo));
            match (hi_node, lo_node) {
                (Some(n), _) => {
                    let default = if lo_node.is_none() { ", the default" } else { "" };
                    sink.push(
                        n.pos,
                        &f.field(hi_key),
                        format!("{hi_key} ({hi_text}) must be longer than {lo_key} ({lo_text}{default})"),
                    );
                }
                (None, Some(n)) => sink.push(
                    n.pos,
                    &f.field(lo_key),
                    format!("{lo_key} ({lo_text}) must be shorter than {hi_key} ({hi_text}, the default)"),
                ),
                (None, None) => {}
            }
        }
    }
    if before != sink.count() {
        return None;
    }
    Some(RolloutPolicy {
        strategy: strategy?,
        max_parallel: max_parallel?,
        canary: canary?,
        auto_promote: auto_promote?,
        min_healthy_time: min_healthy?.0,
        healthy_deadline: healthy_deadline?.0,
        progress_deadline: progress_deadline?.0,
        auto_revert: auto_revert?,
    })
}

const SCRIPTS: [&str; 6] = [
    "install",
    "configure",
    "start",
    "stop",
    "unconfigure",
    "uninstall",
];

fn exec(sink: &mut Sink<'_>, f: &Fields<'_>) -> Option<Exec> {
    let present = f.present(&["run", "scripts"]);
    match present.as_slice() {
        [] => {
            sink.push(
                f.at,
                &f.path,
                "missing field `run` or `scripts`; a service needs one of them",
            );
            None
        }
        [(_, _, v)] if v.value == Value::Null => {
            wrong_type(sink, v, &f.field(present[0].0), "a value");
            None
        }
        [("run", _, v)] => argv(sink, v, &f.field("run")).map(Exec::Run),
        [("scripts", _, _)] => {
            let s = f.sub(sink, "scripts", &SCRIPTS)?;
            let before = sink.count();
            let mut get = |key: &str| {
                s.get(key)
                    .and_then(|n| string(sink, n, &s.field(key)).map(str::to_string))
            };
            let install = get("install");
            let configure = get("configure");
            let start = get("start");
            let stop = get("stop");
            let unconfigure = get("unconfigure");
            let uninstall = get("uninstall");
            for (key, value) in [("start", &start), ("stop", &stop)] {
                if value.is_none() && s.get(key).is_none() {
                    sink.push(s.at, &s.path, format!("missing field `{key}`"));
                }
            }
            if before != sink.count() {
                return None;
            }
            Some(Exec::Scripts(Scripts {
                install,
                configure,
                start: start?,
                stop: stop?,
                unconfigure,
                uninstall,
            }))
        }
        [(first, _, _), rest @ ..] => {
            for (key, k, _) in rest {
                sink.push(
                    k.pos,
                    &f.field(key),
                    format!("`{first}` and `{key}` are mutually exclusive; keep one"),
                );
            }
            None
        }
    }
}
