//! Action metadata (StackStorm's schema) and the runners drover supports.

use serde_json::Value as Json;

use super::pack::Pack;
use super::params::{ParamSchema, decode_params, schema_from_yaml};
use crate::model::decode::{Fields, boolean, string};
use crate::model::error::{ModelError, Sink};
use crate::model::load::parse_documents;

/// What runs an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runner {
    /// `local-shell-cmd`: `cmd` through the shell on the controller.
    LocalShellCmd,
    /// `local-shell-script`: the entry point script on the controller.
    LocalShellScript,
    /// `remote-shell-cmd`: `cmd` on `hosts`.
    RemoteShellCmd,
    /// `remote-shell-script`: the entry point script on `hosts`.
    RemoteShellScript,
    /// `http-request`.
    HttpRequest,
    /// `noop`: does nothing, succeeds.
    Noop,
    /// `orquesta`: a workflow.
    Orquesta,
    /// `drover-run`: a command on hosts, through drover's agents.
    DroverRun,
    /// `drover-apply`: apply the stored model.
    DroverApply,
    /// `drover-drain`: drain a host.
    DroverDrain,
    /// `drover-undrain`: put a drained host back.
    DroverUndrain,
}

/// StackStorm runners drover knows of but does not run.
const NOT_YET: &[&str] = &[
    "python-script",
    "action-chain",
    "inquirer",
    "winrm-cmd",
    "winrm-ps-cmd",
    "winrm-ps-script",
    "announcement",
    "cloudslang",
    "mistral-v2",
];

impl Runner {
    /// Every runner.
    pub const ALL: [Runner; 11] = [
        Runner::LocalShellCmd,
        Runner::LocalShellScript,
        Runner::RemoteShellCmd,
        Runner::RemoteShellScript,
        Runner::HttpRequest,
        Runner::Noop,
        Runner::Orquesta,
        Runner::DroverRun,
        Runner::DroverApply,
        Runner::DroverDrain,
        Runner::DroverUndrain,
    ];

    /// The runner named `name` (StackStorm's `runner_type`); `orchestra` is
    /// StackStorm's alias of `orquesta`, `run-local`/`run-remote` of the shell ones.
    pub fn parse(name: &str) -> Option<Runner> {
        match name {
            "orchestra" => return Some(Runner::Orquesta),
            "run-local" => return Some(Runner::LocalShellCmd),
            "run-local-script" => return Some(Runner::LocalShellScript),
            "run-remote" => return Some(Runner::RemoteShellCmd),
            "run-remote-script" => return Some(Runner::RemoteShellScript),
            "http-runner" => return Some(Runner::HttpRequest),
            _ => {}
        }
        Runner::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The runner's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::LocalShellCmd => "local-shell-cmd",
            Runner::LocalShellScript => "local-shell-script",
            Runner::RemoteShellCmd => "remote-shell-cmd",
            Runner::RemoteShellScript => "remote-shell-script",
            Runner::HttpRequest => "http-request",
            Runner::Noop => "noop",
            Runner::Orquesta => "orquesta",
            Runner::DroverRun => "drover-run",
            Runner::DroverApply => "drover-apply",
            Runner::DroverDrain => "drover-drain",
            Runner::DroverUndrain => "drover-undrain",
        }
    }

    /// Whether the runner needs an `entry_point` (a script or workflow file).
    pub fn needs_entry_point(self) -> bool {
        matches!(
            self,
            Runner::LocalShellScript | Runner::RemoteShellScript | Runner::Orquesta
        )
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The pack it belongs to.
    pub pack: String,
    /// Its name within the pack.
    pub name: String,
    /// What runs it.
    pub runner: Runner,
    /// Its script or workflow, relative to the pack's `actions/`.
    pub entry_point: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Whether it may run (default true).
    pub enabled: bool,
    /// Its own parameters (see [`Action::effective_parameters`]).
    pub parameters: ParamSchema,
    /// Free-form tags.
    pub tags: Vec<Json>,
    /// JSON-schema of its result.
    pub output_schema: Option<Json>,
    /// StackStorm's notify settings, kept as written.
    pub notify: Option<Json>,
}

impl Action {
    /// `pack.name`.
    pub fn reference(&self) -> String {
        format!("{}.{}", self.pack, self.name)
    }

    /// The runner's parameters with the action's laid over them (an action parameter
    /// overrides the runner parameter of the same name, e.g. its default or
    /// `immutable`).
    pub fn effective_parameters(&self) -> ParamSchema {
        runner_parameters(self.runner).overlay(&self.parameters)
    }
}

const ACTION_FIELDS: &[&str] = &[
    "name",
    "runner_type",
    "entry_point",
    "description",
    "enabled",
    "parameters",
    "tags",
    "output_schema",
    "notify",
    "pack",
    "ref",
    "uid",
    "id",
    "metadata_file",
];

