//! The OpenAPI document against a real controller: schemathesis fuzzes every operation
//! from it, and every operation it lists refuses missing, wrong and revoked tokens, and
//! viewers where the operation needs more. Both tests are driven by the document, so a
//! new endpoint is covered as soon as it is registered.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Controller, Db};
use serde_json::{Value, json};

struct Api {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(ctl: &Controller) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            base: ctl.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt"),
        }
    }

    /// `path` is the full path (`/api/v1/...`).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        self.rt.block_on(async {
            let mut req = self.http.request(method, format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn post_json(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, answer) = self.call("post", path, Some(token), Some(body.to_string().into()));
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        answer
    }

    fn document(&self) -> Value {
        let (status, doc) = self.call("get", "/api/v1/openapi.json", None, None);
        assert_eq!(status, 200, "{doc}");
        assert_eq!(doc["openapi"], "3.1.0");
        doc
    }
}

fn controller() -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    (dir, ctl)
}

/// A new API token with `role`; its secret.
fn token(api: &Api, ctl: &Controller, name: &str, role: &str) -> String {
    let created = api.post_json(
        "/api/v1/tokens",
        &ctl.admin_token,
        json!({"name": name, "role": role}),
    );
    created["secret"].as_str().expect("secret").to_string()
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    assert!(
        ops.len() > 30,
        "the document lists only {} operations",
        ops.len()
    );
    ops
}

/// The security schemes an operation accepts, with their scopes.
fn schemes(op: &Value) -> Vec<(String, Vec<String>)> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|req| req.as_object())
        .flat_map(|req| {
            req.iter().map(|(name, scopes)| {
                let scopes = scopes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect();
                (name.clone(), scopes)
            })
        })
        .collect()
}

/// The path with each `{param}` filled: an enum's first value, else `x`.
fn concrete_path(doc: &Value, path: &str, op: &Value) -> String {
    let mut out = path.to_string();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] != "path" {
            continue;
        }
        let name = p["name"].as_str().expect("parameter name");
        let mut schema = &p["schema"];
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.rsplit('/').next().expect("ref name");
            schema = &doc["components"]["schemas"][name];
        }
        let value = schema["enum"][0]
            .as_str()
            .map(str::to_string)
            .or_else(|| schema["oneOf"][0]["enum"][0].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                if schema["type"] == "integer" {
                    "1"
                } else {
                    "x"
                }
                .into()
            });
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    assert!(
        !out.contains('{'),
        "{path}: a path parameter is not documented"
    );
    out
}

/// Operations that take a POST but change nothing, so any role may call them: `login`
/// (it records the check in the event log) and `plan` (it computes a plan).
const READ_ONLY_POSTS: [&str; 3] = ["/api/v1/login", "/api/v1/plan", "/api/v1/rules/{ref}/test"];

/// Operations anyone may call without a token.
const PUBLIC: [&str; 2] = ["/api/v1/health", "/api/v1/openapi.json"];

fn assert_refused(what: &str, got: (u16, Value), status: u16, code: &str) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: not the error shape: {body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: no detail: {body}"
    );
}

