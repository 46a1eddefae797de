//! Remote runners (`remote-shell-cmd`, `remote-shell-script`, `drover.run`): the
//! command runs through the drover agents of the chosen hosts — no SSH — as a `run`
//! execution that is a step of the action execution. The action finishes when that
//! run does, with the result keyed by host.

use std::sync::Arc;

use drover_proto::agent::OutputStream;
use drover_proto::executions::{Execution, RunRequest, TargetStatus};
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// Largest stdout/stderr kept per host in a result.
const RESULT_TEXT_LIMIT: usize = 256 * 1024;

/// How the `hosts` parameter picks hosts: a selector when it has `=`, `*`, `?` or is
/// `all`; otherwise a comma-separated list of host names.
pub(crate) fn pick(hosts: &str) -> (String, Option<Vec<String>>) {
    let h = hosts.trim();
    if h == "all" || h.contains('=') || h.contains('*') || h.contains('?') {
        (h.to_string(), None)
    } else {
        let names: Vec<String> = h
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        ("all".to_string(), Some(names))
    }
}

/// A `sh -c` program that writes the script (its `$0`) to a temporary file, runs it
/// with the arguments that follow (`$@`) and removes it: the script keeps its own
/// `#!` interpreter. Run as `sh -c SCRIPT_WRAPPER <script text> <args>…`.
pub(crate) const SCRIPT_WRAPPER: &str = r#"f=$(mktemp "${TMPDIR:-/tmp}/drover-action.XXXXXX") || exit 127
printf '%s' "$0" > "$f" && chmod 700 "$f" || { rm -f "$f"; exit 127; }
"$f" "$@"; rc=$?; rm -f "$f"; exit $rc"#;

/// Starts the remote part of action execution `id`: `argv` on the hosts `hosts` picks.
pub(crate) async fn start(
    state: &Arc<AppState>,
    id: &str,
    actor: &str,
    hosts: &str,
    argv: Vec<String>,
    timeout_ms: Option<u64>,
    parallel: Option<u32>,
) -> Result<Execution, String> {
    let (selector, names) = pick(hosts);
    if names.as_ref().is_some_and(Vec::is_empty) {
        return Err("parameter `hosts`: names no host".into());
    }
    let req = RunRequest {
        selector,
        command: argv,
        parallel,
        timeout_ms,
    };
    crate::api::executions::start_run_on(
        state,
        actor,
        req,
        names.as_deref(),
        Some((id.to_string(), "remote".to_string())),
    )
    .await
    .map_err(|e| e.detail().to_string())
}

/// The action result of a finished remote run: per host, StackStorm's shell result
/// `{succeeded, failed, return_code, stdout, stderr}`.
pub(crate) async fn result_of(state: &Arc<AppState>, run: &Execution) -> anyhow::Result<Value> {
    let mut out: Map<String, Value> = Map::new();
    let mut texts: std::collections::HashMap<String, (String, String)> = Default::default();
    let mut after = 0;
    loop {
        let chunk = state.store.list_output(&run.id, after, 1000).await?;
        let Some((last, _)) = chunk.last() else { break };
        after = *last;
        for (_, o) in chunk {
            let entry = texts.entry(o.host_name.clone()).or_default();
            let buf = match o.stream {
                OutputStream::Stdout => &mut entry.0,
                _ => &mut entry.1,
            };
            if buf.len() < RESULT_TEXT_LIMIT {
                buf.push_str(&o.data);
            }
        }
    }
    for t in &run.targets {
        let (stdout, stderr) = texts.remove(&t.host_name).unwrap_or_default();
        let ok = t.status == TargetStatus::Ok;
        out.insert(
            t.host_name.clone(),
            json!({
                "succeeded": ok,
                "failed": !ok,
                "return_code": t.exit_code,
                "status": t.status,
                "stdout": crate::runners::shell::output_value(&stdout),
                "stderr": crate::runners::shell::output_value(&stderr),
                "error": t.error,
            }),
        );
    }
    Ok(Value::Object(out))
}
