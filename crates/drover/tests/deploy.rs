//! Deploy engine, controller side: model check, plan and status against a real
//! controller and real agents.

mod common;

use std::path::PathBuf;

use common::{Db, Fleet, text};

fn example_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/model")
}

#[test]
fn model_check_reports_every_error_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("web.yaml"),
        "kind: service\nname: web\nversion: 2.0\nartifact: {url: \"ftp://x\", sha256: abc}\n\
         placement: {hostclass: nosuch}\nrun: [\"./x\"]\nrolout: {}\n",
    )
    .expect("write");
    let out = std::process::Command::new(common::bin())
        .args(["model", "check"])
        .arg(dir.path())
        .output()
        .expect("check");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let d = dir.path().display();
    for want in [
        format!("{d}/web.yaml:3:10: services.web.version: expected a string"),
        format!("{d}/web.yaml:4:18: services.web.artifact.url: unsupported URL scheme `ftp`"),
        format!("{d}/web.yaml:5:24: services.web.placement.hostclass: unknown hostclass `nosuch`"),
        format!(
            "{d}/web.yaml:7:1: services.web.rolout: unknown field `rolout`; did you mean `rollout`?"
        ),
    ] {
        assert!(stderr.contains(&want), "missing `{want}` in:\n{stderr}");
    }
    assert!(stderr.contains("errors in"), "{stderr}");
    let ok = std::process::Command::new(common::bin())
        .args(["model", "check"])
        .arg(example_model())
        .output()
        .expect("check");
    assert!(ok.status.success(), "{}", text(&ok).1);
    assert!(text(&ok).0.starts_with("model ok: 2 services"));
}

#[test]
fn plan_and_status_against_the_live_fleet() {
    let fleet = Fleet::start(Db::Sqlite);
    let model = example_model();
    let out = fleet.ctl.cli(&["plan", model.to_str().expect("path")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes → exit 2\n{stdout}\n{stderr}"
    );
    // hello runs 2 per web host: 4 deploys, rolled one at a time.
    for inst in [
        "hello/web-1#0",
        "hello/web-1#1",
        "hello/web-2#0",
        "hello/web-2#1",
    ] {
        assert!(stdout.contains(inst), "{inst} in plan:\n{stdout}");
    }
    assert!(
        !stdout.contains("db-1"),
        "db-1 is in no hostclass:\n{stdout}"
    );
    let out = fleet
        .ctl
        .cli(&["plan", "--json", model.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["plan"]["counts"]["deploy"], 4, "{json:#}");
    // hello-tools is pinned to demo-3, which never enrolled: blocked, not planned.
    let blocked = json["plan"]["blocked"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 1, "{json:#}");
    assert_eq!(blocked[0]["key"]["host"], "demo-3");
    assert_eq!(blocked[0]["status"], "unreachable");
    // The plan changed nothing: no model stored, status lists nothing.
    let status = fleet.ctl.cli_json(&["status", "--json"]);
    assert_eq!(status["model_version"], serde_json::Value::Null);
    assert_eq!(status["instances"], serde_json::json!([]));
    let out = fleet.ctl.cli(&["status"]);
    assert!(out.status.success());
    assert!(
        text(&out).0.contains("no model applied"),
        "{}",
        text(&out).0
    );
    // A broken model: the plan is refused with every error, exit 1.
    let bad = tempfile::tempdir().expect("tempdir");
    std::fs::write(bad.path().join("x.yaml"), "kind: service\nname: x\n").expect("write");
    let out = fleet.ctl.cli(&["plan", bad.path().to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("x.yaml:1:1"), "{}", text(&out).1);
    // Bad selector for status: usage error naming the column.
    let out = fleet.ctl.cli(&["status", "--on", "label.=x"]);
    assert_eq!(out.status.code(), Some(2));
}