#[test]
fn every_operation_refuses_missing_wrong_and_revoked_tokens_and_viewers_change_nothing() {
    let (_d, ctl) = controller();
    let api = Api::new(&ctl);
    let doc = api.document();
    let viewer = token(&api, &ctl, "openapi-viewer", "viewer");
    let operator = token(&api, &ctl, "openapi-operator", "operator");
    let revoked = api.post_json(
        "/api/v1/tokens",
        &ctl.admin_token,
        json!({"name": "openapi-revoked", "role": "admin"}),
    );
    let (status, _) = api.call(
        "delete",
        &format!(
            "/api/v1/tokens/{}",
            revoked["token"]["id"].as_str().unwrap()
        ),
        Some(&ctl.admin_token),
        None,
    );
    assert_eq!(status, 200);
    let revoked = revoked["secret"].as_str().unwrap();
    let wrong = format!("drover_api_{}", "0".repeat(64));

    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        let what = format!("{} {path}", method.to_uppercase());
        let url = concrete_path(&doc, &path, &op);
        let body = op.get("requestBody").map(|_| b"{}".to_vec());
        let send = |token: Option<&str>| api.call(&method, &url, token, body.clone());
        let schemes = schemes(&op);
        if PUBLIC.contains(&path.as_str()) {
            assert!(
                schemes.is_empty(),
                "{what} is public but documents security"
            );
            assert_eq!(send(None).0, 200, "{what} without a token");
            continue;
        }
        assert!(!schemes.is_empty(), "{what} documents no security");
        assert_refused(
            &format!("{what} without a token"),
            send(None),
            401,
            "unauthorized",
        );
        assert_refused(
            &format!("{what} with a wrong token"),
            send(Some(&wrong)),
            401,
            "unauthorized",
        );
        assert_refused(
            &format!("{what} with a revoked token"),
            send(Some(revoked)),
            401,
            "unauthorized",
        );
        let api_role = schemes
            .iter()
            .find(|(name, _)| name == "api_token")
            .map(|(_, scopes)| scopes.first().cloned().unwrap_or_else(|| "viewer".into()));
        match api_role.as_deref() {
            None => {
                // The agents' channel: an API token of any role is the wrong kind.
                assert!(
                    path.starts_with("/api/v1/agent/"),
                    "{what} takes no API token"
                );
                assert_refused(
                    &format!("{what} with an admin token"),
                    send(Some(&ctl.admin_token)),
                    401,
                    "unauthorized",
                );
            }
            Some("viewer") => {
                assert!(
                    method == "get" || READ_ONLY_POSTS.contains(&path.as_str()),
                    "{what} lets a viewer in: a viewer must not change anything"
                );
            }
            Some("operator") => {
                assert_refused(
                    &format!("{what} as a viewer"),
                    send(Some(&viewer)),
                    403,
                    "forbidden",
                );
            }
            Some("admin") => {
                assert_refused(
                    &format!("{what} as a viewer"),
                    send(Some(&viewer)),
                    403,
                    "forbidden",
                );
                assert_refused(
                    &format!("{what} as an operator"),
                    send(Some(&operator)),
                    403,
                    "forbidden",
                );
            }
            Some(other) => panic!("{what}: unknown role `{other}`"),
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} secured operations");
    // The refusals were recorded, without the secrets.
    let events = ctl.events("auth.failed");
    assert!(
        events.len() >= 3 * checked,
        "{} auth.failed events",
        events.len()
    );
}

/// What schemathesis found on PostgreSQL: a NUL character (which PostgreSQL cannot store
/// in text) in a query parameter was a 500. NUL anywhere in a request's strings is now
/// a 400 naming the field, and NUL in command output becomes U+FFFD.
#[test]
fn nul_characters_are_refused_with_400_not_500_and_output_keeps_flowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Postgres(common::fresh_pg_db()));
    let api = Api::new(&ctl);
    let t = Some(ctl.admin_token.as_str());
    let body = br#"{"name": "a\u0000b", "role": "viewer"}"#.to_vec();
    let (status, answer) = api.call("post", "/api/v1/tokens", t, Some(body));
    assert_refused(
        "NUL in a body",
        (status, answer.clone()),
        400,
        "bad_request",
    );
    assert!(
        answer["detail"].as_str().unwrap().contains("`name`"),
        "{answer}"
    );
    for path in [
        "/api/v1/executions?after=%00",
        "/api/v1/events?type=host.%00",
        "/api/v1/hosts/a%00b",
        "/api/v1/hosts/a%00b/history",
    ] {
        assert_refused(path, api.call("get", path, t, None), 400, "bad_request");
    }

    let facts = json!({
        "hostname": "h1", "os": "linux", "kernel": "6.1.0", "arch": "x86_64", "cpus": 1,
        "memory_bytes": 1u64 << 30, "addresses": ["10.0.0.1"], "agent_version": "test"
    });
    let enrolled = api.post_json(
        "/api/v1/agent/enroll",
        &ctl.join_token,
        json!({"name": "h1", "facts": facts}),
    );
    let credential = enrolled["credential"].as_str().unwrap();
    api.post_json(
        "/api/v1/agent/heartbeat",
        credential,
        json!({"facts": facts}),
    );
    let run = api.post_json(
        "/api/v1/runs",
        &ctl.admin_token,
        json!({"selector": "name=h1", "command": ["printf", "a\\0b"]}),
    );
    let polled = api.post_json("/api/v1/agent/poll", credential, json!({"wait_ms": 5000}));
    let command = polled["commands"][0]["id"].as_str().expect("a command");
    let (status, answer) = api.call(
        "post",
        &format!("/api/v1/agent/commands/{command}/output"),
        Some(credential),
        Some(
            json!({"chunks": [{"seq": 0, "stream": "stdout", "data": "a\u{0}b"}]})
                .to_string()
                .into(),
        ),
    );
    assert_eq!(status, 204, "{answer}");
    let id = run["id"].as_str().unwrap();
    let (status, output) = api.call("get", &format!("/api/v1/executions/{id}/output"), t, None);
    assert_eq!(status, 200, "{output}");
    assert_eq!(output["items"][0]["data"], "a\u{FFFD}b", "{output}");
}

