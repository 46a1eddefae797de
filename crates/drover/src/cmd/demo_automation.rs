//! The demo's automation part: the `remediation` pack (in `examples/packs/remediation`,
//! built into the binary) restarts an instance that turns unhealthy, through its
//! host's agent, and the trace shows why it ran. When restarts do not help (three
//! within ten minutes), the rule stops itself and a workflow drains the host and posts
//! an alert to a webhook (a listener of the demo's own).

use std::time::Duration;

use drover_proto::automation::{PackFileBody, PackInstall, PackInstalled, Trace};
use drover_proto::executions::Execution;
use drover_proto::page::Page;
use reqwest::Method;

use crate::client::Client;

/// The remediation pack's files.
const PACK: [(&str, &str); 6] = [
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
    (
        "rules/quarantine_flapping.yaml",
        include_str!("../../../../examples/packs/remediation/rules/quarantine_flapping.yaml"),
    ),
    (
        "actions/quarantine.yaml",
        include_str!("../../../../examples/packs/remediation/actions/quarantine.yaml"),
    ),
    (
        "actions/workflows/quarantine.yaml",
        include_str!("../../../../examples/packs/remediation/actions/workflows/quarantine.yaml"),
    ),
];

/// Breaks the instance on `port` and waits until `restarts` restarts have finished and
/// it is healthy again.
async fn break_and_heal(
    client: &Client,
    host: &str,
    port: u16,
    restarts: usize,
) -> anyhow::Result<Execution> {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/break"))
        .send()
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let exec = loop {
        let page: Page<Execution> = client.get("/executions?kind=action&limit=50").await?;
        let done: Vec<Execution> = page
            .items
            .into_iter()
            .filter(|e| {
                e.action
                    .as_ref()
                    .is_some_and(|a| a.action_ref == "remediation.restart")
                    && e.status.is_final()
            })
            .collect();
        if done.len() >= restarts
            && let Some(e) = done.into_iter().next()
        {
            break e;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("no restart within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Healthy again as the agent sees it (its health check passed in a row), not only
    // answering: a break before that would not be a new change of health.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = client.get("/status").await?;
        let healthy = status["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["key"]["host"] == host && d["live"]["health"] == "healthy");
        if healthy {
            return Ok(exec);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the instance did not come back within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A listener that prints the alerts posted to it; returns its URL.
async fn alert_listener() -> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<String>)>
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |body: String| {
            let _ = tx.send(body);
            std::future::ready("ok")
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}/alert", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, rx))
}

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
        "▶ installed pack {} with rules {}",
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
    let (alert_url, mut alerts) = alert_listener().await?;
    let resp = client
        .request(Method::PUT, "/kv/system/alert_url")
        .json(&serde_json::json!({ "value": alert_url }))
        .send()
        .await?;
    crate::client::check(resp).await?;
    let (host, port) = ports.first().copied().unwrap_or(("web-1", 0));
    println!(
        "\n$ curl -X POST http://127.0.0.1:{port}/break   # {host}'s instance now fails its health check"
    );
    let exec = break_and_heal(client, host, port, 1).await?;
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
    println!("▶ {host}'s instance was restarted by its agent and is healthy again");
    // Restarts that do not help: the fourth failure within ten minutes stops the rule,
    // and quarantine_flapping drains the host and alerts.
    for n in 2..=3 {
        break_and_heal(client, host, port, n).await?;
    }
    println!("▶ broke it twice more: restarted twice more (3 restarts in 10 minutes)");
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/break"))
        .send()
        .await?;
    let alert = tokio::time::timeout(Duration::from_secs(60), alerts.recv())
        .await
        .map_err(|_| anyhow::anyhow!("no alert within 60 s"))?
        .unwrap_or_default();
    println!(
        "▶ the fourth failure stopped the rule (rule.stopped); workflow remediation.quarantine drained {host} and posted:\n  {alert}"
    );
    Ok(())
}
