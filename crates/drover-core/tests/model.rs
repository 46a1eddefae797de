//! The deploy model: fixtures with the exact errors they must produce, placement,
//! hashes, deploy order, and robustness against arbitrary input.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use drover_core::instance::{LifecycleState, MaxParallel, Strategy as RolloutStrategy};
use drover_core::model::{
    Exec, Model, ModelFile, Probe, Reconcile, Target, desired_instances, is_model_file, load,
    topo_order,
};
use drover_proto::hosts::Host;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Fixtures

fn fixtures_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model")
}

fn read_dir(root: &Path, dir: &Path, out: &mut Vec<ModelFile>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_dir(root, &path, out);
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if is_model_file(&rel) {
            out.push(ModelFile {
                path: rel,
                text: std::fs::read_to_string(&path).unwrap(),
            });
        }
    }
}

fn dir(root: &Path) -> Vec<ModelFile> {
    let mut files = Vec::new();
    read_dir(root, root, &mut files);
    assert!(!files.is_empty(), "{} has no model files", root.display());
    files
}

fn fixture(name: &str) -> Vec<ModelFile> {
    dir(&fixtures_root().join(name))
}

fn load_ok(name: &str) -> Model {
    match load(&fixture(name)) {
        Ok(m) => m,
        Err(errors) => panic!(
            "{name} should load:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn messages(name: &str) -> Vec<String> {
    match load(&fixture(name)) {
        Ok(_) => panic!("{name} should not load"),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Each error fixture and the exact errors it must produce.
const ERROR_FIXTURES: &[(&str, &[&str])] = &[
    (
        "syntax",
        &["model.yaml:3:8: invalid YAML: unclosed bracket '['"],
    ),
    (
        "missing_kind",
        &[
            "model.yaml:1:1: kind: missing field `kind`; expected service, hostclass, host, provider or generator",
        ],
    ),
    (
        "unknown_kind",
        &[
            "model.yaml:1:7: kind: unknown kind `servce`; expected service, hostclass, host, provider or generator; did you mean `service`?",
        ],
    ),
    (
        "not_a_mapping",
        &[
            "model.yaml:1:1: expected a mapping with a `kind` (service, hostclass, host, provider or generator), found a list",
        ],
    ),
    (
        "unknown_key",
        &["model.yaml:9:1: services.web.verison: unknown field `verison`; did you mean `version`?"],
    ),
    (
        "unknown_key_far",
        &[
            "model.yaml:9:1: services.web.colour: unknown field `colour`; expected one of kind, name, version, artifact, placement, ports, env, config, health, depends_on, rollout, run, scripts, state, reconcile, load_balancer",
        ],
    ),
    (
        "unknown_nested_key",
        &[
            "model.yaml:10:3: services.web.rollout.max_paralel: unknown field `max_paralel`; did you mean `max_parallel`?",
        ],
    ),
    (
        "duplicate_key",
        &[
            "model.yaml:9:1: services.web.version: duplicate key `version`; first at line 3",
            "model.yaml:12:3: services.web.env.MODE: duplicate key `MODE`; first at line 11",
        ],
    ),
    (
        "wrong_type",
        &["model.yaml:9:8: services.web.ports: expected a mapping, found a list"],
    ),
    (
        "missing_field",
        &[
            "model.yaml:1:1: services.web: missing field `version`",
            "model.yaml:3:1: services.web.artifact: missing field `sha256`",
        ],
    ),
    (
        "version_number",
        &[
            "model.yaml:3:10: services.web.version: expected a string, found the number `1.10`; quote it: `\"1.10\"`",
        ],
    ),
    (
        "bad_name",
        &[
            "model.yaml:2:10: services.web server.name: invalid character ` ` in `web server`; names use letters, digits, `_`, `.` and `-`, and start with a letter or digit",
        ],
    ),
    (
        "port_range",
        &["model.yaml:10:9: services.web.ports.http: must be between 1 and 65535, found 70000"],
    ),
    (
        "port_overlap",
        &[
            "model.yaml:12:10: services.web.ports.admin: ports 8081-8082 overlap the ports of `http` (8080-8081); each port name takes per_host (2) consecutive ports",
        ],
    ),
    (
        "bad_duration",
        &[
            "model.yaml:10:23: services.web.rollout.min_healthy_time: unknown unit `sec`; expected ms, s, m, h or d",
        ],
    ),
    (
        "duration_without_unit",
        &[
            "model.yaml:11:13: services.web.health.interval: missing unit in `30`: did you mean `30s`?",
        ],
    ),
    (
        "deadline_order",
        &[
            "model.yaml:10:21: services.web.rollout.healthy_deadline: healthy_deadline (15m00s) must be shorter than progress_deadline (10m00s, the default)",
        ],
    ),
    (
        "bad_percentage",
        &[
            "model.yaml:10:17: services.web.rollout.max_parallel: a percentage must be between 1% and 100%, found `150%`",
        ],
    ),
    (
        "strict_boolean",
        &[
            "model.yaml:10:16: services.web.rollout.auto_revert: expected `true` or `false`, found the string `yes`; did you mean `true`?",
        ],
    ),
    (
        "bad_sha256",
        &["model.yaml:6:11: services.web.artifact.sha256: a SHA-256 is 64 hex digits, found 6"],
    ),
    (
        "bad_sha256_char",
        &[
            "model.yaml:6:22: services.web.artifact.sha256: invalid character `x` in SHA-256; expected 64 hex digits",
        ],
    ),
    (
        "bad_url_scheme",
        &[
            "model.yaml:5:8: services.web.artifact.url: unsupported URL scheme `ftp`; use file://, http://, https:// or store:<sha256>",
        ],
    ),
    (
        "store_digest_mismatch",
        &[
            "model.yaml:5:14: services.web.artifact.url: the store digest differs from `sha256`; they must be equal",
        ],
    ),
    (
        "per_host_zero",
        &["model.yaml:9:13: services.web.placement.per_host: must be between 1 and 64, found 0"],
    ),
    (
        "unknown_health_port",
        &[
            "model.yaml:11:16: services.web.health.http.port: unknown port `htp`; did you mean `http`? (ports: admin, http)",
        ],
    ),
    (
        "health_two_probes",
        &[
            "model.yaml:12:3: services.web.health.tcp: `http` and `tcp` are mutually exclusive; keep one",
        ],
    ),
    (
        "duplicate_config_path",
        &[
            "model.yaml:12:11: services.web.config[1].path: duplicate config path `conf/app.conf`; first at line 10",
        ],
    ),
    (
        "dotdot_path",
        &["model.yaml:10:16: services.web.config[0].path: `..` is not allowed in config paths"],
    ),
    (
        "invalid_selector",
        &[
            "model.yaml:8:29: services.web.placement.selector: invalid selector: unknown field `nmae`; expected name, label.KEY or fact.KEY",
        ],
    ),
    (
        "invalid_hostclass_selector",
        &[
            "model.yaml:3:17: hostclasses.frontend.selector: invalid selector: missing key after `label.`",
        ],
    ),
    (
        "duplicate_name",
        &["b.yaml:3:7: services.web.name: duplicate service `web`; first defined at a.yaml:2"],
    ),
    (
        "dangling_hostclass",
        &[
            "model.yaml:12:14: services.web.placement.hostclass: unknown hostclass `frontnd`; did you mean `frontend`?",
        ],
    ),
    (
        "dangling_pin",
        &["model.yaml:3:12: hosts.web-1.hostclass: unknown hostclass `frontend`"],
    ),
    (
        "dangling_depends_on",
        &["model.yaml:9:18: services.web.depends_on[1]: unknown service `cache`"],
    ),
    (
        "duplicate_depends_on",
        &["model.yaml:9:18: services.web.depends_on[1]: service `db` is listed twice"],
    ),
    (
        "cycle",
        &["c.yaml:9:14: services.c.depends_on[0]: dependency cycle: a -> b -> c -> a"],
    ),
    (
        "self_dependency",
        &["model.yaml:9:14: services.web.depends_on[0]: dependency cycle: web -> web"],
    ),
    (
        "run_and_scripts",
        &[
            "model.yaml:10:1: services.web.scripts: `run` and `scripts` are mutually exclusive; keep one",
        ],
    ),
    (
        "no_run_or_scripts",
        &[
            "model.yaml:1:1: services.web: missing field `run` or `scripts`; a service needs one of them",
        ],
    ),
    (
        "scripts_missing_stop",
        &["model.yaml:9:1: services.web.scripts: missing field `stop`"],
    ),
    (
        "placement_both",
        &[
            "model.yaml:12:3: services.web.placement.selector: `hostclass` and `selector` are mutually exclusive; keep one",
        ],
    ),
    (
        "placement_none",
        &[
            "model.yaml:7:1: services.web.placement: needs one of `hostclass`, `hosts` or `selector`",
        ],
    ),
];

#[test]
fn every_error_kind_has_its_exact_message() {
    let mut failures = Vec::new();
    for (name, want) in ERROR_FIXTURES {
        let got = messages(name);
        if got != *want {
            failures.push(format!("{name}:\n  want {want:#?}\n  got  {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_is_checked() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let known = ["valid", "valid_reshuffled", "ten_errors"].contains(&name.as_str())
            || ERROR_FIXTURES.iter().any(|(n, _)| *n == name);
        assert!(known, "fixture {name} is not in any test");
    }
}

#[test]
fn errors_carry_each_part() {
    let errors = load(&fixture("unknown_nested_key")).unwrap_err();
    let e = &errors[0];
    assert_eq!(e.file, "model.yaml");
    assert_eq!((e.line, e.column), (10, 3));
    assert_eq!(e.field, "services.web.rollout.max_paralel");
    assert_eq!(
        e.reason,
        "unknown field `max_paralel`; did you mean `max_parallel`?"
    );
    // A syntax error belongs to no field, and says so by leaving it out.
    let errors = load(&fixture("syntax")).unwrap_err();
    assert_eq!(errors[0].field, "");
}

#[test]
fn ten_errors_are_all_reported() {
    assert_eq!(
        messages("ten_errors"),
        [
            "classes.yaml:3:25: hostclasses.frontend.selector: invalid selector: empty term",
            "classes.yaml:8:12: hosts.web-1.hostclass: unknown hostclass `fronted`; did you mean `frontend`?",
            "services.yaml:3:10: services.web.version: expected a string, found the number `2`; quote it: `\"2\"`",
            "services.yaml:5:8: services.web.artifact.url: unsupported URL scheme `ftp`; use file://, http://, https:// or store:<sha256>",
            "services.yaml:6:12: services.web.artifact.sha256: a SHA-256 is 64 hex digits, found 3",
            "services.yaml:9:13: services.web.placement.per_host: must be between 1 and 64, found 0",
            "services.yaml:10:15: services.web.ports.http: must be between 1 and 65535, found 0",
            "services.yaml:12:13: services.web.rollout.strategy: unknown value `rolling-update`; expected one of rolling, serial, all-at-once",
            "services.yaml:13:17: services.web.rollout.max_parallel: a percentage must be between 1% and 100%, found `0%`",
            "services.yaml:16:13: services.web.health.timeout: unknown unit `x`; expected ms, s, m, h or d",
        ]
    );
}

#[test]
fn a_file_that_does_not_parse_hides_no_other_error() {
    let mut files = fixture("syntax");
    files.push(ModelFile {
        path: "other.yaml".into(),
        text: "kind: hostclass\nname: web\nselector: name=,\n".into(),
    });
    // The service may depend on names the broken file declared: no "unknown" error.
    files.push(ModelFile {
        path: "pins.yaml".into(),
        text: "kind: host\nname: web-1\nhostclass: from-the-broken-file\n".into(),
    });
    let got: Vec<String> = load(&files)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "model.yaml:3:8: invalid YAML: unclosed bracket '['",
            "other.yaml:3:16: hostclasses.web.selector: invalid selector: empty term",
        ]
    );
}

#[test]
fn more_errors_are_located() {
    let svc = |extra: &str| {
        format!(
            "kind: service\nname: web\nversion: \"1\"\nartifact:\n  url: https://x/a.tar.gz\n  sha256: {}\nplacement: {{hosts: [web-1]}}\nrun: [./a]\n{extra}",
            "a".repeat(64)
        )
    };
    let table: &[(&str, &str)] = &[
        (
            "env: {1BAD: x}\n",
            "m.yaml:9:7: services.web.env.1BAD: invalid variable name `1BAD`; use letters, digits and `_`, starting with a letter or `_`",
        ),
        (
            "env: {RATIO: 1.5}\n",
            "m.yaml:9:14: services.web.env.RATIO: expected a string, found a number `1.5`; quote it: `\"1.5\"`",
        ),
        (
            "state: runing\n",
            "m.yaml:9:8: services.web.state: unknown value `runing`; expected one of running, stopped, installed; did you mean `running`?",
        ),
        (
            "reconcile: true\n",
            "m.yaml:9:12: services.web.reconcile: expected one of manual, auto, found a boolean `true`",
        ),
        (
            "config:\n  - path: /etc/app.conf\n    template: x\n",
            "m.yaml:10:11: services.web.config[0].path: config paths are relative to the instance directory; remove the leading `/`",
        ),
        (
            "health:\n  http: {port: 8080}\n",
            "m.yaml:10:16: services.web.health.http.port: expected the name of a port declared in `ports`, found an integer `8080`",
        ),
        (
            "health:\n  tcp: {port: http}\n",
            "m.yaml:10:15: services.web.health.tcp.port: unknown port `http`; the service declares no `ports`",
        ),
        (
            "health:\n  interval: 5s\n",
            "m.yaml:9:1: services.web.health: needs one of `http`, `tcp` or `exec`",
        ),
        (
            "health:\n  exec: []\n",
            "m.yaml:10:9: services.web.health.exec: needs at least the program, as in [\"./bin/server\"]",
        ),
        (
            "ports: {http: 8080}\nhealth:\n  tcp: {port: http}\n  interval: 1s\n  timeout: 2s\n",
            "m.yaml:13:12: services.web.health.timeout: timeout (2s) must not be longer than interval (1s)",
        ),
        (
            "rollout: {max_parallel: 0}\n",
            "m.yaml:9:25: services.web.rollout.max_parallel: must be at least 1, found 0",
        ),
        (
            "rollout: {max_parallel: lots}\n",
            "m.yaml:9:25: services.web.rollout.max_parallel: expected a count (1 or more) or a percentage such as `25%`, found a string",
        ),
        (
            "rollout: {canary: -1}\n",
            "m.yaml:9:19: services.web.rollout.canary: must be at least 0, found -1",
        ),
        (
            "depends_on: [db, 3]\n",
            "m.yaml:9:18: services.web.depends_on[1]: expected a string, found an integer `3`",
        ),
        (
            "1: x\n",
            "m.yaml:9:1: services.web: keys must be strings, found an integer",
        ),
    ];
    for (extra, want) in table {
        let files = [ModelFile {
            path: "m.yaml".into(),
            text: svc(extra),
        }];
        let got: Vec<String> = match load(&files) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
        // Unknown services and hosts named here are not the point of the table.
        let got: Vec<&String> = got
            .iter()
            .filter(|m| !m.contains("unknown service"))
            .collect();
        assert_eq!(got, [want], "{extra:?}");
    }
}

// ---------------------------------------------------------------------------
// The valid model

#[test]
fn the_valid_fixture_loads_into_the_typed_model() {
    let m = load_ok("valid");
    assert_eq!(
        m.services.keys().collect::<Vec<_>>(),
        ["db", "web", "worker"]
    );
    assert_eq!(
        m.hostclasses.keys().collect::<Vec<_>>(),
        ["backend", "canary", "frontend"]
    );
    assert_eq!(m.hosts.keys().collect::<Vec<_>>(), ["spare-1", "web-3"]);

    let web = &m.services["web"];
    assert_eq!(web.version, "2.0.1");
    assert_eq!(web.artifact.url, "file:///srv/artifacts/web-2.0.1.tar.gz");
    assert_eq!(
        web.artifact.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
        "digests are lowercased"
    );
    assert_eq!(web.placement.target, Target::Hostclass("frontend".into()));
    assert_eq!(web.placement.per_host, 2);
    assert_eq!(
        web.ports,
        BTreeMap::from([("admin".into(), 9000), ("http".into(), 8080)])
    );
    assert_eq!(web.env["WORKERS"], "4");
    assert_eq!(web.config.len(), 2);
    assert_eq!(web.config[0].path, "conf/app.conf");
    assert_eq!(
        web.config[0].template,
        "port={{ ports.http }}\ngreeting={{ env.GREETING }}\n"
    );
    let health = web.health.as_ref().unwrap();
    assert_eq!(
        health.probe,
        Probe::Http {
            port: "http".into(),
            path: "/health".into(),
            status: 200,
            body: Some("ok".into())
        }
    );
    assert_eq!(health.interval, Duration::from_secs(2));
    assert_eq!(health.timeout, Duration::from_secs(1));
    assert_eq!(
        (health.healthy_threshold, health.unhealthy_threshold),
        (2, 3)
    );
    assert_eq!(web.depends_on, ["db"]);
    assert_eq!(web.rollout.strategy, RolloutStrategy::Rolling);
    assert_eq!(web.rollout.max_parallel, MaxParallel::Percent(25));
    assert_eq!(web.rollout.canary, 1);
    assert_eq!(web.rollout.min_healthy_time, Duration::from_secs(5));
    assert_eq!(web.rollout.healthy_deadline, Duration::from_secs(60));
    assert_eq!(
        web.exec,
        Exec::Run(vec![
            "./bin/server".into(),
            "--port".into(),
            "{{ ports.http }}".into()
        ])
    );
    assert_eq!(web.state, LifecycleState::Running);
    assert_eq!(web.reconcile, Reconcile::Auto);
    assert_eq!(
        (web.source.file.as_str(), web.source.line, web.source.column),
        ("services/web.yaml", 2, 7)
    );

    let db = &m.services["db"];
    assert_eq!(db.placement.target, Target::Hosts(vec!["db-1".into()]));
    assert_eq!(db.state, LifecycleState::Stopped);
    assert_eq!(db.reconcile, Reconcile::Manual);
    let Exec::Scripts(s) = &db.exec else {
        panic!("db runs scripts")
    };
    assert_eq!(s.install.as_deref(), Some("./scripts/initdb.sh"));
    assert_eq!(
        (s.start.as_str(), s.stop.as_str()),
        ("./scripts/start.sh", "./scripts/stop.sh")
    );
    assert_eq!(s.configure, None);
    let db_health = db.health.as_ref().unwrap();
    assert_eq!(db_health.probe, Probe::Tcp { port: "pg".into() });
    assert_eq!(
        db_health.interval,
        Duration::from_secs(5),
        "default interval"
    );
    assert_eq!(db.rollout, Default::default());

    let worker = &m.services["worker"];
    assert_eq!(
        worker.placement.target,
        Target::Selector("label.role=web".into())
    );
    assert_eq!(worker.rollout.strategy, RolloutStrategy::Serial);
    assert_eq!(
        worker.health.as_ref().unwrap().probe,
        Probe::Exec {
            command: vec!["./bin/check".into(), "--quick".into()]
        }
    );

    assert_eq!(
        m.hostclasses["backend"].selector.as_deref(),
        Some("label.role=db,fact.os=linux"),
        "selectors are kept in canonical form"
    );
    assert_eq!(m.hostclasses["canary"].selector, None);
    assert_eq!(m.hostclasses["frontend"].labels["zone"], "1");
    assert_eq!(m.hosts["web-3"].hostclass, "canary");
    assert_eq!(m.content_hash.len(), 64);
}

#[test]
fn the_example_model_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/model");
    let m = load(&dir(&root)).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(topo_order(&m), ["hello", "hello-tools"]);
    // The artifact shipped beside the model is the one the model names.
    let hello = &m.services["hello"];
    let tarball = std::fs::read(root.join("artifacts/hello-1.0.0.tar.gz")).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&tarball)),
        hello.artifact.sha256
    );
}

#[test]
fn a_digest_that_reads_as_a_number_is_still_a_digest() {
    let digest = "1".repeat(64);
    let text = format!(
        "kind: service\nname: web\nversion: \"1\"\nartifact:\n  url: https://x/a.tar.gz\n  sha256: {digest}\nplacement: {{hosts: [web-1]}}\nrun: [./a]\n"
    );
    let m = load(&[ModelFile {
        path: "m.yaml".into(),
        text,
    }])
    .unwrap();
    assert_eq!(m.services["web"].artifact.sha256, digest);
}

#[test]
fn the_model_serializes_and_reads_back() {
    let m = load_ok("valid");
    let json = serde_json::to_string(&m).unwrap();
    let back: Model = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn the_content_hash_is_about_meaning_not_text() {
    let a = load_ok("valid");
    let b = load_ok("valid_reshuffled");
    assert_eq!(a.content_hash, b.content_hash);

    // File order given to `load` does not matter either.
    let mut files = fixture("valid");
    files.reverse();
    assert_eq!(load(&files).unwrap().content_hash, a.content_hash);

    // A change of meaning changes it.
    for (from, to) in [
        ("version: \"2.0.1\"", "version: \"2.0.2\""),
        ("canary: 1", "canary: 2"),
        ("GREETING: hello", "GREETING: hi"),
    ] {
        let mut files = fixture("valid");
        let web = files
            .iter_mut()
            .find(|f| f.path == "services/web.yaml")
            .unwrap();
        assert!(web.text.contains(from));
        web.text = web.text.replace(from, to);
        assert_ne!(load(&files).unwrap().content_hash, a.content_hash, "{to}");
    }
}

#[test]
fn an_empty_model_is_valid_and_wants_nothing() {
    let m = load(&[]).unwrap();
    assert!(m.services.is_empty());
    assert!(desired_instances(&m, &[host("a", &[("role", "web")])]).is_empty());
    let m = load(&[ModelFile {
        path: "empty.yaml".into(),
        text: "# nothing yet\n---\n".into(),
    }])
    .unwrap();
    assert!(m.services.is_empty());
}

#[test]
fn model_files_are_yaml_and_not_hidden() {
    assert!(is_model_file("a.yaml"));
    assert!(is_model_file("services/b.yml"));
    assert!(!is_model_file("README.md"));
    assert!(!is_model_file(".git/x.yaml"));
    assert!(!is_model_file("services/.draft.yaml"));
}

// ---------------------------------------------------------------------------
// Placement

fn host(name: &str, labels: &[(&str, &str)]) -> Host {
    serde_json::from_value(serde_json::json!({
        "id": format!("id-{name}"),
        "name": name,
        "status": "up",
        "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "facts": {
            "hostname": name, "os": "linux", "kernel": "6.1", "arch": "x86_64",
            "cpus": 2, "memory_bytes": 1024, "addresses": [], "agent_version": "0.1.0"
        },
        "enrolled_at": "2025-01-01T00:00:00Z",
        "last_seen_at": "2025-01-01T00:00:00Z",
    }))
    .unwrap()
}

fn fleet() -> Vec<Host> {
    vec![
        host("web-1", &[("role", "web")]),
        host("web-2", &[("role", "web")]),
        host("web-3", &[("role", "web")]), // pinned to `canary`
        host("db-1", &[("role", "db")]),
        host("db-2", &[("role", "db")]),
    ]
}

fn keys(instances: &[drover_core::instance::DesiredInstance], service: &str) -> Vec<String> {
    instances
        .iter()
        .filter(|i| i.key.service == service)
        .map(|i| format!("{}#{}", i.key.host, i.key.index))
        .collect()
}

#[test]
fn hostclass_members_are_pins_plus_unpinned_selector_matches() {
    let m = load_ok("valid");
    let want = desired_instances(&m, &fleet());
    // web: frontend = selector role=web (web-1, web-2; web-3 is pinned elsewhere)
    // plus the pinned spare-1 (not live: still wanted), two instances each.
    assert_eq!(
        keys(&want, "web"),
        [
            "spare-1#0",
            "spare-1#1",
            "web-1#0",
            "web-1#1",
            "web-2#0",
            "web-2#1"
        ]
    );
    // db: named hosts.
    assert_eq!(keys(&want, "db"), ["db-1#0"]);
    // worker: a selector sees live hosts only, pins do not matter to it.
    assert_eq!(
        keys(&want, "worker"),
        [
            "web-1#0", "web-1#1", "web-1#2", "web-2#0", "web-2#1", "web-2#2", "web-3#0", "web-3#1",
            "web-3#2"
        ]
    );
    assert_eq!(
        drover_core::model::hostclass_members(&m, "canary", &fleet())
            .into_iter()
            .collect::<Vec<_>>(),
        ["web-3"]
    );
    // Sorted by key.
    let mut sorted = want.clone();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(sorted, want);
}

#[test]
fn instances_carry_version_state_and_offset_ports() {
    let m = load_ok("valid");
    let want = desired_instances(&m, &fleet());
    let web1: Vec<_> = want
        .iter()
        .filter(|i| i.key.service == "web" && i.key.host == "web-1")
        .collect();
    assert_eq!(
        web1[0].ports,
        BTreeMap::from([("admin".into(), 9000), ("http".into(), 8080)])
    );
    assert_eq!(
        web1[1].ports,
        BTreeMap::from([("admin".into(), 9001), ("http".into(), 8081)])
    );
    assert_eq!(web1[0].version, "2.0.1");
    assert_eq!(web1[0].state, LifecycleState::Running);
    let db = want.iter().find(|i| i.key.service == "db").unwrap();
    assert_eq!(db.state, LifecycleState::Stopped);

    // The same copy runs the same thing on every host; copies differ by port.
    let web2_0 = want
        .iter()
        .find(|i| i.key.service == "web" && i.key.host == "web-2" && i.key.index == 0)
        .unwrap();
    assert_eq!(web1[0].spec_hash, web2_0.spec_hash);
    assert_ne!(web1[0].spec_hash, web1[1].spec_hash);
}

#[test]
fn no_live_hosts_leaves_only_named_hosts() {
    let m = load_ok("valid");
    let want = desired_instances(&m, &[]);
    assert_eq!(keys(&want, "web"), ["spare-1#0", "spare-1#1"]);
    assert_eq!(keys(&want, "db"), ["db-1#0"]);
    assert!(keys(&want, "worker").is_empty());
}

#[test]
fn spec_hash_ignores_version_state_and_health_but_not_what_runs() {
    let base = load_ok("valid");
    let hash_of = |m: &Model| {
        desired_instances(m, &fleet())
            .into_iter()
            .find(|i| i.key.service == "web" && i.key.host == "web-1" && i.key.index == 0)
            .unwrap()
            .spec_hash
    };
    let with = |from: &str, to: &str| {
        let mut files = fixture("valid");
        let web = files
            .iter_mut()
            .find(|f| f.path == "services/web.yaml")
            .unwrap();
        assert!(web.text.contains(from), "{from}");
        web.text = web.text.replace(from, to);
        load(&files).unwrap_or_else(|e| panic!("{e:#?}"))
    };
    let h = hash_of(&base);
    for (from, to) in [
        ("version: \"2.0.1\"", "version: \"2.0.2\""),
        ("state: running", "state: stopped"),
        ("interval: 2s", "interval: 3s"),
        ("canary: 1", "canary: 0"),
        (
            "file:///srv/artifacts/web-2.0.1.tar.gz",
            "https://mirror.example.com/web-2.0.1.tar.gz",
        ),
    ] {
        assert_eq!(hash_of(&with(from, to)), h, "{to}");
    }
    for (from, to) in [
        ("GREETING: hello", "GREETING: hi"),
        ("http: 8080", "http: 8090"),
        ("max=10", "max=20"),
        ("\"--port\"", "\"--listen\""),
        ("5891B5B5", "6891B5B5"),
    ] {
        assert_ne!(hash_of(&with(from, to)), h, "{to}");
    }
}

#[test]
fn topo_order_puts_dependencies_first_and_breaks_ties_by_name() {
    let m = load_ok("valid");
    assert_eq!(topo_order(&m), ["db", "web", "worker"]);

    // A cycle built by hand (load refuses them) still yields every service once.
    let mut m = m;
    m.services.get_mut("db").unwrap().depends_on = vec!["worker".into()];
    assert_eq!(topo_order(&m), ["db", "web", "worker"]);
    let mut m2 = m.clone();
    m2.services.get_mut("db").unwrap().depends_on = vec![];
    m2.services.get_mut("web").unwrap().depends_on = vec![];
    assert_eq!(topo_order(&m2), ["db", "web", "worker"]);
    m2.services.get_mut("db").unwrap().depends_on = vec!["web".into()];
    assert_eq!(topo_order(&m2), ["web", "db", "worker"]);
}

// ---------------------------------------------------------------------------
// Robustness

/// YAML-ish text made of the model's own words, so the generator reaches deep
/// into validation rather than stopping at syntax.
fn yamlish() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "kind",
        "service",
        "hostclass",
        "host",
        "name",
        "web",
        "db",
        "version",
        "\"1.0\"",
        "1.10",
        "artifact",
        "url",
        "sha256",
        "placement",
        "hostclass",
        "hosts",
        "selector",
        "per_host",
        "ports",
        "http",
        "env",
        "config",
        "path",
        "template",
        "health",
        "tcp",
        "exec",
        "interval",
        "timeout",
        "depends_on",
        "rollout",
        "max_parallel",
        "25%",
        "canary",
        "run",
        "scripts",
        "start",
        "stop",
        "state",
        "running",
        "reconcile",
        "yes",
        "true",
        "0",
        "-1",
        "70000",
        "10s",
        "label.role=web",
        "store:",
        "file:///x",
        "../x",
        "~",
        "&a",
        "*a",
        "<<",
        "!!str",
        "é",
        "",
    ]);
    let punct = prop::sample::select(vec![
        ": ", "\n", "\n  ", "\n    ", "- ", "[", "]", "{", "}", ", ", "---\n", "\"", "'", "#", " ",
        "|\n  ", "\t", ":",
    ]);
    prop::collection::vec((word, punct), 0..60).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(w, p)| format!("{w}{p}"))
            .collect::<String>()
    })
}

