//! Rendering: one desired instance of a service into the [`InstanceSpec`] its agent
//! runs.
//!
//! The controller renders, the agent decides nothing: every template of the service
//! (the `run` arguments, the `scripts`, the `config` templates and the arguments of
//! an `exec` health probe) is rendered here with the instance's values, the artifact
//! URL is made fetchable, and health probe port names become port numbers.
//!
//! Templates are [MiniJinja](https://docs.rs/minijinja) (Jinja2 syntax, builtin
//! filters and tests). They see:
//!
//! | variable | value |
//! |---|---|
//! | `ports.NAME` | this instance's port (base + index) |
//! | `version` | the version being deployed |
//! | `service` | the service name |
//! | `index` | the instance number on the host, from 0 |
//! | `env.NAME` | the service's `env` |
//! | `host.name`, `host.labels.KEY`, `host.facts.KEY` | the host (facts as the agent reported them: `os`, `arch`, `cpus`, `addresses` (a list)…; `os_release` only when known) |
//! | `hostclass.name`, `hostclass.labels.KEY` | the service's hostclass, only when it is placed by hostclass |
//!
//! Undefined is strict: printing, iterating, testing the truth of or looking into an
//! unknown variable is an error that names it (`{{ x is defined }}` and
//! `{{ x | default("…") }}` work). Nothing is HTML-escaped, and a final newline is
//! kept. `env` values and `config` paths are literal, not templates.
//!
//! Rendering is deterministic (maps are ordered, and there is no clock or randomness
//! in the template language) and bounded (a template that runs too long fails).
//!
//! ```
//! # use drover_core::render::{RenderContext, instance_spec};
//! # fn example(service: &drover_core::model::Service,
//! #            desired: &drover_core::instance::DesiredInstance,
//! #            host: &drover_proto::hosts::Host) {
//! let ctx = RenderContext { host, hostclass: None, controller_url: "http://10.0.0.1:7070" };
//! match instance_spec(service, desired, &ctx, 3) {
//!     Ok(spec) => println!("{}", spec.spec_hash),
//!     // service web, config[0].template: undefined value: `ports.https` is undefined (line 1)
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use drover_proto::deploy::{
    ArtifactRef, HealthProbe, HealthSpec, InstanceSpec, RenderedFile, Runtime,
};
use drover_proto::hosts::Host;
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::instance::DesiredInstance;
use crate::model::{ArtifactSource, Exec, HealthCheck, Hostclass, Model, Probe, Service, Target};

/// Instructions one template may execute before it fails ("engine ran out of
/// fuel"): far more than any config file needs, and a bound on a runaway loop.
const FUEL: u64 = 5_000_000;

/// What an instance is rendered against, besides its service and desired instance.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The host the instance runs on (`host.*` in templates).
    pub host: &'a Host,
    /// The service's hostclass (`hostclass.*` in templates). Required when the
    /// service is placed by hostclass, ignored otherwise: see [`service_hostclass`].
    pub hostclass: Option<&'a Hostclass>,
    /// Base URL of the controller as agents reach it, e.g. `http://10.0.0.1:7070`
    /// (a trailing `/` is ignored); `store:` artifacts are fetched below it.
    pub controller_url: &'a str,
}

/// Why an instance could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service {service}, {field}: {reason}")]
pub struct RenderError {
    /// Service name.
    pub service: String,
    /// Field of the service, as in the model: `run[2]`, `scripts.start`,
    /// `config[0].template`, `health.exec[1]`, `health.http.port`, `artifact.url`…
    pub field: String,
    /// MiniJinja's message and the line in the template
    /// (`syntax error: unexpected end of input… (line 3)`,
    /// `undefined value: \`ports.https\` is undefined (line 1)`), or what else is
    /// wrong.
    pub reason: String,
}

/// The hostclass a [`RenderContext`] should carry for `service`: its placement's
/// hostclass when it is placed by hostclass, `None` otherwise.
pub fn service_hostclass<'m>(model: &'m Model, service: &Service) -> Option<&'m Hostclass> {
    match &service.placement.target {
        Target::Hostclass(name) => model.hostclasses.get(name),
        Target::Hosts(_) | Target::Selector(_) => None,
    }
}

