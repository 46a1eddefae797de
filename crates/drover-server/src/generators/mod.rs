//! Generators: config rendered from the live inventory and installed on target hosts.
//!
//! A background task watches the store's notices. When anything a generator reads
//! changes (instances, hosts, drains, the model), it waits out the debounce, then
//! renders every generator for each of its target hosts. Only a host whose render
//! differs from what is live gets a `WriteFile` command; the commands of one pass
//! travel as one `generate` execution (so they show in `drover executions` with
//! their output). The agent stages, checks, swaps atomically (keeping the previous
//! file) and reloads; a failed check keeps the old file and never reloads. The
//! outcome of each target is collected into `generator_outputs`, with a
//! `generator.applied` or `generator.failed` event.
//!
//! Rollouts drain through the same path: see `drover_store`'s `lb` module for the
//! drain epoch that tells a rollout when the pool without its instance is live.

pub(crate) mod context;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::generate::{Rendered, render};
use drover_core::model::Generator;
use drover_proto::agent::CommandSpec;
use drover_proto::executions::TargetStatus;
use drover_proto::hosts::{Host, HostStatus};
use drover_store::{GenerateItem, GeneratorOutput, NewExecution, NewTarget, Notice};
use tokio::sync::Mutex;

use crate::state::AppState;
use context::{Snapshot, host_entry, snapshot, targets};

/// How long check + reload may take on a host.
const WRITE_TIMEOUT_MS: u64 = 60_000;
/// A pass runs at least this often (collects results, retries undelivered writes).
const PERIOD: Duration = Duration::from_secs(3);
/// An undelivered write (host down, timed out) is retried after this long.
const RETRY_AFTER_MS: i64 = 10_000;

/// What one generator would write on one host.
#[derive(Debug, Clone)]
pub(crate) struct Preview {
    /// Target host.
    pub host: String,
    /// The render, or why it failed.
    pub rendered: Result<Rendered, String>,
    /// What is live there (as last applied), if anything.
    pub live: Option<String>,
}

/// Renders `generator` for every target host, without writing anything.
pub(crate) async fn preview(
    state: &Arc<AppState>,
    generator: &str,
    host: Option<&str>,
) -> anyhow::Result<Option<Vec<Preview>>> {
    let Some(snap) = snapshot(state).await? else {
        return Ok(None);
    };
    let Some(g) = snap.model.generators.get(generator) else {
        return Ok(None);
    };
    let outputs: HashMap<String, GeneratorOutput> = state
        .store
        .generator_outputs(Some(generator))
        .await?
        .into_iter()
        .map(|o| (o.host_id.clone(), o))
        .collect();
    let mut hosts: Vec<&Host> = targets(g, &snap.hosts);
    if let Some(name) = host {
        hosts = snap.hosts.iter().filter(|h| h.name == name).collect();
    }
    Ok(Some(
        hosts
            .into_iter()
            .map(|h| {
                let output = outputs.get(&h.id);
                Preview {
                    host: h.name.clone(),
                    rendered: render(&g.name, &g.template, &snap.inventory, &host_entry(h))
                        .map_err(|e| e.reason),
                    live: output.and_then(|o| o.applied_content.clone()),
                }
            })
            .collect(),
    ))
}

/// The check command with the staged path in place of `{{ staged }}`.
fn check_command(check: &str, path: &str) -> String {
    let staged = CommandSpec::write_file_staged_path(path);
    check
        .replace("{{ staged }}", &staged)
        .replace("{{staged}}", &staged)
        .replace("{staged}", &staged)
}

/// What to do about one target host.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Nothing to write; the live content reflects the epoch.
    Unchanged,
    /// Wait: the same bytes are on their way, or were refused (until they change).
    Wait,
    /// Write the render.
    Write,
}

fn next(out: Option<&GeneratorOutput>, sha: &str, now: i64, force: bool) -> Next {
    let Some(o) = out else {
        return Next::Write;
    };
    let wanted = o.wanted_sha.as_deref() == Some(sha);
    if o.status == "pending" {
        return if wanted { Next::Wait } else { Next::Write };
    }
    if o.applied_sha.as_deref() == Some(sha) {
        return Next::Unchanged;
    }
    if force {
        return Next::Write;
    }
    match o.status.as_str() {
        // The check refused these bytes: writing them again would fail again.
        "failed" if wanted => Next::Wait,
        "error" if wanted && now - o.updated_at < RETRY_AFTER_MS => Next::Wait,
        _ => Next::Write,
    }
}

