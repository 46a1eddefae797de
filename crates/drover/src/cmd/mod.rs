//! Command-line verbs. Each verb lives in its own module; this one holds the argument
//! definitions and the dispatch.

mod actions;
mod agent;
mod artifacts;
mod demo;
mod demo_automation;
mod demo_lb;
mod demo_service;
mod events;
mod executions;
mod generators;
mod hosts;
mod kv;
mod login;
mod logs;
mod model;
mod packs;
mod plan;
mod providers;
mod rollout;
mod rules;
mod run;
mod server;
mod status;
mod tokens;
mod trace;
mod webhooks;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::Client;

/// drover drives a fleet of hosts: one binary for the controller, the agents and this CLI.
///
/// Start with `drover demo`. Point the CLI at a controller with `drover login` or the
/// DROVER_URL and DROVER_TOKEN environment variables.
#[derive(Parser, Debug)]
#[command(name = "drover", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the client verbs find the controller.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Controller URL (else DROVER_URL, else the saved login).
    #[arg(long, env = "DROVER_URL", global = true, hide_env_values = true)]
    url: Option<String>,
    /// API token (else DROVER_TOKEN, else the saved login).
    #[arg(long, env = "DROVER_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

impl Conn {
    /// A client from flags, environment or the saved login.
    pub fn client(&self) -> anyhow::Result<Client> {
        let saved = crate::config::load()?;
        let url = self
            .url
            .clone()
            .or_else(|| saved.as_ref().map(|s| s.url.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no controller given: pass --url, set DROVER_URL, or run `drover login`"
                )
            })?;
        let token = self
            .token
            .clone()
            .or_else(|| saved.as_ref().map(|s| s.token.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no token given: pass --token, set DROVER_TOKEN, or run `drover login`"
                )
            })?;
        Client::new(&url, &token)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(about = "Run the controller (API, agent hub, store).")]
    Server(server::ServerArgs),
    #[command(about = "Run the agent on this host.")]
    Agent(agent::AgentArgs),
    #[command(about = "Start a throw-away controller with 3 local agents and show drover at work.")]
    Demo(demo::DemoArgs),
    #[command(about = "Run a command on every matching host and stream its output.")]
    Run(run::RunArgs),
    #[command(about = "List executions, or show one.")]
    Executions(executions::ExecutionsArgs),
    #[command(about = "List or follow the event log (the audit trail).")]
    Events(events::EventsArgs),
    // `about` rather than a doc comment: a variant's doc comment would also replace the
    // long help (with the examples) written on the arguments struct.
    #[command(
        about = "The datastore rules and actions read: set, get, list, delete (secrets encrypted)"
    )]
    Kv(kv::KvArgs),
    #[command(about = "StackStorm packs: install, list, show, remove")]
    Packs(packs::PacksArgs),
    #[command(about = "Actions from packs: list, get, run (parameters checked first)")]
    Actions(actions::ActionsArgs),
    #[command(about = "Rules: list, get (last matches), enable, disable, test against a payload")]
    Rules(rules::RulesArgs),
    #[command(about = "How an execution came to be (rule, event, workflow) and what it led to")]
    Trace(trace::TraceArgs),
    #[command(about = "Webhooks that fire rules: list, create (own secret or HMAC), delete")]
    Webhooks(webhooks::WebhooksArgs),
    #[command(about = "Hosts from agents and providers: list, show, history, drain, undrain")]
    Hosts(hosts::HostsArgs),
    #[command(about = "Inventory providers of the model: list their last sync, sync one now")]
    Providers(providers::ProvidersArgs),
    #[command(about = "Create, list and revoke API and join tokens (admin).")]
    Tokens(tokens::TokensArgs),
    #[command(about = "Check a token against a controller and save both for later commands.")]
    Login(login::LoginArgs),
    #[command(about = "Upload and list release artifacts in the controller's store.")]
    Artifacts(artifacts::ArtifactsArgs),
    #[command(about = "Check a model directory; list and diff stored model versions.")]
    Model(model::ModelArgs),
    #[command(about = "Show what applying a model would change (changes nothing).")]
    Plan(plan::PlanArgs),
    #[command(about = "Show the delta between the applied model and what runs.")]
    Status(status::StatusArgs),
    #[command(about = "Store a model version and roll it out, health-gated.")]
    Apply(rollout::ApplyArgs),
    #[command(
        about = "Follow and control rollouts: status, promote, pause, resume, abort, rollback."
    )]
    Rollout(rollout::RolloutArgs),
    #[command(about = "Show a service instance's logs, from its agent.")]
    Logs(logs::LogsArgs),
    #[command(
        about = "Config rendered from the live inventory (HAProxy and the like): list, preview, apply."
    )]
    Generators(generators::GeneratorsArgs),
    /// The HTTP service `drover demo` deploys (internal).
    #[command(hide = true)]
    DemoService(demo_service::DemoServiceArgs),
}

/// Runs the chosen verb and maps its outcome to an exit code.
pub async fn dispatch(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Server(a) => server::run(a).await,
        Command::Agent(a) => agent::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Executions(a) => executions::run(a).await,
        Command::Events(a) => events::run(a).await,
        Command::Hosts(a) => hosts::run(a).await,
        Command::Kv(a) => kv::run(a).await,
        Command::Packs(a) => packs::run(a).await,
        Command::Actions(a) => actions::run(a).await,
        Command::Rules(a) => rules::run(a).await,
        Command::Trace(a) => trace::run(a).await,
        Command::Webhooks(a) => webhooks::run(a).await,
        Command::Providers(a) => providers::run(a).await,
        Command::Tokens(a) => tokens::run(a).await,
        Command::Login(a) => login::run(a).await,
        Command::Artifacts(a) => artifacts::run(a).await,
        Command::Model(a) => model::run(a).await,
        Command::Plan(a) => plan::run(a).await,
        Command::Status(a) => status::run(a).await,
        Command::Apply(a) => rollout::apply(a).await,
        Command::Rollout(a) => rollout::rollout(a).await,
        Command::Logs(a) => logs::run(a).await,
        Command::Generators(a) => generators::run(a).await,
        Command::DemoService(a) => demo_service::run(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Exit code for input the user must fix (bad selector, duration…), as clap uses.
pub const USAGE: u8 = 2;

/// Prints a usage error and returns its exit code.
pub fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(USAGE)
}

/// Sets up logging for long-running verbs (`RUST_LOG` overrides `default`).
pub fn init_logging(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn terminate_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