/// Renders `desired` (an instance of `service`) for its agent.
///
/// The version, the ports and the `spec_hash` come from `desired`, so the hash the
/// agent reports back is the one the delta compares. `store:<sha256>` artifacts
/// become `{controller_url}/api/v1/artifacts/<sha256>`; `file://` and `http(s)://`
/// URLs are kept. Health durations become milliseconds.
///
/// Fails on the first template that does not render, and when the inputs do not
/// belong together (`desired` is of another service or host, a probe names a port
/// the instance does not have, the service is placed by hostclass and `ctx` carries
/// another hostclass or none).
pub fn instance_spec(
    service: &Service,
    desired: &DesiredInstance,
    ctx: &RenderContext<'_>,
    keep_releases: u32,
) -> Result<InstanceSpec, RenderError> {
    let fail = |field: &str, reason: String| RenderError {
        service: service.name.clone(),
        field: field.to_string(),
        reason,
    };
    if desired.key.service != service.name {
        return Err(fail(
            "name",
            format!(
                "the desired instance is of service `{}`",
                desired.key.service
            ),
        ));
    }
    if desired.key.host != ctx.host.name {
        return Err(fail(
            "placement",
            format!(
                "the desired instance is on host `{}`, the render context is for host `{}`",
                desired.key.host, ctx.host.name
            ),
        ));
    }
    let hostclass = match &service.placement.target {
        Target::Hostclass(name) => match ctx.hostclass {
            Some(class) if class.name == *name => Some(class),
            Some(class) => {
                return Err(fail(
                    "placement.hostclass",
                    format!(
                        "the service is placed on hostclass `{name}`, the render context has `{}`",
                        class.name
                    ),
                ));
            }
            None => {
                return Err(fail(
                    "placement.hostclass",
                    format!(
                        "the service is placed on hostclass `{name}`, the render context has none"
                    ),
                ));
            }
        },
        Target::Hosts(_) | Target::Selector(_) => None,
    };

    let renderer = Renderer::new(service, desired, ctx.host, hostclass);

    let artifact = ArtifactRef {
        url: match service.artifact.source() {
            Some(ArtifactSource::Store(sha)) => format!(
                "{}/api/v1/artifacts/{}",
                ctx.controller_url.trim_end_matches('/'),
                sha.to_ascii_lowercase()
            ),
            Some(ArtifactSource::File(_) | ArtifactSource::Http(_)) => service.artifact.url.clone(),
            None => {
                return Err(fail(
                    "artifact.url",
                    format!(
                        "unsupported URL `{}`; use file://, http://, https:// or store:<sha256>",
                        service.artifact.url
                    ),
                ));
            }
        },
        sha256: service.artifact.sha256.clone(),
    };

    let runtime = match &service.exec {
        Exec::Run(argv) => Runtime::Run {
            argv: renderer.render_all("run", argv)?,
        },
        Exec::Scripts(s) => {
            let opt = |name: &str, text: &Option<String>| {
                text.as_deref()
                    .map(|t| renderer.render(&format!("scripts.{name}"), t))
                    .transpose()
            };
            Runtime::Scripts {
                install: opt("install", &s.install)?,
                configure: opt("configure", &s.configure)?,
                start: renderer.render("scripts.start", &s.start)?,
                stop: renderer.render("scripts.stop", &s.stop)?,
                unconfigure: opt("unconfigure", &s.unconfigure)?,
                uninstall: opt("uninstall", &s.uninstall)?,
            }
        }
    };

    let config = service
        .config
        .iter()
        .enumerate()
        .map(|(i, file)| {
            Ok(RenderedFile {
                path: file.path.clone(),
                content: renderer.render(&format!("config[{i}].template"), &file.template)?,
            })
        })
        .collect::<Result<Vec<_>, RenderError>>()?;

    let health = service
        .health
        .as_ref()
        .map(|h| health_spec(h, desired, &renderer, &fail))
        .transpose()?;

    Ok(InstanceSpec {
        service: service.name.clone(),
        index: desired.key.index,
        version: desired.version.clone(),
        artifact,
        runtime,
        env: service.env.clone(),
        ports: desired.ports.clone(),
        config,
        health,
        spec_hash: desired.spec_hash.clone(),
        keep_releases,
    })
}