/// `schemathesis`, `st` or `python3 -m schemathesis`: the first that runs. Fails the test
/// when none does (install it with `pip install schemathesis`; `.ci/run` does).
fn schemathesis() -> Command {
    let candidates: [&[&str]; 3] = [
        &["schemathesis"],
        &["st"],
        &["python3", "-m", "schemathesis"],
    ];
    for argv in candidates {
        let ok = Command::new(argv[0])
            .args(&argv[1..])
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..]);
            return cmd;
        }
    }
    panic!(
        "schemathesis is required for this test and was not found (neither `schemathesis`, \
         `st` nor `python3 -m schemathesis` runs): `python3 -m pip install schemathesis`"
    );
}

/// Gives the fuzzer something to find: a host that enrolled, an artifact, a model with
/// a provider, a generator and a service (so a rollout), an execution with a command
/// delivered to the host. Returns dictionaries of known values per path parameter name,
/// and the host's agent credential.
fn seed(api: &Api, ctl: &Controller) -> (Vec<(&'static str, Vec<String>)>, String) {
    let facts = json!({
        "hostname": "lb-1", "os": "linux", "kernel": "6.1.0", "arch": "x86_64",
        "cpus": 2, "memory_bytes": 1_073_741_824u64, "addresses": ["10.0.1.2"],
        "agent_version": "test"
    });
    let enrolled = api.post_json(
        "/api/v1/agent/enroll",
        &ctl.join_token,
        json!({"name": "lb-1", "labels": {"role": "web"}, "facts": facts}),
    );
    let credential = enrolled["credential"].as_str().expect("credential");
    api.post_json(
        "/api/v1/agent/heartbeat",
        credential,
        json!({"facts": facts, "labels": {"role": "web"}}),
    );
    let (status, pushed) = api.rt.block_on(async {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"not really a tar").unwrap();
        let resp = api
            .http
            .post(format!("{}/api/v1/artifacts?name=a.tar.gz", api.base))
            .bearer_auth(&ctl.admin_token)
            .body(gz.finish().unwrap())
            .send()
            .await
            .expect("push");
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.expect("json"),
        )
    });
    assert_eq!(status, 201, "{pushed}");
    let sha = pushed["artifact"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let model = format!(
        "\
kind: provider
name: dc1
type: static
interval: 5m
hosts:
  - {{name: web-1, address: 10.0.1.11, region: dc1, labels: {{role: web}}}}
  - {{name: lb-1, address: 10.0.1.2, region: dc1, labels: {{role: lb}}}}
---
kind: generator
name: hosts-file
targets: label.role=web
path: /tmp/drover-openapi-test/hosts
template: |
  {{% for h in hosts %}}{{{{ h.name }}}}
  {{% endfor %}}
---
kind: hostclass
name: web
selector: label.role=web
---
kind: service
name: hello
version: \"1.0.0\"
artifact:
  url: store:{sha}
  sha256: {sha}
placement:
  hostclass: web
ports:
  http: 8080
run: [\"./bin/hello\"]
"
    );
    let applied = api.post_json(
        "/api/v1/apply",
        &ctl.admin_token,
        json!({"files": [{"path": "model.yaml", "text": model}]}),
    );
    let rollout = applied["execution_id"]
        .as_str()
        .expect("a rollout started")
        .to_string();
    let run = api.post_json(
        "/api/v1/runs",
        &ctl.admin_token,
        json!({"selector": "name=lb-1", "command": ["true"]}),
    );
    let execution = run["id"].as_str().expect("execution id").to_string();
    let polled = api.post_json("/api/v1/agent/poll", credential, json!({"wait_ms": 5000}));
    let command = polled["commands"][0]["id"]
        .as_str()
        .expect("a command for the host")
        .to_string();
    let dictionaries = vec![
        ("host", vec!["lb-1".into(), "web-1".into()]),
        (
            "id",
            vec![execution, rollout, command, "1".into(), "latest".into()],
        ),
        ("name", vec!["hosts-file".into(), "dc1".into()]),
        ("sha", vec![sha]),
    ];
    (dictionaries, credential.to_string())
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_off_the_schema() {
    fuzz(Db::Sqlite);
}

#[test]
fn schemathesis_finds_no_server_error_on_postgres() {
    fuzz(Db::Postgres(common::fresh_pg_db()));
}

/// Runs schemathesis against a seeded controller on `db`. `DROVER_SCHEMATHESIS_EXAMPLES`
/// sets the examples per operation (default 25, which keeps a run near 20 s),
/// `DROVER_SCHEMATHESIS_PHASES` the phases (default `examples,coverage,fuzzing`) and
/// `DROVER_SCHEMATHESIS_CHECKS` the checks, for longer runs by hand.
fn fuzz(db: Db) {
    // Fails at once when schemathesis is missing, before starting anything.
    drop(schemathesis());
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), db);
    let api = Api::new(&ctl);
    let (dictionaries, agent_credential) = seed(&api, &ctl);
    // Known values for the path parameters, half of the time (the other half is
    // generated), so operations get past their 404s.
    let mut config = String::new();
    for (name, values) in &dictionaries {
        config.push_str(&format!(
            "[dictionaries.{name}]\nvalues = {}\n\n",
            serde_json::to_string(values).unwrap()
        ));
    }
    config.push_str("[parameters]\n");
    for (name, _) in &dictionaries {
        config.push_str(&format!(
            "\"path.{name}\" = {{ dictionary = \"{name}\", probability = 0.5 }}\n"
        ));
    }
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, &config).expect("config");
    // The public API with the admin token. Left out: the agents' channel (other
    // credentials; fuzzed below), the streams (they do not end), and revoking tokens
    // (the fuzzer would revoke its own).
    run_schemathesis(
        &ctl,
        dir.path(),
        &config_file,
        "api",
        &ctl.admin_token,
        &[
            "--exclude-path-regex",
            r"^/api/v1/(agent/.*|events/stream|executions/\{id\}/stream)$",
            "--exclude-operation-id",
            "tokens_revoke",
        ],
    );
    // The agents' channel with the seeded host's credential, and enrollment with the
    // join token. Left out: the long-poll (it holds each request up to 30 s).
    run_schemathesis(
        &ctl,
        dir.path(),
        &config_file,
        "agent",
        &agent_credential,
        &[
            "--include-path-regex",
            r"^/api/v1/agent/(heartbeat|commands/.*)$",
        ],
    );
    run_schemathesis(
        &ctl,
        dir.path(),
        &config_file,
        "enroll",
        &ctl.join_token,
        &["--include-path-regex", r"^/api/v1/agent/enroll$"],
    );
}

