//! Bad input gets a precise error and changes nothing: CLI arguments, API bodies, tokens,
//! agent messages. Real controller process, raw HTTP where the CLI would refuse first.

mod common;

use common::{Controller, Db, text};
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
            base: format!("{}/api/v1", ctl.url),
            http: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt"),
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
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

    fn post(&self, path: &str, token: &str, body: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            path,
            Some(token),
            Some(body.as_bytes().to_vec()),
        )
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None)
    }
}

/// Sends a request's headers (announcing `length` body bytes) and reads the answer
/// without sending the body.
fn raw_post_headers_only(addr: &str, path: &str, token: &str, length: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .expect("write headers");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n")
            && text[head_end..].contains('}')
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, text)
}

fn controller() -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    (dir, ctl)
}

#[test]
fn malformed_selector_names_the_column_and_exits_2() {
    let (_d, ctl) = controller();
    let out = ctl.cli(&["run", "--on", "name=a,,b", "--", "true"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("column 8"), "{stderr}");
    let out = ctl.cli(&["run", "--on", "nmae=web", "--", "true"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("column 1") && stderr.contains("unknown field"),
        "{stderr}"
    );
    // The API says the same for clients that skip the CLI.
    let api = Api::new(&ctl);
    let (status, body) = api.post(
        "/runs",
        &ctl.admin_token,
        r#"{"selector":"label.=x","command":["true"]}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("column")),
        "{body}"
    );
    assert_eq!(
        api.get("/executions", Some(&ctl.admin_token)).1["items"],
        json!([])
    );
}

#[test]
fn selector_matching_nothing_is_an_error() {
    let (dir, ctl) = controller();
    let _a = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    let out = ctl.cli(&["run", "--on", "label.role=db", "--", "true"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("matches no host"), "{stderr}");
    let api = Api::new(&ctl);
    assert_eq!(
        api.get("/executions", Some(&ctl.admin_token)).1["items"],
        json!([])
    );
}

#[test]
fn bad_durations_and_labels_are_usage_errors() {
    let (_d, ctl) = controller();
    let out = ctl.cli(&["run", "--timeout", "30", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("did you mean `30s`"),
        "{}",
        text(&out).1
    );
    let out = std::process::Command::new(common::bin())
        .args(["agent", "--controller", &ctl.url, "--label", "novalue"])
        .output()
        .expect("agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("expected KEY=VALUE"));
}

#[test]
fn wrong_missing_and_revoked_tokens_get_401_and_an_event_without_the_token() {
    let (_d, ctl) = controller();
    let api = Api::new(&ctl);
    let wrong = "drover_api_0000000000000000000000000000000000000000000000000000000000000000";
    let (status, body) = api.get("/hosts", Some(wrong));
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(api.get("/hosts", None).0, 401);
    // Join tokens are not API tokens.
    assert_eq!(api.get("/hosts", Some(&ctl.join_token)).0, 401);

    let created = ctl.cli_json(&["tokens", "create", "ci", "--role", "operator", "--json"]);
    let secret = created["secret"].as_str().expect("secret").to_string();
    let id = created["token"]["id"].as_str().expect("id").to_string();
    assert_eq!(api.get("/hosts", Some(&secret)).0, 200);
    let out = ctl.cli(&["tokens", "revoke", &id]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        api.get("/hosts", Some(&secret)).0,
        401,
        "revocation takes effect at once"
    );

    let failed = ctl.events("auth.failed");
    assert!(failed.len() >= 4, "{failed:?}");
    let reasons: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["payload"]["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"unknown token"));
    assert!(reasons.contains(&"missing bearer token"));
    assert!(reasons.contains(&"revoked token"));
    let all = serde_json::to_string(&ctl.events("*")).expect("json");
    for s in [
        wrong,
        secret.as_str(),
        ctl.join_token.as_str(),
        ctl.admin_token.as_str(),
    ] {
        assert!(!all.contains(s), "a secret leaked into the event log");
    }
    let log = std::fs::read_to_string(ctl.data_dir.join("controller.log")).unwrap_or_default();
    for s in [
        secret.as_str(),
        ctl.join_token.as_str(),
        ctl.admin_token.as_str(),
    ] {
        assert!(!log.contains(s), "a secret leaked into the controller log");
    }
}

#[test]
fn viewer_tokens_cannot_change_anything() {
    let (_d, ctl) = controller();
    let viewer = ctl.cli_json(&["tokens", "create", "dash", "--json"]);
    let v = viewer["secret"].as_str().expect("secret");
    let api = Api::new(&ctl);
    assert_eq!(api.get("/executions", Some(v)).0, 200);
    let (status, body) = api.post("/runs", v, r#"{"command":["true"]}"#);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("operator"))
    );
    assert_eq!(api.post("/tokens", v, r#"{"name":"x"}"#).0, 403);
}

#[test]
fn malformed_and_oversized_bodies_get_400_and_413() {
    let (_d, ctl) = controller();
    let api = Api::new(&ctl);
    let t = &ctl.admin_token;
    let (status, body) = api.post("/runs", t, r#"{"command":["true"], "parallel": "two"}"#);
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`parallel`")),
        "{body}"
    );
    let (status, body) = api.post("/runs", t, r#"{"command": ["true"], "bogus": 1}"#);
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("bogus")),
        "{body}"
    );
    let (status, body) = api.post("/runs", t, r#"{"command": ["#);
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 1")),
        "{body}"
    );
    let (status, _) = api.post("/runs", t, r#"{"command": []}"#);
    assert_eq!(status, 400);
    // Oversized: the controller answers 413 from the Content-Length alone, without
    // reading the body (raw socket: send only the headers, then read the answer).
    let (status, body) = raw_post_headers_only(&ctl.addr, "/api/v1/runs", t, 5 * 1024 * 1024);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    let (status, body) = api.get("/events?limit=0", Some(t));
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("limit")));
    // Model versions are paged like every list: a bad cursor or limit is named.
    let (status, body) = api.get("/models?after=abc", Some(t));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`after`"))
    );
    let (status, body) = api.get("/models?limit=1001", Some(t));
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.get("/models", Some(t));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));
    assert_eq!(body["next"], json!(null));
    let (status, _) = api.get("/nope", Some(t));
    assert_eq!(status, 404);
    assert_eq!(
        api.get("/executions", Some(t)).1["items"],
        json!([]),
        "nothing changed"
    );
}

#[test]
fn garbage_from_an_agent_is_refused_and_the_controller_keeps_serving() {
    let (_d, ctl) = controller();
    let api = Api::new(&ctl);
    let facts = json!({"hostname":"h","os":"linux","kernel":"k","arch":"x","cpus":1,"memory_bytes":1,"addresses":[],"agent_version":"0"});
    let enroll = json!({"name":"rogue","labels":{},"facts":facts}).to_string();
    let (status, body) = api.post("/agent/enroll", &ctl.join_token, &enroll);
    assert_eq!(status, 201, "{body}");
    let cred = body["credential"].as_str().expect("credential").to_string();
    for garbage in [
        r#"{"facts": 12}"#,
        "not json",
        r#"{"running": "x"}"#,
        r#"{"wait_ms": -1}"#,
    ] {
        let (status, body) = api.post("/agent/heartbeat", &cred, garbage);
        assert_eq!(status, 400, "{garbage}: {body}");
    }
    let (status, _) = api.post("/agent/poll", &cred, r#"{"wait_ms":"soon"}"#);
    assert_eq!(status, 400);
    let (status, _) = api.post(
        "/agent/commands/nope/status",
        &cred,
        r#"{"state":"exploded"}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = api.post("/agent/commands/nope/output", &cred, r#"{"chunks":[]}"#);
    assert_eq!(status, 404);
    let (status, body) = api.post(
        "/agent/enroll",
        &ctl.join_token,
        &json!({"name": "bad name", "labels": {}, "facts": facts}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("field `name`") && d.contains("column 4")),
        "the field and the column: {body}"
    );
    // An API token cannot act as an agent, nor an agent as a user.
    assert_eq!(api.post("/agent/heartbeat", &ctl.admin_token, "{}").0, 401);
    assert_eq!(api.get("/hosts", Some(&cred)).0, 401);
    assert_eq!(api.get("/health", None).0, 200);
    let log = std::fs::read_to_string(ctl.data_dir.join("controller.log")).unwrap_or_default();
    assert!(
        log.contains("refused a malformed request body") && log.contains("/api/v1/agent/heartbeat"),
        "malformed agent messages are logged: {log}"
    );
    let hosts = api.get("/hosts", Some(&ctl.admin_token)).1;
    assert_eq!(hosts["items"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(
        hosts["items"][0]["facts"]["hostname"], "h",
        "garbage changed nothing"
    );
}