fn check_errors(files: &[ModelFile]) -> Result<(), TestCaseError> {
    if let Err(errors) = load(files) {
        prop_assert!(!errors.is_empty());
        for e in &errors {
            prop_assert!(e.line >= 1 && e.column >= 1, "{}", e);
            prop_assert!(files.iter().any(|f| f.path == e.file), "{}", e);
            prop_assert!(!e.reason.is_empty(), "{}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn load_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let files = [ModelFile { path: "x.yaml".into(), text: String::from_utf8_lossy(&bytes).into_owned() }];
        check_errors(&files)?;
    }

    #[test]
    fn load_never_panics_on_yamlish_text(a in yamlish(), b in yamlish()) {
        let files = [
            ModelFile { path: "a.yaml".into(), text: a },
            ModelFile { path: "b.yaml".into(), text: b },
        ];
        check_errors(&files)?;
    }

    #[test]
    fn load_never_panics_on_a_damaged_valid_model(
        file in 0usize..5,
        at in 0.0f64..1.0,
        len in 0usize..20,
        insert in "[ a-z0-9:\\[\\]{}\\-\"'\n#%.*&!|>]{0,8}",
    ) {
        let mut files = fixture("valid");
        let f = &mut files[file % 5];
        let chars: Vec<char> = f.text.chars().collect();
        let start = ((chars.len() as f64) * at) as usize;
        let end = (start + len).min(chars.len());
        f.text = chars[..start].iter().collect::<String>() + &insert + &chars[end..].iter().collect::<String>();
        check_errors(&files)?;
    }
}

#[test]
fn a_port_offset_label_shifts_every_port_on_its_host() {
    let files = vec![
        ModelFile {
            path: "hc.yaml".into(),
            text: "kind: hostclass\nname: web\nselector: label.role=web\n".into(),
        },
        ModelFile {
            path: "s.yaml".into(),
            text: format!(
                "kind: service\nname: s\nversion: \"1\"\nartifact: {{url: \"store:{0}\", sha256: {0}}}\n\
                 placement: {{hostclass: web, per_host: 2}}\nports: {{http: 8000, admin: 9000}}\nrun: [\"./s\"]\n",
                "a".repeat(64)
            ),
        },
    ];
    let m = load(&files).unwrap();
    let hosts = vec![
        host("a", &[("role", "web")]),
        host("b", &[("role", "web"), ("drover/port-offset", "100")]),
        host("c", &[("role", "web"), ("drover/port-offset", "nonsense")]),
    ];
    let want = desired_instances(&m, &hosts);
    let ports = |h: &str, i: u32| {
        want.iter()
            .find(|d| d.key.host == h && d.key.index == i)
            .map(|d| (d.ports["http"], d.ports["admin"], d.spec_hash.clone()))
            .unwrap()
    };
    assert_eq!((ports("a", 1).0, ports("a", 1).1), (8001, 9001));
    assert_eq!((ports("b", 0).0, ports("b", 1).1), (8100, 9101));
    assert_eq!(
        (ports("c", 0).0, ports("c", 0).1),
        (8000, 9000),
        "an invalid offset is ignored"
    );
    assert_ne!(
        ports("a", 0).2,
        ports("b", 0).2,
        "ports are part of the spec hash"
    );
    assert_eq!(ports("a", 0).2, ports("c", 0).2);
}