/// One schemathesis run against `ctl` with `token`; fails the test on any finding.
fn run_schemathesis(
    ctl: &Controller,
    dir: &std::path::Path,
    config_file: &std::path::Path,
    label: &str,
    token: &str,
    filters: &[&str],
) {
    let examples = std::env::var("DROVER_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let phases = std::env::var("DROVER_SCHEMATHESIS_PHASES")
        .unwrap_or_else(|_| "examples,coverage,fuzzing".into());
    let checks = std::env::var("DROVER_SCHEMATHESIS_CHECKS").unwrap_or_else(|_| {
        "not_a_server_error,response_schema_conformance,status_code_conformance,\
         content_type_conformance"
            .into()
    });
    // Output goes to a file: a pipe nobody reads while we wait would fill and stall it.
    let log_path = dir.join(format!("schemathesis-{label}.log"));
    let log = std::fs::File::create(&log_path).expect("log");
    let started = Instant::now();
    let mut child = schemathesis()
        .arg("--config-file")
        .arg(config_file)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", ctl.url))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", &checks])
        .args(["--phases", &phases])
        .args(["--max-examples", &examples])
        .args(["--generation-allow-x00", "true"])
        .args(["--request-timeout", "20"])
        .args(filters)
        .args(["--no-color", "--report", "junit"])
        .arg("--report-dir")
        .arg(dir.join(format!("report-{label}")))
        .current_dir(dir)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn schemathesis");
    let deadline = started + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis ({label}) ran over 300 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!(
        "schemathesis ({label}) took {:.1} s:\n{output}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "schemathesis ({label}) found problems (exit {status}); controller log: {}",
        ctl.data_dir.join("controller.log").display()
    );
    assert!(
        output.contains("Tested:") && !output.contains("Tested: 0"),
        "schemathesis ({label}) tested nothing"
    );
}