/// Renders `g` for its targets and sends what changed. Returns the `generate`
/// execution id, if one was started.
async fn sync_one(
    state: &Arc<AppState>,
    snap: &Snapshot,
    g: &Generator,
    actor: &str,
    force: bool,
    render_errors: &mut BTreeMap<String, String>,
) -> anyhow::Result<Option<String>> {
    let outputs: HashMap<String, GeneratorOutput> = state
        .store
        .generator_outputs(Some(&g.name))
        .await?
        .into_iter()
        .map(|o| (o.host_id.clone(), o))
        .collect();
    let now = chrono::Utc::now().timestamp_millis();
    let hosts = targets(g, &snap.hosts);
    let mut items = Vec::new();
    let mut new_targets = Vec::new();
    for h in &hosts {
        let rendered = match render(&g.name, &g.template, &snap.inventory, &host_entry(h)) {
            Ok(r) => r,
            Err(e) => {
                // Once per distinct error, not on every pass.
                let key = format!("{}/{}", g.name, h.id);
                if render_errors.get(&key) != Some(&e.reason) {
                    render_errors.insert(key, e.reason.clone());
                    tracing::warn!(generator = %g.name, host = %h.name, error = %e.reason, "generator did not render");
                    state
                        .store
                        .append_event(drover_store::NewEvent::new(
                            drover_proto::events::types::GENERATOR_RENDER_FAILED,
                            "system",
                            serde_json::json!({
                                "generator": g.name, "host": h.name, "error": e.reason,
                            }),
                        ))
                        .await?;
                }
                continue;
            }
        };
        render_errors.remove(&format!("{}/{}", g.name, h.id));
        match next(outputs.get(&h.id), &rendered.sha256, now, force) {
            Next::Unchanged => {
                state
                    .store
                    .generator_unchanged(&g.name, &h.id, snap.epoch)
                    .await?;
            }
            Next::Wait => {}
            Next::Write => {
                let command = CommandSpec::WriteFile {
                    generator: g.name.clone(),
                    path: g.path.clone(),
                    content: rendered.content.clone(),
                    sha256: rendered.sha256.clone(),
                    check: g.check.as_deref().map(|c| check_command(c, &g.path)),
                    reload: g.reload.clone(),
                    timeout_ms: WRITE_TIMEOUT_MS,
                };
                new_targets.push(NewTarget {
                    host_id: h.id.clone(),
                    host_name: h.name.clone(),
                    command: Some(command),
                });
                items.push(GenerateItem {
                    host_id: h.id.clone(),
                    host_name: h.name.clone(),
                    content: rendered.content,
                    sha256: rendered.sha256,
                    epoch: snap.epoch,
                });
            }
        }
    }
    let Some(first) = new_targets.first().and_then(|t| t.command.clone()) else {
        return Ok(None);
    };
    let id = uuid::Uuid::now_v7().to_string();
    let new = NewExecution {
        id: id.clone(),
        kind: "generate".into(),
        actor: actor.to_string(),
        selector: g.targets.clone(),
        spec: serde_json::json!({
            "generator": g.name,
            "path": g.path,
            "hosts": items.iter().map(|i| serde_json::json!({"host": i.host_name, "sha256": i.sha256})).collect::<Vec<_>>(),
        }),
        command: first,
        parallel: None,
        timeout_ms: Some(WRITE_TIMEOUT_MS * 2),
        targets: new_targets,
        parent: None,
    };
    state.store.start_generate(&g.name, &new, &items).await?;
    crate::monitor::dispatch(state, &id).await;
    Ok(Some(id))
}

