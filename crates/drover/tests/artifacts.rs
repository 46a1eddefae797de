//! The artifact store end to end: real .tar.gz files, the CLI, downloads by people and
//! by agents, and what bad uploads get.

mod common;

use common::{Controller, Db, text};
use sha2::{Digest, Sha256};

fn get(url: &str, token: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    })
}

#[test]
fn artifacts_push_list_download_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    // A real release tarball.
    let src = dir.path().join("web-1.0");
    std::fs::create_dir_all(src.join("bin")).expect("mkdir");
    std::fs::write(src.join("bin/server"), "#!/bin/sh\necho v1\n").expect("write");
    let tarball = dir.path().join("web-1.0.tar.gz");
    common::tarball(&src, &tarball);
    let bytes = std::fs::read(&tarball).expect("read");
    let sha = hex::encode(Sha256::digest(&bytes));

    let pushed = ctl.cli_json(&[
        "artifacts",
        "push",
        tarball.to_str().expect("path"),
        "--json",
    ]);
    assert_eq!(pushed["created"], true);
    assert_eq!(pushed["artifact"]["sha256"], sha.as_str());
    assert_eq!(pushed["url"], format!("store:{sha}"));
    let again = ctl.cli_json(&[
        "artifacts",
        "push",
        tarball.to_str().expect("path"),
        "--json",
    ]);
    assert_eq!(again["created"], false, "same bytes: nothing new");
    let list = ctl.cli_json(&["artifacts", "list", "--json"]);
    assert_eq!(list.as_array().map(|l| l.len()), Some(1));
    assert_eq!(list[0]["name"], "web-1.0.tar.gz");
    assert_eq!(ctl.events("artifact.pushed").len(), 1);

    // People and agents download it, byte for byte.
    let url = format!("{}/api/v1/artifacts/{sha}", ctl.url);
    let (status, body) = get(&url, &ctl.admin_token);
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    let facts = serde_json::json!({"hostname":"h","os":"linux","kernel":"k","arch":"x","cpus":1,"memory_bytes":1,"addresses":[],"agent_version":"0"});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let cred: String = rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/agent/enroll", ctl.url))
            .bearer_auth(&ctl.join_token)
            .json(&serde_json::json!({"name": "a1", "facts": facts}))
            .send()
            .await
            .expect("enroll");
        let v: serde_json::Value = resp.json().await.expect("json");
        v["credential"].as_str().expect("credential").to_string()
    });
    let (status, body) = get(&url, &cred);
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    assert_eq!(
        get(&url, &ctl.join_token).0,
        401,
        "join tokens cannot download"
    );
    assert_eq!(
        get(
            &format!("{}/api/v1/artifacts/{}", ctl.url, "0".repeat(64)),
            &ctl.admin_token
        )
        .0,
        404
    );
    assert_eq!(
        get(
            &format!("{}/api/v1/artifacts/nothex", ctl.url),
            &ctl.admin_token
        )
        .0,
        400
    );

    // Not a gzip: refused, nothing stored.
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello").expect("write");
    let out = ctl.cli(&["artifacts", "push", junk.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("must be a .tar.gz"),
        "{}",
        text(&out).1
    );
    // A missing file is a usage error.
    let out = ctl.cli(&["artifacts", "push", "/nonexistent.tar.gz"]);
    assert_eq!(out.status.code(), Some(2));
    // Viewers cannot push.
    let viewer = ctl.cli_json(&["tokens", "create", "v", "--json"]);
    let out = ctl.cli_as(
        viewer["secret"].as_str().expect("secret"),
        &["artifacts", "push", tarball.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("operator"), "{}", text(&out).1);
    assert_eq!(
        ctl.cli_json(&["artifacts", "list", "--json"])
            .as_array()
            .map(|l| l.len()),
        Some(1)
    );
    let stored: Vec<_> = std::fs::read_dir(ctl.data_dir.join("artifacts"))
        .expect("artifacts dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        stored,
        [format!("{sha}.tar.gz")],
        "no leftovers from refused uploads"
    );
}
