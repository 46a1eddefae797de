//! `drover login`.

use std::process::ExitCode;

use clap::Args;
use drover_proto::auth::WhoAmI;

use crate::client::Client;
use crate::config::{Saved, save};

/// Check a token against a controller and save both, so later commands need no flags.
///
/// The file is $XDG_CONFIG_HOME/drover/config.json (else ~/.config/drover/config.json),
/// mode 0600. DROVER_URL and DROVER_TOKEN, or --url and --token, override it.
///
/// Example:
///   drover login --url http://127.0.0.1:7070 --token drover_api_…
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct LoginArgs {
    /// Controller URL.
    #[arg(long, env = "DROVER_URL")]
    url: String,
    /// API token.
    #[arg(long, env = "DROVER_TOKEN", hide_env_values = true)]
    token: String,
}

pub async fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.url, &args.token)?;
    let me: WhoAmI = client.post("/login", &serde_json::json!({})).await?;
    let path = save(&Saved {
        url: client.base().to_string(),
        token: args.token,
    })?;
    println!(
        "logged in to {} as `{}` ({}); saved to {}",
        client.base(),
        me.name,
        me.role.as_str(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