fn health_spec(
    check: &HealthCheck,
    desired: &DesiredInstance,
    renderer: &Renderer<'_>,
    fail: &dyn Fn(&str, String) -> RenderError,
) -> Result<HealthSpec, RenderError> {
    let port = |field: &str, name: &str| {
        desired.ports.get(name).copied().ok_or_else(|| {
            fail(
                field,
                format!("port `{name}` is not one of this instance's ports"),
            )
        })
    };
    let probe = match &check.probe {
        Probe::Http {
            port: name,
            path,
            status,
            body,
        } => HealthProbe::Http {
            port: port("health.http.port", name)?,
            path: path.clone(),
            status: *status,
            body: body.clone(),
        },
        Probe::Tcp { port: name } => HealthProbe::Tcp {
            port: port("health.tcp.port", name)?,
        },
        Probe::Exec { command } => HealthProbe::Exec {
            argv: renderer.render_all("health.exec", command)?,
        },
    };
    Ok(HealthSpec {
        probe,
        interval_ms: millis(check.interval),
        timeout_ms: millis(check.timeout),
        healthy_threshold: check.healthy_threshold,
        unhealthy_threshold: check.unhealthy_threshold,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A template environment and the variables of one instance.
struct Renderer<'s> {
    env: Environment<'static>,
    vars: Value,
    service: &'s str,
}

impl<'s> Renderer<'s> {
    fn new(
        service: &'s Service,
        desired: &DesiredInstance,
        host: &Host,
        hostclass: Option<&Hostclass>,
    ) -> Renderer<'s> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_syntax(
            SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // Debug mode tracks where undefined values come from, so that an error
        // names the expression (`ports.https` is undefined); on in release builds
        // too, so both say the same.
        env.set_debug(true);
        env.set_fuel(Some(FUEL));

        let mut vars = BTreeMap::new();
        vars.insert("ports", string_map(desired.ports.iter()));
        vars.insert("version", Value::from(desired.version.as_str()));
        vars.insert("service", Value::from(service.name.as_str()));
        vars.insert("index", Value::from(desired.key.index));
        vars.insert("env", string_map(service.env.iter()));
        vars.insert("host", host_value(host));
        if let Some(class) = hostclass {
            vars.insert(
                "hostclass",
                Value::from_pairs([
                    ("name", Value::from(class.name.as_str())),
                    ("labels", string_map(class.labels.iter())),
                ]),
            );
        }
        Renderer {
            env,
            vars: Value::from_pairs(vars),
            service: &service.name,
        }
    }

    /// Renders one template; `field` names it in errors.
    fn render(&self, field: &str, source: &str) -> Result<String, RenderError> {
        // Text without any Jinja delimiter renders as itself: skip the compiler
        // (most `run` arguments are like this).
        if !["{{", "{%", "{#"].iter().any(|d| source.contains(d)) {
            return Ok(source.to_string());
        }
        self.env
            .render_named_str(field, source, self.vars.clone())
            .map_err(|e| RenderError {
                service: self.service.to_string(),
                field: field.to_string(),
                reason: reason(&e),
            })
    }

    /// Renders each element of a list; `field[i]` names element `i` in errors.
    fn render_all(&self, field: &str, items: &[String]) -> Result<Vec<String>, RenderError> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.render(&format!("{field}[{i}]"), item))
            .collect()
    }
}

/// `kind: detail (line N)`; the field (the template's name) is said by the caller.
fn reason(e: &minijinja::Error) -> String {
    let mut out = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        out.push_str(&format!(" (line {line})"));
    }
    out
}

fn string_map<'v>(items: impl Iterator<Item = (&'v String, impl Into<Value> + Copy)>) -> Value {
    Value::from_pairs(items.map(|(k, v)| (k.as_str(), v.into())))
}

/// `host.name`, `host.labels`, `host.facts` (as reported; unknown facts absent).
fn host_value(host: &Host) -> Value {
    let facts = serde_json::to_value(&host.facts).unwrap_or(serde_json::Value::Null);
    Value::from_pairs([
        ("name", Value::from(host.name.as_str())),
        ("labels", string_map(host.labels.iter())),
        ("facts", json_value(&facts)),
    ])
}

