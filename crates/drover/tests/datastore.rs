//! The datastore through the real binary: keys, scopes, TTL, secrets that never leak
//! (not in answers, events, the database file or the controller's log), roles.

mod common;

use std::time::Duration;

use common::{Controller, Db, text, wait_until};
use serde_json::Value;

const SECRET: &str = "pl41ntext-never-shown-7731";

fn token(ctl: &Controller, name: &str, role: &str) -> String {
    let t = ctl.cli_json(&["tokens", "create", name, "--role", role, "--json"]);
    t["secret"].as_str().expect("secret").to_string()
}

#[test]
fn keys_scopes_ttl_and_secrets_on_sqlite() {
    keys_scopes_ttl_and_secrets_that_never_leak(Db::Sqlite);
}

#[test]
fn keys_scopes_ttl_and_secrets_on_postgres() {
    keys_scopes_ttl_and_secrets_that_never_leak(Db::Postgres(common::fresh_pg_db()));
}

fn keys_scopes_ttl_and_secrets_that_never_leak(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut ctl = Controller::start(dir.path(), db);

    // Plain keys.
    let set = ctl.cli(&["kv", "set", "deploy_window", "open"]);
    assert!(set.status.success(), "{:?}", text(&set));
    let got = ctl.cli(&["kv", "get", "deploy_window"]);
    assert_eq!(text(&got).0.trim(), "open");

    // A secret is masked unless asked for, and only admins may ask for system secrets.
    assert!(
        ctl.cli(&["kv", "set", "db_password", SECRET, "--secret"])
            .status
            .success()
    );
    let masked = ctl.cli_json(&["kv", "get", "db_password", "--json"]);
    assert_eq!(masked["value"], "********");
    assert_eq!(masked["secret"], true);
    let listed = ctl.cli_json(&["kv", "list", "--json"]);
    assert!(!listed.to_string().contains(SECRET));
    let plain = ctl.cli(&["kv", "get", "db_password", "--decrypt"]);
    assert_eq!(text(&plain).0.trim(), SECRET);

    let viewer = token(&ctl, "watcher", "viewer");
    let operator = token(&ctl, "oncall", "operator");
    let denied = ctl.cli_as(&viewer, &["kv", "set", "x", "1"]);
    assert!(!denied.status.success());
    assert!(text(&denied).1.contains("operator"), "{:?}", text(&denied));
    let denied = ctl.cli_as(&operator, &["kv", "get", "db_password", "--decrypt"]);
    assert!(!denied.status.success());
    assert!(text(&denied).1.contains("admin"), "{:?}", text(&denied));
    // A user's own secrets are theirs to read.
    assert!(
        ctl.cli_as(
            &operator,
            &["kv", "set", "mine", "s3", "--secret", "--scope", "user"]
        )
        .status
        .success()
    );
    let own = ctl.cli_as(
        &operator,
        &["kv", "get", "mine", "--scope", "user", "--decrypt"],
    );
    assert_eq!(text(&own).0.trim(), "s3");
    let others = ctl.cli_json(&["kv", "list", "--scope", "user", "--json"]);
    assert_eq!(
        others.as_array().map(Vec::len),
        Some(0),
        "admin's own user scope is empty"
    );

    // Bad input: precise, non-zero, nothing changed.
    for (args, needle) in [
        (
            vec!["kv", "set", "bad name", "v"],
            "not allowed in a key name",
        ),
        (
            vec!["kv", "set", "k", "v", "--scope", "team"],
            "unknown scope",
        ),
        (vec!["kv", "set", "k", "v", "--ttl", "0s"], "at least 1s"),
        (vec!["kv", "set", "k", "v", "--ttl", "soon"], "--ttl"),
        (vec!["kv", "get", "nope"], "no key `nope`"),
    ] {
        let out = ctl.cli(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(text(&out).1.contains(needle), "{args:?}: {:?}", text(&out));
    }
    assert_eq!(
        ctl.cli_json(&["kv", "list", "--prefix", "k", "--json"]),
        Value::Array(vec![])
    );

    // TTL: the key disappears by itself, with an event.
    assert!(
        ctl.cli(&["kv", "set", "maintenance", "on", "--ttl", "1s"])
            .status
            .success()
    );
    wait_until(Duration::from_secs(10), "key expired", || {
        !ctl.cli(&["kv", "get", "maintenance"]).status.success()
    });
    wait_until(Duration::from_secs(5), "kv.expired event", || {
        ctl.events("kv.expired")
            .iter()
            .any(|e| e["payload"]["name"] == "maintenance")
    });

    // Delete.
    assert!(ctl.cli(&["kv", "delete", "deploy_window"]).status.success());
    assert!(!ctl.cli(&["kv", "get", "deploy_window"]).status.success());

    // Every change is an event, and no event carries the secret.
    let sets = ctl.events("kv.set");
    assert!(sets.iter().any(|e| e["payload"]["name"] == "db_password"));
    assert!(sets.iter().any(|e| e["payload"]["value"] == "open"));
    let all = ctl.cli(&["events", "--json", "--limit", "1000"]);
    assert!(!String::from_utf8_lossy(&all.stdout).contains(SECRET));

    // Not in the database files (SQLite's main file and WAL) nor in the controller's log.
    ctl.kill9();
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the secret in plaintext",
            entry.path().display()
        );
    }
    let log: Vec<String> = ctl.lines.try_iter().collect();
    assert!(!log.iter().any(|l| l.contains(SECRET)));
    let key = std::fs::read_to_string(dir.path().join("secrets.key")).unwrap();
    assert_eq!(
        key.trim().len(),
        64,
        "the key file holds a 256-bit key in hex"
    );
}

/// The CLI follows the API's pages to the end: 1,205 keys come back from `drover kv
/// list` (two requests of 1,000 and one more), each once, in order, and a prefix
/// narrows them.
#[test]
fn kv_list_follows_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(dir.path(), Db::Sqlite);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    rt.block_on(async {
        for i in 0..1205 {
            let resp = http
                .put(format!("{}/api/v1/kv/system/k{i:04}", ctl.url))
                .bearer_auth(&ctl.admin_token)
                .json(&serde_json::json!({"value": format!("v{i}")}))
                .send()
                .await
                .expect("put");
            assert!(resp.status().is_success(), "PUT k{i:04}: {}", resp.status());
        }
    });
    let all = ctl.cli_json(&["kv", "list", "--json"]);
    let names: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    let expected: Vec<String> = (0..1205).map(|i| format!("k{i:04}")).collect();
    assert_eq!(names, expected);
    let some = ctl.cli_json(&["kv", "list", "--prefix", "k12", "--json"]);
    assert_eq!(some.as_array().map(Vec::len), Some(5), "k1200..k1204");
}