/// The identity of a list item, whatever the list: its id, ref, digest, key or instance.
fn identity(item: &Value) -> String {
    for key in ["id", "ref", "sha256"] {
        if let Some(v) = item.get(key).filter(|v| !v.is_null()) {
            return v.to_string();
        }
    }
    if let Some(seq) = item.get("seq") {
        return format!("{}/{seq}", item["host_id"]);
    }
    if let Some(report) = item.get("report") {
        return format!(
            "{}/{}/{}",
            item["host_name"], report["service"], report["index"]
        );
    }
    format!("{}/{}", item["scope"], item["name"])
}

/// The schema an operation answers 200 with, `$ref`s resolved.
fn ok_schema<'a>(doc: &'a Value, op: &'a Value) -> &'a Value {
    let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().expect("ref name")],
        None => schema,
    }
}

/// Every list of the document is a page (`{items, next}` with `limit` and `after`), and
/// walking one item a page visits every item of the whole list exactly once, on both
/// stores. Driven by the document, so a list added as a bare array fails here.
fn every_list_pages(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), db);
    let api = Api::new(&ctl);
    let (dictionaries, credential) = seed(&api, &ctl);
    // Two to three of everything, so each walk crosses pages.
    let facts = json!({"hostname": "lb-1", "os": "linux", "kernel": "6.1.0", "arch": "x86_64",
        "cpus": 2, "memory_bytes": 1_073_741_824u64, "addresses": ["10.0.1.2"],
        "agent_version": "test"});
    let report = |service: &str, index: u32| {
        json!({"service": service, "index": index, "version": "1.0.0", "state": "running",
            "health": "healthy", "spec_hash": "h"})
    };
    api.post_json(
        "/api/v1/agent/heartbeat",
        &credential,
        json!({"facts": facts, "labels": {"role": "web"},
            "instances": [report("api", 0), report("hello", 0), report("hello", 1)]}),
    );
    for name in ["paging-a", "paging-b"] {
        token(&api, &ctl, name, "viewer");
        api.post_json(
            "/api/v1/webhooks",
            &ctl.admin_token,
            json!({"name": name, "auth": "token"}),
        );
    }
    for (scope, name) in [
        ("system", "k1"),
        ("system", "k2"),
        ("user", "k1"),
        ("user", "k3"),
    ] {
        let (status, body) = api.call(
            "put",
            &format!("/api/v1/kv/{scope}/{name}"),
            Some(&ctl.admin_token),
            Some(json!({"value": "v"}).to_string().into()),
        );
        assert!((200..300).contains(&status), "PUT kv: {status} {body}");
    }
    let doc = api.document();
    let fill = |path: &str| {
        let mut out = path.to_string();
        for (param, values) in &dictionaries {
            out = out.replace(&format!("{{{param}}}"), &values[0]);
        }
        out
    };
    let mut walked_lists = 0;
    for (method, path, op) in operations(&doc) {
        if method != "get" || PUBLIC.contains(&path.as_str()) {
            continue;
        }
        let schema = ok_schema(&doc, &op);
        assert_ne!(
            schema["type"], "array",
            "GET {path} answers a bare array: every list answers a page"
        );
        if schema["properties"]["items"].is_null() || schema["properties"]["next"].is_null() {
            continue;
        }
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            params.contains(&"limit") && params.contains(&"after"),
            "GET {path} answers a page but takes no `limit` and `after`: {params:?}"
        );
        let path = fill(&path);
        assert!(!path.contains('{'), "{path}: no value for a path parameter");
        let sep = if path.contains('?') { '&' } else { '?' };
        let get = |query: &str| {
            let (status, body) = api.call(
                "get",
                &format!("{path}{sep}{query}"),
                Some(&ctl.admin_token),
                None,
            );
            assert_eq!(status, 200, "GET {path}?{query}: {body}");
            body
        };
        let (status, body) = api.call(
            "get",
            &format!("{path}{sep}limit=0"),
            Some(&ctl.admin_token),
            None,
        );
        assert_refused(
            &format!("GET {path}?limit=0"),
            (status, body),
            400,
            "bad_request",
        );
        let whole = get("limit=1000");
        assert!(whole["next"].is_null(), "GET {path}: more than 1000 items");
        let whole: Vec<String> = whole["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(identity)
            .collect();
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..5000 {
            let cursor = after
                .as_deref()
                .map(|a| format!("&after={}", percent(a)))
                .unwrap_or_default();
            let page = get(&format!("limit=1{cursor}"));
            let items = page["items"].as_array().expect("items");
            assert!(
                items.len() <= 1,
                "GET {path}?limit=1: {} items",
                items.len()
            );
            for item in items {
                let id = identity(item);
                assert!(!seen.contains(&id), "GET {path}: {id} on two pages");
                seen.push(id);
            }
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        // Lists may grow while walked (events, executions); none loses an item.
        for id in &whole {
            assert!(seen.contains(id), "GET {path}: walking by one missed {id}");
        }
        if !whole.is_empty() {
            walked_lists += 1;
        }
    }
    assert!(
        walked_lists >= 12,
        "only {walked_lists} lists had items to walk"
    );
    // The instances walk above crossed hosts and services; the filters narrow it.
    let (_, hello) = api.call(
        "get",
        "/api/v1/instances?service=hello&host=lb-1",
        Some(&ctl.admin_token),
        None,
    );
    assert_eq!(hello["items"].as_array().map(Vec::len), Some(2), "{hello}");
    // A structured cursor that does not parse is a 400 naming the parameter.
    for bad in [
        "/api/v1/instances?after=lb-1",
        "/api/v1/instances?after=lb-1/hello/x",
        "/api/v1/artifacts?after=12.not-a-digest",
        "/api/v1/kv?after=no-slash",
        "/api/v1/models?after=abc",
    ] {
        let got = api.call("get", bad, Some(&ctl.admin_token), None);
        assert!(
            got.1["detail"]
                .as_str()
                .is_some_and(|d| d.contains("`after`")),
            "{bad}: {}",
            got.1
        );
        assert_refused(bad, got, 400, "bad_request");
    }
}

/// Percent-encodes a cursor for a query string.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn every_list_answers_pages_that_walk_the_whole_list() {
    every_list_pages(Db::Sqlite);
}

#[test]
fn every_list_answers_pages_that_walk_the_whole_list_on_postgres() {
    every_list_pages(Db::Postgres(common::fresh_pg_db()));
}
