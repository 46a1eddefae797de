//! The demo's automation part: the `remediation` pack (in `examples/packs/remediation`,
//! built into the binary) restarts an instance that turns unhealthy, through its
//! host's agent, and the trace shows why it ran.

use std::time::Duration;

use drover_proto::automation::{PackFileBody, PackInstall, PackInstalled, Trace};
use drover_proto::executions::Execution;
use drover_proto::page::Page;
use reqwest::Method;

use crate::client::Client;

/// The remediation pack's files.
const PACK: [(&str, &str); 3] = [
    (
        "pack.yaml",
        include_str!("../../../../examples/packs/remediation/pack.yaml"),
    ),
    (
        "actions/restart.yaml",
        include_str!("../../../../examples/packs/remediation/actions/restart.yaml"),
    ),
    (
        "rules/restart_unhealthy.yaml",
        include_str!("../../../../examples/packs/remediation/rules/restart_unhealthy.yaml"),
    ),
];

/// Installs the pack, breaks one instance and waits for the rule to restart it.
pub async fn show(client: &Client, ports: &[(&str, u16)]) -> anyhow::Result<()> {
    println!("\n$ drover packs install examples/packs/remediation");
    let files = PACK
        .iter()
        .map(|(path, text)| PackFileBody {
            path: (*path).to_string(),
            text: (*text).to_string(),
        })
        .collect();
    let done: PackInstalled = client.post("/packs", &PackInstall { files }).await?;
    println!(
        "▶ installed pack {}: rule {} restarts an unhealthy instance",
        done.pack.name,
        done.pack.rules.join(", ")
    );
    for (host, port) in ports {
        let resp = client
            .request(Method::PUT, &format!("/kv/system/hello_port_{host}"))
            .json(&serde_json::json!({ "value": port.to_string() }))
            .send()
            .await?;
        crate::client::check(resp).await?;
    }
    let (host, port) = ports.first().copied().unwrap_or(("web-1", 0));
    println!(
        "\n$ curl -X POST http://127.0.0.1:{port}/break   # {host}'s instance now fails its health check"
    );
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/break"))
        .send()
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let exec = loop {
        let page: Page<Execution> = client.get("/executions?kind=action&limit=20").await?;
        if let Some(e) = page.items.into_iter().find(|e| {
            e.action
                .as_ref()
                .is_some_and(|a| a.action_ref == "remediation.restart")
                && e.status.is_final()
        }) {
            break e;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("no restart within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "▶ the rule saw instance.changed (health → unhealthy) and ran remediation.restart on {host}: {}",
        exec.status.as_str()
    );
    let trace: Trace = client
        .get(&format!("/executions/{}/trace", exec.id))
        .await?;
    println!("$ drover trace {}", exec.id);
    for l in &trace.causes {
        println!("  ← {:<9} {}  {}", l.kind, l.id, l.detail);
    }
    // The supervisor starts it again; its health check passes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ok = reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok {
            println!("▶ {host}'s instance was restarted by its agent and is healthy again");
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the instance did not come back within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