/// Decodes the action metadata in `text` (file `file`) of pack `pack`.
pub fn decode_action(file: &str, text: &str, pack: &str) -> Result<Action, Vec<ModelError>> {
    let docs = parse_documents(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut sink = Sink {
        file,
        text,
        errors: &mut errors,
    };
    let Some(node) = docs.first() else {
        return Err(vec![ModelError {
            file: file.to_string(),
            line: 1,
            column: 1,
            field: String::new(),
            reason: "the file holds no action".into(),
        }]);
    };
    let action = Fields::read(&mut sink, node, node.pos, "", ACTION_FIELDS)
        .and_then(|f| read_action(&mut sink, &f, pack));
    match action {
        Some(a) if errors.is_empty() => Ok(a),
        _ => Err(errors),
    }
}

fn read_action(sink: &mut Sink<'_>, f: &Fields<'_>, pack: &str) -> Option<Action> {
    let name = f
        .require(sink, "name")
        .and_then(|n| string(sink, n, "name"))
        .map(str::to_string);
    if let (Some(n), Some(node)) = (&name, f.get("name"))
        && (n.is_empty() || n.contains(['/', ' ']))
    {
        sink.push(
            node.pos,
            "name",
            format!("`{n}` is not a valid action name"),
        );
    }
    if let Some(p) = f.get("pack").and_then(|n| string(sink, n, "pack"))
        && p != pack
        && let Some(node) = f.get("pack")
    {
        sink.push(
            node.pos,
            "pack",
            format!("the action says pack `{p}` but is in pack `{pack}`"),
        );
    }
    let label = name.clone().unwrap_or_else(|| "?".into());
    let runner = f.require(sink, "runner_type").and_then(|n| {
        let r = string(sink, n, "runner_type")?;
        match Runner::parse(r) {
            Some(runner) => Some(runner),
            None => {
                let reason = if NOT_YET.contains(&r) || r.starts_with("winrm-") {
                    format!("action `{label}`: runner `{r}` is not supported yet")
                } else {
                    let names: Vec<&str> = Runner::ALL.iter().map(|r| r.as_str()).collect();
                    format!(
                        "action `{label}`: unknown runner `{r}`{}; drover runs {}",
                        crate::model::error::did_you_mean(r, names.iter().copied()),
                        names.join(", ")
                    )
                };
                sink.push(n.pos, "runner_type", reason);
                None
            }
        }
    });
    let entry_point = f
        .get("entry_point")
        .and_then(|n| string(sink, n, "entry_point"))
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(r) = runner
        && r.needs_entry_point()
        && entry_point.is_none()
    {
        let at = f.entry("entry_point").map_or(f.at, |(k, _)| k.pos);
        sink.push(
            at,
            "entry_point",
            format!("action `{label}`: runner `{r}` needs an entry_point (a file under actions/)"),
        );
    }
    let description = f
        .get("description")
        .and_then(|n| string(sink, n, "description"))
        .map(str::to_string);
    let enabled = f
        .get("enabled")
        .and_then(|n| boolean(sink, n, "enabled"))
        .unwrap_or(true);
    let parameters = f
        .get("parameters")
        .map(|n| decode_params(sink, n, "parameters"))
        .unwrap_or_default();
    let tags = f
        .get("tags")
        .map(|n| match n.to_json() {
            Json::Array(items) => items,
            other => vec![other],
        })
        .unwrap_or_default();
    if let Some(n) = f.get("tags")
        && !matches!(n.value, crate::model::load::Value::Seq(_))
    {
        sink.push(n.pos, "tags", "expected a list");
    }
    let output_schema = f.get("output_schema").map(|n| n.to_json());
    let notify = f.get("notify").map(|n| n.to_json());
    Some(Action {
        pack: pack.to_string(),
        name: name?,
        runner: runner?,
        entry_point,
        description,
        enabled,
        parameters,
        tags,
        output_schema,
        notify,
    })
}

const SHELL_COMMON: &str = "
cwd: {type: string, description: Working directory the command runs in.}
env: {type: object, description: Environment variables the command gets.}
kwarg_op: {type: string, default: '--', description: Prefix of named script arguments.}
sudo: {type: boolean, default: false, description: Run with sudo.}
sudo_password: {type: string, secret: true, default: null, description: Password for sudo.}
timeout: {type: integer, default: 60, description: Seconds before the command is stopped.}
";

const REMOTE_EXTRA: &str = "
hosts: {type: string, required: true, description: 'Where to run: a drover selector (label.role=web) or comma-separated host names.'}
parallel: {type: boolean, default: false, immutable: true, description: Run on all hosts at once.}
username: {type: string, description: User to run as on the hosts.}
dir: {type: string, default: /tmp, immutable: true, description: Where scripts are copied on the hosts.}
bastion_host: {type: string, description: Accepted for StackStorm compatibility; drover reaches hosts through its agents.}
port: {type: integer, description: Accepted for StackStorm compatibility.}
password: {type: string, secret: true, description: Accepted for StackStorm compatibility.}
private_key: {type: string, secret: true, description: Accepted for StackStorm compatibility.}
passphrase: {type: string, secret: true, description: Accepted for StackStorm compatibility.}
";

const HTTP: &str = "
url: {type: string, required: true, description: URL to request.}
method: {type: string, default: GET, enum: [GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS]}
headers: {type: object, description: Request headers.}
body: {description: 'Request body: text, or JSON for objects and lists.'}
cookies: {type: object}
params: {type: object, description: Query parameters.}
timeout: {type: number, default: 60}
allow_redirects: {type: boolean, default: false}
verify_ssl_cert: {type: boolean, default: true}
username: {type: string}
password: {type: string, secret: true}
http_proxy: {type: string}
https_proxy: {type: string}
url_hosts_blacklist: {type: array, items: {type: string}}
url_hosts_whitelist: {type: array, items: {type: string}}
";

const DROVER_RUN: &str = "
hosts: {type: string, required: true, description: 'A drover selector (label.role=web) or comma-separated host names.'}
cmd: {type: string, required: true, description: 'The command, run by the shell on each host.'}
timeout: {type: integer, default: 60}
parallel: {type: integer, default: 0, description: 'Hosts at once (0: all).'}
env: {type: object}
cwd: {type: string}
";

/// Each runner's own parameters (from StackStorm's runner.yaml; for http-request
/// also the request fields StackStorm's core.http declares, which drover's runner
/// reads; remote `hosts` is a drover selector or comma-separated host names).
pub fn runner_parameters(r: Runner) -> ParamSchema {
    let text = match r {
        Runner::LocalShellCmd => format!("cmd: {{type: string}}\n{SHELL_COMMON}"),
        Runner::LocalShellScript => {
            format!("debug: {{type: boolean, default: false}}\n{SHELL_COMMON}")
        }
        Runner::RemoteShellCmd => format!("cmd: {{type: string}}\n{SHELL_COMMON}{REMOTE_EXTRA}"),
        Runner::RemoteShellScript => format!("{SHELL_COMMON}{REMOTE_EXTRA}"),
        Runner::HttpRequest => HTTP.to_string(),
        Runner::Noop => String::new(),
        Runner::Orquesta => {
            "notify: {type: array, uniqueItems: true, items: {type: string}, default: []}".into()
        }
        Runner::DroverRun => DROVER_RUN.to_string(),
        Runner::DroverApply => "dry_run: {type: boolean, default: false}".into(),
        Runner::DroverDrain | Runner::DroverUndrain => {
            "host: {type: string, required: true}".into()
        }
    };
    // The texts are ours and tested to decode cleanly.
    schema_from_yaml(r.as_str(), &text).unwrap_or_default()
}

const CORE_ACTIONS: &[(&str, &str)] = &[
    (
        "local",
        "name: local\nrunner_type: local-shell-cmd\ndescription: Runs a command on the controller.\nparameters:\n  cmd: {type: string, required: true}\n",
    ),
    (
        "remote",
        "name: remote\nrunner_type: remote-shell-cmd\ndescription: Runs a command on hosts.\nparameters:\n  cmd: {type: string, required: true}\n",
    ),
    (
        "http",
        "name: http\nrunner_type: http-request\ndescription: Sends an HTTP request.\n",
    ),
    (
        "noop",
        "name: noop\nrunner_type: noop\ndescription: Does nothing.\n",
    ),
    (
        "echo",
        "name: echo\nrunner_type: local-shell-cmd\ndescription: Prints a message.\nparameters:\n  message: {type: string, required: true}\n  cmd: {immutable: true, default: 'echo {{ message }}'}\n",
    ),
];

const DROVER_ACTIONS: &[(&str, &str)] = &[
    (
        "run",
        "name: run\nrunner_type: drover-run\ndescription: Runs a command on the hosts a selector picks.\n",
    ),
    (
        "apply",
        "name: apply\nrunner_type: drover-apply\ndescription: Applies the stored model.\n",
    ),
    (
        "drain",
        "name: drain\nrunner_type: drover-drain\ndescription: Drains a host.\n",
    ),
    (
        "undrain",
        "name: undrain\nrunner_type: drover-undrain\ndescription: Puts a drained host back.\n",
    ),
];

/// The packs built into drover: `core` and `drover`.
pub fn builtin_packs() -> Vec<Pack> {
    [
        ("core", "StackStorm's basic actions.", CORE_ACTIONS),
        ("drover", "drover's own actions.", DROVER_ACTIONS),
    ]
    .into_iter()
    .map(|(name, description, actions)| Pack {
        name: name.to_string(),
        description: Some(description.to_string()),
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        actions: actions
            .iter()
            .filter_map(|(file, text)| {
                decode_action(&format!("actions/{file}.yaml"), text, name).ok()
            })
            .collect(),
        ..Pack::default()
    })
    .collect()
}

#[cfg(test)]
mod tests;