/// The last non-empty lines of a target's output: the checker's message.
async fn failure_message(state: &AppState, execution_id: &str, host_id: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut after = 0;
    while let Ok(chunk) = state.store.list_output(execution_id, after, 500).await {
        let Some((last, _)) = chunk.last() else { break };
        after = *last;
        for (_, o) in chunk.iter().filter(|(_, o)| o.host_id == host_id) {
            lines.extend(
                o.data
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
        }
        if lines.len() > 200 {
            lines.drain(..lines.len() - 20);
        }
    }
    let start = lines.len().saturating_sub(5);
    lines[start..].join("\n")
}

/// Moves finished `generate` targets into `generator_outputs`.
async fn collect(state: &Arc<AppState>) -> anyhow::Result<()> {
    for o in state.store.generator_outputs(None).await? {
        if o.status != "pending" {
            continue;
        }
        let Some(execution_id) = &o.execution_id else {
            continue;
        };
        let Some(exec) = state.store.get_execution(execution_id).await? else {
            state
                .store
                .finish_generate(
                    execution_id,
                    &o.host_id,
                    "error",
                    Some("execution vanished"),
                )
                .await?;
            continue;
        };
        let Some(t) = exec.targets.iter().find(|t| t.host_id == o.host_id) else {
            continue;
        };
        let (status, error) = match t.status {
            TargetStatus::Ok => ("ok", None),
            TargetStatus::Failed => {
                let msg = failure_message(state, execution_id, &o.host_id).await;
                (
                    "failed",
                    Some(if msg.is_empty() {
                        t.error.clone().unwrap_or_default()
                    } else {
                        msg
                    }),
                )
            }
            s if s.is_final() => (
                "error",
                Some(
                    t.error
                        .clone()
                        .unwrap_or_else(|| format!("target {}", s.as_str())),
                ),
            ),
            _ => continue,
        };
        let after = state
            .store
            .finish_generate(execution_id, &o.host_id, status, error.as_deref())
            .await?;
        if let Some(after) = after.filter(|_| status != "ok") {
            tracing::warn!(generator = %after.generator, host = %after.host_name, error = ?after.error, "generated config refused");
        }
    }
    Ok(())
}

/// Serialises passes within one controller (the loop, `apply` requests).
#[derive(Default)]
pub(crate) struct Generators {
    lock: Mutex<BTreeMap<String, String>>,
}

/// One pass: collect results, then render and send every generator (or only `only`).
/// Returns the `generate` executions started.
pub(crate) async fn pass(
    state: &Arc<AppState>,
    only: Option<&str>,
    actor: &str,
    force: bool,
) -> anyhow::Result<Passed> {
    let mut render_errors = state.generators.lock.lock().await;
    let Some(model) = crate::api::deploy::applied_model(state).await? else {
        return Ok(Passed::default());
    };
    let names: Vec<String> = model.generators.keys().cloned().collect();
    state.store.forget_generator_outputs(None, &names).await?;
    // Without generators there is nothing to read the inventory for.
    let Some(debounce) = model.generators.values().map(|g| g.debounce).min() else {
        return Ok(Passed::default());
    };
    collect(state).await?;
    let snap = context::snapshot_of(state, model).await?;
    let mut started = Vec::new();
    for g in snap.model.generators.values() {
        if only.is_some_and(|o| o != g.name) {
            continue;
        }
        if let Some(id) = sync_one(state, &snap, g, actor, force, &mut render_errors).await? {
            started.push(id);
        }
    }
    Ok(Passed {
        started,
        debounce: Some(debounce),
    })
}

/// What a [`pass`] did.
#[derive(Debug, Default)]
pub(crate) struct Passed {
    /// `generate` executions started.
    pub started: Vec<String>,
    /// The smallest debounce of the model's generators (`None`: it has none).
    pub debounce: Option<Duration>,
}

/// Whether a notice may change what a generator renders or collects.
fn relevant(n: &Notice) -> bool {
    matches!(
        n,
        Notice::Event { .. }
            | Notice::Drains { .. }
            | Notice::Host { .. }
            | Notice::Execution { .. }
            | Notice::Generator { .. }
    )
}

/// Starts the generator task: a pass after every relevant change (once the
/// smallest generator debounce has passed without another), and every few seconds.
pub(crate) fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut notices = state.store.notifier().subscribe();
        let mut dirty_since: Option<Instant> = Some(Instant::now());
        let mut last_pass = Instant::now();
        let mut debounce = Duration::from_millis(200);
        loop {
            let wait = match dirty_since {
                Some(t) => debounce.saturating_sub(t.elapsed()),
                None => PERIOD.saturating_sub(last_pass.elapsed()),
            };
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                n = notices.recv() => {
                    let hit = match &n {
                        Ok(n) => relevant(n),
                        Err(_) => true, // lagged: assume the worst
                    };
                    if hit {
                        // Debounce: the quiet time restarts with every change.
                        dirty_since = Some(Instant::now());
                    }
                    continue;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            dirty_since = None;
            last_pass = Instant::now();
            match pass(&state, None, "system", false).await {
                Ok(Passed {
                    debounce: Some(d), ..
                }) => {
                    debounce = d;
                    // Rollouts waiting for their load balancer can go on.
                    crate::rollout::tick_all(&state).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "generator pass failed"),
            }
        }
    });
}

