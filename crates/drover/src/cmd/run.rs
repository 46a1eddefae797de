//! `drover run`: a command on many hosts, output streamed live, summary at the end.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use drover_proto::executions::{
    Execution, ExecutionStatus, HostOutput, RunRequest, Target, stream_events,
};
use drover_proto::page::Page;

use super::{Conn, usage_error};
use crate::client::{Client, check};
use crate::render;
use crate::sse::SseReader;

/// Run a command on every matching host, like pssh, through the agents.
///
/// Output is streamed live, each line prefixed with its host. A summary with each host's
/// exit code and duration follows. The exit code is 0 only if every host succeeded; 1 if
/// any failed, timed out, was unreachable or was cancelled; 2 for bad arguments.
/// Ctrl-C cancels the run on every host (a second Ctrl-C leaves at once).
///
/// Selectors: `all` (default), `name=web-*`, `label.role=db`, `fact.os=linux`,
/// `!=` to exclude, comma for AND.
///
/// Examples:
///   drover run -- uptime
///   drover run --on label.role=web --parallel 2 --timeout 30s -- sh -c 'systemctl restart app'
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Which hosts.
    #[arg(long, default_value = "all")]
    on: String,
    /// At most this many hosts at once (default: all).
    #[arg(long)]
    parallel: Option<u32>,
    /// Kill a host's command (its whole process group) after this long, e.g. 30s, 5m.
    #[arg(long)]
    timeout: Option<String>,
    /// Print the final execution with each host's output as JSON instead of streaming.
    #[arg(long)]
    json: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = drover_core::selector::parse(&args.on) {
        return Ok(usage_error(format!("--on `{}`: {e}", args.on)));
    }
    if args.parallel == Some(0) {
        return Ok(usage_error("--parallel must be at least 1"));
    }
    let timeout_ms = match &args.timeout {
        Some(t) => match super::server::duration_flag("timeout", t) {
            Ok(d) if d.as_millis() > 0 => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Ok(_) => return Ok(usage_error("--timeout must be more than 0")),
            Err(e) => return Ok(usage_error(e)),
        },
        None => None,
    };
    let client = args.conn.client()?;
    let exec: Execution = client
        .post(
            "/runs",
            &RunRequest {
                selector: args.on.clone(),
                command: args.command.clone(),
                parallel: args.parallel,
                timeout_ms,
            },
        )
        .await?;
    let final_exec = follow(&client, &exec, !args.json).await?;
    if args.json {
        let output = collect_output(&client, &final_exec.id).await?;
        let doc = serde_json::json!({ "execution": final_exec, "output": output });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_summary(&final_exec);
    }
    Ok(if final_exec.status == ExecutionStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prefixes output lines with their host, holding back partial lines until complete.
struct Printer {
    width: usize,
    partial: HashMap<(String, bool), String>,
    colors: HashMap<String, usize>,
    tty: bool,
}

impl Printer {
    fn new(targets: &[Target]) -> Printer {
        let width = targets.iter().map(|t| t.host_name.len()).max().unwrap_or(4);
        let colors = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.host_name.clone(), i))
            .collect();
        Printer {
            width,
            partial: HashMap::new(),
            colors,
            tty: render::stdout_is_tty(),
        }
    }

    fn prefix(&self, host: &str, stderr: bool) -> String {
        let padded = format!("{host:<w$}", w = self.width);
        let sep = if stderr { "!" } else { "|" };
        if self.tty {
            let i = self.colors.get(host).copied().unwrap_or(0);
            format!("{} {sep} ", render::host_color(&padded, i))
        } else {
            format!("{padded} {sep} ")
        }
    }

    fn chunk(&mut self, c: &HostOutput) {
        let stderr = c.stream == drover_proto::agent::OutputStream::Stderr;
        let key = (c.host_name.clone(), stderr);
        let mut text = self.partial.remove(&key).unwrap_or_default();
        text.push_str(&c.data);
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(pos) = rest.find('\n') {
            out.push_str(&self.prefix(&c.host_name, stderr));
            out.push_str(&rest[..=pos]);
            rest = &rest[pos + 1..];
        }
        if !rest.is_empty() {
            self.partial.insert(key, rest.to_string());
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    fn flush_host(&mut self, host: &str) {
        for stderr in [false, true] {
            if let Some(rest) = self.partial.remove(&(host.to_string(), stderr)) {
                println!("{}{rest}", self.prefix(host, stderr));
            }
        }
    }
}

/// Follows an execution's stream until it is final; prints output when `print` is set.
/// Ctrl-C asks the controller to cancel; a second Ctrl-C returns at once. A dropped
/// stream is reopened (output already shown is not shown twice).
pub async fn follow(client: &Client, exec: &Execution, print: bool) -> anyhow::Result<Execution> {
    let mut printer = Printer::new(&exec.targets);
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    let mut cancels = 0u32;
    let mut failures = 0u32;
    // One listener for the whole follow: a `ctrl_c()` future made anew on each turn
    // misses a SIGINT that arrives between two turns (seen under load).
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        let resp = client
            .request(
                reqwest::Method::GET,
                &format!("/executions/{}/stream", exec.id),
            )
            .send()
            .await;
        let mut reader = match resp {
            Ok(r) => SseReader::new(check(r).await?),
            Err(e) => {
                failures += 1;
                if failures > 30 {
                    anyhow::bail!("lost the controller: {e}");
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                m = reader.next() => m,
                _ = interrupt.recv() => {
                    cancels += 1;
                    if cancels > 1 {
                        anyhow::bail!("interrupted; the run goes on being cancelled on the controller");
                    }
                    eprintln!("cancelling on every host (Ctrl-C again to leave now)…");
                    let _: Execution = client
                        .post(&format!("/executions/{}/cancel", exec.id), &serde_json::json!({}))
                        .await?;
                    continue;
                }
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => break,
            };
            failures = 0;
            match msg.event.as_str() {
                stream_events::OUTPUT => {
                    let c: HostOutput = serde_json::from_str(&msg.data)?;
                    let next = next_seq.entry(c.host_id.clone()).or_insert(0);
                    let marker = c.data == drover_proto::executions::TRUNCATION_MARKER;
                    if c.seq < *next && !marker {
                        continue;
                    }
                    if !marker {
                        *next = c.seq + 1;
                    }
                    if print && !marker {
                        printer.chunk(&c);
                    }
                }
                stream_events::TARGET => {
                    let t: Target = serde_json::from_str(&msg.data)?;
                    if print && t.status.is_final() {
                        printer.flush_host(&t.host_name);
                    }
                }
                stream_events::EXECUTION => {
                    let e: Execution = serde_json::from_str(&msg.data)?;
                    return Ok(e);
                }
                _ => {}
            }
        }
        // The stream ended without the final execution: the controller restarted or the
        // connection dropped. Reopen it.
        failures += 1;
        if failures > 30 {
            anyhow::bail!("the execution stream keeps failing");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Every host's stored output, as text per stream.
async fn collect_output(client: &Client, id: &str) -> anyhow::Result<serde_json::Value> {
    let mut per_host: std::collections::BTreeMap<String, (String, String)> = Default::default();
    let mut after = 0i64;
    loop {
        let page: Page<HostOutput> = client
            .get(&format!("/executions/{id}/output?limit=1000&after={after}"))
            .await?;
        for o in &page.items {
            let entry = per_host.entry(o.host_name.clone()).or_default();
            match o.stream {
                drover_proto::agent::OutputStream::Stdout => entry.0.push_str(&o.data),
                drover_proto::agent::OutputStream::Stderr => entry.1.push_str(&o.data),
            }
        }
        match page.next.and_then(|n| n.parse().ok()) {
            Some(n) => after = n,
            None => break,
        }
    }
    Ok(serde_json::Value::Object(
        per_host
            .into_iter()
            .map(|(h, (out, err))| (h, serde_json::json!({ "stdout": out, "stderr": err })))
            .collect(),
    ))
}

/// The per-host summary table and a one-line verdict.
pub fn print_summary(exec: &Execution) {
    let mut table = render::table(&["HOST", "STATUS", "EXIT", "DURATION", "NOTE"]);
    for t in &exec.targets {
        table.add_row(vec![
            t.host_name.clone(),
            render::target_status(t.status),
            t.exit_code
                .map(|c| c.to_string())
                .or(t.signal.map(|s| format!("signal {s}")))
                .unwrap_or_else(|| "-".into()),
            t.duration_ms
                .map(|d| {
                    drover_core::duration::format_duration(std::time::Duration::from_millis(d))
                })
                .unwrap_or_else(|| "-".into()),
            match (&t.error, t.truncated) {
                (Some(e), _) => e.clone(),
                (None, true) => "stored output truncated".into(),
                (None, false) => String::new(),
            },
        ]);
    }
    println!("\n{table}");
    let c = &exec.counts;
    println!(
        "execution {}: {} — {} ok, {} failed, {} cancelled of {}",
        exec.id,
        render::execution_status(exec.status),
        c.ok,
        c.failed,
        c.cancelled,
        c.total
    );
}