/// A JSON value as a template value; `null` members of objects are left out (so
/// they are undefined, as an unknown fact is for selectors).
fn json_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => Value::from(items.iter().map(json_value).collect::<Vec<_>>()),
        J::Object(map) => Value::from_pairs(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.as_str(), json_value(v))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelFile, desired_instances, is_model_file, load};

    const SHA: &str = "30727946d0ec8ad557c5ff2f0a309c27dc5ca0614544dcb8196edc4bcbf31904";
    const CONTROLLER: &str = "http://10.0.0.1:7070";

    fn host(name: &str, labels: &[(&str, &str)]) -> Host {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        serde_json::from_value(serde_json::json!({
            "id": format!("id-{name}"),
            "name": name,
            "status": "up",
            "labels": labels,
            "facts": {
                "hostname": name,
                "os": "linux",
                "kernel": "6.1.0",
                "arch": "x86_64",
                "cpus": 4,
                "memory_bytes": 8_589_934_592_u64,
                "addresses": ["10.0.0.5", "fd00::5"],
                "agent_version": "0.1.0",
            },
            "enrolled_at": "2025-01-01T00:00:00Z",
            "last_seen_at": "2025-01-01T00:00:00Z",
        }))
        .unwrap()
    }

    fn example_model() -> Model {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<ModelFile>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                    continue;
                }
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if is_model_file(&rel) {
                    out.push(ModelFile {
                        text: std::fs::read_to_string(&path).unwrap(),
                        path: rel,
                    });
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/model");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        load(&files).unwrap_or_else(|e| panic!("example model: {e:?}"))
    }

    /// A model of one service `web` (placed on hostclass `front`, 2 per host, port
    /// `http` 8080) plus `extra` YAML lines for the service document.
    fn web_model(extra: &str) -> Model {
        let text = format!(
            "kind: hostclass\nname: front\nselector: label.role=web\nlabels: {{tier: front}}\n---\n\
             kind: service\nname: web\nversion: \"2.0.1\"\n\
             artifact: {{url: \"store:{SHA}\", sha256: {SHA}}}\n\
             placement: {{hostclass: front, per_host: 2}}\n\
             ports: {{http: 8080, admin: 9090}}\n\
             env: {{GREETING: hello, WORKERS: 4}}\n{extra}"
        );
        load(&[ModelFile {
            path: "web.yaml".into(),
            text,
        }])
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// Renders instance `index` of service `name` on `host`.
    fn render(
        model: &Model,
        name: &str,
        host: &Host,
        index: u32,
    ) -> Result<InstanceSpec, RenderError> {
        let service = &model.services[name];
        let desired = desired_instances(model, std::slice::from_ref(host))
            .into_iter()
            .find(|d| d.key.service == name && d.key.host == host.name && d.key.index == index)
            .expect("the instance is desired");
        let ctx = RenderContext {
            host,
            hostclass: service_hostclass(model, service),
            controller_url: CONTROLLER,
        };
        instance_spec(service, &desired, &ctx, 3)
    }

    fn web1() -> Host {
        host("web-1", &[("role", "web"), ("zone", "a")])
    }

    #[test]
    fn example_model_renders_every_instance() {
        let model = example_model();
        let hosts = [
            host("web-1", &[("role", "web")]),
            host("web-2", &[("role", "web")]),
            host("demo-3", &[]),
        ];
        let desired = desired_instances(&model, &hosts);
        assert_eq!(desired.len(), 5, "2 hello on each web host, 1 hello-tools");
        for d in &desired {
            let service = &model.services[&d.key.service];
            let host = hosts.iter().find(|h| h.name == d.key.host).unwrap();
            let ctx = RenderContext {
                host,
                hostclass: service_hostclass(&model, service),
                controller_url: CONTROLLER,
            };
            let spec = instance_spec(service, d, &ctx, 5).unwrap();
            assert_eq!(spec.service, d.key.service);
            assert_eq!(spec.index, d.key.index);
            assert_eq!(spec.version, "1.0.0");
            assert_eq!(spec.spec_hash, d.spec_hash);
            assert_eq!(spec.ports, d.ports);
            assert_eq!(spec.keep_releases, 5);
            assert_eq!(
                spec.artifact,
                ArtifactRef {
                    url: format!("{CONTROLLER}/api/v1/artifacts/{SHA}"),
                    sha256: SHA.into(),
                }
            );
            // Same inputs, same spec.
            assert_eq!(instance_spec(service, d, &ctx, 5).unwrap(), spec);
        }

        let hello = render(&model, "hello", &hosts[1], 1).unwrap();
        assert_eq!(
            hello.runtime,
            Runtime::Run {
                argv: vec!["./bin/hello".into(), "--port".into(), "8081".into()]
            }
        );
        assert_eq!(
            hello.config,
            [RenderedFile {
                path: "public/instance.txt".into(),
                content: "hello 1.0.0 on web-2, port 8081\n".into(),
            }]
        );
        assert_eq!(hello.env["GREETING"], "hello");
        assert_eq!(
            hello.health,
            Some(HealthSpec {
                probe: HealthProbe::Http {
                    port: 8081,
                    path: "/health".into(),
                    status: 200,
                    body: Some("ok".into()),
                },
                interval_ms: 2000,
                timeout_ms: 1000,
                healthy_threshold: 1,
                unhealthy_threshold: 3,
            })
        );

        let tools = render(&model, "hello-tools", &hosts[2], 0).unwrap();
        let Runtime::Scripts {
            start,
            stop,
            install,
            ..
        } = &tools.runtime
        else {
            panic!("hello-tools runs scripts: {:?}", tools.runtime);
        };
        assert_eq!(
            start,
            "./bin/hello --port 8300 > hello.log 2>&1 &\necho $! > hello.pid\n"
        );
        assert_eq!(stop, "kill \"$(cat hello.pid)\" && rm -f hello.pid");
        assert_eq!(install, &None);
        let health = tools.health.unwrap();
        assert_eq!(health.probe, HealthProbe::Tcp { port: 8300 });
        assert_eq!((health.interval_ms, health.timeout_ms), (5000, 2000));
    }

    #[test]
    fn ports_and_index_are_per_instance() {
        let model = web_model(
            "run: [\"./srv\", \"--http={{ ports.http }}\", \"--admin={{ ports.admin }}\", \"#{{ index }}\"]\n",
        );
        for index in 0..2u16 {
            let spec = render(&model, "web", &web1(), u32::from(index)).unwrap();
            let Runtime::Run { argv } = &spec.runtime else {
                panic!()
            };
            assert_eq!(
                argv,
                &[
                    "./srv".to_string(),
                    format!("--http={}", 8080 + index),
                    format!("--admin={}", 9090 + index),
                    format!("#{index}"),
                ]
            );
            assert_eq!(spec.ports["http"], 8080 + index);
            assert_eq!(spec.ports["admin"], 9090 + index);
        }
    }

    #[test]
    fn artifact_urls() {
        let model = example_model();
        let h = host("web-1", &[("role", "web")]);
        let mut service = model.services["hello"].clone();
        let desired = desired_instances(&model, std::slice::from_ref(&h))
            .into_iter()
            .find(|d| d.key.service == "hello")
            .unwrap();
        let class = service_hostclass(&model, &service);
        let ctx = |url| RenderContext {
            host: &h,
            hostclass: class,
            controller_url: url,
        };
        // A trailing slash on the controller URL does not double.
        let spec = instance_spec(&service, &desired, &ctx("https://ctl.example:7070/"), 3).unwrap();
        assert_eq!(
            spec.artifact.url,
            format!("https://ctl.example:7070/api/v1/artifacts/{SHA}")
        );
        for url in [
            "file:///srv/artifacts/hello-1.0.0.tar.gz",
            "http://mirror.example/hello-1.0.0.tar.gz",
            "https://mirror.example/hello-1.0.0.tar.gz",
        ] {
            service.artifact.url = url.into();
            let spec = instance_spec(&service, &desired, &ctx(CONTROLLER), 3).unwrap();
            assert_eq!(
                spec.artifact,
                ArtifactRef {
                    url: url.into(),
                    sha256: SHA.into()
                }
            );
        }
        service.artifact.url = "ftp://x/y.tar.gz".into();
        let err = instance_spec(&service, &desired, &ctx(CONTROLLER), 3).unwrap_err();
        assert_eq!(err.field, "artifact.url");
    }

    #[test]
    fn undefined_variable_names_field_and_variable() {
        let model = web_model(
            "config:\n  - {path: a.conf, template: \"ok {{ ports.http }}\"}\n  - {path: b.conf, template: \"x\\n{{ ports.https }}\\n\"}\nrun: [\"./srv\"]\n",
        );
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert_eq!(err.service, "web");
        assert_eq!(err.field, "config[1].template");
        assert!(
            err.reason.contains("`ports.https` is undefined"),
            "{}",
            err.reason
        );
        assert!(err.reason.contains("(line 2)"), "{}", err.reason);
        assert!(
            err.to_string()
                .starts_with("service web, config[1].template: undefined value"),
            "{err}"
        );

        let model = web_model("run: [\"./srv\", \"--x\", \"{{ nope }}\"]\n");
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert_eq!(err.field, "run[2]");
        assert!(err.reason.contains("`nope` is undefined"), "{}", err.reason);

        // Unknown labels and facts are errors too, unless tested or defaulted.
        let model = web_model("run: [\"{{ host.labels.rack }}\"]\n");
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert!(err.reason.contains("host.labels.rack"), "{}", err.reason);
        let model = web_model("run: [\"{{ host.facts.os_release }}\"]\n");
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert!(
            err.reason.contains("host.facts.os_release"),
            "{}",
            err.reason
        );
        let model = web_model("run: [\"{% if host.labels.rack %}r{% endif %}\"]\n");
        assert!(render(&model, "web", &web1(), 0).is_err());
        let model = web_model(
            "run: [\"{{ host.labels.rack | default('r0') }}{% if host.labels.zone is defined %}-{{ host.labels.zone }}{% endif %}\"]\n",
        );
        let spec = render(&model, "web", &web1(), 0).unwrap();
        assert_eq!(
            spec.runtime,
            Runtime::Run {
                argv: vec!["r0-a".into()]
            }
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let model = web_model(
            "config:\n  - {path: a.conf, template: \"a\\nb\\n{{ ports.http \\n\"}\nrun: [\"./srv\"]\n",
        );
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert_eq!(err.field, "config[0].template");
        assert!(err.reason.starts_with("syntax error: "), "{}", err.reason);
        assert!(err.reason.ends_with("(line 3)"), "{}", err.reason);

        let model = web_model("scripts:\n  start: \"{% if index %}x\"\n  stop: \"true\"\n");
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert_eq!(err.field, "scripts.start");
        assert!(err.reason.starts_with("syntax error: "), "{}", err.reason);
    }

    #[test]
    fn scripts_render_with_every_variable() {
        let model = web_model(concat!(
            "scripts:\n",
            "  install: \"echo install {{ service }} {{ version }}\"\n",
            "  configure: \"echo {{ env.GREETING }} x{{ env.WORKERS }} on {{ host.name }} ({{ host.labels.zone }}, {{ hostclass.name }}/{{ hostclass.labels.tier }})\"\n",
            "  start: |\n",
            "    ./srv --port {{ ports.http }} &\n",
            "    echo $! > srv.pid\n",
            "  stop: \"kill $(cat srv.pid) # {{ index }}\"\n",
            "  uninstall: \"echo {{ host.facts.os }}/{{ host.facts.arch }} {{ host.facts.cpus * 2 }} {{ host.facts.addresses | join(',') }}\"\n",
        ));
        let spec = render(&model, "web", &web1(), 1).unwrap();
        assert_eq!(
            spec.runtime,
            Runtime::Scripts {
                install: Some("echo install web 2.0.1".into()),
                configure: Some("echo hello x4 on web-1 (a, front/front)".into()),
                start: "./srv --port 8081 &\necho $! > srv.pid\n".into(),
                stop: "kill $(cat srv.pid) # 1".into(),
                unconfigure: None,
                uninstall: Some("echo linux/x86_64 8 10.0.0.5,fd00::5".into()),
            }
        );
        // env values are passed on literally, not rendered.
        assert_eq!(spec.env["WORKERS"], "4");
    }

    #[test]
    fn health_ports_and_exec() {
        let model = web_model(
            "run: [\"./srv\"]\nhealth:\n  tcp: {port: admin}\n  interval: 1m30s\n  timeout: 500ms\n",
        );
        let health = render(&model, "web", &web1(), 1).unwrap().health.unwrap();
        assert_eq!(health.probe, HealthProbe::Tcp { port: 9091 });
        assert_eq!((health.interval_ms, health.timeout_ms), (90_000, 500));
        assert_eq!(
            (health.healthy_threshold, health.unhealthy_threshold),
            (1, 3)
        );

        let model = web_model(
            "run: [\"./srv\"]\nhealth:\n  exec: [\"./check\", \"--port={{ ports.http }}\"]\n",
        );
        let health = render(&model, "web", &web1(), 1).unwrap().health.unwrap();
        assert_eq!(
            health.probe,
            HealthProbe::Exec {
                argv: vec!["./check".into(), "--port=8081".into()]
            }
        );

        let model = web_model("run: [\"./srv\"]\nhealth:\n  exec: [\"./check\", \"{{ port }}\"]\n");
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert_eq!(err.field, "health.exec[1]");

        // A probe port the instance lacks (a hand-built desired instance).
        let model = web_model("run: [\"./srv\"]\nhealth:\n  http: {port: http}\n");
        let h = web1();
        let service = &model.services["web"];
        let mut desired = desired_instances(&model, std::slice::from_ref(&h)).remove(0);
        desired.ports.remove("http");
        let ctx = RenderContext {
            host: &h,
            hostclass: service_hostclass(&model, service),
            controller_url: CONTROLLER,
        };
        let err = instance_spec(service, &desired, &ctx, 3).unwrap_err();
        assert_eq!(err.field, "health.http.port");
    }

    #[test]
    fn hostclass_comes_from_placement() {
        let model = web_model("run: [\"{{ hostclass.labels.tier }}\"]\n");
        let h = web1();
        let service = &model.services["web"];
        let desired = desired_instances(&model, std::slice::from_ref(&h)).remove(0);
        let other = Hostclass {
            name: "back".into(),
            ..model.hostclasses["front"].clone()
        };
        for hostclass in [None, Some(&other)] {
            let ctx = RenderContext {
                host: &h,
                hostclass,
                controller_url: CONTROLLER,
            };
            let err = instance_spec(service, &desired, &ctx, 3).unwrap_err();
            assert_eq!(err.field, "placement.hostclass");
        }

        // Placed by hosts: no `hostclass`, whatever the context says.
        let mut service = service.clone();
        service.placement.target = Target::Hosts(vec!["web-1".into()]);
        let ctx = RenderContext {
            host: &h,
            hostclass: model.hostclasses.get("front"),
            controller_url: CONTROLLER,
        };
        let err = instance_spec(&service, &desired, &ctx, 3).unwrap_err();
        assert_eq!(err.field, "run[0]");
        assert!(
            err.reason.contains("`hostclass` is undefined"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let model = web_model("run: [\"./srv\"]\n");
        let h = web1();
        let service = &model.services["web"];
        let desired = desired_instances(&model, std::slice::from_ref(&h)).remove(0);
        let other = host("web-2", &[("role", "web")]);
        let ctx = RenderContext {
            host: &other,
            hostclass: service_hostclass(&model, service),
            controller_url: CONTROLLER,
        };
        assert_eq!(
            instance_spec(service, &desired, &ctx, 3).unwrap_err().field,
            "placement"
        );
        let mut renamed = service.clone();
        renamed.name = "api".into();
        let ctx = RenderContext { host: &h, ..ctx };
        assert_eq!(
            instance_spec(&renamed, &desired, &ctx, 3)
                .unwrap_err()
                .field,
            "name"
        );
    }

    #[test]
    fn text_is_kept_as_written() {
        // No HTML escaping, final newlines kept, plain text untouched.
        let model = web_model(concat!(
            "config:\n",
            "  - {path: a.html, template: \"<b>{{ env.GREETING ~ ' & bye' }}</b>\\n\\n\"}\n",
            "  - {path: b.txt, template: \"plain $HOME {x}\\n\"}\n",
            "run: [\"./srv\"]\n",
        ));
        let spec = render(&model, "web", &web1(), 0).unwrap();
        assert_eq!(spec.config[0].content, "<b>hello & bye</b>\n\n");
        assert_eq!(spec.config[1].content, "plain $HOME {x}\n");
    }

    #[test]
    fn runaway_templates_stop() {
        let model = web_model(
            "run: [\"{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}\"]\n",
        );
        let err = render(&model, "web", &web1(), 0).unwrap_err();
        assert!(err.reason.contains("fuel"), "{}", err.reason);
    }
}