/// Status of a generator's outputs for the rollout conductor: the smallest applied
/// drain epoch over its target hosts that are up, and the first failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LbState {
    /// Smallest applied epoch over up target hosts (`i64::MAX` when it has none).
    pub applied_epoch: i64,
    /// A host whose last write failed, with the reason.
    pub failure: Option<String>,
}

/// [`LbState`] of every generator of the applied model.
pub(crate) async fn lb_states(state: &Arc<AppState>) -> anyhow::Result<HashMap<String, LbState>> {
    let Some(model) = crate::api::deploy::applied_model(state).await? else {
        return Ok(HashMap::new());
    };
    let hosts = state.store.list_hosts().await?;
    let outputs = state.store.generator_outputs(None).await?;
    let mut out = HashMap::new();
    for g in model.generators.values() {
        let mut s = LbState {
            applied_epoch: i64::MAX,
            failure: None,
        };
        for h in targets(g, &hosts)
            .into_iter()
            .filter(|h| h.status == HostStatus::Up)
        {
            let o = outputs
                .iter()
                .find(|o| o.generator == g.name && o.host_id == h.id);
            let epoch = o.map_or(0, |o| o.applied_epoch);
            s.applied_epoch = s.applied_epoch.min(epoch);
            if let Some(o) = o.filter(|o| o.status == "failed") {
                s.failure.get_or_insert_with(|| {
                    format!(
                        "generator {} failed on {}: {}",
                        g.name,
                        h.name,
                        o.error.clone().unwrap_or_default()
                    )
                });
            }
        }
        out.insert(g.name.clone(), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(status: &str, wanted: &str, applied: Option<&str>, updated_at: i64) -> GeneratorOutput {
        GeneratorOutput {
            generator: "lb".into(),
            host_id: "h".into(),
            host_name: "h".into(),
            wanted_sha: Some(wanted.into()),
            wanted_content: None,
            wanted_epoch: Some(1),
            execution_id: Some("e".into()),
            applied_sha: applied.map(str::to_string),
            applied_content: None,
            applied_epoch: 0,
            status: status.into(),
            error: None,
            updated_at,
        }
    }

    #[test]
    fn what_to_do_with_a_render() {
        assert_eq!(next(None, "a", 0, false), Next::Write);
        // In flight: the same bytes wait, other bytes supersede them.
        assert_eq!(
            next(Some(&out("pending", "a", None, 0)), "a", 0, false),
            Next::Wait
        );
        assert_eq!(
            next(Some(&out("pending", "b", Some("a"), 0)), "a", 0, false),
            Next::Write
        );
        assert_eq!(
            next(Some(&out("ok", "a", Some("a"), 0)), "a", 0, false),
            Next::Unchanged
        );
        assert_eq!(
            next(Some(&out("ok", "a", Some("a"), 0)), "b", 0, false),
            Next::Write
        );
        // Refused bytes are not sent again until they change (or are forced).
        assert_eq!(
            next(Some(&out("failed", "b", Some("a"), 0)), "b", 0, false),
            Next::Wait
        );
        assert_eq!(
            next(Some(&out("failed", "b", Some("a"), 0)), "b", 0, true),
            Next::Write
        );
        assert_eq!(
            next(Some(&out("failed", "b", Some("a"), 0)), "a", 0, false),
            Next::Unchanged
        );
        // Undelivered bytes are retried after a while.
        assert_eq!(
            next(Some(&out("error", "b", None, 0)), "b", 5_000, false),
            Next::Wait
        );
        assert_eq!(
            next(Some(&out("error", "b", None, 0)), "b", 20_000, false),
            Next::Write
        );
    }

    #[test]
    fn the_check_gets_the_staged_path() {
        assert_eq!(
            check_command("haproxy -c -f {{ staged }}", "/etc/haproxy/haproxy.cfg"),
            "haproxy -c -f /etc/haproxy/haproxy.cfg.drover-staged"
        );
    }
}
